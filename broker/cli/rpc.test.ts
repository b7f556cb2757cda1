/**
 * leasectl against a real grpc-js server on 127.0.0.1:0 that implements the LeaseBroker service
 * with canned answers (a test double of our broker, for the CLI's RPC paths).
 */
import * as grpc from "@grpc/grpc-js";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  createCodec,
  type LeaseBrokerHandlers,
  type LeaseEventInput,
  type LeaseInput,
  type ListLeasesRequest,
  loadLeaseBrokerPackage,
  type PlacementExplanationInput,
  type SubmitLeaseRequest,
  timestampFromMs,
  type WatchLeasesRequest,
} from "../../proto/index.js";
import { runCliCaptured as run } from "./capture.js";

const NOW = Date.parse("2030-01-02T03:00:00Z");
const pkg = loadLeaseBrokerPackage();
const explanationCodec = createCodec("leasebroker.v1.PlacementExplanation");

interface TestServer {
  readonly address: string;
  readonly server: grpc.Server;
}

async function startServer(handlers: grpc.UntypedServiceImplementation): Promise<TestServer> {
  const server = new grpc.Server();
  server.addService(pkg.leasebroker.v1.LeaseBroker.service, handlers);
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (error, bound) =>
      error ? reject(error) : resolve(bound),
    );
  });
  return { address: `127.0.0.1:${port}`, server };
}

function leaseInput(id: string, extra: Partial<LeaseInput> = {}): LeaseInput {
  return {
    id,
    spec: {
      name: "web",
      tenant: "acme",
      resources: { cpuMillis: 2000, memoryMib: 4096 },
      immediate: { duration: { seconds: 7200 } },
    },
    state: "LEASE_STATE_STARTING",
    hostId: "host-a",
    start: timestampFromMs(NOW),
    end: timestampFromMs(NOW + 7_200_000),
    revision: 3,
    ...extra,
  };
}

function failure(
  code: grpc.status,
  details: string,
  entries: Record<string, string | Buffer> = {},
) {
  const metadata = new grpc.Metadata();
  for (const [key, value] of Object.entries(entries)) metadata.set(key, value);
  return { code, details, metadata };
}

const EXPLANATION: PlacementExplanationInput = {
  hostsConsidered: 4,
  filters: [
    {
      filter: "state",
      hostsRemoved: 1,
      hostsRemaining: 3,
      sampleHosts: ["host-d"],
      reason: "DOWN",
    },
    {
      filter: "fit",
      hostsRemoved: 3,
      hostsRemaining: 0,
      sampleHosts: ["host-a", "host-b", "host-c"],
      reason: "memory_mib: needs 131072, at most 32768 free",
    },
  ],
  bindingResource: "memory_mib",
  bindingWindow: { start: timestampFromMs(NOW), end: timestampFromMs(NOW + 3_600_000) },
  summary: "No host has 128Gi of memory free now.",
};

/** Everything the double received, by RPC. */
const received = {
  submit: [] as SubmitLeaseRequest[],
  list: [] as ListLeasesRequest[],
  watch: [] as WatchLeasesRequest[],
  other: [] as { method: string; request: unknown }[],
};
let watchScript: (
  call: grpc.ServerWritableStream<WatchLeasesRequest, LeaseEventInput>,
  n: number,
) => void = (call) => call.end();

const handlers = {
  SubmitLease(call, callback) {
    received.submit.push(call.request);
    const tenant = call.request.spec?.tenant;
    const memory = call.request.spec?.resources?.memoryMib ?? 0;
    if (call.request.requestId === "used") {
      callback(
        failure(
          grpc.status.ALREADY_EXISTS,
          'request id "used" was used for lease lse_old with a different spec',
        ),
      );
    } else if (tenant === "bad") {
      callback(
        failure(grpc.status.INVALID_ARGUMENT, "spec.resources.memory_mib: must be > 0", {
          "lb-field": "spec.resources.memory_mib",
        }),
      );
    } else if (memory > 100_000) {
      // As broker.proto says: the PlacementExplanation, protobuf-encoded.
      callback(
        failure(grpc.status.RESOURCE_EXHAUSTED, "no host can take this lease: no memory", {
          "lb-placement-explanation-bin": Buffer.from(explanationCodec.encode(EXPLANATION)),
        }),
      );
    } else if (memory > 50_000) {
      // The earlier form: its output shape as UTF-8 JSON.
      callback(
        failure(grpc.status.RESOURCE_EXHAUSTED, "no host can take this lease: no memory", {
          "lb-explanation-bin": Buffer.from(JSON.stringify(EXPLANATION)),
        }),
      );
    } else {
      callback(null, {
        lease: leaseInput("lse_new", { requestId: call.request.requestId }),
        duplicate: call.request.requestId === "seen-before",
      });
    }
  },
  GetLease(call, callback) {
    if (call.request.id === "lse_1") callback(null, leaseInput("lse_1"));
    else callback(failure(grpc.status.NOT_FOUND, `lease "${call.request.id}" not found`));
  },
  ListLeases(call, callback) {
    received.list.push(call.request);
    const pages: Record<string, [string[], string]> = {
      "": [["lse_1", "lse_2"], "t1"],
      t1: [["lse_3", "lse_4"], "t2"],
      t2: [["lse_5"], ""],
    };
    const page = pages[call.request.pageToken];
    if (page === undefined) {
      callback(
        failure(grpc.status.INVALID_ARGUMENT, "page_token: unknown", { "lb-field": "page_token" }),
      );
      return;
    }
    callback(null, {
      leases: page[0].map((id) => leaseInput(id)),
      nextPageToken: page[1],
      revision: 40 + received.list.length,
    });
  },
  CancelLease(call, callback) {
    received.other.push({ method: "CancelLease", request: call.request });
    if (call.request.expectedRevision === 2) {
      callback(failure(grpc.status.ABORTED, "lease lse_1 is at revision 3, not 2"));
      return;
    }
    callback(null, leaseInput("lse_1", { state: "LEASE_STATE_CANCELLED" }));
  },
  ExtendLease(call, callback) {
    received.other.push({ method: "ExtendLease", request: call.request });
    callback(null, leaseInput("lse_1", { end: timestampFromMs(NOW + 9_000_000) }));
  },
  ExplainPlacement(call, callback) {
    received.other.push({ method: "ExplainPlacement", request: call.request });
    const fits = (call.request.spec?.resources?.memoryMib ?? 0) < 100_000;
    callback(
      null,
      fits
        ? {
            fits: true,
            hostId: "host-b",
            start: timestampFromMs(NOW),
            end: timestampFromMs(NOW + 3_600_000),
            explanation: { hostsConsidered: 3, chosenHostId: "host-b", bestScore: 80 },
          }
        : { fits: false, explanation: EXPLANATION },
    );
  },
  ListHosts(_call, callback) {
    callback(null, {
      hosts: [
        {
          id: "host-a",
          state: "HOST_STATE_READY",
          allocatable: { cpuMillis: 16_000, memoryMib: 65_536 },
          allocated: { cpuMillis: 4_000, memoryMib: 8_192 },
          leaseCount: 2,
          labels: { zone: "a" },
        },
      ],
      revision: 9,
    });
  },
  GetCapacity(call, callback) {
    received.other.push({ method: "GetCapacity", request: call.request });
    callback(null, {
      buckets: [
        {
          start: timestampFromMs(NOW),
          end: timestampFromMs(NOW + 3_600_000),
          allocatable: { cpuMillis: 32_000, memoryMib: 131_072 },
          allocated: { cpuMillis: 8_000, memoryMib: 16_384 },
          free: { cpuMillis: 24_000, memoryMib: 114_688 },
        },
      ],
      hostCount: 2,
    });
  },
  WatchLeases(call) {
    received.watch.push(call.request);
    watchScript(call, received.watch.length);
  },
} satisfies Partial<LeaseBrokerHandlers>;

let broker: TestServer;
let env: Record<string, string>;

beforeAll(async () => {
  broker = await startServer(handlers);
  env = { LEASEBROKER_SERVER: broker.address };
});
afterAll(() => broker.server.forceShutdown());
afterEach(() => {
  received.submit.length = 0;
  received.list.length = 0;
  received.watch.length = 0;
  received.other.length = 0;
});

describe("submit", () => {
  it("sends the spec with a generated request id and prints id, state, host and window", async () => {
    const r = await run(
      ["submit", "--tenant", "acme", "--cpu", "2", "--memory", "4Gi", "--duration", "2h"],
      { env, now: NOW },
    );
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const request = received.submit[0];
    expect(request?.spec?.tenant).toBe("acme");
    expect(request?.spec?.resources?.cpuMillis).toBe(2000);
    expect(request?.spec?.immediate?.duration?.seconds).toBe(7200);
    expect(request?.requestId).toMatch(/^lc-[A-Za-z0-9_-]+$/);
    expect(r.stdout).toMatch(/^Lease:\s+lse_new$/m);
    expect(r.stdout).toMatch(/^State:\s+STARTING$/m);
    expect(r.stdout).toMatch(/^Host:\s+host-a$/m);
    expect(r.stdout).toMatch(/^Window:\s+\S+ → \S+ \(starts now\)$/m);
    // The generated id is printed so that a retry can reuse it.
    expect(r.stdout).toContain(`Request id: ${request?.requestId}`);
  });

  it("passes --request-id through, says when it was a duplicate, and prints JSON with -o json", async () => {
    const r = await run(
      [
        "submit",
        "--tenant",
        "acme",
        "--cpu",
        "500m",
        "--memory",
        "512Mi",
        "--duration",
        "1h",
        "--request-id",
        "seen-before",
        "-o",
        "json",
      ],
      { env, now: NOW },
    );
    expect(r.code).toBe(0);
    expect(received.submit[0]?.requestId).toBe("seen-before");
    const response = JSON.parse(r.stdout);
    expect(response.duplicate).toBe(true);
    expect(response.lease.id).toBe("lse_new");
    expect(response.lease.state).toBe("LEASE_STATE_STARTING");
  });

  it.each([
    ["lb-placement-explanation-bin (protobuf)", "128Gi"],
    ["lb-explanation-bin (JSON)", "64Gi"],
  ])("RESOURCE_EXHAUSTED: exit 4 and the explanation from %s", async (_, memory) => {
    const r = await run(
      ["submit", "--tenant", "acme", "--cpu", "2", "--memory", memory, "--duration", "1h"],
      { env, now: NOW },
    );
    expect(r.code).toBe(4);
    expect(r.stdout).toBe("");
    const lines = r.stderr.split("\n");
    expect(lines[0]).toBe("error: no host can take this lease");
    expect(lines).toContain("  No host has 128Gi of memory free now.");
    expect(lines).toContain("  Hosts considered: 4");
    expect(r.stderr).toMatch(/state\s+1\s+3\s+DOWN \(e\.g\. host-d\)/);
    expect(r.stderr).toMatch(
      /fit\s+3\s+0\s+memory_mib: needs 131072, at most 32768 free \(e\.g\. host-a, host-b, host-c\)/,
    );
    expect(r.stderr).toContain("Binding resource: memory_mib, from ");
  });

  it("INVALID_ARGUMENT: exit 5 with the field, the rule and the flag", async () => {
    const r = await run(
      ["submit", "--tenant", "bad", "--cpu", "2", "--memory", "1Gi", "--duration", "1h"],
      { env, now: NOW },
    );
    expect(r.code).toBe(5);
    expect(r.stderr).toBe("error: spec.resources.memory_mib: must be > 0\n  (set with --memory)\n");
  });

  it("ALREADY_EXISTS: exit 6, and with a relative time, why a retry differs", async () => {
    const r = await run(
      [
        "submit",
        ...["--tenant", "acme", "--cpu", "1", "--memory", "1Gi", "--duration", "1h"],
        ...["--start", "+10m", "--request-id", "used"],
      ],
      { env, now: NOW },
    );
    expect(r.code).toBe(6);
    expect(r.stderr).toContain(
      'error: request id "used" was used for lease lse_old with a different spec',
    );
    expect(r.stderr).toContain("a relative time resolves anew on every run");
  });

  it("--dry-run explains instead of submitting", async () => {
    const r = await run(
      [
        "submit",
        "--dry-run",
        "--tenant",
        "acme",
        "--cpu",
        "2",
        "--memory",
        "1Gi",
        "--duration",
        "1h",
      ],
      { env, now: NOW },
    );
    expect(r.code).toBe(0);
    expect(received.submit).toHaveLength(0);
    expect(received.other.map((o) => o.method)).toEqual(["ExplainPlacement"]);
    expect(r.stdout).toMatch(/^Fits: on host-b, /);
  });
});

describe("explain", () => {
  it("prints the full explanation and exits 4 when nothing fits", async () => {
    const r = await run(
      ["explain", "--tenant", "acme", "--cpu", "2", "--memory", "128Gi", "--duration", "1h"],
      { env, now: NOW },
    );
    expect(r.code).toBe(4);
    expect(r.stdout).toContain("Does not fit: no host can take this lease now");
    expect(r.stdout).toContain("Hosts considered: 4");
    expect(r.stdout).toContain("Hosts removed by each filter:");
  });
});

describe("get", () => {
  it("prints the lease, or JSON of the Lease message", async () => {
    const table = await run(["get", "lse_1"], { env, now: NOW });
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/^Lease:\s+lse_1$/m);
    expect(table.stdout).toMatch(/^Resources:\s+2 cores, 4Gi memory$/m);
    const json = await run(["get", "lse_1", "-o", "json"], { env, now: NOW });
    expect(JSON.parse(json.stdout)).toMatchObject({
      id: "lse_1",
      state: "LEASE_STATE_STARTING",
      revision: 3,
      spec: {
        tenant: "acme",
        resources: { cpuMillis: 2000, memoryMib: 4096 },
        window: "immediate",
      },
    });
    const yaml = await run(["get", "lse_1", "-o", "yaml"], { env, now: NOW });
    expect(yaml.stdout).toMatch(/^id: lse_1$/m);
  });

  it("NOT_FOUND: exit 3 with the broker's message", async () => {
    const r = await run(["get", "nope"], { env });
    expect(r.code).toBe(3);
    expect(r.stderr).toBe('error: lease "nope" not found\n');
  });
});

describe("list", () => {
  it("--all follows the page tokens to the end", async () => {
    const r = await run(["list", "--all", "--state", "active,reserved", "--limit", "2"], {
      env,
      now: NOW,
    });
    expect(r.code).toBe(0);
    expect(received.list.map((q) => q.pageToken)).toEqual(["", "t1", "t2"]);
    expect(received.list[0]?.states).toEqual(["LEASE_STATE_ACTIVE", "LEASE_STATE_RESERVED"]);
    expect(received.list[0]?.pageSize).toBe(2);
    const ids = r.stdout
      .split("\n")
      .slice(1)
      .filter((l) => l !== "")
      .map((l) => l.split(/\s+/)[0]);
    expect(ids).toEqual(["lse_1", "lse_2", "lse_3", "lse_4", "lse_5"]);
    expect(r.stderr).toBe("");
  });

  it("without --all prints one page and says how to get more; -o json is one response", async () => {
    const r = await run(["list"], { env, now: NOW });
    expect(received.list).toHaveLength(1);
    expect(r.stdout.trim().split("\n")).toHaveLength(3);
    expect(r.stderr).toBe("(more leases: add --all, or --page-token t1)\n");
    const json = await run(["list", "--all", "-o", "json"], { env, now: NOW });
    const body = JSON.parse(json.stdout);
    expect(body.leases.map((l: { id: string }) => l.id)).toEqual([
      "lse_1",
      "lse_2",
      "lse_3",
      "lse_4",
      "lse_5",
    ]);
    expect(body.nextPageToken).toBe("");
  });

  it("refuses an unknown state before calling", async () => {
    const r = await run(["list", "--state", "running"], { env });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--state: must be one of pending, reserved, starting, active/);
    expect(received.list).toHaveLength(0);
  });
});

describe("cancel and extend", () => {
  it("cancel sends the reason and expected revision; ABORTED exits 6", async () => {
    const ok = await run(["cancel", "lse_1", "--reason", "done early"], { env, now: NOW });
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/^Lease lse_1: CANCELLED on host-a/);
    expect(received.other[0]?.request).toMatchObject({ id: "lse_1", reason: "done early" });
    const stale = await run(["cancel", "lse_1", "--expected-revision", "2"], { env });
    expect(stale.code).toBe(6);
    expect(stale.stderr).toContain("error: lease lse_1 is at revision 3, not 2");
  });

  it("extend --by sends extra, --to sends new_end; both or neither is a usage error", async () => {
    expect((await run(["extend", "lse_1", "--by", "30m"], { env, now: NOW })).code).toBe(0);
    expect(received.other[0]?.request).toMatchObject({ extra: { seconds: 1800 } });
    expect((await run(["extend", "lse_1", "--to", "+3h"], { env, now: NOW })).code).toBe(0);
    expect(received.other[1]?.request).toMatchObject({
      newEnd: { seconds: (NOW + 3 * 3_600_000) / 1000 },
    });
    const both = await run(["extend", "lse_1", "--to", "+3h", "--by", "1h"], { env });
    expect(both.code).toBe(2);
    expect(both.stderr).toContain("give exactly one of --to <time> or --by <duration>");
    expect((await run(["extend", "lse_1"], { env })).code).toBe(2);
  });
});

describe("hosts and capacity", () => {
  it("hosts prints the table", async () => {
    const r = await run(["hosts"], { env, now: NOW });
    expect(r.code).toBe(0);
    expect(r.stdout.split("\n")[1]?.split(/\s{2,}/)).toEqual([
      "host-a",
      "READY",
      "16",
      "4",
      "12",
      "64Gi",
      "8Gi",
      "56Gi",
      "2",
      "zone=a",
    ]);
  });

  it("capacity sends start, bucket width, count and selector, and prints a row per bucket", async () => {
    const r = await run(
      [
        "capacity",
        "--start",
        "+1h",
        "--bucket",
        "30m",
        "--buckets",
        "4",
        "--selector",
        "zone in (a,b)",
      ],
      { env, now: NOW },
    );
    expect(r.code).toBe(0);
    expect(received.other[0]?.request).toMatchObject({
      start: { seconds: (NOW + 3_600_000) / 1000 },
      bucketWidth: { seconds: 1800 },
      bucketCount: 4,
      selector: ["zone in (a,b)"],
    });
    expect(r.stdout).toContain("2 hosts (all hosts)");
    expect(r.stdout).toMatch(/\s32\s+8\s+24\s+128Gi\s+16Gi\s+112Gi\s/);
  });
});

function event(revision: number, id: string, state: string): LeaseEventInput {
  return {
    revision,
    type: "LEASE_EVENT_TYPE_STATE_CHANGED",
    lease: leaseInput(id, { state: state as LeaseInput["state"] }),
    time: timestampFromMs(NOW + revision * 1000),
  };
}

describe("watch", () => {
  it("prints one line per event and reconnects from the last revision after a stream error", async () => {
    watchScript = (call, n) => {
      if (n === 1) {
        call.write(event(5, "lse_1", "LEASE_STATE_STARTING"));
        call.write(event(6, "lse_1", "LEASE_STATE_ACTIVE"));
        setImmediate(() =>
          call.emit("error", failure(grpc.status.UNAVAILABLE, "broker restarting")),
        );
      } else {
        // Replays from the revision asked for (6 again), then a new event, then ends the stream.
        call.write(event(6, "lse_1", "LEASE_STATE_ACTIVE"));
        call.write(event(7, "lse_2", "LEASE_STATE_RESERVED"));
        call.end();
      }
    };
    const r = await run(["watch", "--tenant", "acme", "--from-revision", "5"], { env, now: NOW });
    expect(r.code).toBe(0);
    expect(received.watch.map((w) => w.fromRevision)).toEqual([5, 6]);
    expect(received.watch[1]?.tenant).toBe("acme");
    const lines = r.stdout.trim().split("\n");
    expect(lines[0]).toMatch(/^TIME\s+REVISION\s+TYPE\s+LEASE\s+STATE\s+HOST$/);
    expect(lines.slice(1).map((l) => l.split(/\s+/).slice(1, 5))).toEqual([
      ["5", "STATE_CHANGED", "lse_1", "STARTING"],
      ["6", "STATE_CHANGED", "lse_1", "ACTIVE"],
      ["7", "STATE_CHANGED", "lse_2", "RESERVED"],
    ]);
    expect(r.stderr).toContain("reconnecting from revision 6");
  });

  it("prints NDJSON with -o json", async () => {
    watchScript = (call) => {
      call.write(event(8, "lse_1", "LEASE_STATE_ACTIVE"));
      call.write(event(9, "lse_1", "LEASE_STATE_ENDING"));
      call.end();
    };
    const r = await run(["watch", "-o", "json"], { env, now: NOW });
    expect(r.code).toBe(0);
    const events = r.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(events.map((e) => [e.revision, e.lease.state])).toEqual([
      [8, "LEASE_STATE_ACTIVE"],
      [9, "LEASE_STATE_ENDING"],
    ]);
  });

  it("gives up after --max-retries failed reconnects in a row (exit 7)", async () => {
    watchScript = (call) => call.emit("error", failure(grpc.status.UNAVAILABLE, "still down"));
    const r = await run(["watch", "--max-retries", "1"], { env });
    expect(r.code).toBe(7);
    expect(received.watch).toHaveLength(2);
    expect(r.stderr).toContain(`error: cannot reach the broker at ${broker.address}`);
  });

  it("ends cleanly (exit 0) on Ctrl-C", async () => {
    watchScript = (call) => call.write(event(10, "lse_1", "LEASE_STATE_ACTIVE"));
    const controller = new AbortController();
    const r = await run(["watch"], {
      env,
      signal: controller.signal,
      onStdout: (_chunk, all) => {
        if (all.includes("lse_1")) controller.abort();
      },
    });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("lse_1");
  });
});

describe("leader following, unreachable and unsupported", () => {
  let follower: TestServer;
  let followerCalls = 0;

  beforeAll(async () => {
    const followerHandlers = {
      GetLease(_call, callback) {
        followerCalls++;
        callback(
          failure(grpc.status.UNAVAILABLE, `not the leader; the leader is at ${broker.address}`, {
            "lb-leader": broker.address,
          }),
        );
      },
    } satisfies Partial<LeaseBrokerHandlers>;
    follower = await startServer(followerHandlers);
  });
  afterAll(() => follower.server.forceShutdown());

  it("retries once against the leader named in lb-leader, silently unless -v", async () => {
    const quiet = await run(["get", "lse_1", "--server", follower.address], { now: NOW });
    expect(quiet.code).toBe(0);
    expect(quiet.stdout).toMatch(/^Lease:\s+lse_1$/m);
    expect(quiet.stderr).toBe("");
    expect(followerCalls).toBe(1);
    const loud = await run(["get", "lse_1", "--server", follower.address, "-v"], { now: NOW });
    expect(loud.code).toBe(0);
    expect(loud.stderr).toBe(
      `${follower.address} is not the leader; following the leader at ${broker.address}\n`,
    );
  });

  it("--server wins over LEASEBROKER_SERVER", async () => {
    const r = await run(["get", "lse_1", "--server", broker.address], {
      env: { LEASEBROKER_SERVER: follower.address.replace(/:\d+$/, ":1") },
      now: NOW,
    });
    expect(r.code).toBe(0);
  });

  it("a call without an answer within --timeout: exit 7, saying so", async () => {
    const silent = await startServer({
      GetLease() {
        // Never answers.
      },
      SubmitLease() {
        // Never answers.
      },
    } satisfies Partial<LeaseBrokerHandlers>);
    try {
      const r = await run(["get", "lse_1", "--server", silent.address, "--timeout", "200ms"]);
      expect(r.code).toBe(7);
      expect(r.stderr).toContain(
        `error: cannot reach the broker at ${silent.address}: no answer within 200ms`,
      );
      // A submit that may have arrived: how to retry it without a second lease.
      const submit = await run(
        [
          "submit",
          ...["--tenant", "acme", "--cpu", "1", "--memory", "1Gi", "--duration", "1h"],
          ...["--start", "+30m", "--request-id", "abc", "--timeout", "200ms"],
          ...["--server", silent.address],
        ],
        { now: NOW },
      );
      expect(submit.code).toBe(7);
      expect(submit.stderr).toContain(
        `retry with --request-id abc --start ${new Date(NOW + 1_800_000).toISOString()} to get the same lease`,
      );
    } finally {
      silent.server.forceShutdown();
    }
  });

  it("says which address it cannot reach (exit 7)", async () => {
    const gone = await startServer({});
    gone.server.forceShutdown();
    const r = await run(["get", "lse_1"], { env: { LEASEBROKER_SERVER: gone.address } });
    expect(r.code).toBe(7);
    expect(r.stderr).toBe(
      `error: cannot reach the broker at ${gone.address} (is it running? start it with npm start)\n`,
    );
  });

  it.each([
    [["drain", "host-a"], "drain"],
    [["migrate", "lse_1", "--to", "host-b"], "live migration"],
    [["migrations"], "migrations"],
    [["rebalance", "--dry-run"], "rebalance"],
    [["autoscale"], "autoscale"],
  ])("UNIMPLEMENTED %j: exit 8, said plainly", async (argv, feature) => {
    const r = await run(argv, { env });
    expect(r.code).toBe(8);
    expect(r.stderr).toBe(`error: the broker does not support ${feature} yet\n`);
  });
});
