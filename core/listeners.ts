/**
 * Listeners, called in the order they were added (each once, as with a Set). Adding or removing
 * one replaces the list, so that a call in progress goes on over the list it started with: no
 * copy per call, which the broker made on every write and agent message.
 */
export class Listeners<T> {
  #list: readonly ((value: T) => void)[] = [];

  get size(): number {
    return this.#list.length;
  }

  /** Adds `listener` (once); returns what removes it. */
  add(listener: (value: T) => void): () => void {
    if (!this.#list.includes(listener)) this.#list = [...this.#list, listener];
    return () => this.delete(listener);
  }

  delete(listener: (value: T) => void): void {
    this.#list = this.#list.filter((l) => l !== listener);
  }

  clear(): void {
    this.#list = [];
  }

  /** Calls every listener with `value`; a listener that throws stops the rest, as a loop would. */
  emit(value: T): void {
    for (const listener of this.#list) listener(value);
  }
}
