import { describe, expect, it } from "vitest";
import { ConfigError, parseOptions } from "../core/index.js";
import { BROKER_OPTIONS, checkCombinations } from "./config.js";

describe("--http-address", () => {
  it("defaults to 127.0.0.1:8080; the environment overrides it, the flag overrides both", () => {
    expect(parseOptions(BROKER_OPTIONS, [], {}).options.httpAddress).toBe("127.0.0.1:8080");
    const env = { LEASEBROKER_HTTP_ADDRESS: "0.0.0.0:9090" };
    expect(parseOptions(BROKER_OPTIONS, [], env).options.httpAddress).toBe("0.0.0.0:9090");
    expect(
      parseOptions(BROKER_OPTIONS, ["--http-address", "127.0.0.1:0"], env).options.httpAddress,
    ).toBe("127.0.0.1:0");
  });

  it("rejects a value that is not host:port, naming the flag", () => {
    expect(() => parseOptions(BROKER_OPTIONS, ["--http-address", "8080"], {})).toThrow(ConfigError);
    expect(() => parseOptions(BROKER_OPTIONS, ["--http-address", "8080"], {})).toThrow(
      /--http-address/,
    );
    expect(() => parseOptions(BROKER_OPTIONS, ["--http-address", "h:70000"], {})).toThrow(/65535/);
  });

  it("must differ from --grpc-address (port 0 excepted: each gets its own free port)", () => {
    const same = parseOptions(
      BROKER_OPTIONS,
      ["--http-address", "127.0.0.1:7000", "--grpc-address", "127.0.0.1:7000"],
      {},
    ).options;
    expect(() => checkCombinations(same)).toThrow(/--http-address and --grpc-address/);
    const zero = parseOptions(
      BROKER_OPTIONS,
      ["--http-address", "127.0.0.1:0", "--grpc-address", "127.0.0.1:0"],
      {},
    ).options;
    expect(() => checkCombinations(zero)).not.toThrow();
  });
});

function check(argv: readonly string[]): void {
  const parsed = parseOptions(BROKER_OPTIONS, argv, {});
  checkCombinations(parsed.options);
}

const ETCD = [
  "--store",
  "etcd",
  "--etcd-endpoints",
  "http://127.0.0.1:2379",
  "--bus",
  "nats",
  "--nats-url",
  "nats://127.0.0.1:4222",
];

describe("the broker's --store etcd options", () => {
  it("accept a cluster configuration and default the prefix, TTL and grace", () => {
    const parsed = parseOptions(
      BROKER_OPTIONS,
      [...ETCD, "--advertise-address", "10.0.0.5:50051"],
      {},
    );
    expect(() => checkCombinations(parsed.options)).not.toThrow();
    expect(parsed.options.etcdPrefix).toBe("/leasebroker/");
    expect(parsed.options.electionTtl).toBe(2000);
    expect(parsed.options.shutdownGrace).toBe(10_000);
    expect(parsed.options.etcdEndpoints).toEqual(["http://127.0.0.1:2379"]);
  });

  it("take the environment (LEASEBROKER_*)", () => {
    const parsed = parseOptions(BROKER_OPTIONS, [], {
      LEASEBROKER_STORE: "etcd",
      LEASEBROKER_ETCD_ENDPOINTS: "http://a:2379,http://b:2379",
      LEASEBROKER_ELECTION_TTL: "3s",
    });
    expect(parsed.options.etcdEndpoints).toEqual(["http://a:2379", "http://b:2379"]);
    expect(parsed.options.electionTtl).toBe(3000);
  });

  it.each([
    [["--store", "etcd", "--bus", "nats", "--nats-url", "nats://x:4222"], /needs --etcd-endpoints/],
    [["--etcd-endpoints", "http://127.0.0.1:2379"], /--store is memory/],
    [["--etcd-ca-file", "/ca.pem"], /--store is memory/],
    [[...ETCD, "--etcd-cert-file", "/c.pem"], /go together/],
    [[...ETCD, "--etcd-ca-file", "/ca.pem"], /endpoints are http/],
    [
      [
        "--store",
        "etcd",
        "--etcd-endpoints",
        "https://e:2379",
        "--bus",
        "nats",
        "--nats-url",
        "nats://x:4222",
      ],
      /need --etcd-ca-file/,
    ],
    [["--store", "etcd", "--etcd-endpoints", "http://e:2379"], /--bus inproc/],
    [[...ETCD, "--election-ttl", "1500ms"], /whole seconds/],
    [[...ETCD, "--election-ttl", "500ms"], /election-ttl/],
    [["--etcd-endpoints", "127.0.0.1:2379", "--store", "etcd"], /not an etcd URL/],
    [[...ETCD, "--etcd-prefix", "leasebroker"], /must start with \//],
    [[...ETCD, "--advertise-address", "nohost"], /host:port/],
  ])("refuse %j", (argv, why) => {
    expect(() => check(argv)).toThrow(ConfigError);
    expect(() => check(argv)).toThrow(why);
  });
});
