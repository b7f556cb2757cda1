import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { CapacityTimeline } from "./timeline.js";

describe("CapacityTimeline", () => {
  it("handles overlapping, nested, adjacent and far-future windows", () => {
    const t = new CapacityTimeline(1);
    t.add(0, 10, [5]);
    t.add(5, 15, [3]); // overlapping
    t.add(6, 7, [1]); // nested
    t.add(15, 20, [4]); // adjacent: end == start does not overlap
    t.add(1e15, 1e15 + 1, [9]); // far future
    expect(t.peak(0, 5)[0]).toBe(5);
    expect(t.peak(0, 10)[0]).toBe(9);
    expect(t.peak(10, 15)[0]).toBe(3);
    expect(t.peak(15, 20)[0]).toBe(4);
    expect(t.peak(10, 20)[0]).toBe(4);
    expect(t.peak(20, 1e15)[0]).toBe(0);
    expect(t.peak(0, 2e15)[0]).toBe(9);
    expect(t.fits(15, 20, [6], [10])).toBe(true);
    expect(t.fits(14, 20, [8], [10])).toBe(false);
    t.remove(6, 7, [1]);
    t.remove(5, 15, [3]);
    t.remove(15, 20, [4]);
    t.remove(1e15, 1e15 + 1, [9]);
    t.remove(0, 10, [5]);
    expect(t.size).toBe(0);
  });

  it("finds the earliest start", () => {
    const t = new CapacityTimeline(1);
    t.add(0, 10, [8]);
    t.add(12, 20, [8]);
    expect(t.earliestFit([5], [10], 2, 0, 100)).toBe(10);
    expect(t.earliestFit([5], [10], 3, 0, 100)).toBe(20);
    expect(t.earliestFit([5], [10], 3, 0, 19)).toBeNaN();
    expect(t.earliestFit([2], [10], 3, 0, 100)).toBe(0);
    expect(t.earliestFit([11], [10], 3, 0, 100)).toBeNaN();
  });

  it("reports where a demand binds", () => {
    const t = new CapacityTimeline(2);
    t.add(10, 20, [5, 1]);
    t.add(15, 30, [3, 1]);
    const v = t.violation(0, 40, [4, 1], [10, 10]);
    expect(v).toEqual({ dim: 0, shortBy: 2, start: 15, end: 20 });
    expect(t.violation(0, 40, [2, 1], [10, 10])).toBeUndefined();
  });

  it("matches a brute-force step function (property)", () => {
    const hold = fc.record({
      s: fc.integer({ min: 0, max: 50 }),
      len: fc.integer({ min: 1, max: 20 }),
      d: fc.integer({ min: 1, max: 9 }),
    });
    fc.assert(
      fc.property(
        fc.array(hold, { maxLength: 25 }),
        fc.array(fc.boolean(), { maxLength: 25 }),
        (holds, removes) => {
          const t = new CapacityTimeline(1);
          const live: typeof holds = [];
          holds.forEach((h, i) => {
            t.add(h.s, h.s + h.len, [h.d]);
            live.push(h);
            if (removes[i] === true && live.length > 0) {
              const r = live.shift();
              if (r !== undefined) t.remove(r.s, r.s + r.len, [r.d]);
            }
          });
          const at = (x: number) =>
            live.reduce((sum, h) => sum + (h.s <= x && x < h.s + h.len ? h.d : 0), 0);
          for (let s = 0; s < 72; s += 3) {
            for (let e = s + 1; e < 75; e += 7) {
              let peak = 0;
              for (let x = s; x < e; x++) peak = Math.max(peak, at(x));
              expect(t.peak(s, e)[0]).toBe(peak);
            }
          }
          // earliest fit against brute force over integer starts
          const limit = 12;
          for (const d of [1, 4, 9]) {
            let brute = Number.NaN;
            for (let s = 0; s <= 60; s++) {
              let ok = true;
              for (let x = s; x < s + 5; x++) if (at(x) + d > limit) ok = false;
              if (ok) {
                brute = s;
                break;
              }
            }
            expect(t.earliestFit([d], [limit], 5, 0, 60)).toBe(brute);
          }
          if (live.length === 0) expect(t.size).toBe(0);
        },
      ),
      { numRuns: 200 },
    );
  });
});
