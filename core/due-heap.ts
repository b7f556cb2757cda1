import { MinHeap } from "./min-heap.js";

/** Something due at a time; of two due at the same time, the one with the lower `seq` is first. */
export interface Due {
  readonly due: number;
  readonly seq: number;
}

/** A binary min-heap on (due, seq): timers in the order they fire. */
export class DueHeap<T extends Due> extends MinHeap<T> {
  constructor() {
    super(before);
  }
}

function before(a: Due, b: Due): boolean {
  return a.due < b.due || (a.due === b.due && a.seq < b.seq);
}
