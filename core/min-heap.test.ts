import { describe, expect, it } from "vitest";
import { MinHeap } from "./min-heap.js";
import { seededRandom } from "./random.js";

describe("MinHeap", () => {
  it("pops in the order `before` gives, with items pushed between pops", () => {
    const random = seededRandom(11);
    const heap = new MinHeap<string>((a, b) => a < b);
    const ids = Array.from({ length: 300 }, () => `h${Math.floor(random() * 1000)}`);
    const popped: string[] = [];
    ids.forEach((id, i) => {
      heap.push(id);
      if (i % 3 === 2) popped.push(heap.pop() as string);
    });
    for (let id = heap.pop(); id !== undefined; id = heap.pop()) popped.push(id);
    // every pop is the least of what the heap held then: replay with a sorted list
    const held: string[] = [];
    const expected: string[] = [];
    ids.forEach((id, i) => {
      held.push(id);
      held.sort();
      if (i % 3 === 2) expected.push(held.shift() as string);
    });
    expected.push(...held.sort());
    expect(popped).toEqual(expected);
    expect(heap.size).toBe(0);
  });
});
