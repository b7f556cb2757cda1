import { describe, expect, it } from "vitest";
import { VirtualClock } from "../../core/index.js";
import { TimerQueue } from "./timer-queue.js";

function queueOn(clock: VirtualClock): { queue: TimerQueue<string>; fired: string[] } {
  const fired: string[] = [];
  const queue = new TimerQueue<string>(clock, (id, kind, time) =>
    fired.push(`${id}/${kind}@${time}:${clock.now()}`),
  );
  return { queue, fired };
}

describe("TimerQueue", () => {
  it("fires each timer at its time, by time then order of adding, on one clock timer", async () => {
    const clock = new VirtualClock(0);
    const { queue, fired } = queueOn(clock);
    queue.add(30, "c", "end");
    queue.add(10, "a", "end");
    queue.add(10, "b", "start");
    queue.add(20, "a", "warn");
    expect(clock.pendingTimers).toBe(1);
    await clock.advance(25);
    expect(fired).toEqual(["a/end@10:10", "b/start@10:10", "a/warn@20:20"]);
    await clock.advance(5);
    expect(fired.at(-1)).toBe("c/end@30:30");
    expect(queue.size).toBe(0);
    expect(clock.pendingTimers).toBe(0);
  });

  it("does not fire a cancelled timer, and re-arms for an earlier one added later", async () => {
    const clock = new VirtualClock(0);
    const { queue, fired } = queueOn(clock);
    const late = queue.add(100, "x", "end");
    queue.add(50, "y", "end");
    queue.cancel(late);
    queue.cancel(late);
    expect(queue.size).toBe(1);
    const head = queue.add(10, "z", "end");
    queue.cancel(head);
    // Armed for the earliest live timer only: what a simulation runs until.
    await clock.runNext();
    expect(clock.now()).toBe(50);
    await clock.advance(150);
    expect(fired).toEqual(["y/end@50:50"]);
    expect(clock.pendingTimers).toBe(0);
  });

  it("drops cancelled timers once they are most of the queue, and keeps the order", async () => {
    const clock = new VirtualClock(0);
    const { queue, fired } = queueOn(clock);
    const timers = Array.from({ length: 300 }, (_, i) => queue.add(1000 - i, `l${i}`, "end"));
    for (const t of timers.slice(0, 290)) queue.cancel(t);
    expect(queue.size).toBe(10);
    await clock.advance(1000);
    expect(fired).toEqual(
      Array.from({ length: 10 }, (_, k) => {
        const i = 299 - k;
        return `l${i}/end@${1000 - i}:${1000 - i}`;
      }),
    );
  });

  it("fires a timer added while firing on the next clock timer, and nothing after clear", async () => {
    const clock = new VirtualClock(0);
    const fired: string[] = [];
    const queue: TimerQueue<string> = new TimerQueue<string>(clock, (id) => {
      fired.push(`${id}@${clock.now()}`);
      if (id === "first") queue.add(clock.now(), "again", "end");
    });
    queue.add(5, "first", "end");
    await clock.advance(5);
    expect(fired).toEqual(["first@5", "again@5"]);
    queue.add(10, "cleared", "end");
    queue.clear();
    queue.add(20, "after", "end");
    await clock.advance(20);
    expect(fired).toEqual(["first@5", "again@5", "after@20"]);
  });
});
