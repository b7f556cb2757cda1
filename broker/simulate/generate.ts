/**
 * Built-in seeded trace generators, for users without a trace and for the benchmark. Each mix
 * draws `leases` requests over `days` days from its own arrival process and window mix; VM sizes
 * are 1–32 vCPU at 2–8 GiB per vCPU (small ones most common). Same seed, same trace.
 */
import { createRng, type Rng } from "../../placement/index.js";
import type { TraceEntry, TraceWindow } from "./trace.js";

export const TRACE_MIXES = ["steady", "diurnal", "bursty", "reservation-heavy"] as const;
export type TraceMix = (typeof TRACE_MIXES)[number];

export interface GenerateOptions {
  readonly mix: TraceMix;
  readonly seed: number;
  readonly leases: number;
  readonly days: number;
}

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

/** Shares of window kinds: immediate, reserved, flexible. */
const WINDOW_SHARES: Readonly<Record<TraceMix, readonly [number, number, number]>> = {
  steady: [0.7, 0.15, 0.15],
  diurnal: [0.7, 0.15, 0.15],
  bursty: [0.75, 0.1, 0.15],
  "reservation-heavy": [0.2, 0.6, 0.2],
};

/** Arrival time in [0, span): the mix's arrival process, by inverse sampling or thinning. */
function arrival(mix: TraceMix, rng: Rng, span: number, bursts: readonly number[]): number {
  switch (mix) {
    case "diurnal":
      // Rate ∝ 1 + 0.8·sin(2π(t − 6h)/24h): lowest at 00:00, highest at 12:00 (UTC).
      for (;;) {
        const t = rng.next() * span;
        const rate = 1 + 0.8 * Math.sin((2 * Math.PI * (t - 6 * HOUR)) / DAY);
        if (rng.next() * 1.8 < rate) return t;
      }
    case "bursty": {
      // Half the requests arrive steadily, half in bursts (about 10 minutes wide).
      if (rng.next() < 0.5 || bursts.length === 0) return rng.next() * span;
      const start = bursts[Math.floor(rng.next() * bursts.length)] as number;
      return Math.min(span - 1, start - 10 * MINUTE * Math.log(1 - rng.next()));
    }
    default:
      return rng.next() * span;
  }
}

/** Log-uniform in [lo, hi]. */
function logUniform(rng: Rng, lo: number, hi: number): number {
  return Math.exp(Math.log(lo) + rng.next() * (Math.log(hi) - Math.log(lo)));
}

const VCPUS = [1, 1, 2, 2, 2, 4, 4, 4, 8, 8, 16, 32];
const GIB_PER_VCPU = [2, 4, 4, 8];

export function generateTrace(options: GenerateOptions): TraceEntry[] {
  const { mix, leases, days } = options;
  const rng = createRng(options.seed);
  const span = Math.max(1, Math.round(days * DAY));
  const bursts = Array.from({ length: Math.max(1, Math.round(days * 2)) }, () =>
    Math.floor(rng.next() * span),
  );
  const times = Array.from(
    { length: leases },
    () => Math.floor(arrival(mix, rng, span, bursts) / 1000) * 1000,
  ).sort((a, b) => a - b);
  const [immediate, reserved] = WINDOW_SHARES[mix];
  const width = Math.max(6, String(leases).length);
  return times.map((submitMs, i): TraceEntry => {
    const k = rng.next();
    // Whole minutes keep the trace readable; 30 min to 4 days, log-uniform.
    const durationMs =
      Math.max(1, Math.round(logUniform(rng, 30 * MINUTE, 4 * DAY) / MINUTE)) * MINUTE;
    let window: TraceWindow;
    if (k < immediate) {
      window = { kind: "immediate", durationMs };
    } else if (k < immediate + reserved) {
      const ahead =
        mix === "reservation-heavy"
          ? logUniform(rng, HOUR, 7 * DAY)
          : logUniform(rng, HOUR, 3 * DAY);
      window = {
        kind: "reserved",
        startMs: submitMs + Math.round(ahead / MINUTE) * MINUTE,
        durationMs,
      };
    } else {
      const earliestMs = submitMs + Math.round((rng.next() * 6 * HOUR) / MINUTE) * MINUTE;
      const slack = Math.round(logUniform(rng, 2 * HOUR, DAY) / MINUTE) * MINUTE;
      window = { kind: "flexible", earliestMs, latestMs: earliestMs + slack, durationMs };
    }
    const vcpu = rng.pick(VCPUS);
    const p = rng.next();
    // A tenth are important and may preempt; a third are batch work that may be preempted.
    const priority = p < 0.1 ? 100 : 0;
    const preemptible = p >= 0.1 && p < 0.43;
    return {
      line: i + 1,
      id: `${mix}-${String(i + 1).padStart(width, "0")}`,
      submitMs,
      window,
      resources: {
        cpuMillis: vcpu * 1000,
        memoryMib: vcpu * rng.pick(GIB_PER_VCPU) * 1024,
        diskGib: rng.pick([20, 40, 80, 160]),
        gpus: 0,
      },
      priority,
      preemptible,
      allowQueue: false,
      labels: {},
      constraints: [],
    };
  });
}
