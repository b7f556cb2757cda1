/**
 * Hostile input against every RPC of a real in-process broker over gRPC (virtual clock, simulated
 * hosts): property-based requests with fast-check — random, boundary, huge, malformed labels,
 * deep selectors, absurd times, unknown enum values — plus corrupted bytes and oversized
 * messages. Every call must end with a clean status (INVALID_ARGUMENT and the other deliberate
 * codes) or a valid answer, never INTERNAL/UNKNOWN; the broker keeps serving; afterwards no host
 * is oversubscribed at any instant and no lease is in an impossible state. Bounded: fixed seeds,
 * a few hundred runs.
 */
import { credentials, type ServiceError, status } from "@grpc/grpc-js";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Lease } from "../../broker/leases/model.js";
import { HOLDING_STATES, isTerminal } from "../../broker/leases/transitions.js";
import { startBroker, type TestBroker } from "../broker/harness.js";
import { CLEAN, encode, hostileRequests, RawClient } from "./hostile-requests.js";

let broker: TestBroker;
let client: RawClient;
const knownIds: string[] = [];
const outcomes = new Map<string, number>();
const { requests, unaryNames, int64, text, leaseId, enumOf } = hostileRequests(knownIds);

function sendBytes(name: string, bytes: Buffer) {
  return client.send(name, bytes);
}

async function call(name: string, request: object): Promise<number> {
  const bytes = encode(name, request);
  if (bytes === undefined) return -1;
  const result = await sendBytes(name, bytes);
  outcomes.set(
    `${name} ${status[result.code]}`,
    (outcomes.get(`${name} ${status[result.code]}`) ?? 0) + 1,
  );
  if (!CLEAN.has(result.code)) {
    throw new Error(
      `${name} answered ${status[result.code]}: ${result.details}\nrequest: ${JSON.stringify(request).slice(0, 2000)}`,
    );
  }
  if (name === "SubmitLease" && result.response !== undefined) {
    const id = (result.response as { lease?: { id?: string } }).lease?.id;
    if (typeof id === "string" && id !== "") knownIds.push(id);
  }
  return result.code;
}

// ── the invariants ───────────────────────────────────────────────────────────────────────────

const KNOWN_STATES = new Set([
  "PENDING",
  "RESERVED",
  "STARTING",
  "ACTIVE",
  "MIGRATING",
  "SUSPENDED",
  "ENDING",
  "ENDED",
  "CANCELLED",
  "REJECTED",
  "FAILED",
  "PREEMPTED",
]);

function checkInvariants(b: TestBroker): void {
  const leases: Lease[] = [];
  let token = "";
  do {
    const page = b.broker.leases.list({ pageSize: 1000, pageToken: token });
    leases.push(...page.leases.map((item) => item.value));
    token = page.nextPageToken;
  } while (token !== "");
  const hosts = new Map(b.broker.hosts.views().map((v) => [v.id, v]));
  for (const lease of leases) {
    const where = `lease ${lease.id} (${lease.state})`;
    expect(KNOWN_STATES.has(lease.state), where).toBe(true);
    if (lease.state === "PENDING") expect(lease.hostId, where).toBe("");
    if (HOLDING_STATES.has(lease.state)) {
      expect(hosts.has(lease.hostId), where).toBe(true);
      expect(Number.isFinite(lease.start) && Number.isFinite(lease.end), where).toBe(true);
      expect(lease.end, where).toBeGreaterThan(lease.start);
    }
    if (isTerminal(lease.state))
      expect(
        b.broker.index.holdsOn(lease.hostId).some((h) => h.leaseId === lease.id),
        where,
      ).toBe(false);
  }
  // No host oversubscribed at any instant: sweep each host's holds, independently of the index.
  for (const [hostId, view] of hosts) {
    const holds = b.broker.index.holdsOn(hostId);
    const times = [...new Set(holds.map((h) => h.start))];
    for (const t of times) {
      const at = holds.filter((h) => h.start <= t && t < h.end);
      for (const dim of ["cpuMillis", "memoryMib", "diskGib", "gpus"] as const) {
        const used = at.reduce((sum, h) => sum + h.resources[dim], 0);
        expect(used, `${hostId} ${dim} at ${t}`).toBeLessThanOrEqual(view.allocatable[dim]);
      }
    }
  }
}

// ── the tests ────────────────────────────────────────────────────────────────────────────────

beforeAll(async () => {
  broker = await startBroker({ hosts: { count: 3 } });
  client = new RawClient(broker.address, credentials.createInsecure());
});

afterAll(async () => {
  client?.close();
  await broker?.stop();
});

describe("hostile requests to every RPC", () => {
  it("covers every unary RPC of the service", () => {
    expect(unaryNames.filter((n) => requests[n] === undefined)).toEqual([]);
  });

  it("answers every generated request cleanly; the state stays consistent", async () => {
    const anyCall = fc.oneof(
      ...unaryNames.map((name) =>
        fc.record({ name: fc.constant(name), request: requests[name] as fc.Arbitrary<object> }),
      ),
      // Submits are what build state: more of them.
      fc.record({
        name: fc.constant("SubmitLease"),
        request: requests.SubmitLease as fc.Arbitrary<object>,
      }),
      fc.record({
        name: fc.constant("SubmitLease"),
        request: requests.SubmitLease as fc.Arbitrary<object>,
      }),
    );
    await fc.assert(
      fc.asyncProperty(anyCall, fc.nat({ max: 120_000 }), async ({ name, request }, advanceMs) => {
        await call(name, request);
        await broker.advance(advanceMs);
      }),
      { numRuns: 300, seed: 11, endOnFailure: true },
    );
    checkInvariants(broker);
    // Still serving, and still admitting a plain lease where there is room.
    expect(await call("ListHosts", {})).toBe(status.OK);
    expect(outcomes.get("SubmitLease OK") ?? 0).toBeGreaterThan(0);
    expect(outcomes.get("SubmitLease INVALID_ARGUMENT") ?? 0).toBeGreaterThan(0);
  });

  it("answers corrupted and random bytes with a clean status", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...unaryNames),
        fc.oneof(
          fc.uint8Array({ maxLength: 300 }),
          fc
            .uint8Array({ minLength: 1, maxLength: 8 })
            .map((b) => new Uint8Array([0x0a, 0xff, 0xff, 0xff, 0x7f, ...b])),
        ),
        async (name, bytes) => {
          const result = await sendBytes(name, Buffer.from(bytes));
          // grpc-js answers bytes that do not decode as the request message with INTERNAL
          // "Error deserializing request" before any handler runs: that is clean, too.
          const undecodable = result.code === status.INTERNAL && /deserializ/i.test(result.details);
          expect(
            CLEAN.has(result.code) || undecodable,
            `${name}: ${status[result.code]} ${result.details}`,
          ).toBe(true);
        },
      ),
      { numRuns: 150, seed: 12 },
    );
    checkInvariants(broker);
  });

  it("refuses a request larger than the receive limit (1 MiB) without reading it", async () => {
    const result = await sendBytes(
      "SubmitLease",
      encode("SubmitLease", { spec: { name: "x".repeat(2 * 1024 * 1024) } }) ?? Buffer.alloc(0),
    );
    expect(result.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(await call("ListHosts", {})).toBe(status.OK);
  });

  it("answers hostile watches with events or a clean status", async () => {
    const samples = fc.sample(
      fc.record({
        fromRevision: int64,
        tenant: text,
        leaseId,
        types: fc.array(enumOf("LEASE_EVENT_TYPE_CREATED"), { maxLength: 3 }),
      }),
      { numRuns: 30, seed: 13 },
    );
    const results = await Promise.all(
      samples.map(
        (request) =>
          new Promise<number>((resolve) => {
            const bytes = encode("WatchLeases", request);
            if (bytes === undefined) return resolve(status.OK);
            const stream = client.stream("WatchLeases", bytes);
            let settled = false;
            const done = (code: number): void => {
              if (settled) return;
              settled = true;
              resolve(code);
              stream.cancel();
            };
            stream.on("data", () => done(status.OK));
            stream.on("error", (error: ServiceError) => done(error.code));
            stream.on("end", () => done(status.OK));
            // A watch with nothing to say yet stays open: a write it may see, then a list.
            void call("SubmitLease", {
              spec: {
                name: "w",
                tenant: "acme",
                resources: { cpuMillis: "100", memoryMib: "64" },
                immediate: { duration: { seconds: "60" } },
              },
            })
              .then(() => call("ListHosts", {}))
              .then(
                () => setTimeout(() => done(status.OK), 200),
                () => done(status.UNKNOWN),
              );
          }),
      ),
    );
    for (const code of results) expect(CLEAN.has(code), status[code]).toBe(true);
    checkInvariants(broker);
  });
});
