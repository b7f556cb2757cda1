/**
 * The pre-copy live-migration model (Clark et al., "Live Migration of Virtual Machines", NSDI 2005),
 * shaped after what QEMU does so that it can be calibrated against it:
 *
 * - The first round sends all of memory; zero (and duplicate) pages go as markers, counted free.
 * - Each later round sends the pages dirtied while the previous round was on the wire: at most the
 *   writable working set (WWS), at most dirty rate × round time.
 * - Before every round the remaining bytes are compared with bandwidth × downtime limit (QEMU's
 *   `threshold_size`); at or below it the guest is paused and the rest is sent (stop-and-copy), so
 *   the downtime is remaining / bandwidth (QEMU's `expected-downtime`). A VM small enough switches
 *   over before any iterative round, as QEMU does.
 * - Xen's stop conditions from the paper bound the iterations: at most `maxRounds` rounds, and at
 *   most `maxDataFactor` × memory on the wire. Hitting one means it does not converge.
 * - Auto-converge is QEMU's CPU throttling: after each round, if the bytes dirtied exceed
 *   `triggerThresholdPct` % of the bytes sent in it, a counter goes up; every second such round the
 *   throttle goes to `initialPct` (first time) or up by `incrementPct`, up to `maxPct`. A throttle
 *   of p % scales the dirty rate by (1 − p/100).
 * - Post-copy (when enabled and pre-copy would not converge): switch over at the stop point, the
 *   guest runs on the destination after `postCopyDowntimeMs`, and the remaining pages follow at
 *   full bandwidth.
 * - QEMU's page costs (when `scanBytesPerS` or `firstCopyBytesPerS` is given): QEMU reads every page of the first pass to
 *   find the zero ones, so zero pages cost `scanBytesPerS` instead of nothing, and the first copy of
 *   a non-zero page may be slower than a resend (`firstCopyBytesPerS`: the destination allocates
 *   the page as it lands). QEMU's switchover threshold starts at 0 and is then the bandwidth it
 *   measured over the last period × the downtime limit: so the first pass always runs, and the test
 *   before each later round uses the rate of the round before it (bytes sent / its time), which a
 *   first pass of mostly zero pages makes low.
 *
 * Units: bytes, bytes per second, milliseconds. Pure arithmetic: no clock, no I/O.
 */

import { InvalidArgumentError } from "../core/index.js";

export const MIB = 1024 * 1024;
export const GIB = 1024 * MIB;

export interface AutoConvergeOptions {
  /** QEMU `cpu-throttle-initial`, default 20. */
  readonly initialPct?: number;
  /** QEMU `cpu-throttle-increment`, default 10. */
  readonly incrementPct?: number;
  /** QEMU `max-cpu-throttle`, default 99. */
  readonly maxPct?: number;
  /** QEMU `throttle-trigger-threshold`, default 50. */
  readonly triggerThresholdPct?: number;
}

export interface PreCopyInput {
  readonly memoryBytes: number;
  /** Share of memory in zero or duplicate pages (sent as markers), in [0, 1]. Default 0. */
  readonly zeroPageShare?: number;
  readonly dirtyRateBytesPerS: number;
  /** Writable working set: the most a round can find dirty. Default: all of memory. */
  readonly wwsBytes?: number;
  readonly bandwidthBytesPerS: number;
  /** QEMU `downtime-limit`; its default is 300 ms. */
  readonly downtimeLimitMs: number;
  /** Iterative rounds before giving up (Xen: 30). Default 30. */
  readonly maxRounds?: number;
  /** Give up once more than this × memory would be on the wire (Xen: 3). Default 3. */
  readonly maxDataFactor?: number;
  /** CPU throttling; `true` takes QEMU's defaults. */
  readonly autoConverge?: boolean | AutoConvergeOptions;
  /** Switch to post-copy when pre-copy would not converge. */
  readonly postCopy?: boolean;
  /** Downtime of the post-copy switchover (device state, discard bitmap). Default 50 ms. */
  readonly postCopyDowntimeMs?: number;
  /**
   * How fast QEMU scans zero pages (bytes of guest memory per second); absent, they are free.
   * This or `firstCopyBytesPerS` given, the model takes QEMU's page costs and its switchover
   * threshold (see the header); neither given, one bandwidth applies, as before.
   */
  readonly scanBytesPerS?: number;
  /** The first copy of a non-zero page (first pass only). Default: `bandwidthBytesPerS`. */
  readonly firstCopyBytesPerS?: number;
  /** Time outside the rounds (QEMU's setup, the device state at switchover). Default 0. */
  readonly fixedCostMs?: number;
}

export interface PreCopyRound {
  /** 1-based. */
  readonly round: number;
  readonly bytes: number;
  readonly durationMs: number;
  /** Bytes dirtied during the round (what the next round must send). */
  readonly dirtiedBytes: number;
  /** CPU throttle in force during the round, percent. */
  readonly throttlePct: number;
}

export type PreCopyStop = "converged" | "max-rounds" | "max-data";

export interface PreCopyResult {
  /** Pre-copy reached the switchover threshold within the limits. */
  readonly converges: boolean;
  /** The guest ends up on the destination: converged, or finished by post-copy. */
  readonly completes: boolean;
  readonly mode: "precopy" | "postcopy";
  readonly stop: PreCopyStop;
  /** Iterative pre-copy rounds (the stop-and-copy is not counted). */
  readonly rounds: number;
  readonly bytesSent: number;
  /** From the start to the guest running on the destination with all its memory. */
  readonly totalTimeMs: number;
  /**
   * The guest's pause. Not converged without post-copy: what a forced stop-and-copy would take
   * (QEMU's expected downtime when it gave up).
   */
  readonly downtimeMs: number;
  readonly finalThrottlePct: number;
  readonly roundDetails: readonly PreCopyRound[];
}

function check(field: string, v: number | undefined, min: number, max = Infinity): void {
  if (v === undefined) return;
  if (!Number.isFinite(v) || v < min || v > max) {
    const range = max === Infinity ? `≥ ${min}` : `in [${min}, ${max}]`;
    throw new InvalidArgumentError(field, `must be a finite number ${range}, got ${v}`);
  }
}

function validate(input: PreCopyInput): void {
  check("memoryBytes", input.memoryBytes, 0);
  check("zeroPageShare", input.zeroPageShare, 0, 1);
  check("dirtyRateBytesPerS", input.dirtyRateBytesPerS, 0);
  check("wwsBytes", input.wwsBytes, 0);
  check("downtimeLimitMs", input.downtimeLimitMs, 0);
  check("maxDataFactor", input.maxDataFactor, 1);
  check("postCopyDowntimeMs", input.postCopyDowntimeMs, 0);
  check("fixedCostMs", input.fixedCostMs, 0);
  for (const field of ["bandwidthBytesPerS", "scanBytesPerS", "firstCopyBytesPerS"] as const) {
    const v = input[field];
    if (field !== "bandwidthBytesPerS" && v === undefined) continue;
    if (v === undefined || !(v > 0) || !Number.isFinite(v)) {
      throw new InvalidArgumentError(field, `must be a finite number > 0, got ${v}`);
    }
  }
  const r = input.maxRounds;
  if (r !== undefined && (!Number.isInteger(r) || r < 0)) {
    throw new InvalidArgumentError("maxRounds", `must be an integer ≥ 0, got ${r}`);
  }
  const ac = input.autoConverge;
  if (typeof ac === "object") {
    check("autoConverge.initialPct", ac.initialPct, 0, 100);
    check("autoConverge.incrementPct", ac.incrementPct, 0, 100);
    check("autoConverge.maxPct", ac.maxPct, 0, 100);
    check("autoConverge.triggerThresholdPct", ac.triggerThresholdPct, 0);
  }
}

/** Predict one live migration. Throws `InvalidArgumentError` on a bad input. */
export function predictPreCopy(input: PreCopyInput): PreCopyResult {
  validate(input);
  const mem = input.memoryBytes;
  const bwMs = input.bandwidthBytesPerS / 1000;
  const threshold = bwMs * input.downtimeLimitMs;
  const wws = Math.min(input.wwsBytes ?? mem, mem);
  const maxRounds = input.maxRounds ?? 30;
  const maxData = (input.maxDataFactor ?? 3) * mem;
  const ac = input.autoConverge;
  const throttling =
    ac === undefined || ac === false
      ? undefined
      : {
          initial: (ac === true ? undefined : ac.initialPct) ?? 20,
          increment: (ac === true ? undefined : ac.incrementPct) ?? 10,
          max: (ac === true ? undefined : ac.maxPct) ?? 99,
          trigger: (ac === true ? undefined : ac.triggerThresholdPct) ?? 50,
        };

  const zeroBytes = mem * (input.zeroPageShare ?? 0);
  let pending = mem - zeroBytes;
  // QEMU's page costs: the first pass scans the zero pages and copies each page a first time.
  const pageCosts = input.scanBytesPerS !== undefined || input.firstCopyBytesPerS !== undefined;
  const scanMs = input.scanBytesPerS === undefined ? 0 : zeroBytes / (input.scanBytesPerS / 1000);
  const firstCopyMs = (input.firstCopyBytesPerS ?? input.bandwidthBytesPerS) / 1000;
  // QEMU compares with bandwidth × downtime limit, the bandwidth measured over the last round.
  let switchThreshold = pageCosts ? 0 : threshold;
  let sent = 0;
  let time = input.fixedCostMs ?? 0;
  let throttle = 0;
  let highRounds = 0;
  const details: PreCopyRound[] = [];
  let stop: PreCopyStop;
  for (;;) {
    const first = details.length === 0;
    if (pending <= switchThreshold && !(pageCosts && first)) {
      stop = "converged";
      break;
    }
    if (details.length >= maxRounds) {
      stop = "max-rounds";
      break;
    }
    if (sent + pending > maxData) {
      stop = "max-data";
      break;
    }
    const duration = pageCosts && first ? pending / firstCopyMs + scanMs : pending / bwMs;
    if (pageCosts) {
      switchThreshold = duration > 0 ? (pending / duration) * input.downtimeLimitMs : threshold;
    }
    const rate = (input.dirtyRateBytesPerS / 1000) * (1 - throttle / 100);
    const dirtied = Math.min(wws, rate * duration);
    details.push({
      round: details.length + 1,
      bytes: pending,
      durationMs: duration,
      dirtiedBytes: dirtied,
      throttlePct: throttle,
    });
    sent += pending;
    time += duration;
    if (throttling !== undefined && dirtied > (pending * throttling.trigger) / 100) {
      highRounds++;
      if (highRounds >= 2) {
        highRounds = 0;
        throttle =
          throttle === 0
            ? throttling.initial
            : Math.min(throttling.max, throttle + throttling.increment);
      }
    }
    pending = dirtied;
  }
  const base = { stop, rounds: details.length, finalThrottlePct: throttle, roundDetails: details };
  const finalCopyMs = pending / bwMs;
  if (stop === "converged") {
    return {
      ...base,
      converges: true,
      completes: true,
      mode: "precopy",
      bytesSent: sent + pending,
      totalTimeMs: time + finalCopyMs,
      downtimeMs: finalCopyMs,
    };
  }
  if (input.postCopy === true) {
    const downtime = input.postCopyDowntimeMs ?? 50;
    return {
      ...base,
      converges: false,
      completes: true,
      mode: "postcopy",
      bytesSent: sent + pending,
      totalTimeMs: time + downtime + finalCopyMs,
      downtimeMs: downtime,
    };
  }
  return {
    ...base,
    converges: false,
    completes: false,
    mode: "precopy",
    bytesSent: sent,
    totalTimeMs: time,
    downtimeMs: finalCopyMs,
  };
}

/** KubeVirt's `completionTimeoutPerGiB` default: 150 s per GiB of memory. */
export const DEFAULT_COMPLETION_TIMEOUT_PER_GIB_S = 150;

/**
 * The completion timeout of a migration: `perGiBSeconds` per GiB of memory (KubeVirt's rule),
 * counting at least 1 GiB so small VMs still get a sane deadline. Milliseconds.
 */
export function completionTimeoutMs(
  memoryBytes: number,
  perGiBSeconds: number = DEFAULT_COMPLETION_TIMEOUT_PER_GIB_S,
): number {
  check("memoryBytes", memoryBytes, 0);
  check("perGiBSeconds", perGiBSeconds, 0);
  return Math.max(1, memoryBytes / GIB) * perGiBSeconds * 1000;
}

/**
 * What the planners assume of a workload they know nothing about: QEMU's default bandwidth cap
 * (128 MiB/s) and downtime limit (300 ms), a modest dirty rate and WWS, auto-converge on.
 */
export interface WorkloadProfile {
  readonly zeroPageShare: number;
  readonly dirtyRateBytesPerS: number;
  /** As a share of memory. */
  readonly wwsShare: number;
  readonly bandwidthBytesPerS: number;
  readonly downtimeLimitMs: number;
  readonly autoConverge: boolean;
  readonly postCopy: boolean;
}

export const DEFAULT_WORKLOAD_PROFILE: WorkloadProfile = Object.freeze({
  zeroPageShare: 0.2,
  dirtyRateBytesPerS: 16 * MIB,
  wwsShare: 0.05,
  bandwidthBytesPerS: 128 * MIB,
  downtimeLimitMs: 300,
  autoConverge: true,
  postCopy: false,
});

/** The model for a VM of `memoryMib` under a profile (defaults filled in). */
export function predictForMemory(
  memoryMib: number,
  profile: Partial<WorkloadProfile> = {},
): PreCopyResult {
  const p = { ...DEFAULT_WORKLOAD_PROFILE, ...profile };
  const memoryBytes = memoryMib * MIB;
  return predictPreCopy({
    memoryBytes,
    zeroPageShare: p.zeroPageShare,
    dirtyRateBytesPerS: p.dirtyRateBytesPerS,
    wwsBytes: memoryBytes * p.wwsShare,
    bandwidthBytesPerS: p.bandwidthBytesPerS,
    downtimeLimitMs: p.downtimeLimitMs,
    autoConverge: p.autoConverge,
    postCopy: p.postCopy,
  });
}
