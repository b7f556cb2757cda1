import { describe, expect, it } from "vitest";
import { type ContractSchema, storeContract } from "../../test/store/store-contract.js";
import { MemoryStore } from "./memory-store.js";
import { CompactedError } from "./store.js";

interface Schema {
  leases: { name: string; n: number };
  hosts: { cpu: number };
  migrations: never;
}

const lease = (name: string, n = 0) => ({ name, n });

// The behaviour every Store shares (the EtcdStore runs the same suite in test/store/).
storeContract("MemoryStore", async (options) =>
  options?.onListenerError === undefined
    ? new MemoryStore<ContractSchema>()
    : new MemoryStore<ContractSchema>({ onListenerError: options.onListenerError }),
);

// What only the memory store does: synchronous delivery, commitSync, a bounded history.
describe("MemoryStore", () => {
  it("starts at revision 0 and replays synchronously", async () => {
    const store = new MemoryStore<Schema>();
    expect(await store.revision()).toBe(0);
    await store.commit([{ type: "put", collection: "leases", id: "a", value: lease("a") }]);
    const seen: number[] = [];
    store.watch({ fromRevision: 0 }, (e) => seen.push(e.revision));
    expect(seen).toEqual([1]);
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

  it("delivers in revision order when a listener writes synchronously", async () => {
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
