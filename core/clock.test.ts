import { describe, expect, it } from "vitest";
import { RealClock, VirtualClock } from "./clock.js";

describe("VirtualClock", () => {
  it("starts where told and moves only when advanced", async () => {
    const clock = new VirtualClock(1_000);
    expect(clock.now()).toBe(1_000);
    await clock.advance(250);
    expect(clock.now()).toBe(1_250);
  });

  it("fires timers in due order, then creation order, each at its own time", async () => {
    const clock = new VirtualClock(0);
    const fired: string[] = [];
    clock.setTimer(30, () => fired.push(`c@${clock.now()}`));
    clock.setTimer(10, () => fired.push(`a@${clock.now()}`));
    clock.setTimer(10, () => fired.push(`b@${clock.now()}`));
    clock.setTimerAt(20, () => fired.push(`at20@${clock.now()}`));
    await clock.advance(25);
    expect(fired).toEqual(["a@10", "b@10", "at20@20"]);
    expect(clock.now()).toBe(25);
    await clock.advance(5);
    expect(fired).toEqual(["a@10", "b@10", "at20@20", "c@30"]);
  });

  it("fires a timer due exactly at the new time, not one after it", async () => {
    const clock = new VirtualClock(0);
    const fired: number[] = [];
    clock.setTimer(100, () => fired.push(100));
    clock.setTimer(101, () => fired.push(101));
    await clock.advance(100);
    expect(fired).toEqual([100]);
  });

  it("does not fire cancelled timers and counts live ones", async () => {
    const clock = new VirtualClock(0);
    let fired = 0;
    const t = clock.setTimer(5, () => fired++);
    clock.setTimer(6, () => fired++);
    expect(clock.pendingTimers).toBe(2);
    t.cancel();
    t.cancel();
    expect(clock.pendingTimers).toBe(1);
    expect(clock.nextDue()).toBe(6);
    await clock.advance(10);
    expect(fired).toBe(1);
    expect(clock.pendingTimers).toBe(0);
  });

  it("fires timers that a timer schedules within the same advance", async () => {
    const clock = new VirtualClock(0);
    const fired: number[] = [];
    clock.setTimer(10, () => {
      fired.push(clock.now());
      clock.setTimer(5, () => fired.push(clock.now()));
    });
    await clock.advance(20);
    expect(fired).toEqual([10, 15]);
  });

  it("lets async reactions to a timer run before the next timer fires", async () => {
    const clock = new VirtualClock(0);
    const log: string[] = [];
    clock.setTimer(1, () => {
      void (async () => {
        await Promise.resolve();
        await new Promise((r) => setImmediate(r));
        log.push("reaction");
      })();
    });
    clock.setTimer(2, () => log.push("second"));
    await clock.advance(2);
    expect(log).toEqual(["reaction", "second"]);
  });

  it("past and negative due times fire at the current time", async () => {
    const clock = new VirtualClock(100);
    const fired: number[] = [];
    clock.setTimerAt(50, () => fired.push(clock.now()));
    clock.setTimer(-5, () => fired.push(clock.now()));
    await clock.advance(0);
    expect(fired).toEqual([100, 100]);
  });

  it("sleep resolves on advance and rejects on abort", async () => {
    const clock = new VirtualClock(0);
    let woke = false;
    const slept = clock.sleep(50).then(() => {
      woke = true;
    });
    await clock.advance(49);
    expect(woke).toBe(false);
    await clock.advance(1);
    await slept;
    expect(woke).toBe(true);

    const controller = new AbortController();
    const aborted = clock.sleep(10, controller.signal);
    controller.abort(new Error("stop"));
    await expect(aborted).rejects.toThrow("stop");
    expect(clock.pendingTimers).toBe(0);
  });

  it("runNext and runAll step through timers; runAll stops at its limit", async () => {
    const clock = new VirtualClock(0);
    const fired: number[] = [];
    for (const t of [30, 10, 20]) clock.setTimer(t, () => fired.push(clock.now()));
    expect(await clock.runNext()).toBe(true);
    expect(fired).toEqual([10]);
    expect(await clock.runAll()).toBe(2);
    expect(fired).toEqual([10, 20, 30]);
    expect(await clock.runNext()).toBe(false);

    const rearm = (): void => {
      clock.setTimer(1, rearm);
    };
    rearm();
    expect(await clock.runAll({ limit: 5, settle: "none" })).toBe(5);
  });

  it("refuses to go backwards", async () => {
    const clock = new VirtualClock(10);
    await expect(clock.advanceTo(5)).rejects.toThrow(RangeError);
    await expect(clock.advance(-1)).rejects.toThrow(RangeError);
  });

  it("keeps order across many timers (heap property)", async () => {
    const clock = new VirtualClock(0);
    const fired: number[] = [];
    // A fixed permutation of 0..999 (multiplicative step mod a prime-free size) scheduled out of order.
    for (let i = 0; i < 1000; i++) {
      const due = (i * 7919) % 1000;
      clock.setTimer(due, () => fired.push(due));
    }
    await clock.advance(1000, { settle: "none" });
    expect(fired).toEqual([...fired].sort((a, b) => a - b));
    expect(fired).toHaveLength(1000);
  });
});

describe("RealClock", () => {
  it("reads the wall clock", () => {
    const clock = new RealClock();
    const before = Date.now();
    const now = clock.now();
    expect(now).toBeGreaterThanOrEqual(before);
    expect(now).toBeLessThanOrEqual(Date.now());
  });

  it("fires timers and cancels them", async () => {
    const clock = new RealClock();
    let cancelledFired = false;
    clock
      .setTimer(1, () => {
        cancelledFired = true;
      })
      .cancel();
    await new Promise<void>((resolve) => clock.setTimer(1, resolve));
    await clock.sleep(2);
    expect(cancelledFired).toBe(false);
  });
});
