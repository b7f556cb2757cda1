import fs from "node:fs";
import path from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createCodec } from "./codec.js";
import type { LeaseBrokerHandlers, LeaseInput } from "./index.js";
import {
  LEASE_BROKER_SERVICE_NAME,
  LeaseState,
  LOADER_OPTIONS,
  loadLeaseBrokerPackage,
  loadLeaseBrokerPackageDefinition,
  PROTO_FILES,
  PROTO_ROOT,
  protoFilePaths,
} from "./index.js";
import { timestampFromMs } from "./time.js";

const EXPECTED_RPCS = [
  "AbortMigration",
  "CancelLease",
  "CordonHost",
  "DrainHost",
  "ExplainPlacement",
  "ExtendLease",
  "GetAutoscaleStatus",
  "GetCapacity",
  "GetHost",
  "GetLease",
  "GetMigration",
  "ListHosts",
  "ListLeases",
  "ListMigrations",
  "MigrateLease",
  "Rebalance",
  "ResumeLease",
  "SubmitLease",
  "SubmitLeases",
  "SuspendLease",
  "UncordonHost",
  "WatchLeases",
];

describe("proto files", () => {
  it("PROTO_FILES lists exactly the .proto files of the package", () => {
    const onDisk = fs
      .readdirSync(path.join(PROTO_ROOT, "leasebroker", "v1"))
      .filter((name) => name.endsWith(".proto"))
      .map((name) => `leasebroker/v1/${name}`)
      .sort();
    expect([...PROTO_FILES].sort()).toEqual(onDisk);
    expect(onDisk.length).toBeGreaterThanOrEqual(9);
  });

  it.each(PROTO_FILES)("%s loads on its own with @grpc/proto-loader", (file) => {
    const definition = protoLoader.loadSync(path.join(PROTO_ROOT, file), LOADER_OPTIONS);
    const names = Object.keys(definition);
    expect(names.some((name) => name.startsWith("leasebroker.v1."))).toBe(true);
  });

  it("every file declares package leasebroker.v1, proto3, and comments every field and enum value", () => {
    let fields = 0;
    for (const file of protoFilePaths()) {
      const text = fs.readFileSync(file, "utf8");
      expect(text).toMatch(/^syntax = "proto3";$/m);
      expect(text).toMatch(/^package leasebroker\.v1;$/m);
      const lines = text.split("\n");
      lines.forEach((line, i) => {
        // A field ("  [repeated] <type> <name> = <n>;") or an enum value ("  NAME = <n>;").
        if (/^\s+((repeated\s+)?(map<[^>]+>|[\w.]+)\s+)?\w+\s*=\s*\d+;/.test(line)) {
          fields++;
          const isFirstEnumValue = /_UNSPECIFIED\s*=\s*0;/.test(line);
          if (!isFirstEnumValue) {
            expect(
              lines[i - 1]?.trim().startsWith("//"),
              `${path.basename(file)}:${i + 1} "${line.trim()}" has no comment`,
            ).toBe(true);
          }
        }
      });
    }
    expect(fields).toBeGreaterThan(300);
  });

  it("enum values are prefixed with the enum name and start with <NAME>_UNSPECIFIED = 0", () => {
    for (const file of protoFilePaths()) {
      const text = fs.readFileSync(file, "utf8");
      for (const match of text.matchAll(/enum (\w+) \{([^}]*)\}/g)) {
        const [, name = "", body = ""] = match;
        const prefix = name.replace(/([a-z0-9])([A-Z])/g, "$1_$2").toUpperCase();
        const values = [...body.matchAll(/^\s*([A-Z0-9_]+)\s*=\s*(\d+);/gm)];
        expect(values.length).toBeGreaterThan(1);
        expect(values[0]?.[1]).toBe(`${prefix}_UNSPECIFIED`);
        expect(values[0]?.[2]).toBe("0");
        for (const value of values) expect(value[1]?.startsWith(`${prefix}_`)).toBe(true);
      }
    }
  });

  it("all files load together, including the google.protobuf well-known types", () => {
    const definition = loadLeaseBrokerPackageDefinition();
    expect(definition["google.protobuf.Timestamp"]).toBeDefined();
    expect(definition["google.protobuf.Duration"]).toBeDefined();
    for (const name of [
      "Lease",
      "LeaseSpec",
      "Host",
      "Migration",
      "Command",
      "AgentEvent",
      "CapacityForecast",
      "AutoscaleSignal",
      "PlacementExplanation",
    ]) {
      expect(definition[`leasebroker.v1.${name}`], name).toBeDefined();
    }
  });
});

describe("LeaseBroker service", () => {
  const pkg = loadLeaseBrokerPackage();
  const service = pkg.leasebroker.v1.LeaseBroker.service;

  it("has every RPC of the contract", () => {
    expect(Object.keys(service).sort()).toEqual(EXPECTED_RPCS);
    for (const [name, method] of Object.entries(service)) {
      expect(method.path).toBe(`/${LEASE_BROKER_SERVICE_NAME}/${name}`);
      expect(method.requestStream).toBe(false);
      expect(method.responseStream).toBe(name === "WatchLeases");
    }
  });

  it("serializes with the generated shapes (numbers for int64, enum names, defaults, oneof names)", () => {
    const lease: LeaseInput = {
      id: "lse_1",
      state: "LEASE_STATE_ACTIVE",
      revision: 42,
      start: timestampFromMs(1_700_000_000_123),
      spec: {
        tenant: "acme",
        resources: { cpuMillis: 2000, memoryMib: 4096, extended: { "example.com/fpga": 1 } },
        immediate: { duration: { seconds: 3600 } },
      },
    };
    const bytes = service.GetLease.responseSerialize(lease);
    const decoded = service.GetLease.responseDeserialize(bytes);
    expect(decoded.state).toBe(LeaseState.LEASE_STATE_ACTIVE);
    expect(decoded.revision).toBe(42);
    expect(decoded.start).toEqual({ seconds: 1_700_000_000, nanos: 123_000_000 });
    expect(decoded.end).toBeNull();
    expect(decoded.placementHistory).toEqual([]);
    expect(decoded.spec?.window).toBe("immediate");
    expect(decoded.spec?.labels).toEqual({});
    expect(decoded.spec?.resources?.extended).toEqual({ "example.com/fpga": 1 });
    expect(decoded.spec?.resources?.gpus).toBe(0);
    // The protobufjs codec decodes the same bytes to the same object.
    expect(createCodec("leasebroker.v1.Lease").decode(bytes)).toEqual(decoded);
  });
});

describe("gRPC over loopback with the generated types", () => {
  const pkg = loadLeaseBrokerPackage();
  const server = new grpc.Server();
  let port = 0;

  beforeAll(async () => {
    // Only GetLease is served here; the handler is typed by the generated LeaseBrokerHandlers.
    const getLease: LeaseBrokerHandlers["GetLease"] = (call, callback) => {
      if (call.request.id !== "lse_1") {
        callback({ code: grpc.status.NOT_FOUND, details: `lease ${call.request.id} not found` });
        return;
      }
      callback(null, {
        id: "lse_1",
        state: "LEASE_STATE_RESERVED",
        hostId: "host-a",
        revision: 7,
      });
    };
    server.addService(pkg.leasebroker.v1.LeaseBroker.service, { GetLease: getLease });
    port = await new Promise<number>((resolve, reject) => {
      server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (error, bound) =>
        error ? reject(error) : resolve(bound),
      );
    });
  });

  afterAll(() => {
    server.forceShutdown();
  });

  it("a typed client gets the lease, and NOT_FOUND for an unknown id", async () => {
    const client = new pkg.leasebroker.v1.LeaseBroker(
      `127.0.0.1:${port}`,
      grpc.credentials.createInsecure(),
    );
    try {
      const lease = await new Promise((resolve, reject) => {
        client.getLease({ id: "lse_1" }, (error, value) =>
          error ? reject(error) : resolve(value),
        );
      });
      expect(lease).toMatchObject({
        id: "lse_1",
        state: "LEASE_STATE_RESERVED",
        hostId: "host-a",
        revision: 7,
        spec: null,
      });
      const failure = await new Promise<grpc.ServiceError | null>((resolve) => {
        client.getLease({ id: "nope" }, (error) => resolve(error));
      });
      expect(failure?.code).toBe(grpc.status.NOT_FOUND);
    } finally {
      client.close();
    }
  });
});
