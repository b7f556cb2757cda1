/**
 * The Store port: the broker's durable state, as versioned objects in a few collections.
 *
 * It is shaped after etcd so that both implementations mean the same thing: one global revision
 * that every write bumps; each object carries the revision of its last write (`revision`, etcd's
 * mod revision) and of its creation; a write is a transaction of puts and deletes, each optionally
 * conditioned on the object's current revision (optimistic concurrency), applied all or nothing.
 */
import { ConflictError, LeaseBrokerError } from "../../core/index.js";

/** The collections and the type stored in each. Values are plain data (proto output shapes). */
export interface StoreSchema {
  leases: unknown;
  hosts: unknown;
  migrations: unknown;
}

export type CollectionName = keyof StoreSchema;
export const COLLECTIONS: readonly CollectionName[] = ["leases", "hosts", "migrations"];

export interface Versioned<T> {
  readonly id: string;
  readonly value: T;
  /** The store revision of this object's last write. */
  readonly revision: number;
  /** The store revision at which this object was created. */
  readonly createRevision: number;
}

/**
 * `expectRevision`: undefined → unconditional; 0 → the object must not exist; n → the object's
 * current revision must be n.
 */
export type WriteOp<S> = {
  [C in keyof S]:
    | {
        readonly type: "put";
        readonly collection: C;
        readonly id: string;
        readonly value: S[C];
        readonly expectRevision?: number;
      }
    | {
        readonly type: "delete";
        readonly collection: C;
        readonly id: string;
        readonly expectRevision?: number;
      };
}[keyof S];

export type StoreEvent<S> = {
  [C in keyof S]: {
    readonly revision: number;
    readonly collection: C;
    readonly id: string;
    readonly type: "put" | "delete";
    /** The new value (for a delete, the value it had). */
    readonly value: S[C];
    /** The value before this write, if the object existed. */
    readonly previous: S[C] | undefined;
  };
}[keyof S];

export interface ListOptions {
  /** Return objects whose id sorts after this one (the page token of the previous page). */
  readonly after?: string;
  /** At most this many (default: all). */
  readonly limit?: number;
}

export interface ListPage<T> {
  readonly items: readonly Versioned<T>[];
  /** Set when more objects follow: pass it as `after`. */
  readonly next?: string;
  /** The store revision this page was read at. */
  readonly revision: number;
}

export interface WatchOptions<S> {
  /** Deliver events after this revision (the history since then is replayed first). Default: now. */
  readonly fromRevision?: number;
  readonly collections?: readonly (keyof S)[];
}

export interface StoreWatch {
  /** Stops delivery. */
  close(): void;
}

export interface Store<S = StoreSchema> {
  get<C extends keyof S>(collection: C, id: string): Promise<Versioned<S[C]> | undefined>;
  /** Objects in id order. */
  list<C extends keyof S>(collection: C, options?: ListOptions): Promise<ListPage<S[C]>>;
  /** Applies all ops or none; returns the new revision. Throws `ConflictError` when a condition fails. */
  commit(ops: readonly WriteOp<S>[]): Promise<number>;
  /**
   * Calls `listener` for every write after `fromRevision`, in revision order. When that history
   * is no longer kept, `CompactedError`: thrown at once by a store that knows at once (memory),
   * else given to `onError` later (etcd answers asynchronously; a failed watch is closed). Either
   * way: reload with `list`, then watch from its revision.
   */
  watch(
    options: WatchOptions<S>,
    listener: (event: StoreEvent<S>) => void,
    onError?: (error: LeaseBrokerError) => void,
  ): StoreWatch;
  /** The current revision. */
  revision(): Promise<number>;
  close(): Promise<void>;
}

/** The history a watch asked for has been compacted away. */
export class CompactedError extends LeaseBrokerError {
  readonly kind = "failed-precondition";
  constructor(
    readonly requested: number,
    readonly oldest: number,
  ) {
    super(`revision ${requested} has been compacted; the oldest kept is ${oldest}`);
  }
}

/** A write's condition did not hold; names the object so that callers can re-read it. */
export class WriteConflictError extends ConflictError {
  constructor(
    readonly collection: string,
    readonly id: string,
    readonly expected: number,
    readonly actual: number,
  ) {
    super(
      `${collection}/${id} changed: expected revision ${expected === 0 ? "absent" : expected}, found ${actual === 0 ? "absent" : actual}`,
    );
  }
}

/** Calls `visit` with every object of `collection`, in id order, reading 1000 at a time. */
export async function forEachObject<S, C extends keyof S>(
  store: Store<S>,
  collection: C,
  visit: (item: Versioned<S[C]>) => void,
): Promise<void> {
  let after: string | undefined;
  do {
    const page = await store.list(
      collection,
      after === undefined ? { limit: 1000 } : { after, limit: 1000 },
    );
    for (const item of page.items) visit(item);
    after = page.next;
  } while (after !== undefined);
}
