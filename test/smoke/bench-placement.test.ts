/** `bench:placement --json` through the built script: the keys tools read are there and sane. */
import { type SpawnSyncReturns, spawnSync } from "node:child_process";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { buildAgent, REPO_ROOT } from "../agent/agent-process.js";

beforeAll(() => buildAgent());

/** A `--json` run's output: it exited 0 and printed exactly one JSON object. */
function oneJsonObject(r: SpawnSyncReturns<string>): Record<string, unknown> {
  expect(r.status, r.stderr).toBe(0);
  const lines = r.stdout.trim().split("\n");
  expect(lines).toHaveLength(1);
  return JSON.parse(lines[0] as string) as Record<string, unknown>;
}

describe("bench:placement --json", () => {
  it("prints one JSON object with the placement figures, on a small cluster", () => {
    const r = spawnSync(
      process.execPath,
      [
        join(REPO_ROOT, "dist", "bench", "placement.js"),
        ...["--hosts", "200", "--leases", "2000", "--decisions", "300"],
        ...["--reps", "1", "--gang-reps", "1", "--baseline-every", "10", "--json"],
      ],
      { encoding: "utf8", timeout: 120_000 },
    );
    const j = oneJsonObject(r);
    for (const key of [
      "placements_per_s",
      "placements_per_s_real_time_clock",
      "decisions_only_per_s",
      "p50_ms",
      "p99_ms",
      "max_ms",
      "heap_mib",
      "baseline_placements_per_s",
      "speedup_vs_baseline",
      "anti_affinity_placements_per_s",
      "labels_placements_per_s",
      "labels_p99_ms",
      "commit_us_mean",
      "advance_us_mean",
      "release_us_mean",
      "clock_ms_per_simulated_hour",
    ]) {
      expect(typeof j[key], key).toBe("number");
      expect(j[key] as number, key).toBeGreaterThan(0);
    }
    expect(j.hosts).toBe(200);
    expect(j.decisions).toBe(300);
    // 15 simulated hours of arrivals at 2,000 live leases (one per ~91 s) before the measured ones
    expect(j.settled_arrivals).toBeGreaterThan(500);
    // the rate without the clock's per-decision share is never below the rate with it
    expect(j.placements_per_s_real_time_clock as number).toBeGreaterThanOrEqual(
      (j.placements_per_s as number) * 0.99,
    );
  });

  it("exits 2 on a bad flag", () => {
    const r = spawnSync(
      process.execPath,
      [join(REPO_ROOT, "dist", "bench", "placement.js"), "--hosts", "-3"],
      { encoding: "utf8", timeout: 30_000 },
    );
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("--hosts");
  });
});

describe("bench:placement-ab --json", () => {
  const dist = join(REPO_ROOT, "dist");
  const run = (...extra: string[]) =>
    spawnSync(
      process.execPath,
      [
        join(dist, "bench", "placement-ab.js"),
        ...["--a", dist, "--b", dist, "--hosts", "200", "--leases", "2000"],
        ...["--decisions", "200", "--json", ...extra],
      ],
      { encoding: "utf8", timeout: 120_000 },
    );

  it.each([
    { extra: [] as string[] },
    { extra: ["--anti-affinity"] },
    { extra: ["--soft-affinity"] },
    { extra: ["--labels"] },
    { extra: ["--spread"] },
  ])("compares a build with itself (flags $extra)", ({ extra }) => {
    const r = run(...extra);
    const j = oneJsonObject(r);
    expect(j.decisions).toBe(200);
    expect(j.settled_arrivals).toBeGreaterThan(500);
    const groups = extra.some((e) => e.endsWith("affinity"));
    expect(j.anti_affinity).toBe(extra.includes("--anti-affinity"));
    expect(j.group).toBe(groups ? (extra[0] as string).slice(2) : "none");
    expect(j.labels).toBe(extra.includes("--labels"));
    expect(j.spread).toBe(extra.includes("--spread"));
    // the same build decides the same
    expect(j.decisions_differing).toBe(0);
    for (const key of ["placements_per_s_a", "placements_per_s_b", "ratio_b_over_a"]) {
      expect(typeof j[key], key).toBe("number");
      expect(j[key] as number, key).toBeGreaterThan(0);
    }
    const kinds = (j.build_a as { decide_us_mean_by_kind: Record<string, number> })
      .decide_us_mean_by_kind;
    // groups are immediate leases only
    if (groups) expect(Object.keys(kinds)).toEqual(["immediate"]);
    else expect(Object.keys(kinds).sort()).toEqual(["flexible", "immediate", "reserved"]);
  });

  it("runs twice with the builds swapped the second time (--runs 2)", () => {
    const r = run("--runs", "2");
    const j = oneJsonObject(r);
    expect(j.runs).toBe(2);
    expect(j.settled_arrivals).toBeGreaterThan(500);
    expect(j.decisions_differing).toBe(0);
    const ratios = j.ratio_b_over_a_runs as number[];
    expect(ratios).toHaveLength(2);
    // the geometric mean of the runs' ratios
    const mean = Math.sqrt((ratios[0] as number) * (ratios[1] as number));
    expect(j.ratio_b_over_a as number).toBeCloseTo(mean, 2);
    expect((j.build_b as { placements_per_s: number }).placements_per_s).toBeGreaterThan(0);
  });

  it("exits 2 on two kinds of group at once", () => {
    const r = run("--anti-affinity", "--soft-affinity");
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("one kind of group");
  });

  it("exits 2 on --runs 0", () => {
    const r = run("--runs", "0");
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("--runs");
  });

  it("exits 2 without its two builds", () => {
    const r = spawnSync(process.execPath, [join(dist, "bench", "placement-ab.js")], {
      encoding: "utf8",
      timeout: 30_000,
    });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("--a");
  });
});
