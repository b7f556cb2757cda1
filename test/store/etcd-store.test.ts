/**
 * EtcdStore against a real etcd: the Store contract (the same cases as the MemoryStore), then what
 * only etcd brings: a second broker's view, restarts, compaction, an etcd that is gone, fencing,
 * and values it cannot decode. Each store gets its own key prefix, so the cases share one etcd.
 */
import { Etcd3 } from "etcd3";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  EtcdStore,
  type EtcdStoreOptions,
  FencedError,
  StoreDecodeError,
  type StoreFence,
} from "../../broker/store/etcd-store.js";
import { CompactedError, type StoreEvent } from "../../broker/store/store.js";
import { InvalidArgumentError, type LeaseBrokerError, UnavailableError } from "../../core/index.js";
import { type EtcdHandle, startEtcd, waitFor } from "../helpers/index.js";
import { type ContractSchema, storeContract } from "./store-contract.js";

let etcd: EtcdHandle;
let raw: Etcd3;
let prefixes = 0;
const stores: EtcdStore<ContractSchema>[] = [];
/** Watch errors of stores that were given no handler of their own: must stay empty. */
const unexpectedWatchErrors: LeaseBrokerError[] = [];

beforeAll(async () => {
  etcd = await startEtcd();
  raw = new Etcd3({ hosts: etcd.clientUrl });
});

// Each case closes its stores: a watch left open would see the next cases' restarts.
afterEach(async () => {
  await Promise.all(stores.splice(0).map((s) => s.close()));
  expect(unexpectedWatchErrors).toEqual([]);
});

afterAll(async () => {
  raw?.close();
  await etcd?.stop();
});

function nextPrefix(): string {
  prefixes += 1;
  return `/lb-test-${prefixes}/`;
}

function makeStore(
  options: Partial<EtcdStoreOptions<ContractSchema>> = {},
): EtcdStore<ContractSchema> {
  const store = new EtcdStore<ContractSchema>({
    endpoints: etcd.clientUrl,
    prefix: nextPrefix(),
    // Short bounds: a dead etcd must show as UnavailableError within seconds, not 30 s.
    dialTimeoutMs: 500,
    requestTimeoutMs: 1_000,
    watchRetryMs: 50,
    onWatchError: (e) => unexpectedWatchErrors.push(e),
    ...options,
  });
  stores.push(store);
  return store;
}

const lease = (name: string, n = 0) => ({ name, n });

/** Retries `f` until it resolves (a store right after an etcd restart). */
async function waitForValue<T>(f: () => Promise<T>): Promise<T> {
  let value: T | undefined;
  await waitFor(
    async () => {
      value = await f();
      return true;
    },
    { what: "the store to answer", timeoutMs: 20_000 },
  );
  return value as T;
}

storeContract("EtcdStore", async (options) =>
  options?.onListenerError === undefined
    ? makeStore()
    : makeStore({ onListenerError: options.onListenerError }),
);

describe("EtcdStore on a real etcd", () => {
  const watchErrors: LeaseBrokerError[] = [];
  afterEach(() => {
    watchErrors.length = 0;
  });

  it("shares its state with a second store on the same prefix (a second broker)", async () => {
    const first = makeStore();
    const second = makeStore({ prefix: first.prefix });
    const other = makeStore(); // another prefix: another cluster's state
    const r = await first.commit([
      { type: "put", collection: "leases", id: "a", value: lease("a", 1), expectRevision: 0 },
    ]);
    expect(await second.get("leases", "a")).toMatchObject({
      revision: r,
      createRevision: r,
      value: lease("a", 1),
    });
    expect((await second.list("leases")).items.map((i) => i.id)).toEqual(["a"]);
    expect(await other.get("leases", "a")).toBeUndefined();

    // Optimistic concurrency across brokers: the second writer, holding a stale read, loses.
    const r2 = await second.commit([
      { type: "put", collection: "leases", id: "a", value: lease("a", 2), expectRevision: r },
    ]);
    await expect(
      first.commit([
        { type: "put", collection: "leases", id: "a", value: lease("a", 3), expectRevision: r },
      ]),
    ).rejects.toMatchObject({ kind: "conflict", expected: r, actual: r2 });
  });

  it("rejects ids and collections that are not one key segment", async () => {
    const store = makeStore();
    await expect(store.get("leases", "a/b")).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(store.get("leases", "")).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(
      store.commit([{ type: "put", collection: "leases", id: "x/../y", value: lease("x") }]),
    ).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(
      store.commit([
        { type: "put", collection: "leases", id: "x", value: lease("x") },
        { type: "delete", collection: "leases", id: "x" },
      ]),
    ).rejects.toMatchObject({ kind: "invalid-argument", field: "ops" });
    expect(() => makeStore({ collections: ["leases", "a/b" as "hosts"] })).toThrow(
      InvalidArgumentError,
    );
  });

  it("ignores keys under its prefix that are not its collections (the election's)", async () => {
    const store = makeStore({ onWatchError: (e) => watchErrors.push(e) });
    const from = await store.revision();
    const seen: StoreEvent<ContractSchema>[] = [];
    store.watch({ fromRevision: from }, (e) => seen.push(e));
    await raw.put(`${store.prefix}election/leader/1`).value("me");
    await raw.put(`${store.prefix}leases`).value("not a lease");
    const r = await store.commit([
      { type: "put", collection: "leases", id: "a", value: lease("a") },
    ]);
    await waitFor(() => seen.length > 0, { what: "the lease event" });
    expect(seen.map((e) => [e.revision, e.id])).toEqual([[r, "a"]]);
    expect(watchErrors).toEqual([]);
  });

  it("watches from the newest revision it has seen when given none", async () => {
    const store = makeStore();
    await store.commit([{ type: "put", collection: "leases", id: "old", value: lease("o") }]);
    const seen: string[] = [];
    // Not awaiting `ready`: a write this process makes after watch() must still be seen.
    store.watch({}, (e) => seen.push(e.id));
    await store.commit([{ type: "put", collection: "leases", id: "new", value: lease("n") }]);
    await waitFor(() => seen.length > 0, { what: "the new event" });
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(seen).toEqual(["new"]);
  });

  it("falls back to etcd's now when its newest seen revision has been compacted away", async () => {
    const idle = makeStore();
    const busy = makeStore();
    await idle.revision(); // seen long ago
    let last = 0;
    for (let i = 0; i < 3; i++) {
      last = await busy.commit([
        { type: "put", collection: "leases", id: "a", value: lease("a", i) },
      ]);
    }
    await raw.kv.compact({ revision: last, physical: true });
    const seen: string[] = [];
    await idle.watch({}, (e) => seen.push(e.id)).ready;
    await idle.commit([{ type: "put", collection: "leases", id: "x", value: lease("x") }]);
    await waitFor(() => seen.includes("x"), { what: "the event" });
    // From the oldest revision kept: the compaction revision's write may come too.
    expect(seen.filter((id) => id !== "a")).toEqual(["x"]);
    // afterEach: no CompactedError reached the store's handler.
  });

  it("keeps a quiet watch's resume point current, so a reconnect after a compaction is fine", async () => {
    const quiet = makeStore({ watchProgressMs: 100 });
    const busy = makeStore();
    const seen: number[] = [];
    await quiet.watch({ fromRevision: await quiet.revision() }, (e) => seen.push(e.revision)).ready;
    let last = 0;
    for (let i = 0; i < 5; i++) {
      last = await busy.commit([
        { type: "put", collection: "leases", id: "a", value: lease("a", i) },
      ]);
    }
    await new Promise((resolve) => setTimeout(resolve, 500)); // a few progress answers
    await raw.kv.compact({ revision: last, physical: true });
    await etcd.restart();
    const after = await busy.commit([
      { type: "put", collection: "leases", id: "b", value: lease("b") },
    ]);
    const mine = await waitForValue(() =>
      quiet.commit([{ type: "put", collection: "hosts", id: "h", value: { cpu: 1 } }]),
    );
    await waitFor(() => seen.length > 0, { what: "the quiet watch's event", timeoutMs: 20_000 });
    expect(after).toBeLessThan(mine);
    expect(seen).toEqual([mine]);
    // afterEach: no CompactedError reached the store's handler.
  });

  it("resumes a watch across an etcd restart without gaps or duplicates", async () => {
    // A slow first retry: the writes after the restart land before the watch re-attaches, so
    // they reach it only by the replay from its last delivered revision.
    const store = makeStore({ onWatchError: (e) => watchErrors.push(e), watchRetryMs: 3_000 });
    const writer = makeStore({ prefix: store.prefix });
    const from = await store.revision();
    const seen: number[] = [];
    const watch = store.watch({ fromRevision: from }, (e) => seen.push(e.revision));
    await watch.ready;
    const written: number[] = [];
    for (let i = 0; i < 5; i++) {
      written.push(
        await writer.commit([
          { type: "put", collection: "leases", id: `before-${i}`, value: lease("x", i) },
        ]),
      );
    }
    await waitFor(() => seen.length === 5, { what: "the events before the restart" });

    await etcd.restart();
    // Writes right after the restart, before the watch has re-attached, must be replayed to it.
    for (let i = 0; i < 5; i++) {
      let revision: number | undefined;
      await waitFor(
        async () => {
          revision = await writer.commit([
            { type: "put", collection: "leases", id: `after-${i}`, value: lease("y", i) },
          ]);
          return true;
        },
        { what: "a write after the restart", timeoutMs: 20_000 },
      );
      written.push(revision as number);
    }
    await waitFor(() => seen.length >= 10, {
      what: "the events after the restart",
      timeoutMs: 20_000,
    });
    // Let any duplicate show up before judging.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(seen).toEqual(written);
    expect(watchErrors).toEqual([]);
  });

  it("says CompactedError when the history to resume from has been compacted", async () => {
    const store = makeStore({ onWatchError: (e) => watchErrors.push(e) });
    const first = await store.commit([
      { type: "put", collection: "leases", id: "a", value: lease("a", 0) },
    ]);
    let last = first;
    for (let i = 1; i < 5; i++) {
      last = await store.commit([
        { type: "put", collection: "leases", id: "a", value: lease("a", i) },
      ]);
    }
    await raw.kv.compact({ revision: last, physical: true });

    const perWatch: LeaseBrokerError[] = [];
    store.watch(
      { fromRevision: first },
      () => {},
      (e) => perWatch.push(e),
    );
    // etcd accepts the watch first and cancels it when it finds the history gone.
    await waitFor(() => perWatch.length > 0, { what: "the compaction error" });
    expect(perWatch).toHaveLength(1);
    expect(perWatch[0]).toBeInstanceOf(CompactedError);
    expect(perWatch[0]).toMatchObject({ requested: first, oldest: last });
    expect(watchErrors).toEqual([]); // the per-watch handler took it

    // The caller's recovery: list, then watch from the list's revision.
    const page = await store.list("leases");
    expect(page.items.map((i) => i.value.n)).toEqual([4]);
    const seen: number[] = [];
    const again = store.watch({ fromRevision: page.revision }, (e) => seen.push(e.revision));
    await again.ready;
    const next = await store.commit([
      { type: "put", collection: "leases", id: "a", value: lease("a", 5) },
    ]);
    await waitFor(() => seen.length === 1, { what: "the event after the reload" });
    expect(seen).toEqual([next]);
  });

  it("fails fast with UnavailableError when etcd is gone, writes nothing half, and recovers", async () => {
    const store = makeStore({ onWatchError: (e) => watchErrors.push(e) });
    await store.commit([{ type: "put", collection: "leases", id: "kept", value: lease("k") }]);
    await etcd.kill();
    try {
      const started = Date.now();
      const attempts = [
        store.get("leases", "kept"),
        store.list("leases"),
        store.revision(),
        store.commit([
          { type: "put", collection: "leases", id: "one", value: lease("1") },
          { type: "put", collection: "hosts", id: "two", value: { cpu: 2 } },
          { type: "delete", collection: "leases", id: "kept" },
        ]),
      ];
      for (const attempt of attempts) {
        const error = await attempt.then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(error).toBeInstanceOf(UnavailableError);
        expect((error as UnavailableError).cause).toBeDefined();
      }
      // A refused connection fails at once (tens of ms here).
      expect(Date.now() - started).toBeLessThan(2_000);
    } finally {
      await etcd.restart();
    }
    // The same store works again, and the failed commit left nothing behind.
    await waitFor(
      async () => {
        await store.revision();
        return true;
      },
      { what: "the store after the restart", timeoutMs: 20_000 },
    );
    expect(await store.get("leases", "one")).toBeUndefined();
    expect(await store.get("hosts", "two")).toBeUndefined();
    expect(await store.get("leases", "kept")).toMatchObject({ value: lease("k") });
  });

  it("turns an etcd that does not answer into UnavailableError at the request deadline", async () => {
    const store = makeStore();
    await store.revision(); // connected
    process.kill(etcd.pid, "SIGSTOP");
    try {
      const started = Date.now();
      const error = await store.get("leases", "a").then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(UnavailableError);
      // The 1 s deadline, times etcd3's default retries at most.
      expect(Date.now() - started).toBeLessThan(6_000);
    } finally {
      process.kill(etcd.pid, "SIGCONT");
    }
    await waitFor(
      async () => {
        await store.revision();
        return true;
      },
      { what: "the store after SIGCONT", timeoutMs: 20_000 },
    );
  });

  it("fences every commit on the leader key's create revision", async () => {
    let fence: StoreFence[] = [];
    const store = makeStore({ fence: () => fence });
    const leaderKey = `${store.prefix}election/leader`;
    const won = await raw.put(leaderKey).value("broker-1").exec();
    fence = [{ key: leaderKey, createRevision: Number(won.header.revision) }];
    const r = await store.commit([
      { type: "put", collection: "leases", id: "a", value: lease("a"), expectRevision: 0 },
    ]);

    // Another broker wins: the key is deleted and created again, with a new create revision.
    await raw.delete().key(leaderKey);
    const other = await raw.put(leaderKey).value("broker-2").exec();
    const fenced = await store
      .commit([
        { type: "put", collection: "leases", id: "a", value: lease("a", 1), expectRevision: r },
        { type: "put", collection: "hosts", id: "h", value: { cpu: 1 } },
      ])
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(fenced).toBeInstanceOf(FencedError);
    expect(fenced).toBeInstanceOf(UnavailableError);
    expect(fenced).toMatchObject({
      kind: "unavailable",
      key: leaderKey,
      expectedCreateRevision: Number(won.header.revision),
      actualCreateRevision: Number(other.header.revision),
    });
    // A fenced write that also conflicts is still reported as fenced: the conflict is moot.
    await expect(
      store.commit([
        { type: "put", collection: "leases", id: "a", value: lease("a"), expectRevision: 1 },
      ]),
    ).rejects.toBeInstanceOf(FencedError);
    expect(await store.get("leases", "a")).toMatchObject({ revision: r, value: lease("a") });
    expect(await store.get("hosts", "h")).toBeUndefined();

    // Once gone altogether, still fenced (create revision 0).
    await raw.delete().key(leaderKey);
    await expect(
      store.commit([{ type: "put", collection: "leases", id: "b", value: lease("b") }]),
    ).rejects.toMatchObject({ actualCreateRevision: 0 });
  });

  it("reports a value it cannot decode as StoreDecodeError, and keeps watching", async () => {
    const store = makeStore({ onWatchError: (e) => watchErrors.push(e) });
    const from = await store.revision();
    const seen: StoreEvent<ContractSchema>[] = [];
    store.watch({ fromRevision: from }, (e) => seen.push(e));
    await raw.put(`${store.prefix}leases/bad`).value("{not json");
    const good = await store.commit([
      { type: "put", collection: "leases", id: "good", value: lease("g") },
    ]);

    await expect(store.get("leases", "bad")).rejects.toMatchObject({
      name: "StoreDecodeError",
      kind: "internal",
      collection: "leases",
      id: "bad",
    });
    await expect(store.list("leases")).rejects.toBeInstanceOf(StoreDecodeError);
    await waitFor(() => seen.length === 1 && watchErrors.length === 1, {
      what: "the good event and the decode error",
    });
    expect(seen[0]).toMatchObject({ revision: good, id: "good" });
    expect(watchErrors[0]).toBeInstanceOf(StoreDecodeError);
  });

  it("takes a codec per collection", async () => {
    const encoder = new TextEncoder();
    const decoder = new TextDecoder();
    const store = makeStore({
      codecs: {
        hosts: {
          encode: (value) => encoder.encode(`cpu=${value.cpu}`),
          decode: (bytes) => ({ cpu: Number(decoder.decode(bytes).slice("cpu=".length)) }),
        },
      },
    });
    await store.commit([{ type: "put", collection: "hosts", id: "h", value: { cpu: 8 } }]);
    expect((await raw.get(`${store.prefix}hosts/h`).string()) ?? "").toBe("cpu=8");
    expect((await store.get("hosts", "h"))?.value).toEqual({ cpu: 8 });
  });

  it("says the store is closed after close()", async () => {
    const store = makeStore();
    await store.close();
    await expect(store.revision()).rejects.toBeInstanceOf(UnavailableError);
  });
});
