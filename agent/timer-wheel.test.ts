import { describe, expect, it } from "vitest";
import { VirtualClock } from "../core/index.js";
import { TimerWheel } from "./timer-wheel.js";

describe("TimerWheel", () => {
  it("runs the timers due in one slot together, at the slot's end, from one clock timer", async () => {
    const clock = new VirtualClock(1000);
    const wheel = new TimerWheel(clock, 10);
    const ran: Array<[string, number]> = [];
    for (const [name, at] of [
      ["a", 1001],
      ["b", 1010],
      ["c", 1005],
      ["d", 1011],
    ] as const) {
      wheel.setTimerAt(at, () => ran.push([name, clock.now()]));
    }
    expect(clock.pendingTimers).toBe(2);
    expect(wheel.pending).toBe(4);
    await clock.advanceTo(1009);
    expect(ran).toEqual([]);
    await clock.advanceTo(1010);
    expect(ran).toEqual([
      ["a", 1010],
      ["b", 1010],
      ["c", 1010],
    ]);
    await clock.advanceTo(1020);
    expect(ran.at(-1)).toEqual(["d", 1020]);
    expect(wheel.pending).toBe(0);
    expect(clock.pendingTimers).toBe(0);
  });

  it("cancels one timer of a slot, and the slot's clock timer with its last one", async () => {
    const clock = new VirtualClock(0);
    const wheel = new TimerWheel(clock, 10);
    const ran: string[] = [];
    const a = wheel.setTimerAt(5, () => ran.push("a"));
    const b = wheel.setTimerAt(6, () => ran.push("b"));
    a.cancel();
    a.cancel();
    await clock.advance(10);
    expect(ran).toEqual(["b"]);
    b.cancel();
    const c = wheel.setTimerAt(15, () => ran.push("c"));
    expect(clock.pendingTimers).toBe(1);
    c.cancel();
    expect(clock.pendingTimers).toBe(0);
    await clock.advance(100);
    expect(ran).toEqual(["b"]);
  });

  it("runs a timer due in the past at the current slot's end; the same function twice is two timers", async () => {
    const clock = new VirtualClock(1234);
    const wheel = new TimerWheel(clock, 10);
    let runs = 0;
    const fn = (): void => {
      runs++;
    };
    wheel.setTimerAt(0, fn);
    wheel.setTimerAt(1235, fn);
    await clock.advanceTo(1239);
    expect(runs).toBe(0);
    await clock.advanceTo(1240);
    expect(runs).toBe(2);
  });

  it("runs the other timers of a slot when one throws, then surfaces the error", async () => {
    const clock = new VirtualClock(0);
    const wheel = new TimerWheel(clock, 10);
    const ran: string[] = [];
    wheel.setTimerAt(1, () => {
      throw new Error("boom");
    });
    wheel.setTimerAt(2, () => ran.push("after"));
    await expect(clock.advance(10)).rejects.toThrow("boom");
    expect(ran).toEqual(["after"]);
  });

  it("refuses a slot that is not a positive integer", () => {
    expect(() => new TimerWheel(new VirtualClock(0), 0)).toThrow(RangeError);
    expect(() => new TimerWheel(new VirtualClock(0), 2.5)).toThrow(RangeError);
  });
});
