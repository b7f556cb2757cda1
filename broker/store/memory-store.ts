import { deepFreeze } from "../../core/index.js";
import {
  CompactedError,
  type ListOptions,
  type ListPage,
  type Store,
  type StoreEvent,
  type StoreSchema,
  type StoreWatch,
  type Versioned,
  type WatchOptions,
  WriteConflictError,
  type WriteOp,
} from "./store.js";

export interface MemoryStoreOptions {
  /** How many past events are kept for watches that resume from a revision. Default 100,000. */
  historyLimit?: number;
  /** Called when a watch listener throws. Default: rethrown on a later tick (a bug: crash loudly). */
  onListenerError?: (error: unknown) => void;
  /**
   * Copy values before freezing them (default true). A writer that builds a fresh object for every
   * write and never touches it again (the broker) can skip the copy: the value is still frozen,
   * so a mutation after the write throws instead of changing the store.
   */
  copy?: boolean;
}

interface Watcher<S> {
  readonly collections: Set<keyof S> | undefined;
  readonly listener: (e: StoreEvent<S>) => void;
}

interface Row<T> {
  value: T;
  revision: number;
  createRevision: number;
}

/**
 * The embedded Store: everything in memory, gone when the process ends. Values are copied and
 * frozen on write, so that what a reader holds can never change under it (nor be changed by it).
 */
export class MemoryStore<S = StoreSchema> implements Store<S> {
  readonly #tables = new Map<keyof S, Map<string, Row<unknown>>>();
  readonly #history: StoreEvent<S>[] = [];
  readonly #historyLimit: number;
  readonly #onListenerError: (error: unknown) => void;
  readonly #copy: boolean;
  /** Replaced, not changed, when a watch starts or ends: a delivery goes on over its own list. */
  #watchers: readonly Watcher<S>[] = [];
  readonly #pending: StoreEvent<S>[] = [];
  #delivering = false;
  #revision = 0;
  #closed = false;

  constructor(options: MemoryStoreOptions = {}) {
    this.#historyLimit = options.historyLimit ?? 100_000;
    this.#copy = options.copy ?? true;
    this.#onListenerError =
      options.onListenerError ??
      ((error) =>
        queueMicrotask(() => {
          throw error;
        }));
  }

  #table(collection: keyof S): Map<string, Row<unknown>> {
    let table = this.#tables.get(collection);
    if (table === undefined) {
      table = new Map();
      this.#tables.set(collection, table);
    }
    return table;
  }

  async get<C extends keyof S>(collection: C, id: string): Promise<Versioned<S[C]> | undefined> {
    const row = this.#tables.get(collection)?.get(id) as Row<S[C]> | undefined;
    return row === undefined ? undefined : { id, ...row };
  }

  async list<C extends keyof S>(collection: C, options: ListOptions = {}): Promise<ListPage<S[C]>> {
    const table = this.#tables.get(collection);
    const ids = table === undefined ? [] : [...table.keys()].sort();
    let startIndex = 0;
    if (options.after !== undefined) {
      const after = options.after;
      // First id strictly greater than `after` (binary search: ids are sorted).
      let lo = 0;
      let hi = ids.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if ((ids[mid] as string) <= after) lo = mid + 1;
        else hi = mid;
      }
      startIndex = lo;
    }
    const limit = options.limit ?? Number.POSITIVE_INFINITY;
    const items: Versioned<S[C]>[] = [];
    let i = startIndex;
    for (; i < ids.length && items.length < limit; i++) {
      const id = ids[i] as string;
      const row = table?.get(id) as Row<S[C]>;
      items.push({ id, ...row });
    }
    const last = items[items.length - 1];
    return i < ids.length && last !== undefined
      ? { items, next: last.id, revision: this.#revision }
      : { items, revision: this.#revision };
  }

  async commit(ops: readonly WriteOp<S>[]): Promise<number> {
    return this.commitSync(ops);
  }

  /** `commit`, synchronously (for in-process callers that must not interleave). */
  commitSync(ops: readonly WriteOp<S>[]): number {
    if (this.#closed) throw new Error("store is closed");
    // Check every condition before applying anything: all or nothing.
    for (const op of ops) {
      if (op.expectRevision === undefined) continue;
      const actual = this.#tables.get(op.collection)?.get(op.id)?.revision ?? 0;
      if (actual !== op.expectRevision) {
        throw new WriteConflictError(String(op.collection), op.id, op.expectRevision, actual);
      }
    }
    if (ops.length === 0) return this.#revision;
    const revision = ++this.#revision;
    for (const op of ops) {
      const table = this.#table(op.collection);
      const before = table.get(op.id);
      if (op.type === "put") {
        const value = deepFreeze(this.#copy ? structuredClone(op.value) : op.value);
        table.set(op.id, { value, revision, createRevision: before?.createRevision ?? revision });
        this.#record({
          revision,
          collection: op.collection,
          id: op.id,
          type: "put",
          value,
          previous: before?.value,
        } as StoreEvent<S>);
      } else if (before !== undefined) {
        table.delete(op.id);
        this.#record({
          revision,
          collection: op.collection,
          id: op.id,
          type: "delete",
          value: before.value,
          previous: before.value,
        } as StoreEvent<S>);
      }
    }
    this.#deliver();
    return revision;
  }

  watch(options: WatchOptions<S>, listener: (event: StoreEvent<S>) => void): StoreWatch {
    const collections =
      options.collections === undefined ? undefined : new Set(options.collections);
    const watcher = { collections, listener };
    if (options.fromRevision !== undefined && options.fromRevision < this.#revision) {
      const oldest = this.#history[0]?.revision ?? this.#revision + 1;
      // Events after `fromRevision` must all still be in the history.
      if (options.fromRevision + 1 < oldest) throw new CompactedError(options.fromRevision, oldest);
      for (const event of this.#history) {
        if (event.revision > options.fromRevision && (collections?.has(event.collection) ?? true)) {
          listener(event);
        }
      }
    }
    this.#watchers = [...this.#watchers, watcher];
    return {
      close: () => {
        this.#watchers = this.#watchers.filter((w) => w !== watcher);
      },
    };
  }

  async revision(): Promise<number> {
    return this.#revision;
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#watchers = [];
  }

  #record(event: StoreEvent<S>): void {
    this.#history.push(event);
    // Trim in chunks: a splice per write would make every write O(history).
    if (this.#history.length > this.#historyLimit + (this.#historyLimit >> 3) + 1) {
      this.#history.splice(0, this.#history.length - this.#historyLimit);
    }
    this.#pending.push(event);
  }

  // Events go out in revision order even when a listener writes (a nested commit queues its
  // events behind the ones being delivered).
  #deliver(): void {
    if (this.#delivering) return;
    this.#delivering = true;
    try {
      for (let event = this.#pending.shift(); event !== undefined; event = this.#pending.shift()) {
        for (const watcher of this.#watchers) {
          if (!(watcher.collections?.has(event.collection) ?? true)) continue;
          try {
            watcher.listener(event);
          } catch (error) {
            // The write is done; a failing listener must not make the writer think otherwise.
            this.#onListenerError(error);
          }
        }
      }
    } finally {
      this.#delivering = false;
    }
  }
}
