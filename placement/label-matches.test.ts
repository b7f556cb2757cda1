import { describe, expect, it } from "vitest";
import {
  LABEL_SELECTORS_KEPT,
  LabelMatches,
  MATCH_NO,
  MATCH_UNKNOWN,
  MATCH_YES,
} from "./label-matches.js";
import type { Requirement } from "./selector.js";

const zone = (z: string): Requirement[] => [{ key: "zone", op: "=", value: z }];

describe("LabelMatches", () => {
  it("keeps one set of bytes per selector, grown to the hosts asked for", () => {
    const m = new LabelMatches();
    const a = m.bytesFor(zone("z1"), 10);
    expect(a.length).toBeGreaterThanOrEqual(10);
    a[3] = MATCH_YES;
    expect(m.bytesFor(zone("z1"), 10)).toBe(a);
    // another selector, other bytes
    expect(m.bytesFor(zone("z2"), 10)[3]).toBe(MATCH_UNKNOWN);
    // more hosts: grown, what was learnt kept
    const grown = m.bytesFor(zone("z1"), 1000);
    expect(grown.length).toBeGreaterThanOrEqual(1000);
    expect(grown[3]).toBe(MATCH_YES);
    expect(m.size).toBe(2);
  });

  it("forgets a host number in every selector", () => {
    const m = new LabelMatches();
    const a = m.bytesFor(zone("z1"), 8);
    const b = m.bytesFor(zone("z2"), 8);
    a[5] = MATCH_YES;
    b[5] = MATCH_NO;
    a[6] = MATCH_YES;
    m.forget(5);
    m.forget(100_000); // a number past every selector's bytes
    expect([a[5], b[5], a[6]]).toEqual([MATCH_UNKNOWN, MATCH_UNKNOWN, MATCH_YES]);
  });

  it("drops the least recently used selector past LABEL_SELECTORS_KEPT", () => {
    const m = new LabelMatches();
    for (let i = 0; i < LABEL_SELECTORS_KEPT; i++) m.bytesFor(zone(`z${i}`), 4)[0] = MATCH_YES;
    // z0 used again: z1 is now the least recent
    m.bytesFor(zone("z0"), 4);
    m.bytesFor(zone("new"), 4);
    expect(m.size).toBe(LABEL_SELECTORS_KEPT);
    expect(m.bytesFor(zone("z0"), 4)[0]).toBe(MATCH_YES);
    expect(m.bytesFor(zone("z2"), 4)[0]).toBe(MATCH_YES);
    expect(m.bytesFor(zone("z1"), 4)[0]).toBe(MATCH_UNKNOWN);
  });
});
