import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { GLOBAL_OPTIONS, parseCommandLine } from "./args.js";
import { runCliCaptured as run } from "./capture.js";
import { leaseSpecFromFlags, newRequestId, SPEC_OPTIONS } from "./spec-flags.js";

const NOW = Date.parse("2030-01-02T03:00:00Z");
const HOUR = 3_600_000;
const ts = (ms: number) => ({ seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1_000_000 });
const dur = (ms: number) => ({ seconds: Math.trunc(ms / 1000), nanos: (ms % 1000) * 1_000_000 });

function specOf(argv: readonly string[]) {
  const line = parseCommandLine({ ...GLOBAL_OPTIONS, ...SPEC_OPTIONS }, argv, {});
  return leaseSpecFromFlags(line.options, line.given, NOW);
}

const BASE = ["--tenant", "acme", "--cpu", "2", "--memory", "4Gi"];

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "leasectl-spec-"));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
function file(name: string, text: string): string {
  const p = path.join(dir, name);
  fs.writeFileSync(p, text);
  return p;
}

describe("spec from flags", () => {
  it("--duration alone is an immediate window", () => {
    expect(specOf([...BASE, "--duration", "2h"]).spec).toEqual({
      tenant: "acme",
      resources: { cpuMillis: 2000, memoryMib: 4096 },
      immediate: { duration: dur(2 * HOUR) },
    });
  });

  it("--start with --duration is a reservation; --earliest/--latest a flexible window", () => {
    expect(specOf([...BASE, "--duration", "1h", "--start", "+30m"]).spec.reserved).toEqual({
      start: ts(NOW + 30 * 60_000),
      duration: dur(HOUR),
    });
    expect(
      specOf([...BASE, "--duration", "1h", "--start", "2030-02-01T00:00:00Z"]).spec.reserved?.start,
    ).toEqual(ts(Date.parse("2030-02-01T00:00:00Z")));
    expect(specOf([...BASE, "--duration", "1h", "--latest", "+6h"]).spec.flexible).toEqual({
      latestStart: ts(NOW + 6 * HOUR),
      duration: dur(HOUR),
    });
    expect(
      specOf([...BASE, "--duration", "1h", "--earliest", "+1h", "--latest", "+6h"]).spec.flexible,
    ).toEqual({
      earliestStart: ts(NOW + HOUR),
      latestStart: ts(NOW + 6 * HOUR),
      duration: dur(HOUR),
    });
  });

  it("maps every other flag to its LeaseSpec field", () => {
    const { spec } = specOf([
      ...BASE,
      "--duration",
      "90m",
      "--name",
      "web-1",
      "--label",
      "app=web,tier=front",
      "--label",
      "team=a",
      "--disk",
      "20Gi",
      "--gpus",
      "1",
      "--extended",
      "example.com/fpga=2",
      "--priority",
      "100",
      "--preemptible",
      "--constraint",
      "zone in (a,b), ssd",
      "--constraint",
      "cpus>8",
      "--affinity-group",
      "g1",
      "--anti-affinity",
      "--hard",
      "--topology-key",
      "zone",
      "--max-skew",
      "1",
      "--live-migratable",
      "--max-downtime",
      "300ms",
      "--allow-suspend",
      "--on-host-failure",
      "restart",
      "--queue",
      "--policy",
      "spread",
      "--image",
      "ubuntu-24.04",
      "--param",
      "machine=q35,accel=kvm",
      "--param",
      "cmd=a=b",
    ]);
    expect(spec).toEqual({
      tenant: "acme",
      name: "web-1",
      labels: { app: "web", tier: "front", team: "a" },
      resources: {
        cpuMillis: 2000,
        memoryMib: 4096,
        diskGib: 20,
        gpus: 1,
        extended: { "example.com/fpga": 2 },
      },
      immediate: { duration: dur(90 * 60_000) },
      priority: 100,
      preemptible: true,
      constraints: ["zone in (a,b)", "ssd", "cpus>8"],
      affinity: {
        group: "g1",
        kind: "AFFINITY_KIND_ANTI_AFFINITY",
        hard: true,
        topologyKey: "zone",
        maxSkew: 1,
      },
      migration: { liveMigratable: true, maxDowntime: dur(300), allowSuspend: true },
      onHostFailure: "ON_HOST_FAILURE_RESTART",
      allowQueue: true,
      policy: "PLACEMENT_POLICY_SPREAD",
      driver: { image: "ubuntu-24.04", params: { machine: "q35,accel=kvm", cmd: "a=b" } },
    });
  });

  it("generates distinct request ids in the request-id grammar", () => {
    const a = newRequestId();
    expect(a).toMatch(/^[A-Za-z0-9_-]{1,64}$/);
    expect(newRequestId()).not.toBe(a);
  });
});

const YAML_SPEC = `# a reservation
name: batch-7
tenant: acme
labels: { app: batch, tier: 2 }
resources:
  cpu_millis: 4000
  memory_mib: "8192"
  extended: { example.com/fpga: 1 }
reserved:
  start: 2030-03-01T10:00:00Z
  duration: 3600s
constraints: ["zone in (a,b)"]
on_host_failure: ON_HOST_FAILURE_RESTART
migration: { liveMigratable: true, max_downtime: 0.5s }
driver: { image: img, params: { machine: q35 } }
`;

describe("spec from a file", () => {
  it("reads YAML in the proto JSON mapping (snake_case or camelCase keys)", () => {
    const { spec } = specOf(["-f", file("a.yaml", YAML_SPEC)]);
    expect(spec).toEqual({
      tenant: "acme",
      name: "batch-7",
      labels: { app: "batch", tier: "2" },
      resources: { cpuMillis: 4000, memoryMib: 8192, extended: { "example.com/fpga": 1 } },
      reserved: { start: ts(Date.parse("2030-03-01T10:00:00Z")), duration: dur(HOUR) },
      constraints: ["zone in (a,b)"],
      onHostFailure: "ON_HOST_FAILURE_RESTART",
      migration: { liveMigratable: true, maxDowntime: dur(500) },
      driver: { image: "img", params: { machine: "q35" } },
    });
  });

  it("reads JSON, including a SubmitLeaseRequest with its requestId", () => {
    const json = JSON.stringify({
      requestId: "req-1",
      spec: {
        tenant: "acme",
        resources: { cpuMillis: "500", memoryMib: 512 },
        flexible: { latestStart: "2030-01-02T09:00:00Z", duration: "1h30m" },
        policy: "binpack",
      },
    });
    const result = specOf(["-f", file("req.json", json)]);
    expect(result.fileRequestId).toBe("req-1");
    expect(result.spec).toEqual({
      tenant: "acme",
      resources: { cpuMillis: 500, memoryMib: 512 },
      flexible: { latestStart: ts(Date.parse("2030-01-02T09:00:00Z")), duration: dur(90 * 60_000) },
      policy: "PLACEMENT_POLICY_BINPACK",
    });
  });

  it("lets flags override the file: scalars and lists replaced, maps merged, window kept", () => {
    const { spec } = specOf([
      "-f",
      file("b.yaml", YAML_SPEC),
      "--name",
      "batch-8",
      "--memory",
      "16Gi",
      "--label",
      "app=etl",
      "--constraint",
      "ssd",
      "--duration",
      "2h",
      "--no-live-migratable",
    ]);
    expect(spec.name).toBe("batch-8");
    expect(spec.resources).toEqual({
      cpuMillis: 4000,
      memoryMib: 16_384,
      extended: { "example.com/fpga": 1 },
    });
    expect(spec.labels).toEqual({ app: "etl", tier: "2" });
    expect(spec.constraints).toEqual(["ssd"]);
    // The file's reservation start stays; the duration is the flag's.
    expect(spec.reserved).toEqual({
      start: ts(Date.parse("2030-03-01T10:00:00Z")),
      duration: dur(2 * HOUR),
    });
    expect(spec.migration).toEqual({ liveMigratable: false, maxDowntime: dur(500) });
    // Booleans not given keep the file's value; a window flag naming a kind replaces the kind.
    const flexible = specOf(["-f", file("c.yaml", YAML_SPEC), "--latest", "+4h"]).spec;
    expect(flexible.reserved).toBeUndefined();
    expect(flexible.flexible).toEqual({ latestStart: ts(NOW + 4 * HOUR), duration: dur(HOUR) });
    expect(flexible.migration?.liveMigratable).toBe(true);
  });
});

describe("bad input is a usage error (exit 2) that names the problem", () => {
  const cases: [string, string[], RegExp][] = [
    [
      "unknown flag",
      ["--tenant", "a", "--memroy", "4Gi"],
      /unknown flag --memroy \(did you mean --memory\?\)/,
    ],
    [
      "bad cpu",
      [...BASE.slice(0, 2), "--cpu", "lots", "--memory", "1Gi", "--duration", "1h"],
      /--cpu: expected cores/,
    ],
    [
      "bad memory",
      ["--tenant", "a", "--cpu", "1", "--memory", "4G", "--duration", "1h"],
      /--memory: use binary units/,
    ],
    ["bad duration", [...BASE, "--duration", "3600"], /--duration: add a unit/],
    [
      "bad start",
      [...BASE, "--duration", "1h", "--start", "tomorrow"],
      /--start: expected an RFC 3339 time/,
    ],
    [
      "start and latest",
      [...BASE, "--duration", "1h", "--start", "+1h", "--latest", "+2h"],
      /exclude each other/,
    ],
    ["no window", BASE, /a window is required/],
    ["no tenant", ["--cpu", "1", "--memory", "1Gi", "--duration", "1h"], /--tenant is required/],
    ["no cpu", ["--tenant", "a", "--memory", "1Gi", "--duration", "1h"], /--cpu is required/],
    [
      "zero memory",
      ["--tenant", "a", "--cpu", "1", "--memory", "0", "--duration", "1h"],
      /--memory is required and must be > 0/,
    ],
    [
      "flexible without latest",
      [...BASE, "--duration", "1h", "--earliest", "+1h"],
      /needs --latest/,
    ],
    [
      "affinity without group",
      [...BASE, "--duration", "1h", "--anti-affinity"],
      /need --affinity-group/,
    ],
    ["bad label", [...BASE, "--duration", "1h", "--label", "nokey"], /--label: expected key=value/],
    [
      "bad extended",
      [...BASE, "--duration", "1h", "--extended", "fpga=x"],
      /--extended fpga: expected a whole number/,
    ],
    [
      "bad priority",
      [...BASE, "--duration", "1h", "--priority", "5000"],
      /--priority: must be <= 1000/,
    ],
    [
      "bad policy",
      [...BASE, "--duration", "1h", "--policy", "random"],
      /--policy: must be one of binpack, spread/,
    ],
    [
      "bad request id",
      [...BASE, "--duration", "1h", "--request-id", "no spaces"],
      /--request-id: 1..64 characters/,
    ],
    [
      "bad server",
      [...BASE, "--duration", "1h", "--server", "localhost"],
      /--server: expected host:port/,
    ],
    ["missing file", ["-f", "/nonexistent/spec.yaml"], /cannot read the file/],
    [
      "stray argument",
      [...BASE, "--duration", "1h", "extra"],
      /submit takes 0 arguments; got "extra"/,
    ],
  ];
  it.each(cases)("%s", async (_, argv, message) => {
    const result = await run(["submit", ...argv], { now: NOW });
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(message);
    expect(result.stderr).toMatch(/^error: /);
    expect(result.stdout).toBe("");
  });

  const files: [string, string, string, RegExp][] = [
    ["unknown field", "u.yaml", "tenant: a\nresourcez: {}\n", /u\.yaml: resourcez: unknown field/],
    [
      "nested unknown field",
      "n.yaml",
      "tenant: a\nresources: { cpu: 2 }\n",
      /n\.yaml: resources\.cpu: unknown field/,
    ],
    [
      "wrong type",
      "t.json",
      '{"tenant":"a","resources":{"cpuMillis":"two"}}',
      /t\.json: resources\.cpuMillis: expected an integer; got "two"/,
    ],
    [
      "two windows",
      "w.yaml",
      "tenant: a\nimmediate: {duration: 1h}\nreserved: {start: now, duration: 1h}\n",
      /give one window/,
    ],
    [
      "bad duration",
      "d.yaml",
      "tenant: a\nimmediate: { duration: 3600 }\n",
      /immediate\.duration: expected a duration string/,
    ],
    ["bad enum", "e.yaml", "tenant: a\npolicy: random\n", /policy: must be one of binpack, spread/],
    ["invalid YAML", "bad.yaml", "tenant: [a\n", /bad\.yaml: not valid YAML/],
    ["invalid JSON", "bad.json", "{tenant:", /bad\.json: not valid JSON/],
    ["not an object", "list.yaml", "- a\n- b\n", /list\.yaml: expected an object; got a list/],
  ];
  it.each(files)("file: %s", async (_, name, text, message) => {
    const result = await run(["submit", "-f", file(name, text), "--cpu", "1", "--memory", "1Gi"], {
      now: NOW,
    });
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(message);
  });
});
