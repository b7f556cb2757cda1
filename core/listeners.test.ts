import { describe, expect, it } from "vitest";
import { Listeners } from "./listeners.js";

describe("Listeners", () => {
  it("calls each listener once, in order; removing one stops it", () => {
    const calls: string[] = [];
    const listeners = new Listeners<number>();
    const a = (n: number) => calls.push(`a${n}`);
    const offA = listeners.add(a);
    listeners.add(a);
    listeners.add((n) => calls.push(`b${n}`));
    expect(listeners.size).toBe(2);
    listeners.emit(1);
    offA();
    listeners.emit(2);
    expect(calls).toEqual(["a1", "b1", "b2"]);
    listeners.clear();
    listeners.emit(3);
    expect(calls).toEqual(["a1", "b1", "b2"]);
  });

  it("a change during a call applies from the next call", () => {
    const calls: string[] = [];
    const listeners = new Listeners<number>();
    const late = (n: number) => calls.push(`late${n}`);
    let offSecond = (): void => {};
    listeners.add((n) => {
      calls.push(`first${n}`);
      listeners.add(late);
      offSecond();
    });
    offSecond = listeners.add((n) => calls.push(`second${n}`));
    listeners.emit(1);
    listeners.emit(2);
    expect(calls).toEqual(["first1", "second1", "first2", "late2"]);
  });
});
