import { describe, expect, it } from "vitest";
import { deepFreeze } from "./freeze.js";

describe("deepFreeze", () => {
  it("freezes objects and arrays all the way down, and returns the value", () => {
    const value = { a: { b: [1, { c: "x" }] }, d: null, e: [[{ f: 2 }]], g: "s" };
    expect(deepFreeze(value)).toBe(value);
    for (const part of [
      value,
      value.a,
      value.a.b,
      value.a.b[1],
      value.e,
      value.e[0],
      value.e[0]?.[0],
    ])
      expect(Object.isFrozen(part)).toBe(true);
    expect(() => {
      (value.a.b[1] as { c: string }).c = "y";
    }).toThrow(TypeError);
  });

  it("leaves primitives alone and stops at a part already frozen", () => {
    expect(deepFreeze(3)).toBe(3);
    expect(deepFreeze(null)).toBe(null);
    const shared = Object.freeze({ inner: { n: 1 } });
    deepFreeze({ shared });
    // Taken as frozen through: a new version sharing a frozen part does not walk it again.
    expect(Object.isFrozen(shared.inner)).toBe(false);
  });
});
