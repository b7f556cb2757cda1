/** A binary min-heap under `before` (a strict order: whether `a` comes before `b`). */
export class MinHeap<T> {
  #items: T[] = [];

  constructor(private readonly before: (a: T, b: T) => boolean) {}

  get size(): number {
    return this.#items.length;
  }

  /** The first item, left in place. */
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
      if (!this.before(item, p)) break;
      heap[i] = p;
      i = parent;
    }
    heap[i] = item;
  }

  /** Removes and returns the first item. */
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
      const child = r < n && this.before(heap[r] as T, heap[l] as T) ? r : l;
      const c = heap[child] as T;
      if (!this.before(c, last)) break;
      heap[i] = c;
      i = child;
    }
    heap[i] = last;
    return top;
  }

  /** Keeps only the items `keep` accepts (one pass: for dropping many stale items at once). */
  retain(keep: (item: T) => boolean): void {
    // A sorted array is a valid heap.
    this.#items = this.#items
      .filter(keep)
      .sort((a, b) => (this.before(a, b) ? -1 : this.before(b, a) ? 1 : 0));
  }

  clear(): void {
    this.#items = [];
  }
}
