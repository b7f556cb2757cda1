/**
 * Timers of many agents on one schedule of slots: a timer due at `atMs` runs at the end of its
 * `slotMs`-wide slot, together with every other timer due in that slot, from one timer of the
 * Clock. For a process that holds many agents (bench:e2e's agent host, 1,000 of them): their
 * heartbeats, each on its own 1 s schedule, came from 1,000 timers a second, each its own turn of
 * the event loop and so its own socket write; with 10 ms slots they come in at most 100 turns a
 * second. Each agent keeps its own schedule (phase), late by less than a slot.
 */
import type { Clock, Timer } from "../core/index.js";

/** What schedules an agent's heartbeats: a Clock, or a TimerWheel over one. */
export interface TimerSource {
  setTimerAt(atMs: number, fn: () => void): Timer;
}

interface Slot {
  readonly timer: Timer;
  readonly due: Set<() => void>;
}

export class TimerWheel implements TimerSource {
  readonly #clock: Clock;
  readonly #slotMs: number;
  readonly #slots = new Map<number, Slot>();

  constructor(clock: Clock, slotMs: number) {
    if (!(Number.isInteger(slotMs) && slotMs >= 1)) {
      throw new RangeError(`slotMs must be a positive integer, got ${slotMs}`);
    }
    this.#clock = clock;
    this.#slotMs = slotMs;
  }

  /** Timers waiting, over every slot. */
  get pending(): number {
    let n = 0;
    for (const slot of this.#slots.values()) n += slot.due.size;
    return n;
  }

  /** Runs `fn` at the end of the slot `atMs` falls in (a past time: the current slot's end). */
  setTimerAt(atMs: number, fn: () => void): Timer {
    const index = Math.ceil(Math.max(atMs, this.#clock.now()) / this.#slotMs);
    let slot = this.#slots.get(index);
    if (slot === undefined) {
      const due = new Set<() => void>();
      const timer = this.#clock.setTimerAt(index * this.#slotMs, () => this.#run(index));
      slot = { timer, due };
      this.#slots.set(index, slot);
    }
    // A wrapper of its own: the same function scheduled twice is two timers.
    const entry = (): void => fn();
    slot.due.add(entry);
    const owner = slot;
    return {
      cancel: () => {
        if (!owner.due.delete(entry) || owner.due.size > 0) return;
        owner.timer.cancel();
        if (this.#slots.get(index) === owner) this.#slots.delete(index);
      },
    };
  }

  #run(index: number): void {
    const slot = this.#slots.get(index);
    if (slot === undefined) return;
    this.#slots.delete(index);
    let failure: { error: unknown } | undefined;
    for (const fn of slot.due) {
      try {
        fn();
      } catch (error) {
        // One failing callback does not starve the others of its slot; the first error still
        // surfaces, as a failing timer's would.
        failure ??= { error };
      }
    }
    if (failure !== undefined) throw failure.error;
  }
}
