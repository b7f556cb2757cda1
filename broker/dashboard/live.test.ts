import { describe, expect, it } from "vitest";
import { VirtualClock } from "../../core/index.js";
import { frame, Throttle } from "./live.js";

describe("Throttle", () => {
  it("coalesces pokes into at most one run per interval", async () => {
    const clock = new VirtualClock(1_000_000);
    const runs: number[] = [];
    const throttle = new Throttle(clock, 500, () => runs.push(clock.now()));
    for (let i = 0; i < 5; i++) throttle.poke();
    await clock.advance(0);
    expect(runs).toEqual([1_000_000]);
    await clock.advance(100);
    for (let i = 0; i < 3; i++) throttle.poke();
    await clock.advance(300);
    expect(runs).toHaveLength(1);
    await clock.advance(100);
    expect(runs).toEqual([1_000_000, 1_000_500]);
    // No poke, no run.
    await clock.advance(5000);
    expect(runs).toHaveLength(2);
    // Long after the last run, a poke runs at once.
    throttle.poke();
    await clock.advance(0);
    expect(runs).toEqual([1_000_000, 1_000_500, 1_005_500]);
  });

  it("runs nothing after stop", async () => {
    const clock = new VirtualClock(0);
    let runs = 0;
    const throttle = new Throttle(clock, 500, () => runs++);
    throttle.poke();
    throttle.stop();
    throttle.poke();
    await clock.advance(1000);
    expect(runs).toBe(0);
  });
});

describe("frame", () => {
  it("is one event with one data line", () => {
    expect(frame("snapshot", { a: "x\ny" })).toBe('event: snapshot\ndata: {"a":"x\\ny"}\n\n');
  });
});
