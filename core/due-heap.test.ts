import { describe, expect, it } from "vitest";
import { DueHeap } from "./due-heap.js";
import { seededRandom } from "./random.js";

describe("DueHeap", () => {
  it("pops by due time, then by seq, and keeps that order after retain", () => {
    const random = seededRandom(7);
    const heap = new DueHeap<{ due: number; seq: number }>();
    const items = Array.from({ length: 200 }, (_, seq) => ({
      due: Math.floor(random() * 20),
      seq,
    }));
    for (const item of items) heap.push(item);
    heap.retain((item) => item.seq % 3 !== 0);
    const popped: { due: number; seq: number }[] = [];
    for (let item = heap.pop(); item !== undefined; item = heap.pop()) popped.push(item);
    const expected = items
      .filter((item) => item.seq % 3 !== 0)
      .sort((a, b) => a.due - b.due || a.seq - b.seq);
    expect(popped).toEqual(expected);
    expect(heap.size).toBe(0);
    expect(heap.peek()).toBeUndefined();
  });
});
