import { describe, expect, it } from "vitest";
import { MemoryStore } from "./memory-store.js";
import { CompactedError, type StoreEvent, WriteConflictError } from "./store.js";

interface Schema {
  leases: { name: string; n: number };
  hosts: { cpu: number };
  migrations: never;
}

const lease = (name: string, n = 0) => ({ name, n });

describe("MemoryStore", () => {
  it("versions every write with one global revision", async () => {
    const store = new MemoryStore<Schema>();
    expect(await store.revision()).toBe(0);
    const r1 = await store.commit([
      { type: "put", collection: "leases", id: "a", value: lease("a") },
    ]);
    const r2 = await store.commit([
      { type: "put", collection: "hosts", id: "h", value: { cpu: 4 } },
    ]);
    const r3 = await store.commit([
      { type: "put", collection: "leases", id: "a", value: lease("a", 1) },
    ]);
    expect([r1, r2, r3]).toEqual([1, 2, 3]);
    const a = await store.get("leases", "a");
    expect(a).toMatchObject({ id: "a", revision: 3, createRevision: 1, value: { n: 1 } });
    expect(await store.get("leases", "missing")).toBeUndefined();
  });

  it("compares revisions: create-only, update-if-unchanged, and all or nothing", async () => {
    const store = new MemoryStore<Schema>();
    await store.commit([
      { type: "put", collection: "leases", id: "a", value: lease("a"), expectRevision: 0 },
    ]);
    await expect(
      store.commit([
        { type: "put", collection: "leases", id: "a", value: lease("a"), expectRevision: 0 },
      ]),
    ).rejects.toBeInstanceOf(WriteConflictError);

    // The second op's condition fails, so the first op must not apply either.
    await expect(
      store.commit([
        { type: "put", collection: "leases", id: "b", value: lease("b") },
        { type: "put", collection: "leases", id: "a", value: lease("a", 9), expectRevision: 7 },
      ]),
    ).rejects.toMatchObject({ kind: "conflict", id: "a", expected: 7, actual: 1 });
    expect(await store.get("leases", "b")).toBeUndefined();
    expect(await store.revision()).toBe(1);

    await store.commit([
      { type: "put", collection: "leases", id: "a", value: lease("a", 2), expectRevision: 1 },
    ]);
    await store.commit([{ type: "delete", collection: "leases", id: "a", expectRevision: 2 }]);
    expect(await store.get("leases", "a")).toBeUndefined();
  });

  it("copies and freezes values so nobody can change them in place", async () => {
    const store = new MemoryStore<Schema>();
    const value = lease("a");
    await store.commit([{ type: "put", collection: "leases", id: "a", value }]);
    value.n = 42;
    const read = await store.get("leases", "a");
    expect(read?.value.n).toBe(0);
    expect(() => {
      (read?.value as { n: number }).n = 5;
    }).toThrow(TypeError);
  });

  it("lists in id order with pages", async () => {
    const store = new MemoryStore<Schema>();
    for (const id of ["d", "a", "c", "b", "e"]) {
      await store.commit([{ type: "put", collection: "leases", id, value: lease(id) }]);
    }
    const p1 = await store.list("leases", { limit: 2 });
    expect(p1.items.map((i) => i.id)).toEqual(["a", "b"]);
    expect(p1.next).toBe("b");
    const p2 = await store.list("leases", { limit: 2, after: p1.next as string });
    expect(p2.items.map((i) => i.id)).toEqual(["c", "d"]);
    const p3 = await store.list("leases", { limit: 2, after: p2.next as string });
    expect(p3.items.map((i) => i.id)).toEqual(["e"]);
    expect(p3.next).toBeUndefined();
    expect((await store.list("hosts")).items).toEqual([]);
  });

  it("watches live, resumes from a revision, and filters by collection", async () => {
    const store = new MemoryStore<Schema>();
    await store.commit([{ type: "put", collection: "leases", id: "a", value: lease("a") }]);
    await store.commit([{ type: "put", collection: "hosts", id: "h", value: { cpu: 1 } }]);
    await store.commit([{ type: "put", collection: "leases", id: "a", value: lease("a", 1) }]);

    const seen: StoreEvent<Schema>[] = [];
    const watch = store.watch({ fromRevision: 1, collections: ["leases"] }, (e) => seen.push(e));
    expect(seen.map((e) => e.revision)).toEqual([3]);
    expect(seen[0]?.previous).toEqual(lease("a", 0));

    await store.commit([{ type: "delete", collection: "leases", id: "a" }]);
    expect(seen.map((e) => [e.revision, e.type])).toEqual([
      [3, "put"],
      [4, "delete"],
    ]);
    watch.close();
    await store.commit([{ type: "put", collection: "leases", id: "z", value: lease("z") }]);
    expect(seen).toHaveLength(2);
  });

  it("says when the history to resume from is gone", async () => {
    const store = new MemoryStore<Schema>({ historyLimit: 2 });
    for (let i = 0; i < 10; i++) {
      await store.commit([
        { type: "put", collection: "leases", id: `l${i}`, value: lease("x", i) },
      ]);
    }
    expect(() => store.watch({ fromRevision: 1 }, () => {})).toThrow(CompactedError);
    const seen: number[] = [];
    store.watch({ fromRevision: 9 }, (e) => seen.push(e.revision));
    expect(seen).toEqual([10]);
  });

  it("delivers in revision order when a listener writes", async () => {
    const store = new MemoryStore<Schema>();
    const order: number[] = [];
    store.watch({}, (e) => {
      order.push(e.revision);
      if (e.id === "a")
        store.commitSync([{ type: "put", collection: "leases", id: "b", value: lease("b") }]);
    });
    const seenBySecond: number[] = [];
    store.watch({}, (e) => seenBySecond.push(e.revision));
    await store.commit([{ type: "put", collection: "leases", id: "a", value: lease("a") }]);
    expect(order).toEqual([1, 2]);
    expect(seenBySecond).toEqual([1, 2]);
  });

  it("keeps the write when a listener throws, and reports the error", async () => {
    const errors: unknown[] = [];
    const store = new MemoryStore<Schema>({ onListenerError: (e) => errors.push(e) });
    store.watch({}, () => {
      throw new Error("listener bug");
    });
    await store.commit([{ type: "put", collection: "leases", id: "a", value: lease("a") }]);
    expect(await store.get("leases", "a")).toBeDefined();
    expect(errors).toHaveLength(1);
  });
});

describe("MemoryStore without copies", () => {
  it("freezes the written object itself, so a later mutation throws", async () => {
    const store = new MemoryStore<Schema>({ copy: false });
    const value = lease("a");
    await store.commit([{ type: "put", collection: "leases", id: "a", value }]);
    expect((await store.get("leases", "a"))?.value).toBe(value);
    expect(() => {
      value.n = 42;
    }).toThrow(TypeError);
  });
});
