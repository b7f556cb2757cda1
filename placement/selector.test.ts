import { describe, expect, it } from "vitest";
import { InvalidSelectorError } from "./errors.js";
import { formatRequirement, matches, parseSelector, parseSelectors } from "./selector.js";

describe("parseSelector", () => {
  it("parses every operator", () => {
    expect(parseSelector("zone=a")).toEqual({ key: "zone", op: "=", value: "a" });
    expect(parseSelector("zone != a")).toEqual({ key: "zone", op: "!=", value: "a" });
    expect(parseSelector("rack in (r2, r1)")).toEqual({
      key: "rack",
      op: "in",
      values: ["r1", "r2"],
    });
    expect(parseSelector("rack notin (r1)")).toEqual({ key: "rack", op: "notin", values: ["r1"] });
    expect(parseSelector("example.com/gpu")).toEqual({ key: "example.com/gpu", op: "exists" });
    expect(parseSelector("!ssd")).toEqual({ key: "ssd", op: "!exists" });
    expect(parseSelector("gen<3")).toEqual({ key: "gen", op: "<", value: 3 });
    expect(parseSelector("gen > 2.5")).toEqual({ key: "gen", op: ">", value: 2.5 });
  });
  it("round-trips through formatRequirement", () => {
    for (const e of [
      "zone=a",
      "zone!=a",
      "rack in (r1,r2)",
      "rack notin (r1)",
      "ssd",
      "!ssd",
      "gen<3",
      "gen>-1",
    ]) {
      expect(parseSelector(formatRequirement(parseSelector(e)))).toEqual(parseSelector(e));
    }
  });
  it("rejects bad expressions with the position", () => {
    const bad: [string, number][] = [
      ["", 0],
      ["zone=", 5],
      ["zone=a b", 7],
      ["-zone=a", 0],
      ["zone in a", 8],
      ["gen<x", 4],
      [`v=${"x".repeat(64)}`, 2],
      ["Bad_Prefix/key=a", 0],
    ];
    for (const [expr, pos] of bad) {
      let err: unknown;
      try {
        parseSelector(expr);
      } catch (e) {
        err = e;
      }
      expect(err, expr).toBeInstanceOf(InvalidSelectorError);
      expect((err as InvalidSelectorError).position, expr).toBe(pos);
      expect((err as InvalidSelectorError).expression).toBe(expr);
    }
  });
  it("parses lists with commas inside parentheses", () => {
    expect(parseSelectors("zone=a, rack in (r1,r2), !ssd")).toHaveLength(3);
    expect(parseSelectors("  ")).toEqual([]);
    expect(() => parseSelectors("zone=a,,b")).toThrow(InvalidSelectorError);
  });
});

describe("matches", () => {
  const labels = { zone: "a", gen: "3", rack: "r1" };
  it("follows Kubernetes semantics", () => {
    expect(matches([parseSelector("zone=a")], labels)).toBe(true);
    expect(matches([parseSelector("zone!=b")], labels)).toBe(true);
    expect(matches([parseSelector("missing!=b")], labels)).toBe(true);
    expect(matches([parseSelector("missing notin (b)")], labels)).toBe(true);
    expect(matches([parseSelector("missing in (b)")], labels)).toBe(false);
    expect(matches([parseSelector("gen>2"), parseSelector("gen<4")], labels)).toBe(true);
    expect(matches([parseSelector("zone>2")], labels)).toBe(false);
    expect(matches([parseSelector("!rack")], labels)).toBe(false);
    expect(matches([parseSelector("constructor")], labels)).toBe(false);
    expect(matches([], labels)).toBe(true);
  });
});
