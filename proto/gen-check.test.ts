import { execFile } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { PROTO_ROOT } from "./load.js";

const run = promisify(execFile);
const REPO = path.resolve(PROTO_ROOT, "..");
const SCRIPT = path.join(REPO, "scripts", "gen-proto.mjs");

async function genCheck(
  ...args: string[]
): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [SCRIPT, "--check", ...args], {
      cwd: REPO,
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failure = error as { code?: unknown; stdout?: unknown; stderr?: unknown };
    return {
      code: typeof failure.code === "number" ? failure.code : -1,
      stdout: String(failure.stdout ?? ""),
      stderr: String(failure.stderr ?? ""),
    };
  }
}

describe("scripts/gen-proto.mjs --check", () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "leasebroker-gen-check-"));
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it("passes: proto/gen is what the generator produces", async () => {
    const result = await genCheck();
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/proto\/gen is up to date/);
  });

  it("names changed, missing and extra files of a stale copy", async () => {
    const copy = path.join(tmp, "gen");
    fs.cpSync(path.join(PROTO_ROOT, "gen"), copy, { recursive: true });
    fs.appendFileSync(path.join(copy, "leasebroker", "v1", "Lease.ts"), "// edited by hand\n");
    fs.rmSync(path.join(copy, "leasebroker", "v1", "Host.ts"));
    fs.writeFileSync(path.join(copy, "leasebroker", "v1", "Stale.ts"), "export {};\n");
    const result = await genCheck("--out", copy);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/changed: .*leasebroker\/v1\/Lease\.ts/);
    expect(result.stderr).toMatch(/missing: .*leasebroker\/v1\/Host\.ts/);
    expect(result.stderr).toMatch(/extra: .*leasebroker\/v1\/Stale\.ts/);
    expect(result.stderr).not.toMatch(/Resources\.ts/);
  });
});
