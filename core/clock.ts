/**
 * The Clock port: all time in leasebroker goes through it. Times are epoch milliseconds.
 *
 * `RealClock` wraps Date.now and Node's timers. `VirtualClock` only moves when told to, and fires
 * its timers in a deterministic order (due time, then creation order), so that tests of timing
 * behaviour and the simulator need no sleeps and run faster than real time.
 */

import { DueHeap } from "./due-heap.js";

/** A scheduled callback; cancelling twice, or after it fired, is harmless. */
export interface Timer {
  cancel(): void;
}

export interface Clock {
  /** Now, in epoch milliseconds. */
  now(): number;
  /** Runs `fn` once after `delayMs` (negative delays run as soon as possible). */
  setTimer(delayMs: number, fn: () => void): Timer;
  /** Runs `fn` once at the absolute time `atMs` (a past time runs as soon as possible). */
  setTimerAt(atMs: number, fn: () => void): Timer;
  /** Resolves after `ms`; rejects with the signal's reason if aborted first. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

function sleepOn(clock: Clock, ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const onAbort = (): void => {
      timer.cancel();
      reject(signal?.reason);
    };
    const timer = clock.setTimer(ms, () => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    });
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

export class RealClock implements Clock {
  now(): number {
    return Date.now();
  }

  setTimer(delayMs: number, fn: () => void): Timer {
    // Node clamps delays above 2^31-1 ms to 1 ms; long waits (reservations weeks ahead) are
    // chained in steps instead.
    const MAX_STEP = 0x7fff_ffff;
    const due = Date.now() + Math.max(0, delayMs);
    let handle: NodeJS.Timeout;
    const arm = (): void => {
      const left = due - Date.now();
      if (left > MAX_STEP) {
        handle = setTimeout(arm, MAX_STEP);
      } else {
        handle = setTimeout(fn, Math.max(0, left));
      }
      handle.unref?.();
    };
    arm();
    return { cancel: () => clearTimeout(handle) };
  }

  setTimerAt(atMs: number, fn: () => void): Timer {
    return this.setTimer(atMs - Date.now(), fn);
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return sleepOn(this, ms, signal);
  }
}

interface VirtualTimer {
  due: number;
  seq: number;
  fn: () => void;
  cancelled: boolean;
}

/** How `VirtualClock.advance` lets asynchronous reactions to a timer run before the next one. */
export type SettleMode = "none" | "microtasks" | "macrotask";

export interface AdvanceOptions {
  /**
   * After each timer fires: `macrotask` (default) waits one `setImmediate`, so promise chains and
   * I/O callbacks (a gRPC reply, a bus message) that the timer started can run; `microtasks`
   * drains only promise jobs (faster, for pure simulation); `none` fires back to back.
   */
  settle?: SettleMode;
}

const settleMicrotasks = async (): Promise<void> => {
  for (let i = 0; i < 10; i++) await Promise.resolve();
};
// Promise jobs first, so that a reaction that awaits before doing I/O has scheduled it; then one
// turn of the event loop for that I/O; then the promise jobs it released.
const settleMacrotask = async (): Promise<void> => {
  await settleMicrotasks();
  await new Promise((resolve) => setImmediate(resolve));
  await settleMicrotasks();
};

/** A manual clock: time moves only through `advance`, `advanceTo` or `runNext`. */
export class VirtualClock implements Clock {
  #now: number;
  #seq = 0;
  // A binary min-heap on (due, seq): the simulator keeps hundreds of thousands of timers.
  readonly #heap = new DueHeap<VirtualTimer>();
  #live = 0;

  constructor(startMs = 0) {
    this.#now = startMs;
  }

  now(): number {
    return this.#now;
  }

  setTimer(delayMs: number, fn: () => void): Timer {
    return this.setTimerAt(this.#now + Math.max(0, delayMs), fn);
  }

  setTimerAt(atMs: number, fn: () => void): Timer {
    const timer: VirtualTimer = {
      due: Math.max(atMs, this.#now),
      seq: this.#seq++,
      fn,
      cancelled: false,
    };
    this.#heap.push(timer);
    this.#live++;
    return {
      cancel: () => {
        if (!timer.cancelled) {
          timer.cancelled = true;
          this.#live--;
        }
      },
    };
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return sleepOn(this, ms, signal);
  }

  /** Timers scheduled and not yet fired or cancelled. */
  get pendingTimers(): number {
    return this.#live;
  }

  /** When the next live timer is due, or undefined if none is. */
  nextDue(): number | undefined {
    this.#dropCancelled();
    return this.#heap.peek()?.due;
  }

  /** Moves time forward by `ms`, firing every timer due up to and including the new time. */
  async advance(ms: number, options?: AdvanceOptions): Promise<void> {
    if (!(ms >= 0)) throw new RangeError(`VirtualClock.advance: ms must be >= 0, got ${ms}`);
    return this.advanceTo(this.#now + ms, options);
  }

  /** Moves time to `atMs` (never backwards), firing due timers in order, each at its own time. */
  async advanceTo(atMs: number, options?: AdvanceOptions): Promise<void> {
    if (atMs < this.#now) {
      throw new RangeError(`VirtualClock.advanceTo: ${atMs} is before now (${this.#now})`);
    }
    const settle = options?.settle ?? "macrotask";
    await this.#settle(settle);
    for (;;) {
      const next = this.#popDue(atMs);
      if (next === undefined) break;
      this.#now = next.due;
      next.fn();
      await this.#settle(settle);
    }
    this.#now = atMs;
  }

  /** Fires the next live timer (moving time to it); false if there is none. */
  async runNext(options?: AdvanceOptions): Promise<boolean> {
    const due = this.nextDue();
    if (due === undefined) return false;
    const timer = this.#popDue(due);
    if (timer === undefined) return false;
    this.#now = timer.due;
    timer.fn();
    await this.#settle(options?.settle ?? "macrotask");
    return true;
  }

  /** Fires timers until none is left, or `limit` have fired (guards against self-rearming loops). */
  async runAll(options?: AdvanceOptions & { limit?: number }): Promise<number> {
    const limit = options?.limit ?? 100_000;
    let fired = 0;
    while (fired < limit && (await this.runNext(options))) fired++;
    return fired;
  }

  #settle(mode: SettleMode): Promise<void> {
    if (mode === "none") return Promise.resolve();
    return mode === "microtasks" ? settleMicrotasks() : settleMacrotask();
  }

  #popDue(atMs: number): VirtualTimer | undefined {
    this.#dropCancelled();
    const top = this.#heap.peek();
    if (top === undefined || top.due > atMs) return undefined;
    this.#heap.pop();
    top.cancelled = true;
    this.#live--;
    return top;
  }

  #dropCancelled(): void {
    while (this.#heap.peek()?.cancelled) this.#heap.pop();
  }
}
