import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { InvalidArgumentError } from "../core/index.js";
import { completionTimeoutMs, GIB, MIB, predictForMemory, predictPreCopy } from "./precopy.js";

describe("predictPreCopy: hand-computed cases", () => {
  it("switches over before any round when all of memory fits under the threshold (as QEMU)", () => {
    // threshold = 1024 MiB/s × 0.3 s = 307.2 MiB ≥ 64 MiB
    const r = predictPreCopy({
      memoryBytes: 64 * MIB,
      dirtyRateBytesPerS: 512 * MIB,
      bandwidthBytesPerS: 1024 * MIB,
      downtimeLimitMs: 300,
    });
    expect(r).toMatchObject({ converges: true, rounds: 0, stop: "converged" });
    expect(r.downtimeMs).toBeCloseTo(62.5, 9);
    expect(r.totalTimeMs).toBeCloseTo(62.5, 9);
    expect(r.bytesSent).toBe(64 * MIB);
  });

  it("halves the dirty set each round when the dirty rate is half the bandwidth", () => {
    // 1024 MiB at 128 MiB/s, dirtying 64 MiB/s; threshold 38.4 MiB:
    // rounds 1024 (8 s) → 512 (4 s) → 256 (2 s) → 128 (1 s) → 64 (0.5 s), then 32 MiB stop-and-copy
    const r = predictPreCopy({
      memoryBytes: GIB,
      dirtyRateBytesPerS: 64 * MIB,
      bandwidthBytesPerS: 128 * MIB,
      downtimeLimitMs: 300,
    });
    expect(r.converges).toBe(true);
    expect(r.rounds).toBe(5);
    expect(r.roundDetails.map((d) => d.bytes / MIB)).toEqual([1024, 512, 256, 128, 64]);
    expect(r.bytesSent).toBe(2016 * MIB);
    expect(r.totalTimeMs).toBeCloseTo(15_750, 6);
    expect(r.downtimeMs).toBeCloseTo(250, 6);
  });

  it("zero pages shorten the first round only", () => {
    const r = predictPreCopy({
      memoryBytes: GIB,
      zeroPageShare: 0.5,
      dirtyRateBytesPerS: 64 * MIB,
      bandwidthBytesPerS: 128 * MIB,
      downtimeLimitMs: 300,
    });
    expect(r.roundDetails[0]?.bytes).toBe(512 * MIB);
    expect(r.roundDetails[0]?.durationMs).toBeCloseTo(4000, 6);
    // 512 → 256 → 128 → 64, then 32 MiB
    expect(r.rounds).toBe(4);
    expect(r.downtimeMs).toBeCloseTo(250, 6);
  });

  it("does not converge when the WWS is re-dirtied faster than it is sent (stops at 3× memory)", () => {
    // WWS 256 MiB > threshold 38.4 MiB and dirty rate 256 MiB/s ≥ bandwidth: every round after
    // the first resends 256 MiB. Sent after k rounds = 1024 + 256(k − 1); the 10th would pass 3 GiB.
    const r = predictPreCopy({
      memoryBytes: GIB,
      dirtyRateBytesPerS: 256 * MIB,
      wwsBytes: 256 * MIB,
      bandwidthBytesPerS: 128 * MIB,
      downtimeLimitMs: 300,
    });
    expect(r).toMatchObject({ converges: false, completes: false, stop: "max-data", rounds: 9 });
    expect(r.bytesSent).toBe(3 * GIB);
    expect(r.downtimeMs).toBeCloseTo(2000, 6);
    const capped = predictPreCopy({
      memoryBytes: GIB,
      dirtyRateBytesPerS: 256 * MIB,
      wwsBytes: 256 * MIB,
      bandwidthBytesPerS: 128 * MIB,
      downtimeLimitMs: 300,
      maxRounds: 4,
    });
    expect(capped).toMatchObject({ converges: false, stop: "max-rounds", rounds: 4 });
  });

  it("auto-converge throttles as QEMU does (20 %, then +10 % every second high round) until it converges", () => {
    const r = predictPreCopy({
      memoryBytes: GIB,
      dirtyRateBytesPerS: 256 * MIB,
      wwsBytes: 256 * MIB,
      bandwidthBytesPerS: 128 * MIB,
      downtimeLimitMs: 300,
      maxRounds: 100,
      maxDataFactor: 100,
      autoConverge: true,
    });
    expect(r.converges).toBe(true);
    expect(r.downtimeMs).toBeLessThanOrEqual(300);
    const throttles = r.roundDetails.map((d) => d.throttlePct);
    // round 1 dirties 256 of 1024 MiB sent (not high); rounds 2 and 3 are high → 20 % from round 4
    expect(throttles.slice(0, 6)).toEqual([0, 0, 0, 20, 20, 30]);
    // only once the dirty rate falls below the bandwidth (> 50 %) does the dirty set shrink
    expect(r.finalThrottlePct).toBeGreaterThan(50);
  });

  it("post-copy completes a migration pre-copy cannot, with its switchover downtime", () => {
    const r = predictPreCopy({
      memoryBytes: GIB,
      dirtyRateBytesPerS: 256 * MIB,
      wwsBytes: 256 * MIB,
      bandwidthBytesPerS: 128 * MIB,
      downtimeLimitMs: 300,
      postCopy: true,
      postCopyDowntimeMs: 40,
    });
    expect(r).toMatchObject({ converges: false, completes: true, mode: "postcopy" });
    expect(r.downtimeMs).toBe(40);
    // 9 rounds (8 s + 8 × 2 s) + 40 ms switchover + 256 MiB after it (2 s)
    expect(r.totalTimeMs).toBeCloseTo(24_000 + 40 + 2000, 6);
    expect(r.bytesSent).toBe(3 * GIB + 256 * MIB);
  });

  it("rejects bad input with the field named", () => {
    expect(() =>
      predictPreCopy({
        memoryBytes: GIB,
        dirtyRateBytesPerS: 0,
        bandwidthBytesPerS: 0,
        downtimeLimitMs: 300,
      }),
    ).toThrow(InvalidArgumentError);
    expect(() =>
      predictPreCopy({
        memoryBytes: GIB,
        zeroPageShare: 2,
        dirtyRateBytesPerS: 0,
        bandwidthBytesPerS: MIB,
        downtimeLimitMs: 300,
      }),
    ).toThrow(/zeroPageShare/);
  });
});

describe("predictPreCopy: the paper's qualitative results", () => {
  const arb = fc.record({
    memMib: fc.integer({ min: 1, max: 64 * 1024 }),
    zero: fc.double({ min: 0, max: 0.9, noNaN: true }),
    dirtyMibS: fc.integer({ min: 0, max: 4096 }),
    wwsShare: fc.double({ min: 0, max: 1, noNaN: true }),
    bwMibS: fc.integer({ min: 1, max: 4096 }),
    limitMs: fc.integer({ min: 1, max: 2000 }),
    auto: fc.boolean(),
  });

  it("when it converges, the downtime is within the limit", () => {
    fc.assert(
      fc.property(arb, (a) => {
        const r = predictPreCopy({
          memoryBytes: a.memMib * MIB,
          zeroPageShare: a.zero,
          dirtyRateBytesPerS: a.dirtyMibS * MIB,
          wwsBytes: a.memMib * MIB * a.wwsShare,
          bandwidthBytesPerS: a.bwMibS * MIB,
          downtimeLimitMs: a.limitMs,
          autoConverge: a.auto,
        });
        if (r.converges) expect(r.downtimeMs).toBeLessThanOrEqual(a.limitMs + 1e-9);
        else expect(r.downtimeMs).toBeGreaterThan(a.limitMs);
      }),
      { numRuns: 300 },
    );
  });

  it("never converges when the WWS exceeds bandwidth × limit and is dirtied at least as fast as it is sent", () => {
    fc.assert(
      fc.property(arb, (a) => {
        const bw = a.bwMibS * MIB;
        const wws = bw * (a.limitMs / 1000) * (1.01 + a.wwsShare);
        const mem = Math.max(a.memMib * MIB, wws / (1 - a.zero) + MIB);
        const r = predictPreCopy({
          memoryBytes: mem,
          zeroPageShare: a.zero,
          dirtyRateBytesPerS: bw * (1 + a.wwsShare),
          wwsBytes: wws,
          bandwidthBytesPerS: bw,
          downtimeLimitMs: a.limitMs,
        });
        expect(r.converges).toBe(false);
        expect(r.completes).toBe(false);
      }),
      { numRuns: 300 },
    );
  });
});

describe("predictPreCopy: QEMU's page costs (scan rate, first copy, measured threshold)", () => {
  it("an idle VM's time is the zero-page scan of all its memory", () => {
    // 2048 MiB of zero pages at 8192 MiB/s = 250 ms; nothing dirtied, nothing sent.
    const idle = {
      memoryBytes: 2 * GIB,
      zeroPageShare: 1,
      dirtyRateBytesPerS: 0,
      bandwidthBytesPerS: 800 * MIB,
      scanBytesPerS: 8 * GIB,
      downtimeLimitMs: 300,
    };
    const r = predictPreCopy(idle);
    expect(r).toMatchObject({ converges: true, rounds: 1, bytesSent: 0, downtimeMs: 0 });
    expect(r.totalTimeMs).toBeCloseTo(250, 9);
    // A fixed cost (setup, device state) adds to the total, not to a round.
    const withSetup = predictPreCopy({ ...idle, fixedCostMs: 4 });
    expect(withSetup.totalTimeMs).toBeCloseTo(254, 9);
    expect(withSetup.roundDetails[0]?.durationMs).toBeCloseTo(250, 9);
  });

  it("a slow first pass lowers QEMU's threshold: the working set is sent once more", () => {
    // 256 MiB, 192 MiB zero (scan 1920 MiB/s: 100 ms), a 64 MiB set re-dirtied at 10 GiB/s.
    // Round 1: 64 MiB first copy at 320 MiB/s (200 ms) + scan = 300 ms; its rate 213⅓ MiB/s ×
    // 0.25 s = 53⅓ MiB < 64 MiB: round 2 resends 64 MiB at 640 MiB/s (100 ms); then the threshold
    // is 640 × 0.25 = 160 MiB: stop-and-copy of 64 MiB (100 ms). Total 500 ms, 192 MiB sent.
    const vm = {
      memoryBytes: 256 * MIB,
      zeroPageShare: 0.75,
      dirtyRateBytesPerS: 10 * GIB,
      wwsBytes: 64 * MIB,
      bandwidthBytesPerS: 640 * MIB,
      firstCopyBytesPerS: 320 * MIB,
      scanBytesPerS: 1920 * MIB,
      downtimeLimitMs: 250,
    };
    const r = predictPreCopy(vm);
    expect(r).toMatchObject({ converges: true, rounds: 2, bytesSent: 192 * MIB });
    expect(r.roundDetails.map((d) => d.durationMs)).toEqual([
      expect.closeTo(300, 9),
      expect.closeTo(100, 9),
    ]);
    expect(r.totalTimeMs).toBeCloseTo(500, 9);
    expect(r.downtimeMs).toBeCloseTo(100, 9);
    // The same VM without page costs switches over at once: 64 MiB ≤ 160 MiB.
    const { firstCopyBytesPerS: _f, scanBytesPerS: _s, ...plain } = vm;
    const without = predictPreCopy(plain);
    expect(without).toMatchObject({ rounds: 0, bytesSent: 64 * MIB });
    expect(without.totalTimeMs).toBeCloseTo(100, 9);
  });

  it("a first pass fast enough switches over after it", () => {
    // 1024 MiB, 1008 MiB zero at 4032 MiB/s (250 ms) + 16 MiB at 320 MiB/s (50 ms): rate
    // 16 MiB / 0.3 s × 0.3 s = 16 MiB ≥ the 8 MiB dirtied: stop-and-copy at 640 MiB/s (12.5 ms).
    const r = predictPreCopy({
      memoryBytes: GIB,
      zeroPageShare: 1008 / 1024,
      dirtyRateBytesPerS: 10 * GIB,
      wwsBytes: 8 * MIB,
      bandwidthBytesPerS: 640 * MIB,
      firstCopyBytesPerS: 320 * MIB,
      scanBytesPerS: 4032 * MIB,
      downtimeLimitMs: 300,
    });
    expect(r).toMatchObject({ converges: true, rounds: 1, bytesSent: 24 * MIB });
    expect(r.totalTimeMs).toBeCloseTo(312.5, 9);
    expect(r.downtimeMs).toBeCloseTo(12.5, 9);
  });

  it("rejects a scan rate or first-copy rate that is not > 0", () => {
    const base = {
      memoryBytes: GIB,
      dirtyRateBytesPerS: 0,
      bandwidthBytesPerS: 128 * MIB,
      downtimeLimitMs: 300,
    };
    expect(() => predictPreCopy({ ...base, scanBytesPerS: 0 })).toThrow(InvalidArgumentError);
    expect(() => predictPreCopy({ ...base, firstCopyBytesPerS: Number.NaN })).toThrow(/firstCopy/);
  });
});

describe("completionTimeoutMs", () => {
  it("is KubeVirt's 150 s per GiB, at least one GiB's worth", () => {
    expect(completionTimeoutMs(4 * GIB)).toBe(600_000);
    expect(completionTimeoutMs(512 * MIB)).toBe(150_000);
    expect(completionTimeoutMs(2 * GIB, 60)).toBe(120_000);
  });
});

describe("predictForMemory", () => {
  it("fills in the default profile", () => {
    const r = predictForMemory(4096);
    expect(r.completes).toBe(true);
    expect(r.totalTimeMs).toBeGreaterThan(((4096 * 0.8) / 128) * 1000 - 1);
  });
});
