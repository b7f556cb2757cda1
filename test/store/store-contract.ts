/**
 * The Store port's behaviour, as one suite that every implementation runs (MemoryStore in the unit
 * project, EtcdStore against a real etcd in the integration project). It lives under test/ so that
 * vitest stays out of the build; the unit test imports it from here.
 *
 * Revisions are compared relative to the store's revision at the start: an etcd shared by several
 * tests does not start at 0. Watch deliveries are awaited (etcd's arrive asynchronously; the
 * memory store's are already there, so the waits cost it nothing).
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import type { Store, StoreEvent } from "../../broker/store/store.js";
import { WriteConflictError } from "../../broker/store/store.js";

export interface ContractSchema {
  leases: { name: string; n: number };
  hosts: { cpu: number };
  migrations: never;
}

export interface ContractStoreOptions {
  onListenerError?: (error: unknown) => void;
}

/** A fresh, empty store (its own prefix, for etcd); the suite closes it. */
export type ContractStoreFactory = (
  options?: ContractStoreOptions,
) => Promise<Store<ContractSchema>>;

const lease = (name: string, n = 0) => ({ name, n });

/** How long to wait for a watch event that must arrive (etcd: well under this on loopback). */
const EVENT_TIMEOUT_MS = 5_000;
/** How long to wait for an event that must NOT arrive before concluding it did not. */
const QUIET_MS = 300;

function eventually(assertion: () => void): Promise<void> {
  return vi.waitFor(assertion, { timeout: EVENT_TIMEOUT_MS, interval: 10 });
}

export function storeContract(name: string, makeStore: ContractStoreFactory): void {
  describe(`${name} (Store contract)`, () => {
    const open: Store<ContractSchema>[] = [];
    const fresh = async (options?: ContractStoreOptions) => {
      const store = await makeStore(options);
      open.push(store);
      return store;
    };
    afterEach(async () => {
      await Promise.all(open.splice(0).map((s) => s.close()));
    });

    it("versions every write with one global revision", async () => {
      const store = await fresh();
      const r0 = await store.revision();
      const r1 = await store.commit([
        { type: "put", collection: "leases", id: "a", value: lease("a") },
      ]);
      const r2 = await store.commit([
        { type: "put", collection: "hosts", id: "h", value: { cpu: 4 } },
      ]);
      const r3 = await store.commit([
        { type: "put", collection: "leases", id: "a", value: lease("a", 1) },
      ]);
      expect([r1, r2, r3]).toEqual([r0 + 1, r0 + 2, r0 + 3]);
      expect(await store.revision()).toBe(r3);
      const a = await store.get("leases", "a");
      expect(a).toMatchObject({ id: "a", revision: r3, createRevision: r1, value: { n: 1 } });
      expect(await store.get("leases", "missing")).toBeUndefined();
      expect(await store.get("hosts", "a")).toBeUndefined();
    });

    it("compares revisions: create-only, update-if-unchanged, and all or nothing", async () => {
      const store = await fresh();
      const r1 = await store.commit([
        { type: "put", collection: "leases", id: "a", value: lease("a"), expectRevision: 0 },
      ]);
      await expect(
        store.commit([
          { type: "put", collection: "leases", id: "a", value: lease("a"), expectRevision: 0 },
        ]),
      ).rejects.toMatchObject({ kind: "conflict", id: "a", expected: 0, actual: r1 });

      // The second op's condition fails, so the first op must not apply either.
      const stale = r1 + 1000;
      await expect(
        store.commit([
          { type: "put", collection: "leases", id: "b", value: lease("b") },
          {
            type: "put",
            collection: "leases",
            id: "a",
            value: lease("a", 9),
            expectRevision: stale,
          },
        ]),
      ).rejects.toMatchObject({
        kind: "conflict",
        collection: "leases",
        id: "a",
        expected: stale,
        actual: r1,
      });
      expect(await store.get("leases", "b")).toBeUndefined();
      expect(await store.revision()).toBe(r1);

      const r2 = await store.commit([
        { type: "put", collection: "leases", id: "a", value: lease("a", 2), expectRevision: r1 },
      ]);
      // A delete conditioned on an old revision fails; on the current one it applies.
      await expect(
        store.commit([{ type: "delete", collection: "leases", id: "a", expectRevision: r1 }]),
      ).rejects.toBeInstanceOf(WriteConflictError);
      await store.commit([{ type: "delete", collection: "leases", id: "a", expectRevision: r2 }]);
      expect(await store.get("leases", "a")).toBeUndefined();
      // A missing object has revision 0 for every condition.
      await expect(
        store.commit([{ type: "delete", collection: "leases", id: "a", expectRevision: r2 }]),
      ).rejects.toMatchObject({ expected: r2, actual: 0 });
    });

    it("applies a multi-op commit at one revision, across collections", async () => {
      const store = await fresh();
      await store.commit([{ type: "put", collection: "leases", id: "gone", value: lease("g") }]);
      const r = await store.commit([
        { type: "put", collection: "leases", id: "x", value: lease("x"), expectRevision: 0 },
        { type: "put", collection: "hosts", id: "h", value: { cpu: 2 } },
        { type: "delete", collection: "leases", id: "gone" },
      ]);
      expect(await store.get("leases", "x")).toMatchObject({ revision: r, createRevision: r });
      expect(await store.get("hosts", "h")).toMatchObject({ revision: r, value: { cpu: 2 } });
      expect(await store.get("leases", "gone")).toBeUndefined();
    });

    it("hands out values that nobody can change in place", async () => {
      const store = await fresh();
      const value = lease("a");
      await store.commit([{ type: "put", collection: "leases", id: "a", value }]);
      value.n = 42;
      const read = await store.get("leases", "a");
      expect(read?.value.n).toBe(0);
      expect(() => {
        (read?.value as { n: number }).n = 5;
      }).toThrow(TypeError);
      expect((await store.get("leases", "a"))?.value.n).toBe(0);
    });

    it("lists in id order with pages", async () => {
      const store = await fresh();
      for (const id of ["d", "a", "c", "b", "e"]) {
        await store.commit([{ type: "put", collection: "leases", id, value: lease(id) }]);
      }
      await store.commit([{ type: "put", collection: "hosts", id: "h", value: { cpu: 1 } }]);
      const p1 = await store.list("leases", { limit: 2 });
      expect(p1.items.map((i) => i.id)).toEqual(["a", "b"]);
      expect(p1.next).toBe("b");
      expect(p1.revision).toBe(await store.revision());
      const p2 = await store.list("leases", { limit: 2, after: p1.next as string });
      expect(p2.items.map((i) => i.id)).toEqual(["c", "d"]);
      const p3 = await store.list("leases", { limit: 2, after: p2.next as string });
      expect(p3.items.map((i) => i.id)).toEqual(["e"]);
      expect(p3.next).toBeUndefined();
      // `after` need not exist; without a limit, everything.
      expect((await store.list("leases", { after: "bb" })).items.map((i) => i.id)).toEqual([
        "c",
        "d",
        "e",
      ]);
      const all = await store.list("leases");
      expect(all.items.map((i) => [i.id, i.value.name])).toEqual([
        ["a", "a"],
        ["b", "b"],
        ["c", "c"],
        ["d", "d"],
        ["e", "e"],
      ]);
      expect(all.next).toBeUndefined();
      expect((await store.list("hosts")).items.map((i) => i.id)).toEqual(["h"]);
      expect((await store.list("migrations")).items).toEqual([]);
    });

    it("watches live, resumes from a revision, and filters by collection", async () => {
      const store = await fresh();
      const r1 = await store.commit([
        { type: "put", collection: "leases", id: "a", value: lease("a") },
      ]);
      await store.commit([{ type: "put", collection: "hosts", id: "h", value: { cpu: 1 } }]);
      const r3 = await store.commit([
        { type: "put", collection: "leases", id: "a", value: lease("a", 1) },
      ]);

      const seen: StoreEvent<ContractSchema>[] = [];
      const watch = store.watch({ fromRevision: r1, collections: ["leases"] }, (e) => seen.push(e));
      await eventually(() => expect(seen.map((e) => e.revision)).toEqual([r3]));
      expect(seen[0]).toMatchObject({
        collection: "leases",
        id: "a",
        type: "put",
        value: lease("a", 1),
        previous: lease("a", 0),
      });

      const r4 = await store.commit([{ type: "delete", collection: "leases", id: "a" }]);
      await eventually(() =>
        expect(seen.map((e) => [e.revision, e.type])).toEqual([
          [r3, "put"],
          [r4, "delete"],
        ]),
      );
      // A delete carries the value it had.
      expect(seen[1]).toMatchObject({ value: lease("a", 1), previous: lease("a", 1) });
      watch.close();
      await store.commit([{ type: "put", collection: "leases", id: "z", value: lease("z") }]);
      await new Promise((resolve) => setTimeout(resolve, QUIET_MS));
      expect(seen).toHaveLength(2);
    });

    it("delivers every op of a multi-op commit, at its revision, in every collection", async () => {
      const store = await fresh();
      const r0 = await store.revision();
      const seen: StoreEvent<ContractSchema>[] = [];
      store.watch({ fromRevision: r0 }, (e) => seen.push(e));
      const r1 = await store.commit([
        { type: "put", collection: "leases", id: "a", value: lease("a") },
        { type: "put", collection: "hosts", id: "h", value: { cpu: 1 } },
      ]);
      const r2 = await store.commit([
        { type: "put", collection: "leases", id: "b", value: lease("b") },
      ]);
      await eventually(() =>
        expect(seen.map((e) => [e.revision, e.collection, e.id])).toEqual([
          [r1, "leases", "a"],
          [r1, "hosts", "h"],
          [r2, "leases", "b"],
        ]),
      );
      expect(seen[0]?.previous).toBeUndefined();
    });

    it("delivers in revision order when a listener writes", async () => {
      const store = await fresh();
      const r0 = await store.revision();
      const order: number[] = [];
      const writes: Promise<number>[] = [];
      store.watch({ fromRevision: r0 }, (e) => {
        order.push(e.revision);
        if (e.id === "a") {
          writes.push(
            store.commit([{ type: "put", collection: "leases", id: "b", value: lease("b") }]),
          );
        }
      });
      const seenBySecond: number[] = [];
      store.watch({ fromRevision: r0 }, (e) => seenBySecond.push(e.revision));
      await store.commit([{ type: "put", collection: "leases", id: "a", value: lease("a") }]);
      await eventually(() => expect(order).toEqual([r0 + 1, r0 + 2]));
      await eventually(() => expect(seenBySecond).toEqual([r0 + 1, r0 + 2]));
      expect(await Promise.all(writes)).toEqual([r0 + 2]);
    });

    it("keeps the write when a listener throws, and reports the error", async () => {
      const errors: unknown[] = [];
      const store = await fresh({ onListenerError: (e) => errors.push(e) });
      const r0 = await store.revision();
      store.watch({ fromRevision: r0 }, () => {
        throw new Error("listener bug");
      });
      await store.commit([{ type: "put", collection: "leases", id: "a", value: lease("a") }]);
      expect(await store.get("leases", "a")).toBeDefined();
      await eventually(() => expect(errors).toHaveLength(1));
    });
  });
}
