import { Metadata, status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConfigError } from "../../core/index.js";
import {
  createCodec,
  type HostInput,
  type LeaseEventInput,
  type LeaseInput,
  type PlacementExplanationInput,
  timestampFromMs,
} from "../../proto/index.js";
import { BrokerCallError, explanationFromMetadata, flagForField, renderFailure } from "./errors.js";
import { EXIT, exitCodeForStatus } from "./exit-codes.js";
import {
  cores,
  gibibytes,
  labelsText,
  localTime,
  mebibytes,
  relativeTime,
  resourcesText,
  table,
} from "./format.js";
import { eventLine, explanationLines, hostTable, leaseDetail, leaseTable } from "./render.js";

const NOW = Date.parse("2030-01-02T03:00:00Z");
let savedTz: string | undefined;
beforeAll(() => {
  savedTz = process.env.TZ;
  process.env.TZ = "UTC";
});
afterAll(() => {
  if (savedTz === undefined) delete process.env.TZ;
  else process.env.TZ = savedTz;
});

const leaseCodec = createCodec("leasebroker.v1.Lease");
const hostCodec = createCodec("leasebroker.v1.Host");
const eventCodec = createCodec("leasebroker.v1.LeaseEvent");
const explanationCodec = createCodec("leasebroker.v1.PlacementExplanation");
const lease = (input: LeaseInput) => leaseCodec.decode(leaseCodec.encode(input));
const host = (input: HostInput) => hostCodec.decode(hostCodec.encode(input));

const LEASE: LeaseInput = {
  id: "lse_1",
  spec: {
    name: "web-1",
    tenant: "acme",
    resources: { cpuMillis: 1500, memoryMib: 4096 },
    immediate: { duration: { seconds: 7200 } },
    labels: { app: "web" },
  },
  state: "LEASE_STATE_ACTIVE",
  hostId: "host-a",
  start: timestampFromMs(NOW - 5 * 60_000),
  end: timestampFromMs(NOW + 115 * 60_000),
  revision: 12,
};

const NO_FIT: PlacementExplanationInput = {
  hostsConsidered: 5,
  filters: [
    {
      filter: "state",
      hostsRemoved: 1,
      hostsRemaining: 4,
      sampleHosts: ["host-e"],
      reason: "DOWN",
    },
    {
      filter: "fit",
      hostsRemoved: 4,
      hostsRemaining: 0,
      reason: "memory_mib: needs 65536, at most 16384 free",
    },
  ],
  bindingResource: "memory_mib",
  bindingWindow: { start: timestampFromMs(NOW), end: timestampFromMs(NOW + 3_600_000) },
  summary: "No host has 64Gi of memory free for the whole window.",
  shortfall: { memoryMib: 49_152 },
};

describe("units", () => {
  it("formats cores, memory and disk in the units the flags take", () => {
    expect(cores(2000)).toBe("2");
    expect(cores(500)).toBe("0.5");
    expect(cores(1250)).toBe("1.25");
    expect(mebibytes(512)).toBe("512Mi");
    expect(mebibytes(4096)).toBe("4Gi");
    expect(mebibytes(1536)).toBe("1.5Gi");
    expect(mebibytes(1_048_576)).toBe("1Ti");
    expect(mebibytes(-2048)).toBe("-2Gi");
    expect(gibibytes(20)).toBe("20Gi");
    expect(gibibytes(2048)).toBe("2Ti");
    expect(
      resourcesText({
        cpuMillis: 1000,
        memoryMib: 512,
        diskGib: 10,
        gpus: 2,
        extended: { fpga: 1 },
      }),
    ).toBe("1 core, 512Mi memory, 10Gi disk, 2 GPUs, fpga=1");
    expect(labelsText({ b: "2", a: "1" })).toBe("a=1,b=2");
    expect(labelsText({})).toBe("-");
  });

  it("formats times as local RFC 3339 and relative to now", () => {
    expect(localTime(Date.parse("2030-01-02T03:04:05.678Z"))).toBe("2030-01-02T03:04:05Z");
    expect(relativeTime(NOW + 5 * 60_000, NOW)).toBe("in 5m");
    expect(relativeTime(NOW - 3 * 60_000, NOW)).toBe("3m ago");
    expect(relativeTime(NOW + 26 * 3_600_000 + 61_000, NOW)).toBe("in 1d2h");
    expect(relativeTime(NOW + 400, NOW)).toBe("now");
    expect(relativeTime(undefined, NOW)).toBe("-");
  });
});

describe("tables", () => {
  it("aligns columns with two spaces and no trailing blanks", () => {
    expect(
      table(
        ["A", "LONG HEADER", "C"],
        [
          ["xxxx", "y", ""],
          ["z", "", "end"],
        ],
      ),
    ).toEqual(["A     LONG HEADER  C", "xxxx  y", "z                  end"]);
  });

  it("lists leases with human units and relative times", () => {
    const lines = leaseTable([lease(LEASE)], NOW);
    expect(lines[0]).toMatch(/^ID\s+NAME\s+TENANT\s+STATE\s+HOST\s+CPU\s+MEMORY\s+START\s+END$/);
    expect(lines[1]?.split(/\s{2,}/)).toEqual([
      "lse_1",
      "web-1",
      "acme",
      "ACTIVE",
      "host-a",
      "1.5",
      "4Gi",
      "5m ago",
      "in 1h55m",
    ]);
  });

  it("shows one lease with absolute and relative times", () => {
    const text = leaseDetail(lease(LEASE), NOW).join("\n");
    expect(text).toContain("Lease:     lse_1");
    expect(text).toContain("Window:    immediate 2h");
    expect(text).toContain("Start:     2030-01-02T02:55:00Z (5m ago)");
    expect(text).toContain("Resources: 1.5 cores, 4Gi memory");
    expect(text).toContain("Revision:  12");
  });

  it("lists hosts with allocatable, allocated and free cpu and memory", () => {
    const lines = hostTable([
      host({
        id: "host-a",
        state: "HOST_STATE_READY",
        allocatable: { cpuMillis: 16_000, memoryMib: 65_536 },
        allocated: { cpuMillis: 6_500, memoryMib: 20_480 },
        leaseCount: 3,
        labels: { zone: "a" },
      }),
    ]);
    expect(lines[1]?.split(/\s{2,}/)).toEqual([
      "host-a",
      "READY",
      "16",
      "6.5",
      "9.5",
      "64Gi",
      "20Gi",
      "44Gi",
      "3",
      "zone=a",
    ]);
  });

  it("prints one line per event: time, revision, type, lease, state, host", () => {
    const event: LeaseEventInput = {
      revision: 42,
      type: "LEASE_EVENT_TYPE_STATE_CHANGED",
      lease: LEASE,
      time: timestampFromMs(NOW),
      previousState: "LEASE_STATE_STARTING",
    };
    expect(eventLine(eventCodec.decode(eventCodec.encode(event))).split(/\s{2,}/)).toEqual([
      "2030-01-02T03:00:00Z",
      "42",
      "STATE_CHANGED",
      "lse_1",
      "STARTING→ACTIVE",
      "host-a",
    ]);
  });

  it("explains a no-fit: hosts considered, removed per filter, binding resource and when", () => {
    const lines = explanationLines(explanationCodec.decode(explanationCodec.encode(NO_FIT)));
    expect(lines[0]).toBe("No host has 64Gi of memory free for the whole window.");
    expect(lines).toContain("Hosts considered: 5");
    expect(lines).toContain("Hosts removed by each filter:");
    expect(lines.some((l) => /^\s+state\s+1\s+4\s+DOWN \(e\.g\. host-e\)$/.test(l))).toBe(true);
    expect(
      lines.some((l) => /^\s+fit\s+4\s+0\s+memory_mib: needs 65536, at most 16384 free$/.test(l)),
    ).toBe(true);
    expect(lines).toContain(
      "Binding resource: memory_mib, from 2030-01-02T03:00:00Z to 2030-01-02T04:00:00Z",
    );
    expect(lines).toContain("Short by: 48Gi memory on the closest host");
  });

  it("leaves out the LEFT and WHY columns when the broker does not fill them in", () => {
    const bare = explanationCodec.decode(
      explanationCodec.encode({
        hostsConsidered: 4,
        filters: [
          { filter: "state", hostsRemoved: 1 },
          { filter: "fit", hostsRemoved: 3 },
        ],
        summary: "Nothing fits.",
      }),
    );
    const lines = explanationLines(bare);
    expect(lines).toContain("  FILTER  REMOVED");
    expect(lines).toContain("  fit     3");
  });
});

describe("exit codes and error messages", () => {
  it("maps every status to its exit code", () => {
    const expected: [status, number][] = [
      [status.OK, 0],
      [status.INTERNAL, 1],
      [status.UNKNOWN, 1],
      [status.DATA_LOSS, 1],
      [status.NOT_FOUND, 3],
      [status.RESOURCE_EXHAUSTED, 4],
      [status.INVALID_ARGUMENT, 5],
      [status.FAILED_PRECONDITION, 6],
      [status.ABORTED, 6],
      [status.ALREADY_EXISTS, 6],
      [status.OUT_OF_RANGE, 6],
      [status.UNAVAILABLE, 7],
      [status.DEADLINE_EXCEEDED, 7],
      [status.UNIMPLEMENTED, 8],
      [status.UNAUTHENTICATED, 9],
      [status.PERMISSION_DENIED, 9],
      [status.CANCELLED, 130],
    ];
    for (const [code, exit] of expected)
      expect([status[code], exitCodeForStatus(code)]).toEqual([status[code], exit]);
  });

  const callError = (code: status, details: string, extra: object = {}) =>
    new BrokerCallError({
      code,
      details,
      address: "127.0.0.1:50051",
      method: "SubmitLease",
      timeoutMs: 10_000,
      ...extra,
    });
  const ctx = { command: "submit", verbose: false };

  it("says which address it cannot reach", () => {
    const r = renderFailure(callError(status.UNAVAILABLE, "No connection established"), ctx);
    expect(r.code).toBe(EXIT.unreachable);
    expect(r.lines).toEqual([
      "error: cannot reach the broker at 127.0.0.1:50051 (is it running? start it with npm start)",
    ]);
    const late = renderFailure(callError(status.DEADLINE_EXCEEDED, "Deadline exceeded"), ctx);
    expect(late.lines[0]).toContain(
      "cannot reach the broker at 127.0.0.1:50051: no answer within 10s",
    );
  });

  it("prints the field and the rule, and the flag that sets it", () => {
    const r = renderFailure(
      callError(status.INVALID_ARGUMENT, "spec.resources.memory_mib: must be > 0", {
        field: "spec.resources.memory_mib",
      }),
      ctx,
    );
    expect(r.code).toBe(EXIT.invalid);
    expect(r.lines).toEqual([
      "error: spec.resources.memory_mib: must be > 0",
      "  (set with --memory)",
    ]);
    expect(flagForField("spec.reserved.start")).toBe("--start");
    expect(flagForField('spec.labels["x"]')).toBe("--label");
    expect(flagForField("spec.flexible.latest_start")).toBe("--latest");
  });

  it("reads the explanation as protobuf (lb-placement-explanation-bin) or JSON (lb-explanation-bin)", () => {
    const binary = new Metadata();
    binary.set("lb-placement-explanation-bin", Buffer.from(explanationCodec.encode(NO_FIT)));
    const json = new Metadata();
    json.set("lb-explanation-bin", Buffer.from(JSON.stringify(NO_FIT)));
    const fromBinary = explanationFromMetadata(binary);
    expect(fromBinary?.hostsConsidered).toBe(5);
    expect(fromBinary?.filters.map((f) => f.filter)).toEqual(["state", "fit"]);
    expect(explanationFromMetadata(json)).toEqual(fromBinary);
    expect(explanationFromMetadata(new Metadata())).toBeUndefined();
  });

  it("prints the explanation of a no-fit, or the message when there is none", () => {
    const metadata = new Metadata();
    metadata.set("lb-placement-explanation-bin", Buffer.from(explanationCodec.encode(NO_FIT)));
    const explanation = explanationFromMetadata(metadata);
    expect(explanation?.hostsConsidered).toBe(5);
    const r = renderFailure(
      callError(
        status.RESOURCE_EXHAUSTED,
        "no host fits",
        explanation === undefined ? {} : { explanation },
      ),
      ctx,
    );
    expect(r.code).toBe(EXIT.noFit);
    expect(r.lines[0]).toBe("error: no host can take this lease");
    expect(r.lines).toContain("  Hosts considered: 5");
    const bare = renderFailure(callError(status.RESOURCE_EXHAUSTED, "quota exceeded"), ctx);
    expect(bare.lines).toEqual(["error: no host can take this lease: quota exceeded"]);
  });

  it("reads garbage explanation metadata as no explanation", () => {
    const json = new Metadata();
    json.set("lb-explanation-bin", Buffer.from("{not json"));
    expect(explanationFromMetadata(json)).toBeUndefined();
    const binary = new Metadata();
    binary.set("lb-placement-explanation-bin", Buffer.from([0xff, 0xff, 0xff]));
    expect(explanationFromMetadata(binary)).toBeUndefined();
  });

  it("names what the broker does not support yet", () => {
    const r = renderFailure(
      new BrokerCallError({
        code: status.UNIMPLEMENTED,
        details: "The server does not implement the method /leasebroker.v1.LeaseBroker/DrainHost",
        address: "127.0.0.1:50051",
        method: "DrainHost",
        timeoutMs: 10_000,
      }),
      { command: "drain", verbose: false },
    );
    expect(r).toEqual({ code: 8, lines: ["error: the broker does not support drain yet"] });
  });

  it("maps usage errors to 2 and anything else to 1", () => {
    expect(renderFailure(new ConfigError("--cpu: bad"), ctx)).toEqual({
      code: 2,
      lines: ["error: --cpu: bad", "  (see leasectl submit --help)"],
    });
    expect(renderFailure(new TypeError("boom"), ctx)).toEqual({
      code: 1,
      lines: ["error: unexpected: boom"],
    });
  });
});
