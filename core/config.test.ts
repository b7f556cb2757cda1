import { describe, expect, it } from "vitest";
import { ConfigError, formatDuration, optionsHelp, parseDuration, parseOptions } from "./config.js";

const specs = {
  grpcAddress: {
    type: "string",
    description: "gRPC listen address",
    env: "LB_GRPC",
    default: "127.0.0.1:50051",
  },
  store: {
    type: "string",
    description: "state store",
    choices: ["memory", "etcd"],
    default: "memory",
  },
  hosts: { type: "integer", description: "simulated hosts", min: 0, max: 100, default: 5 },
  ratio: { type: "number", description: "cpu ratio", min: 0.1 },
  ttl: { type: "duration", description: "host TTL", default: 10_000, min: 1000 },
  verbose: { type: "boolean", description: "more logs" },
  labels: { type: "list", description: "labels" },
  port: {
    type: "integer",
    description: "a port",
    check: (p: number) => (p === 22 ? "port 22 is reserved" : undefined),
  },
} as const;

describe("parseOptions", () => {
  it("takes flags over environment over defaults", () => {
    const env = { LB_GRPC: "127.0.0.1:6000" };
    expect(parseOptions(specs, [], env).options.grpcAddress).toBe("127.0.0.1:6000");
    expect(parseOptions(specs, ["--grpc-address", "127.0.0.1:7000"], env).options.grpcAddress).toBe(
      "127.0.0.1:7000",
    );
    const defaults = parseOptions(specs, [], {}).options;
    expect(defaults).toMatchObject({
      grpcAddress: "127.0.0.1:50051",
      store: "memory",
      hosts: 5,
      ttl: 10_000,
      verbose: false,
      labels: [],
    });
    expect(defaults.ratio).toBeUndefined();
  });

  it("parses each type", () => {
    const { options } = parseOptions(
      specs,
      [
        "--hosts=7",
        "--ratio",
        "2.5",
        "--ttl",
        "30s",
        "--verbose",
        "--labels",
        "a=1,b=2",
        "--labels",
        "c=3",
      ],
      {},
    );
    expect(options).toMatchObject({
      hosts: 7,
      ratio: 2.5,
      ttl: 30_000,
      verbose: true,
      labels: ["a=1", "b=2", "c=3"],
    });
  });

  it.each([
    [["--nope"], /nope/],
    [["--hosts", "x"], /--hosts: expected an integer/],
    [["--hosts", "1.5"], /--hosts: expected an integer/],
    [["--hosts", "101"], /--hosts: must be <= 100/],
    [["--store", "redis"], /--store: must be one of memory, etcd/],
    [["--ttl", "soon"], /--ttl: expected a duration/],
    [["--ttl", "10ms"], /--ttl: must be at least 1s/],
    [["--port", "22"], /--port: port 22 is reserved/],
    [["stray"], /stray/],
  ])("rejects %j with a ConfigError that names the flag", (argv, message) => {
    expect(() => parseOptions(specs, argv, {})).toThrow(ConfigError);
    expect(() => parseOptions(specs, argv, {})).toThrow(message);
  });

  it("names the environment variable when the bad value came from it", () => {
    expect(() =>
      parseOptions({ hosts: { type: "integer", description: "n", env: "LB_HOSTS" } }, [], {
        LB_HOSTS: "many",
      }),
    ).toThrow(/LB_HOSTS \(environment\): expected an integer/);
  });

  it("reports --help and positionals when allowed", () => {
    const result = parseOptions(specs, ["-h", "x"], {}, { allowPositionals: true });
    expect(result.help).toBe(true);
    expect(result.positionals).toEqual(["x"]);
    expect(optionsHelp(specs)).toContain("--grpc-address <string>");
    expect(optionsHelp(specs)).toContain("env LB_GRPC");
  });
});

describe("durations", () => {
  it("parse and format", () => {
    expect(parseDuration("250ms")).toBe(250);
    expect(parseDuration("1.5s")).toBe(1500);
    expect(parseDuration("2h")).toBe(7_200_000);
    expect(parseDuration("7d")).toBe(604_800_000);
    expect(parseDuration("42")).toBe(42);
    expect(parseDuration("-1s")).toBeUndefined();
    expect(parseDuration("1w")).toBeUndefined();
    expect(formatDuration(90_061_000)).toBe("1d1h1m1s");
    expect(formatDuration(500)).toBe("500ms");
    expect(formatDuration(0)).toBe("0s");
  });
});
