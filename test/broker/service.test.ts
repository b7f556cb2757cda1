/**
 * The gRPC service around the leases: deadlines, message size limits, UNIMPLEMENTED methods,
 * health and reflection, capacity forecasts, hosts (list, get, cordon, uncordon) and ListLeases
 * filters and paging.
 */
import { createRequire } from "node:module";
import path from "node:path";
import { status } from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { durationFromMs } from "../../proto/index.js";
import { collect, DynamicClient, pick, pickArray, serviceDefinition } from "./dynamic-grpc.js";
import {
  codeName,
  FULL,
  HALF,
  HOUR,
  immediate,
  MINUTE,
  ms,
  QUARTER,
  reserved,
  rpcError,
  startBroker,
  T0,
  type TestBroker,
} from "./harness.js";

const require = createRequire(import.meta.url);
const LOADER = { keepCase: false, longs: Number, enums: String, defaults: true, oneofs: true };

describe("the gRPC service", () => {
  let tb: TestBroker;
  beforeAll(async () => {
    tb = await startBroker();
  });
  afterAll(async () => {
    await tb.stop();
  });

  it("honours deadlines: a call whose deadline has passed fails with DEADLINE_EXCEEDED", async () => {
    const error = await rpcError(tb.api.list({}, { deadline: new Date(Date.now() - 1000) }));
    expect(codeName(error.code)).toBe("DEADLINE_EXCEEDED");
    // A call with a deadline ahead is served.
    const ok = await tb.api.list({}, { deadline: new Date(Date.now() + 60_000) });
    expect(ok.leases).toEqual([]);
  });

  it("refuses a request above 1 MiB with RESOURCE_EXHAUSTED and keeps serving", async () => {
    const spec = immediate(QUARTER, HOUR, { driver: { image: "x".repeat(1024 * 1024 + 1) } });
    const error = await rpcError(tb.api.submit({ spec }));
    expect(codeName(error.code)).toBe("RESOURCE_EXHAUSTED");
    expect(await tb.api.listAll({})).toEqual([]);
    expect((await tb.api.listHosts({})).hosts).toHaveLength(2);
  });

  it("answers NOT_FOUND for DrainHost of an unknown host and MigrateLease of an unknown lease", async () => {
    const drain = await rpcError(tb.api.drain({ id: "no-such-host" }));
    expect(codeName(drain.code)).toBe("NOT_FOUND");
    const migrate = await rpcError(tb.api.migrate({ leaseId: "l-x" }));
    expect(codeName(migrate.code)).toBe("NOT_FOUND");
    // Neither changed a host.
    expect((await tb.api.getHost({ id: "sim-01" })).state).toBe("HOST_STATE_READY");
  });

  it("serves grpc.health.v1: SERVING for the server and the LeaseBroker service", async () => {
    const protoPath: string = require("grpc-health-check").protoPath;
    const definition = loadSync(protoPath, LOADER);
    const health = new DynamicClient(
      tb.address,
      serviceDefinition(definition, "grpc.health.v1.Health"),
    );
    try {
      expect(pick(await health.unary("Check", { service: "" }), "status")).toBe("SERVING");
      expect(
        pick(await health.unary("Check", { service: "leasebroker.v1.LeaseBroker" }), "status"),
      ).toBe("SERVING");
      const unknown = await rpcError(health.unary("Check", { service: "no.such.Service" }));
      expect(unknown.code).toBe(status.NOT_FOUND);
    } finally {
      health.close();
    }
  });

  it("serves reflection: lists the services and the file that defines LeaseBroker", async () => {
    const reflectionDir = path.dirname(require.resolve("@grpc/reflection/package.json"));
    const definition = loadSync("grpc/reflection/v1/reflection.proto", {
      ...LOADER,
      includeDirs: [path.join(reflectionDir, "build", "proto")],
    });
    const reflection = new DynamicClient(
      tb.address,
      serviceDefinition(definition, "grpc.reflection.v1.ServerReflection"),
    );
    try {
      const stream = reflection.bidiStream("ServerReflectionInfo");
      const replies = collect(stream, (messages) => messages.length >= 2);
      stream.write({ listServices: "*" });
      stream.write({ fileContainingSymbol: "leasebroker.v1.LeaseBroker" });
      const [list, file] = await replies;
      stream.end();
      const names = pickArray(list, "listServicesResponse", "service").map((s) => pick(s, "name"));
      expect(names).toContain("leasebroker.v1.LeaseBroker");
      const descriptors = pickArray(file, "fileDescriptorResponse", "fileDescriptorProto");
      expect(descriptors.length).toBeGreaterThan(0);
      const text = descriptors.map((d) => (Buffer.isBuffer(d) ? d.toString("latin1") : "")).join();
      expect(text).toContain("LeaseBroker");
      expect(text).toContain("SubmitLease");
    } finally {
      reflection.close();
    }
  });
});

describe("GetCapacity", () => {
  let tb: TestBroker;
  beforeEach(async () => {
    tb = await startBroker();
  });
  afterEach(async () => {
    await tb.stop();
  });

  it("returns buckets from now rounded down to the width, with free + allocated = allocatable", async () => {
    await tb.advance(10 * MINUTE);
    const forecast = await tb.api.capacity({ bucketWidth: durationFromMs(HOUR), bucketCount: 4 });
    expect(forecast.buckets).toHaveLength(4);
    expect(forecast.hostCount).toBe(2);
    expect(ms(forecast.generatedTime)).toBe(T0 + 10 * MINUTE);
    forecast.buckets.forEach((b, i) => {
      expect(ms(b.start)).toBe(T0 + i * HOUR);
      expect(ms(b.end)).toBe(T0 + (i + 1) * HOUR);
      expect(Number(b.allocatable?.memoryMib)).toBe(2 * 16 * 1024);
      expect(Number(b.allocated?.memoryMib)).toBe(0);
      expect(Number(b.free?.memoryMib)).toBe(2 * 16 * 1024);
      expect(Number(b.maxHostFree?.memoryMib)).toBe(16 * 1024);
    });
  });

  it("changes after a submit: the lease is allocated in the buckets its window overlaps", async () => {
    const lease = await tb.api.submitLease(immediate(HALF, 90 * MINUTE));
    await tb.api.submitLease(reserved(FULL, T0 + 3 * HOUR, HOUR));
    expect(lease.state).toBe("LEASE_STATE_STARTING");
    const forecast = await tb.api.capacity({ bucketWidth: durationFromMs(HOUR), bucketCount: 4 });
    const allocated = forecast.buckets.map((b) => Number(b.allocated?.memoryMib));
    expect(allocated).toEqual([8192, 8192, 0, 16384]);
    for (const b of forecast.buckets) {
      for (const k of ["cpuMillis", "memoryMib", "diskGib", "gpus"] as const) {
        expect(Number(b.free?.[k]) + Number(b.allocated?.[k])).toBe(Number(b.allocatable?.[k]));
      }
    }
    // One host stays free throughout; the reservation fills the other in the last bucket.
    expect(forecast.buckets.map((b) => Number(b.maxHostFree?.memoryMib))).toEqual([
      16384, 16384, 16384, 16384,
    ]);
    const free = forecast.buckets.map((b) => Number(b.free?.memoryMib));
    expect(free).toEqual([32768 - 8192, 32768 - 8192, 32768, 32768 - 16384]);
  });
});

describe("hosts", () => {
  let tb: TestBroker;
  beforeEach(async () => {
    tb = await startBroker({ hosts: { count: 3 } });
  });
  afterEach(async () => {
    await tb.stop();
  });

  it("lists hosts sorted by id, a page at a time, with what they offer", async () => {
    const first = await tb.api.listHosts({ pageSize: 2 });
    expect(first.hosts.map((h) => h.id)).toEqual(["sim-01", "sim-02"]);
    expect(first.nextPageToken).not.toBe("");
    const second = await tb.api.listHosts({ pageSize: 2, pageToken: first.nextPageToken });
    expect(second.hosts.map((h) => h.id)).toEqual(["sim-03"]);
    expect(second.nextPageToken).toBe("");
    const host = first.hosts[0];
    expect(host?.state).toBe("HOST_STATE_READY");
    expect(Number(host?.capacity?.memoryMib)).toBe(16 * 1024);
    expect(Number(host?.allocatable?.memoryMib)).toBe(16 * 1024);
    expect(Number(host?.allocatable?.cpuMillis)).toBe(4 * 4000);
    expect(host?.labels.zone).toBe("zone-a");
    expect(host?.driver).toBe("sim");
    expect(host?.cordoned).toBe(false);
    const byZone = await tb.api.listHosts({ selector: ["zone=zone-b"] });
    expect(byZone.hosts.map((h) => h.id)).toEqual(["sim-02"]);
  });

  it("GetHost shows what the host's leases use now", async () => {
    const lease = await tb.api.submitLease(immediate(HALF, HOUR));
    const host = await tb.api.getHost({ id: lease.hostId });
    expect(Number(host.allocated?.memoryMib)).toBe(8 * 1024);
    expect(host.leaseCount).toBe(1);
    await tb.api.cancel({ id: lease.id });
    expect(Number((await tb.api.getHost({ id: lease.hostId })).allocated?.memoryMib)).toBe(0);
  });

  it("a cordoned host takes no new leases (explain shows the host-state filter), uncordon restores it", async () => {
    const cordoned = await tb.api.cordon({ id: "sim-01", reason: "disk replacement" });
    expect(cordoned.state).toBe("HOST_STATE_CORDONED");
    expect(cordoned.cordoned).toBe(true);
    expect(cordoned.stateReason).toBe("disk replacement");
    expect(Number(cordoned.revision)).toBeGreaterThan(0);
    const listed = await tb.api.listHosts({ states: ["HOST_STATE_CORDONED"] });
    expect(listed.hosts.map((h) => h.id)).toEqual(["sim-01"]);

    const explained = await tb.api.explain({ spec: immediate(FULL, HOUR) });
    expect(explained.fits).toBe(true);
    expect(explained.hostId).not.toBe("sim-01");
    const stateFilter = explained.explanation?.filters.find((f) =>
      ["state", "host-state"].includes(f.filter),
    );
    expect(stateFilter?.hostsRemoved).toBe(1);
    expect(stateFilter?.hostsRemaining).toBe(2);

    const placed = [
      await tb.api.submitLease(immediate(FULL, HOUR)),
      await tb.api.submitLease(immediate(FULL, HOUR)),
    ];
    expect(placed.map((l) => l.hostId).sort()).toEqual(["sim-02", "sim-03"]);
    const refused = await rpcError(tb.api.submit({ spec: immediate(FULL, HOUR) }));
    expect(refused.code).toBe(status.RESOURCE_EXHAUSTED);
    const queued = await tb.api.submitLease(immediate(FULL, HOUR, { allowQueue: true }));
    expect(queued.state).toBe("LEASE_STATE_PENDING");

    const uncordoned = await tb.api.uncordon({ id: "sim-01" });
    expect(uncordoned.state).toBe("HOST_STATE_READY");
    expect(uncordoned.cordoned).toBe(false);
    expect(uncordoned.stateReason).toBe("");
    await tb.advance(0);
    const started = await tb.api.get({ id: queued.id });
    expect(started.state).toBe("LEASE_STATE_STARTING");
    expect(started.hostId).toBe("sim-01");
  });

  it("cordoning keeps running leases where they are", async () => {
    const lease = await tb.api.submitLease(immediate(QUARTER, HOUR));
    await tb.api.cordon({ id: lease.hostId });
    await tb.advance(tb.hosts.bootMs);
    const now = await tb.api.get({ id: lease.id });
    expect(now.state).toBe("LEASE_STATE_ACTIVE");
    expect(now.hostId).toBe(lease.hostId);
  });

  it("names an unknown host: NOT_FOUND for cordon and uncordon", async () => {
    expect((await rpcError(tb.api.cordon({ id: "sim-99" }))).code).toBe(status.NOT_FOUND);
    expect((await rpcError(tb.api.uncordon({ id: "sim-99" }))).code).toBe(status.NOT_FOUND);
  });
});

describe("ListLeases", () => {
  let tb: TestBroker;
  beforeEach(async () => {
    tb = await startBroker({ hosts: { count: 3 } });
  });
  afterEach(async () => {
    await tb.stop();
  });

  it("filters by tenant, state, host, window kind and label selector, and pages with tokens", async () => {
    const a1 = await tb.api.submitLease(immediate(HALF, HOUR, { labels: { team: "web" } }));
    const a2 = await tb.api.submitLease(immediate(HALF, HOUR));
    const a3 = await tb.api.submitLease(reserved(HALF, T0 + HOUR, HOUR));
    const g1 = await tb.api.submitLease(immediate(FULL, HOUR, { tenant: "globex" }));
    const g2 = await tb.api.submitLease(immediate(QUARTER, HOUR, { tenant: "globex" }));
    await tb.advance(tb.hosts.bootMs);
    await tb.api.cancel({ id: a2.id });
    const all = [a1, a2, a3, g1, g2].map((l) => l.id).sort();
    const ids = (leases: readonly { id: string }[]): string[] => leases.map((l) => l.id);

    expect(ids(await tb.api.listAll({}))).toEqual(all);
    expect(ids(await tb.api.listAll({ tenant: "acme" }))).toEqual([a1.id, a2.id, a3.id].sort());
    expect(ids(await tb.api.listAll({ tenant: "globex" }))).toEqual([g1.id, g2.id].sort());
    expect(ids(await tb.api.listAll({ states: ["LEASE_STATE_ENDING"] }))).toEqual([a2.id]);
    expect(ids(await tb.api.listAll({ states: ["LEASE_STATE_RESERVED"] }))).toEqual([a3.id]);
    expect(
      ids(await tb.api.listAll({ states: ["LEASE_STATE_ACTIVE", "LEASE_STATE_RESERVED"] })),
    ).toEqual([a1.id, a3.id, g1.id, g2.id].sort());
    const host = g1.hostId;
    const onHost = (await tb.api.listAll({})).filter((l) => l.hostId === host).map((l) => l.id);
    expect(onHost).toContain(g1.id);
    expect(ids(await tb.api.listAll({ hostId: host }))).toEqual(onHost);
    expect(ids(await tb.api.listAll({ windowKinds: ["WINDOW_KIND_RESERVED"] }))).toEqual([a3.id]);
    expect(ids(await tb.api.listAll({ selector: ["team=web"] }))).toEqual([a1.id]);
    expect(ids(await tb.api.listAll({ tenant: "acme", states: ["LEASE_STATE_ACTIVE"] }))).toEqual([
      a1.id,
    ]);

    // Paging: 2 + 2 + 1, tokens until the last page.
    const pages: string[][] = [];
    const tokens: string[] = [];
    let pageToken = "";
    do {
      const page = await tb.api.list({ pageSize: 2, pageToken });
      pages.push(ids(page.leases));
      pageToken = page.nextPageToken;
      tokens.push(pageToken);
    } while (pageToken !== "" && pages.length < 10);
    expect(pages.map((p) => p.length)).toEqual([2, 2, 1]);
    expect(tokens.map((t) => t !== "")).toEqual([true, true, false]);
    expect(pages.flat()).toEqual(all);

    const acme = await tb.api.list({ tenant: "acme", pageSize: 2 });
    expect(ids(acme.leases)).toEqual([a1.id, a2.id, a3.id].sort().slice(0, 2));
    const acmeRest = await tb.api.list({
      tenant: "acme",
      pageSize: 2,
      pageToken: acme.nextPageToken,
    });
    expect(ids(acmeRest.leases)).toEqual([a1.id, a2.id, a3.id].sort().slice(2));
    expect(acmeRest.nextPageToken).toBe("");
  });

  it("reports the revision the page was read at", async () => {
    const lease = await tb.api.submitLease(immediate(QUARTER, HOUR));
    const page = await tb.api.list({});
    expect(Number(page.revision)).toBe(Number(lease.revision));
    await tb.advance(tb.hosts.bootMs);
    const later = await tb.api.list({});
    expect(Number(later.revision)).toBeGreaterThan(Number(page.revision));
    expect(Number(later.revision)).toBe(Number(later.leases[0]?.revision));
  });
});

describe("Rebalance", () => {
  let tb: TestBroker;
  beforeEach(async () => {
    tb = await startBroker();
  });
  afterEach(async () => {
    await tb.stop();
  });

  it("a dry run proposes moves with the model's prediction and changes nothing", async () => {
    // Binpack puts both on sim-01: one host half full, the other empty.
    const spec = immediate(QUARTER, HOUR, { migration: { liveMigratable: true } });
    await tb.api.submit({ spec });
    await tb.api.submit({ spec });
    await tb.advance(5000);
    const before = await tb.api.listAll({});
    expect(before.map((l) => l.hostId)).toEqual(["sim-01", "sim-01"]);
    const r = await tb.api.rebalance({ dryRun: true, level: 5 });
    expect(r.moves.length).toBeGreaterThan(0);
    expect(r.migrationIds).toEqual([]);
    expect(r.imbalanceAfter).toBeLessThan(r.imbalanceBefore);
    for (const m of r.moves) {
      expect(m).toMatchObject({ fromHostId: "sim-01", toHostId: "sim-02" });
      expect(m.reason).toBe("MIGRATION_REASON_REBALANCE");
      expect(m.predicted?.converges).toBe(true);
      expect(Number(m.predicted?.bytesTotal)).toBeGreaterThan(0);
    }
    const after = await tb.api.listAll({});
    expect(after.map((l) => [l.state, l.hostId, l.revision])).toEqual(
      before.map((l) => [l.state, l.hostId, l.revision]),
    );
    expect(tb.broker.migrations.list().migrations).toEqual([]);
  });

  it("refuses a level outside 0..5 with INVALID_ARGUMENT", async () => {
    const error = await rpcError(tb.api.rebalance({ dryRun: true, level: 9 }));
    expect(codeName(error.code)).toBe("INVALID_ARGUMENT");
  });
});
