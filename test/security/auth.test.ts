/**
 * The API's security against a real gRPC server with real certificates (openssl): mutual TLS,
 * bearer tokens from a real tokens file, roles, tenant isolation that does not reveal whether a
 * lease exists, per-tenant quotas at admission and extend, and write rates on the virtual clock.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { credentials, Metadata, type ServiceError, status } from "@grpc/grpc-js";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MAX_SUBMIT_BATCH } from "../../broker/api/limits.js";
import { QUOTA_METADATA_KEY } from "../../broker/api/status.js";
import { loadSecurity, QuotaLedger } from "../../broker/auth/index.js";
import { Broker } from "../../broker/broker.js";
import { silentLogger, VirtualClock } from "../../core/index.js";
import { durationFromMs, type LeaseSpecInput, timestampFromMs } from "../../proto/index.js";
import { BrokerApi, HOUR, immediate, MINUTE, reserved, T0 } from "../broker/harness.js";
import { makeTempDir, removeDir } from "../helpers/index.js";
import { makeTestPki, type TestPki } from "./certs.js";
import { CLEAN, encode, hostileRequests, RawClient } from "./hostile-requests.js";

const TOKENS = {
  alice: "alice-token-0123456789",
  bob: "bob-token-0123456789ab",
  carol: "carol-token-0123456789",
  dave: "dave-token-0123456789a",
  erin: "erin-token-0123456789a",
  ops: "ops-token-0123456789abc",
  admin: "admin-token-0123456789a",
} as const;

const TOKENS_YAML = `
tenants:
  team-q:
    quota: { memory: 8Gi, leases: 3, max_duration: 2h }
  team-r:
    rate: { writes_per_second: 1, burst: 2 }
  team-s:
    quota: { leases: 1 }
tokens:
  - { name: alice, tenant: team-a, role: tenant, token: ${TOKENS.alice} }
  - { name: bob, tenant: team-b, role: tenant, token: ${TOKENS.bob} }
  - { name: carol, tenant: team-q, role: tenant, token: ${TOKENS.carol} }
  - { name: dave, tenant: team-r, role: tenant, token: ${TOKENS.dave} }
  - { name: erin, tenant: team-s, role: tenant, token: ${TOKENS.erin} }
  - { name: ops, tenant: ops, role: operator, token: ${TOKENS.ops} }
  - { name: root, tenant: ops, role: admin, token: ${TOKENS.admin} }
`;

let dir: string;
let pki: TestPki;
let clock: VirtualClock;
let broker: Broker;
let address: string;
const clients: BrokerApi[] = [];

function tls(cert: "client" | "rogue" | "none") {
  const ca = readFileSync(pki.caCert);
  if (cert === "none") return credentials.createSsl(ca);
  const [c, k] =
    cert === "client" ? [pki.clientCert, pki.clientKey] : [pki.rogueCert, pki.rogueKey];
  return credentials.createSsl(ca, readFileSync(k), readFileSync(c));
}

function channel(token?: string, cert: "client" | "rogue" | "none" = "client") {
  return token === undefined
    ? tls(cert)
    : credentials.combineChannelCredentials(
        tls(cert),
        credentials.createFromMetadataGenerator((_params, callback) => {
          const metadata = new Metadata();
          metadata.set("authorization", `Bearer ${token}`);
          callback(null, metadata);
        }),
      );
}

function client(token?: string, cert: "client" | "rogue" | "none" = "client"): BrokerApi {
  const api = new BrokerApi(address, channel(token, cert));
  clients.push(api);
  return api;
}

async function failure(promise: Promise<unknown>): Promise<ServiceError> {
  try {
    await promise;
  } catch (error) {
    return error as ServiceError;
  }
  throw new Error("the call succeeded");
}

function spec(shape: { memoryGib: number }, durationMs: number, tenant = ""): LeaseSpecInput {
  return immediate(shape, durationMs, { tenant });
}

beforeAll(async () => {
  dir = await makeTempDir("security");
  pki = makeTestPki(dir);
  const tokensFile = join(dir, "tokens.yaml");
  writeFileSync(tokensFile, TOKENS_YAML);
  const security = loadSecurity({
    grpcAddress: "127.0.0.1:0",
    tlsCertFile: pki.serverCert,
    tlsKeyFile: pki.serverKey,
    tlsClientCaFile: pki.caCert,
    tokensFile,
    insecure: false,
  });
  expect(security.summary).toMatch(/authentication on: 7 bearer tokens.*mutual TLS/);
  clock = new VirtualClock(T0);
  const tokens = security.tokens;
  if (tokens === undefined || security.credentials === undefined) throw new Error("no security");
  broker = new Broker({
    clock,
    logger: silentLogger(),
    grpcAddress: "127.0.0.1:0",
    simHosts: { count: 2, cpus: 4, memoryGib: 16, bootMs: 1000, shutdownMs: 500 },
    api: { credentials: security.credentials, auth: { tokens } },
    admission: new QuotaLedger(tokens),
  });
  address = `127.0.0.1:${await broker.start()}`;
});

afterAll(async () => {
  for (const c of clients) c.close();
  await broker?.stop(500);
  if (dir !== undefined) await removeDir(dir);
});

describe("transport and authentication", () => {
  it("refuses calls without a token, or with an unknown one: UNAUTHENTICATED", async () => {
    const none = await failure(client().listHosts({}));
    expect(none.code).toBe(status.UNAUTHENTICATED);
    expect(none.details).toMatch(/Bearer/);
    const wrong = await failure(client("not-a-token-at-all-000").listHosts({}));
    expect(wrong.code).toBe(status.UNAUTHENTICATED);
    expect((await client(TOKENS.alice).listHosts({})).hosts).toHaveLength(2);
  });

  it("mutual TLS: no client certificate, a foreign CA's, or plaintext never reach a handler", async () => {
    for (const api of [client(TOKENS.admin, "none"), client(TOKENS.admin, "rogue")]) {
      const error = await failure(api.listHosts({}, { deadline: Date.now() + 10_000 }));
      expect(error.code).toBe(status.UNAVAILABLE);
    }
    const plain = new BrokerApi(address);
    clients.push(plain);
    const error = await failure(plain.listHosts({}, { deadline: Date.now() + 10_000 }));
    expect(error.code).toBe(status.UNAVAILABLE);
  });
});

describe("tenants and roles", () => {
  it("keeps each tenant to its own leases; a foreign lease looks exactly like an absent one", async () => {
    const alice = client(TOKENS.alice);
    const bob = client(TOKENS.bob);
    // No tenant in the spec: the caller's.
    const lease = await alice.submitLease(spec({ memoryGib: 2 }, HOUR));
    expect(lease.spec?.tenant).toBe("team-a");
    expect((await alice.get({ id: lease.id })).id).toBe(lease.id);

    const foreign = await failure(bob.get({ id: lease.id }));
    const absent = await failure(bob.get({ id: "l-0000000000000-zzzz" }));
    expect(foreign.code).toBe(status.PERMISSION_DENIED);
    expect(absent.code).toBe(status.PERMISSION_DENIED);
    expect(foreign.details.replace(lease.id, "ID")).toBe(
      absent.details.replace("l-0000000000000-zzzz", "ID"),
    );

    for (const call of [
      bob.cancel({ id: lease.id }),
      bob.extend({ id: lease.id, extra: durationFromMs(HOUR) }),
    ]) {
      expect((await failure(call)).code).toBe(status.PERMISSION_DENIED);
    }
    expect((await alice.get({ id: lease.id })).state).not.toBe("LEASE_STATE_CANCELLED");
    const impersonate = await failure(bob.submit({ spec: spec({ memoryGib: 1 }, HOUR, "team-a") }));
    expect(impersonate.code).toBe(status.PERMISSION_DENIED);

    const bobs = await bob.submitLease(spec({ memoryGib: 1 }, HOUR));
    const bobList = await bob.list({});
    expect(bobList.leases.map((l) => l.id)).toEqual([bobs.id]);
    expect((await failure(bob.list({ tenant: "team-a" }))).code).toBe(status.PERMISSION_DENIED);
    const opsList = await client(TOKENS.ops).list({});
    expect(opsList.leases.map((l) => l.id)).toEqual(expect.arrayContaining([lease.id, bobs.id]));

    // Watch from the first revision: bob's stream carries bob's leases only.
    const stream = bob.watch({ fromRevision: 1 });
    await stream.waitFor((e) => e.lease?.id === bobs.id, "bob's lease");
    expect(new Set(stream.events.map((e) => e.lease?.spec?.tenant))).toEqual(new Set(["team-b"]));
    stream.close();
  });

  it("lets operators manage hosts and read leases, not write leases; tenants not manage hosts", async () => {
    const alice = client(TOKENS.alice);
    const ops = client(TOKENS.ops);
    expect((await failure(alice.cordon({ id: "sim-01", reason: "x" }))).code).toBe(
      status.PERMISSION_DENIED,
    );
    expect((await ops.cordon({ id: "sim-02", reason: "maintenance" })).id).toBe("sim-02");
    expect((await ops.uncordon({ id: "sim-02" })).id).toBe("sim-02");
    const submit = await failure(ops.submit({ spec: spec({ memoryGib: 1 }, HOUR, "ops") }));
    expect(submit.code).toBe(status.PERMISSION_DENIED);
    // Operators see everything, so for them an absent lease is NOT_FOUND.
    expect((await failure(ops.get({ id: "l-0000000000000-zzzz" }))).code).toBe(status.NOT_FOUND);
    const admin = client(TOKENS.admin);
    const forOther = await admin.submitLease(spec({ memoryGib: 1 }, HOUR, "team-b"));
    expect(forOther.spec?.tenant).toBe("team-b");
    await admin.cancel({ id: forOther.id });
  });
});

describe("quotas", () => {
  it("counts resources held at once over the window, live leases and duration; at submit and extend", async () => {
    const carol = client(TOKENS.carol);
    const now = clock.now();
    // 6 GiB over [1h, 2h) and 2 GiB over [3h, 4h): never more than 6 GiB at once.
    const a = await carol.submitLease(reserved({ memoryGib: 6 }, now + HOUR, HOUR, { tenant: "" }));
    const b = await carol.submitLease(
      reserved({ memoryGib: 2 }, now + 3 * HOUR, HOUR, { tenant: "" }),
    );

    // 4 GiB over [now, 1.5h) overlaps a: 10 GiB at once > 8 GiB.
    const over = await failure(carol.submit({ spec: spec({ memoryGib: 4 }, 90 * MINUTE) }));
    expect(over.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(over.details).toMatch(/quota "memory" of tenant team-q/);
    expect(over.metadata.get(QUOTA_METADATA_KEY)).toEqual(["memory"]);
    // The same 4 GiB ending before a starts fits.
    const c = await carol.submitLease(spec({ memoryGib: 4 }, HOUR));

    const long = await failure(carol.submit({ spec: spec({ memoryGib: 1 }, 3 * HOUR) }));
    expect(long.metadata.get(QUOTA_METADATA_KEY)).toEqual(["max_duration"]);
    const fourth = await failure(carol.submit({ spec: spec({ memoryGib: 1 }, MINUTE) }));
    expect(fourth.metadata.get(QUOTA_METADATA_KEY)).toEqual(["leases"]);

    // Extend a to 3h: it meets b only at an instant (windows are half-open): 6 GiB at most.
    await carol.extend({ id: a.id, newEnd: timestampFromMs(now + 3 * HOUR) });
    // b to 5h30: 2 h 30 min in all, over max_duration.
    const tooLong = await failure(
      carol.extend({ id: b.id, newEnd: timestampFromMs(now + 5.5 * HOUR) }),
    );
    expect(tooLong.metadata.get(QUOTA_METADATA_KEY)).toEqual(["max_duration"]);
    // c (4 GiB, until 1h) extended to 1h30 overlaps a's 6 GiB: 10 GiB at once.
    const overlap = await failure(
      carol.extend({ id: c.id, newEnd: timestampFromMs(now + 90 * MINUTE) }),
    );
    expect(overlap.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(overlap.metadata.get(QUOTA_METADATA_KEY)).toEqual(["memory"]);
    expect((await carol.get({ id: c.id })).end).toEqual(timestampFromMs(now + HOUR));

    // A cancel frees the lease count at once.
    await carol.cancel({ id: c.id });
    await clock.advance(1000);
    expect((await carol.submitLease(spec({ memoryGib: 1 }, MINUTE))).state).toMatch(
      /STARTING|ACTIVE/,
    );
  });

  it("rate-limits a tenant's writes with a token bucket on the clock", async () => {
    const dave = client(TOKENS.dave);
    const dryRun = () => dave.submit({ spec: spec({ memoryGib: 1 }, MINUTE), dryRun: true });
    await dryRun();
    await dryRun();
    const limited = await failure(dryRun());
    expect(limited.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(limited.details).toMatch(/rate limit of tenant team-r/);
    // Reads are not limited; other tenants are not affected.
    await dave.list({});
    await client(TOKENS.alice).submit({ spec: spec({ memoryGib: 1 }, MINUTE), dryRun: true });
    await clock.advance(1000);
    await dryRun();
  });
});

describe("SubmitLeases", () => {
  it("authorizes, rate-limits and quota-checks each item as a SubmitLease of its own", async () => {
    const alice = client(TOKENS.alice);
    const mixed = await alice.submitMany({
      requests: [
        { spec: spec({ memoryGib: 1 }, MINUTE) },
        { spec: spec({ memoryGib: 1 }, MINUTE, "team-b") },
        { spec: spec({ memoryGib: 1 }, MINUTE, "team-a") },
      ],
    });
    expect(mixed.results.map((r) => r.result)).toEqual(["response", "error", "response"]);
    expect(mixed.results[0]?.response?.lease?.spec?.tenant).toBe("team-a");
    expect(mixed.results[1]?.error?.code).toBe(status.PERMISSION_DENIED);
    expect(mixed.results[1]?.error?.message).toMatch(/team-a may only submit/);

    // Operators may not submit at all: the whole call is refused.
    const ops = client(TOKENS.ops);
    const refused = await failure(
      ops.submitMany({ requests: [{ spec: spec({ memoryGib: 1 }, MINUTE, "ops") }] }),
    );
    expect(refused.code).toBe(status.PERMISSION_DENIED);
    expect((await failure(client().submitMany({ requests: [] }))).code).toBe(
      status.UNAUTHENTICATED,
    );

    // team-r's bucket holds 2 writes: the third item is limited, the first two pass.
    await clock.advance(3000);
    const dave = client(TOKENS.dave);
    // Too many items: the whole call is refused, and no item spent a token.
    const tooMany = await failure(
      dave.submitMany({
        requests: Array.from({ length: MAX_SUBMIT_BATCH + 1 }, () => ({
          spec: spec({ memoryGib: 1 }, MINUTE),
          dryRun: true,
        })),
      }),
    );
    expect(tooMany.code).toBe(status.INVALID_ARGUMENT);
    const limited = await dave.submitMany({
      requests: [0, 1, 2].map(() => ({ spec: spec({ memoryGib: 1 }, MINUTE), dryRun: true })),
    });
    expect(limited.results.map((r) => r.error?.code ?? status.OK)).toEqual([
      status.OK,
      status.OK,
      status.RESOURCE_EXHAUSTED,
    ]);
    expect(limited.results[2]?.error?.message).toMatch(/rate limit of tenant team-r/);

    // team-s may hold one lease: the second item is over the quota and names it.
    const erin = client(TOKENS.erin);
    const quota = await erin.submitMany({
      requests: [0, 1].map(() => ({ spec: spec({ memoryGib: 1 }, MINUTE) })),
    });
    expect(quota.results[0]?.response?.lease?.state).toMatch(/STARTING|ACTIVE/);
    expect(quota.results[1]?.error).toMatchObject({
      code: status.RESOURCE_EXHAUSTED,
      quota: "leases",
    });
    expect((await erin.list({})).leases).toHaveLength(1);
  });
});

describe("hostile requests from a tenant", () => {
  it("get clean answers and never touch another tenant's leases", async () => {
    const ops = client(TOKENS.ops);
    const before = (await ops.list({ pageSize: 1000 })).leases.filter(
      (l) => l.spec?.tenant !== "team-a",
    );
    expect(before.length).toBeGreaterThan(0);
    // Every lease id there is, the other tenants' among them.
    const knownIds = before.map((l) => l.id);
    const { requests, unaryNames } = hostileRequests(knownIds);
    const raw = new RawClient(address, channel(TOKENS.alice));
    const allowed = new Set([...CLEAN, status.PERMISSION_DENIED]);
    try {
      await fc.assert(
        fc.asyncProperty(
          fc
            .constantFrom(...unaryNames)
            .chain((name) =>
              (requests[name] as fc.Arbitrary<object>).map((request) => ({ name, request })),
            ),
          async ({ name, request }) => {
            const bytes = encode(name, request);
            if (bytes === undefined) return;
            const result = await raw.send(name, bytes);
            expect(
              allowed.has(result.code),
              `${name}: ${status[result.code]} ${result.details}`,
            ).toBe(true);
          },
        ),
        { numRuns: 150, seed: 21 },
      );
    } finally {
      raw.close();
    }
    const after = (await ops.list({ pageSize: 1000 })).leases.filter(
      (l) => l.spec?.tenant !== "team-a",
    );
    // The other tenants' leases: the same ones, at the same revisions (nothing written to them).
    expect(after.map((l) => [l.id, l.revision])).toEqual(before.map((l) => [l.id, l.revision]));
  });
});
