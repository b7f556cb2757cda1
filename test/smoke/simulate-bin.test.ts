/** The `leasebroker simulate` subcommand through the real bin: dispatch, exit codes, output. */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildAgent } from "../agent/agent-process.js";
import { BROKER_MAIN } from "../cluster/cluster-processes.js";

const dir = mkdtempSync(join(tmpdir(), "lb-simulate-bin-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
beforeAll(() => buildAgent());

function simulate(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BROKER_MAIN, "simulate", ...args], {
    encoding: "utf8",
    timeout: 60_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("leasebroker simulate (the bin)", () => {
  it("replays a trace file and prints the JSON report", () => {
    const trace = join(dir, "trace.csv");
    writeFileSync(
      trace,
      "id,submit,kind,start,duration,cpu,memory_gib\na,0,immediate,,600,2,4\nb,30,reserved,300,600,2,4\n",
    );
    const r = simulate("--trace", trace, "--hosts", "2", "--json");
    expect(r.status, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report.leases).toMatchObject({ submitted: 2, accepted: 2, rejected: 0 });
    expect(report.hosts_needed.hosts).toBe(1);
  });

  it("exits 2 with the line of a bad trace, and on a bad flag", () => {
    const trace = join(dir, "bad.jsonl");
    writeFileSync(
      trace,
      '{"submit":0,"duration":60,"cpu":1,"memory_gib":1}\n{"submit":-5,"duration":60,"cpu":1,"memory_gib":1}\n',
    );
    const bad = simulate("--trace", trace);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain("trace line 2: submit: must be >= 0 seconds, got -5");
    const flag = simulate("--generate", "steady", "--days", "soon");
    expect(flag.status).toBe(2);
    expect(flag.stderr).toContain('--days: expected a number, got "soon"');
  });
});
