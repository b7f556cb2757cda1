import { type Clock, DueHeap, type Timer } from "../../core/index.js";

/** One queued timer: `id`'s timer of kind `kind`, due at `due`. */
export interface QueuedTimer<K> {
  readonly due: number;
  readonly id: string;
  readonly kind: K;
}

interface Entry<K> extends QueuedTimer<K> {
  readonly seq: number;
  cancelled: boolean;
}

/**
 * Many timers on one clock timer: a min-heap by (due, order of adding), with the clock armed for
 * its head only. A timer per lease would keep a Node `Timeout`, the clock's handle and two
 * closures alive for the lease's whole window (~1 KB a lease, copied by the scavenger and
 * promoted); a queued timer is one small object. Timers due at the same time fire in the order
 * they were added, as separate clock timers would.
 */
export class TimerQueue<K> {
  readonly #clock: Clock;
  readonly #onFire: (id: string, kind: K, due: number) => void;
  readonly #heap = new DueHeap<Entry<K>>();
  #cancelled = 0;
  #seq = 0;
  #armedFor: number | undefined;
  #armed: Timer | undefined;

  constructor(clock: Clock, onFire: (id: string, kind: K, due: number) => void) {
    this.#clock = clock;
    this.#onFire = onFire;
  }

  /** Timers queued and not cancelled (nor fired). */
  get size(): number {
    return this.#heap.size - this.#cancelled;
  }

  add(due: number, id: string, kind: K): QueuedTimer<K> {
    const entry: Entry<K> = { due, id, kind, seq: this.#seq++, cancelled: false };
    this.#heap.push(entry);
    if (this.#armedFor === undefined || due < this.#armedFor) this.#arm(due);
    return entry;
  }

  /** Cancels a timer `add` returned; one already fired or cancelled is left alone. */
  cancel(timer: QueuedTimer<K>): void {
    const entry = timer as Entry<K>;
    if (entry.cancelled) return;
    entry.cancelled = true;
    this.#cancelled++;
    // The clock stays armed only for a live timer (a VirtualClock's pending timers are what a
    // simulation runs until).
    if (this.#heap.peek() === entry) {
      this.#armNext();
      return;
    }
    // A cancelled timer stays in the heap until it reaches the head: drop them in one pass once
    // they are the larger part (timers replaced as leases change state would otherwise pile up
    // for a whole window).
    if (this.#cancelled > 64 && this.#cancelled * 2 > this.#heap.size) {
      this.#heap.retain((e) => !e.cancelled);
      this.#cancelled = 0;
    }
  }

  /** Cancels every timer queued (the queue stays usable). */
  clear(): void {
    this.#armed?.cancel();
    this.#armed = undefined;
    this.#armedFor = undefined;
    this.#heap.retain((e) => {
      e.cancelled = true;
      return false;
    });
    this.#cancelled = 0;
  }

  #arm(due: number): void {
    this.#armed?.cancel();
    this.#armedFor = due;
    this.#armed = this.#clock.setTimerAt(due, () => this.#fire(due));
  }

  #fire(armedFor: number): void {
    this.#armed = undefined;
    this.#armedFor = undefined;
    // Everything due by the time this clock timer was armed for (or by now, if later); timers
    // added while firing wait for the next clock timer, so one firing always ends.
    const until = Math.max(armedFor, this.#clock.now());
    const lastSeq = this.#seq;
    for (let head = this.#heap.peek(); head !== undefined; head = this.#heap.peek()) {
      if (head.due > until || head.seq >= lastSeq) break;
      this.#heap.pop();
      if (head.cancelled) {
        this.#cancelled--;
        continue;
      }
      head.cancelled = true;
      this.#onFire(head.id, head.kind, head.due);
    }
    this.#armNext();
  }

  /** Drops cancelled timers off the head, then arms the clock for the head (or for nothing). */
  #armNext(): void {
    while (this.#heap.peek()?.cancelled === true) {
      this.#heap.pop();
      this.#cancelled--;
    }
    const head = this.#heap.peek();
    if (head === undefined) {
      this.#armed?.cancel();
      this.#armed = undefined;
      this.#armedFor = undefined;
    } else if (head.due !== this.#armedFor) {
      this.#arm(head.due);
    }
  }
}
