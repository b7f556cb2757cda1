import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ConfigError, parseOptions } from "../core/index.js";
import { detectDiskGib } from "./capacity.js";
import {
  agentOptionSpecs,
  type MachineProbe,
  resolveAgentConfig,
  sanitizeHostId,
} from "./config.js";
import { AGENT_VERSION } from "./version.js";

const specs = agentOptionSpecs("my-host");
const machine: MachineProbe = {
  cpus: () => 4,
  memoryGib: () => 15.5,
  diskGib: async () => 200.7,
};

async function resolve(argv: string[], env: Record<string, string> = {}) {
  return resolveAgentConfig(parseOptions(specs, argv, env).options, machine, () => 99);
}

describe("agent configuration", () => {
  it("sanitizes host names into host ids", () => {
    expect(sanitizeHostId("Web_01.example.com")).toBe("web-01-example-com");
    expect(sanitizeHostId("--X--")).toBe("x");
    expect(sanitizeHostId("___")).toBe("host");
    expect(sanitizeHostId("a".repeat(70))).toHaveLength(63);
    expect(sanitizeHostId(`${"a".repeat(62)}.b`)).toBe("a".repeat(62));
  });

  it("defaults to the machine's capacity and the local NATS", async () => {
    const config = await resolve([]);
    expect(config).toMatchObject({
      hostId: "my-host",
      natsServers: ["nats://127.0.0.1:4222"],
      capacity: { cpuMillis: 4000, memoryMib: 15_872, diskGib: 200, gpus: 0 },
      ratios: { cpu: 4, memory: 1, disk: 1 },
      reserved: { cpuMillis: 0, memoryMib: 0, diskGib: 0, gpus: 0 },
      driver: "sim",
      heartbeatIntervalMs: 1000,
      seed: 99,
      logLevel: "info",
      labels: {},
    });
  });

  it("takes flags over environment variables", async () => {
    const env = {
      LEASEBROKER_AGENT_HOST_ID: "from-env",
      LEASEBROKER_AGENT_CPUS: "2",
      LEASEBROKER_AGENT_NATS_TOKEN: "s3cret",
      LEASEBROKER_AGENT_LABELS: "zone=a,rack=r1",
    };
    const config = await resolve(
      [
        "--host-id",
        "from-flag",
        "--memory-gib",
        "8",
        "--disk-gib",
        "50",
        "--label",
        "example.com/ssd=true",
        "--label",
        "gpu=",
        "--cpu-ratio",
        "4",
        "--reserved-cpus",
        "0.5",
        "--heartbeat-interval",
        "250ms",
        "--seed",
        "7",
        "--nats-url",
        "nats://10.0.0.1:4222,nats://10.0.0.2:4222",
      ],
      env,
    );
    expect(config).toMatchObject({
      hostId: "from-flag",
      capacity: { cpuMillis: 2000, memoryMib: 8192, diskGib: 50 },
      ratios: { cpu: 4 },
      reserved: { cpuMillis: 500 },
      heartbeatIntervalMs: 250,
      seed: 7,
      natsToken: "s3cret",
      natsServers: ["nats://10.0.0.1:4222", "nats://10.0.0.2:4222"],
      labels: { "example.com/ssd": "true", gpu: "" },
    });
  });

  it("refuses bad values with a ConfigError naming the flag", async () => {
    const bad: Array<[string[], RegExp]> = [
      [["--host-id", "Bad_Host"], /--host-id/],
      [["--cpu-ratio", "0"], /--cpu-ratio/],
      [["--label", "no-equals"], /key=value/],
      [["--label=.bad=x"], /label key/],
      [["--driver", "xen"], /--driver/],
      [["--qemu-accel", "hvf"], /--qemu-accel/],
      [["--driver", "qemu", "--data-dir", `/${"d".repeat(80)}`], /--data-dir.*too long/],
      [["--heartbeat-interval", "soon"], /--heartbeat-interval/],
      [["--nats-url", "http://x"], /--nats-url/],
      [["--nats-user", "u"], /go together/],
      [["--nats-token", "t", "--nats-user", "u", "--nats-password", "p"], /exclusive/],
      [["--reserved-cpus", "16"], /nothing to offer/],
      [["--bogus"], /bogus/],
    ];
    for (const [argv, message] of bad) {
      await expect(resolve(argv), argv.join(" ")).rejects.toThrow(message);
      await expect(resolve(argv)).rejects.toBeInstanceOf(ConfigError);
    }
  });

  it("says when the data directory cannot be measured", async () => {
    const failing: MachineProbe = {
      ...machine,
      diskGib: async () => {
        throw new Error("EACCES");
      },
    };
    await expect(resolveAgentConfig(parseOptions(specs, [], {}).options, failing)).rejects.toThrow(
      /--disk-gib/,
    );
  });

  it("measures the disk of a data directory that does not exist yet on its parent", async () => {
    const dir = mkdtempSync(join(tmpdir(), "agent-disk-"));
    try {
      const size = await detectDiskGib(join(dir, "not", "yet"));
      expect(size).toBeGreaterThan(0);
      expect(size).toBe(await detectDiskGib(dir));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("reports the package version", () => {
    const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as {
      version: string;
    };
    expect(AGENT_VERSION).toBe(pkg.version);
  });
});
