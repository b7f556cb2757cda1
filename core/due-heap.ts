/** Something due at a time; of two due at the same time, the one with the lower `seq` is first. */
export interface Due {
  readonly due: number;
  readonly seq: number;
}

/** A binary min-heap on (due, seq): timers in the order they fire. */
export class DueHeap<T extends Due> {
  #items: T[] = [];

  get size(): number {
    return this.#items.length;
  }

  /** The first due, left in place. */
  peek(): T | undefined {
    return this.#items[0];
  }

  push(item: T): void {
    const heap = this.#items;
    heap.push(item);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = heap[parent] as T;
      if (!before(item, p)) break;
      heap[i] = p;
      i = parent;
    }
    heap[i] = item;
  }

  /** Removes and returns the first due. */
  pop(): T | undefined {
    const heap = this.#items;
    const top = heap[0];
    const last = heap.pop();
    if (last === undefined || heap.length === 0) return top;
    let i = 0;
    const n = heap.length;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const child = r < n && before(heap[r] as T, heap[l] as T) ? r : l;
      const c = heap[child] as T;
      if (!before(c, last)) break;
      heap[i] = c;
      i = child;
    }
    heap[i] = last;
    return top;
  }

  /** Keeps only the items `keep` accepts (one pass: for dropping many cancelled timers at once). */
  retain(keep: (item: T) => boolean): void {
    // A sorted array is a valid heap.
    this.#items = this.#items.filter(keep).sort((a, b) => a.due - b.due || a.seq - b.seq);
  }

  clear(): void {
    this.#items = [];
  }
}

function before(a: Due, b: Due): boolean {
  return a.due < b.due || (a.due === b.due && a.seq < b.seq);
}
