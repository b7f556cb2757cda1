import type { Long } from "@grpc/proto-loader";
import fc from "fast-check";
import protobuf from "protobufjs";
import { describe, expect, it } from "vitest";
import { durationFromMs, msFromDuration, msFromTimestamp, timestampFromMs } from "./time.js";

// The "long" class protobufjs uses at run time, typed as @grpc/proto-loader's Long (the input type).
const LongClass = protobuf.util.Long as unknown as typeof Long;

const MIN_MS = -62_135_596_800_000; // 0001-01-01T00:00:00Z
const MAX_MS = 253_402_300_799_999; // 9999-12-31T23:59:59.999Z

describe("timestamps", () => {
  it("round-trip every integer millisecond in range, with nanos in [0, 1e9)", () => {
    fc.assert(
      fc.property(fc.integer({ min: MIN_MS, max: MAX_MS }), (ms) => {
        const ts = timestampFromMs(ms);
        expect(Number.isSafeInteger(ts.seconds)).toBe(true);
        expect(ts.nanos).toBeGreaterThanOrEqual(0);
        expect(ts.nanos).toBeLessThan(1e9);
        expect(ts.nanos % 1_000_000).toBe(0);
        expect(msFromTimestamp(ts)).toBe(ms);
      }),
      { numRuns: 2000 },
    );
  });

  it("agree with Date", () => {
    const ms = Date.UTC(2024, 1, 29, 12, 30, 15, 250);
    expect(timestampFromMs(ms)).toEqual({ seconds: ms / 1000 - 0.25, nanos: 250_000_000 });
    expect(timestampFromMs(-1)).toEqual({ seconds: -1, nanos: 999_000_000 });
    expect(timestampFromMs(0)).toEqual({ seconds: 0, nanos: 0 });
    expect(Object.is(timestampFromMs(-0).seconds, 0)).toBe(true);
  });

  it("keep sub-millisecond precision to the nanosecond and round it back to milliseconds", () => {
    expect(timestampFromMs(1.5)).toEqual({ seconds: 0, nanos: 1_500_000 });
    expect(timestampFromMs(999.9999996)).toEqual({ seconds: 1, nanos: 0 });
    expect(msFromTimestamp({ seconds: 10, nanos: 1_499_999 })).toBe(10_001);
    expect(msFromTimestamp({ seconds: 10, nanos: 1_500_000 })).toBe(10_002);
    expect(msFromTimestamp({ seconds: 10, nanos: 999_999_999 })).toBe(11_000);
  });

  it("accept the permissive seconds forms and absent parts", () => {
    expect(msFromTimestamp({ seconds: "1700000000", nanos: 5_000_000 })).toBe(1_700_000_000_005);
    expect(msFromTimestamp({ seconds: LongClass.fromNumber(1_700_000_000, true) })).toBe(
      1_700_000_000_000,
    );
    expect(msFromTimestamp({})).toBe(0);
  });

  it("map null and undefined to undefined", () => {
    expect(msFromTimestamp(null)).toBeUndefined();
    expect(msFromTimestamp(undefined)).toBeUndefined();
    expect(timestampFromMs(undefined)).toBeUndefined();
    expect(timestampFromMs(null)).toBeUndefined();
  });

  it("reject non-finite and out-of-range values with RangeError", () => {
    expect(() => timestampFromMs(Number.NaN)).toThrow(RangeError);
    expect(() => timestampFromMs(Number.POSITIVE_INFINITY)).toThrow(RangeError);
    expect(() => timestampFromMs(MAX_MS + 1)).toThrow(RangeError);
    expect(() => timestampFromMs(MIN_MS - 1)).toThrow(RangeError);
    expect(() => msFromTimestamp({ seconds: "12abc" })).toThrow(RangeError);
    expect(() => msFromTimestamp({ seconds: 1, nanos: 1e9 })).toThrow(RangeError);
    expect(() => msFromTimestamp({ seconds: 1, nanos: 0.5 })).toThrow(RangeError);
  });
});

describe("durations", () => {
  it("round-trip every integer millisecond, with seconds and nanos of the same sign", () => {
    fc.assert(
      fc.property(fc.integer({ min: -315_576_000_000_000, max: 315_576_000_000_000 }), (ms) => {
        const d = durationFromMs(ms);
        expect(Math.abs(d.nanos)).toBeLessThan(1e9);
        expect(d.seconds * d.nanos).toBeGreaterThanOrEqual(0);
        expect(msFromDuration(d)).toBe(ms);
      }),
      { numRuns: 2000 },
    );
  });

  it("split negative values symmetrically and never produce -0", () => {
    expect(durationFromMs(-1500)).toEqual({ seconds: -1, nanos: -500_000_000 });
    expect(durationFromMs(1500)).toEqual({ seconds: 1, nanos: 500_000_000 });
    const small = durationFromMs(-0.4);
    expect(small).toEqual({ seconds: 0, nanos: -400_000 });
    expect(Object.is(small.seconds, 0)).toBe(true);
    expect(Object.is(durationFromMs(-0).nanos, 0)).toBe(true);
    expect(msFromDuration({ seconds: 0, nanos: -1_500_000 })).toBe(-2);
    expect(Object.is(msFromDuration({ seconds: 0, nanos: -400_000 }), 0)).toBe(true);
  });

  it("map null and undefined to undefined and reject bad values", () => {
    expect(msFromDuration(null)).toBeUndefined();
    expect(durationFromMs(undefined)).toBeUndefined();
    expect(() => durationFromMs(Number.NaN)).toThrow(RangeError);
    expect(() => durationFromMs(3.2e14)).toThrow(RangeError);
    expect(() => msFromDuration({ seconds: 1, nanos: -1e9 })).toThrow(RangeError);
  });
});
