/** `leasebroker simulate` as a command: flags, input errors (exit 2), outputs, determinism. */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { runSimulate } from "./command.js";

const dir = mkdtempSync(join(tmpdir(), "lb-simulate-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function run(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const code = await runSimulate(argv, {
    stdout: (t) => {
      out += t;
    },
    stderr: (t) => {
      err += t;
    },
  });
  return { code, out, err };
}

const EXAMPLES = fileURLToPath(new URL("../../docs/examples/", import.meta.url));

describe("leasebroker simulate", () => {
  it("runs the examples in docs/; a shape scaled away comes back in the search", async () => {
    const r = await run(
      "--trace",
      join(EXAMPLES, "trace.csv"),
      "--cluster",
      join(EXAMPLES, "cluster.yaml"),
      "--hosts",
      "5",
      "--json",
    );
    expect(r.code, r.err).toBe(0);
    const report = JSON.parse(r.out);
    // 5 hosts of a 60/30/10 mix have no GPU host: the training reservation is too large for it.
    expect(report.inputs.cluster.shapes).toEqual({ general: 3, highmem: 2, gpu: 0 });
    expect(report.leases.by_kind.reserved.rejected_by_reason).toEqual({ too_large: 1 });
    expect(report.leases.by_kind.immediate).toMatchObject({ submitted: 4, accepted: 4 });
    expect(report.hosts_needed).toMatchObject({
      hosts: 6,
      shapes: { general: 3, highmem: 2, gpu: 1 },
    });
  });

  it("exits 2 on a bad flag or input, saying which and why", async () => {
    const trace = join(dir, "bad.csv");
    writeFileSync(trace, "submit,duration,cpu,memory_gib\n0,60,1,1\n10,60,1,zero\n");
    const cluster = join(dir, "bad.yaml");
    writeFileSync(cluster, "shapes: [{name: a, count: 1, cpu: 4}]\n");
    const cases: [string[], RegExp][] = [
      [["--generate", "steady", "--bogus"], /Unknown option '--bogus'/],
      [
        ["--generate", "weekly"],
        /--generate: must be one of steady, diurnal, bursty, reservation-heavy/,
      ],
      [["--generate", "steady", "--policy", "random"], /--policy: must be one of binpack, spread/],
      [["--generate", "steady", "--hosts", "0"], /--hosts: must be >= 1/],
      [[], /exactly one of --trace FILE and --generate MIX/],
      [["--trace", join(dir, "missing.csv")], /--trace: cannot read/],
      [["--trace", trace], /trace line 3: memory_gib: expected a number, got "zero"/],
      [["--generate", "steady", "--cluster", cluster], /cluster: shapes\[0\]\.memory_gib/],
    ];
    for (const [argv, message] of cases) {
      const r = await run(...argv);
      expect(r.code, argv.join(" ")).toBe(2);
      expect(r.err, argv.join(" ")).toMatch(message);
    }
  });

  it("writes the same JSON report for the same seed, and an HTML page", async () => {
    const args = ["--generate", "bursty", "--seed", "7", "--leases", "250", "--days", "1"];
    const more = ["--hosts", "12", "--max-hosts", "64"];
    const first = await run(
      ...args,
      ...more,
      "--report",
      join(dir, "a.json"),
      "--html",
      join(dir, "a.html"),
      "--save-trace",
      join(dir, "t.jsonl"),
    );
    expect(first.code, first.err).toBe(0);
    expect(first.out).toMatch(/^requests {3}250: /);
    const second = await run(...args, ...more, "--json");
    expect(second.code).toBe(0);
    const a = readFileSync(join(dir, "a.json"), "utf8");
    expect(second.out).toBe(a);
    // The saved trace replays to the same figures (only the source differs).
    const replayed = await run(
      "--trace",
      join(dir, "t.jsonl"),
      "--seed",
      "7",
      ...more,
      "--no-search",
      "--json",
    );
    const parsed = (text: string) => {
      const r = JSON.parse(text);
      r.inputs.trace.source = "";
      r.hosts_needed = null;
      return r;
    };
    expect(parsed(replayed.out)).toEqual(parsed(a));
    const report = JSON.parse(a);
    expect(report.leases.submitted).toBe(250);
    expect(report.hosts_needed.hosts).toBeGreaterThan(0);
    expect(report.inputs.cluster.hosts).toBe(12);
    const other = await run(
      "--no-search",
      "--generate",
      "bursty",
      "--seed",
      "8",
      "--leases",
      "250",
      "--days",
      "1",
      ...more,
      "--json",
    );
    expect(parsed(other.out)).not.toEqual(parsed(a));
    const html = readFileSync(join(dir, "a.html"), "utf8");
    expect(html).toMatch(/^<!doctype html>/);
    expect(html).toContain("<svg");
    // Self-contained: nothing is fetched.
    expect(html).not.toMatch(/<script|<link|src=|href=/);
  });
});
