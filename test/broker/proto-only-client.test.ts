/**
 * A client built from the .proto files alone: @grpc/proto-loader loads leasebroker/v1/broker.proto
 * at run time (snake_case fields, 64-bit integers as strings: options of its own, not the
 * project's), and protobufjs decodes the binary trailing metadata from the same files. Nothing of
 * the project is imported except what starts the broker; the answers must be the contract's.
 */
import path from "node:path";
import { fileURLToPath } from "node:url";
import { type Metadata, status } from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import protobuf from "protobufjs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Broker } from "../../broker/broker.js";
import { silentLogger, VirtualClock } from "../../core/index.js";
import {
  DynamicClient,
  failure,
  pick,
  pickArray,
  pickString,
  serviceDefinition,
} from "./dynamic-grpc.js";

const PROTO_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..", "proto");
const T0 = Date.UTC(2031, 0, 6, 12, 0, 0);
const T0_SECONDS = String(T0 / 1000);
const GIB = 1024;

/** A lease spec in the wire's own spelling (snake_case, as keepCase loads it). */
function spec(memoryGib: number, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    name: "vm",
    tenant: "acme",
    resources: { cpu_millis: 1000, memory_mib: memoryGib * GIB },
    immediate: { duration: { seconds: 3600 } },
    ...extra,
  };
}

function metadataBuffer(metadata: Metadata, key: string): Buffer {
  const value = metadata.get(key)[0];
  if (!Buffer.isBuffer(value)) throw new Error(`no binary metadata ${key}`);
  return value;
}

describe("a client from the .proto files alone", () => {
  const clock = new VirtualClock(T0);
  const broker = new Broker({
    clock,
    logger: silentLogger(),
    grpcAddress: "127.0.0.1:0",
    simHosts: { count: 2, cpus: 4, memoryGib: 16, bootMs: 1000, shutdownMs: 500 },
  });
  let client: DynamicClient;
  let explanationType: protobuf.Type;

  beforeAll(async () => {
    const port = await broker.start();
    const definition = loadSync("leasebroker/v1/broker.proto", {
      includeDirs: [PROTO_DIR],
      keepCase: true,
      longs: String,
      enums: String,
      defaults: true,
      oneofs: true,
    });
    client = new DynamicClient(
      `127.0.0.1:${port}`,
      serviceDefinition(definition, "leasebroker.v1.LeaseBroker"),
    );
    const root = new protobuf.Root();
    root.resolvePath = (_origin, target) =>
      target.startsWith("google/protobuf/") ? target : path.join(PROTO_DIR, target);
    root.loadSync("leasebroker/v1/placement.proto", { keepCase: true });
    explanationType = root.lookupType("leasebroker.v1.PlacementExplanation");
  });
  afterAll(async () => {
    client.close();
    await broker.stop(1000);
  });

  let leaseId = "";
  let submitted: unknown;

  it("SubmitLease: an immediate lease is admitted STARTING on a host, starting now", async () => {
    const response = await client.unary("SubmitLease", { spec: spec(8), request_id: "dyn-1" });
    submitted = pick(response, "lease");
    leaseId = pickString(submitted, "id");
    expect(leaseId).not.toBe("");
    expect(pick(submitted, "state")).toBe("LEASE_STATE_STARTING");
    expect(["sim-01", "sim-02"]).toContain(pick(submitted, "host_id"));
    expect(pick(submitted, "start", "seconds")).toBe(T0_SECONDS);
    expect(pick(submitted, "end", "seconds")).toBe(String(T0 / 1000 + 3600));
    expect(pick(submitted, "request_id")).toBe("dyn-1");
    expect(pick(submitted, "spec", "resources", "memory_mib")).toBe(String(8 * GIB));
    expect(pick(submitted, "spec", "window")).toBe("immediate");
    expect(pick(response, "duplicate")).toBe(false);
    // The retry is recognised.
    const retry = await client.unary("SubmitLease", { spec: spec(8), request_id: "dyn-1" });
    expect(pick(retry, "duplicate")).toBe(true);
    expect(pick(retry, "lease", "id")).toBe(leaseId);
  });

  it("GetLease and ListLeases return the same lease", async () => {
    const got = await client.unary("GetLease", { id: leaseId });
    expect(got).toEqual(submitted);
    const list = await client.unary("ListLeases", {});
    expect(pickArray(list, "leases")).toEqual([got]);
    expect(pick(list, "next_page_token")).toBe("");
    expect(pick(list, "revision")).toBe(pick(got, "revision"));
  });

  it("follows the lease as virtual time passes: ACTIVE after the boot time", async () => {
    await clock.advance(1000);
    const got = await client.unary("GetLease", { id: leaseId });
    expect(pick(got, "state")).toBe("LEASE_STATE_ACTIVE");
    expect(Number(pick(got, "revision"))).toBeGreaterThan(Number(pick(submitted, "revision")));
  });

  it("ExplainPlacement: where a lease would go, changing nothing", async () => {
    const explained = await client.unary("ExplainPlacement", { spec: spec(4) });
    expect(pick(explained, "fits")).toBe(true);
    expect(["sim-01", "sim-02"]).toContain(pick(explained, "host_id"));
    expect(pick(explained, "start", "seconds")).toBe(String((T0 + 1000) / 1000));
    expect(pick(explained, "explanation", "hosts_considered")).toBe(2);
    expect(pick(explained, "explanation", "chosen_host_id")).toBe(pick(explained, "host_id"));
    expect(pickArray(await client.unary("ListLeases", {}), "leases")).toHaveLength(1);
  });

  it("a validation error: INVALID_ARGUMENT naming the field, in the message and in lb-field", async () => {
    const error = await failure(
      client.unary("SubmitLease", {
        spec: spec(8, { resources: { cpu_millis: 0, memory_mib: 1024 } }),
      }),
    );
    expect(error.code).toBe(status.INVALID_ARGUMENT);
    expect(error.details).toContain("spec.resources.cpu_millis");
    expect(error.metadata.get("lb-field")).toEqual(["spec.resources.cpu_millis"]);
  });

  it("a lease that fits nowhere: RESOURCE_EXHAUSTED with the explanation decodable from the .proto", async () => {
    await client.unary("SubmitLease", { spec: spec(16) });
    const error = await failure(client.unary("SubmitLease", { spec: spec(16) }));
    expect(error.code).toBe(status.RESOURCE_EXHAUSTED);
    const bytes = metadataBuffer(error.metadata, "lb-placement-explanation-bin");
    const decoded = explanationType.toObject(explanationType.decode(bytes), {
      longs: String,
      enums: String,
      defaults: true,
    });
    expect(pick(decoded, "hosts_considered")).toBe(2);
    expect(pick(decoded, "chosen_host_id")).toBe("");
    expect(pick(decoded, "binding_resource")).toBe("memory_mib");
    expect(pickString(decoded, "summary")).not.toBe("");
    const removed = pickArray(decoded, "filters").reduce<number>(
      (sum, f) => sum + Number(pick(f, "hosts_removed")),
      0,
    );
    expect(removed).toBe(2);

    // ExplainPlacement gives the same answer for the same spec.
    const explained = await client.unary("ExplainPlacement", { spec: spec(16) });
    expect(pick(explained, "fits")).toBe(false);
    expect(pick(explained, "host_id")).toBe("");
    expect(pick(explained, "explanation", "summary")).toBe(pick(decoded, "summary"));
    expect(pick(explained, "explanation", "binding_resource")).toBe("memory_mib");
    expect(pick(explained, "explanation", "filters")).toEqual(pick(decoded, "filters"));
  });
});
