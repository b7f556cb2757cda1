/**
 * The Store port over etcd (the `etcd3` client): what makes the broker's state durable and shared
 * between brokers.
 *
 * Keys are `<prefix><collection>/<id>`; values go through a codec per collection (JSON by default,
 * see `ValueCodec`). Every commit is one etcd transaction: the revision compares of its ops and
 * any fence compares (the leader key), then all puts and deletes. On a failed compare the same
 * transaction reads the compared keys (its failure branch), so the conflict is reported from the
 * state that made it fail, not from a later re-read that may have moved on.
 *
 * Watches use etcd's watch stream directly rather than etcd3's `Watcher`: that one resumes from
 * the response header's revision, which during a catch-up replay is the store's current revision,
 * not the last event sent (a reconnect then skips events), and it drops `compact_revision`. Here a
 * watch resumes from the last revision it delivered, skips anything at or below it, and turns a
 * compaction into `CompactedError`.
 */
import {
  ClientClosedError,
  Etcd3,
  EtcdAuthenticationFailedError,
  EtcdInvalidAuthTokenError,
  EtcdPermissionDeniedError,
  GRPCDeadlineExceededError,
  GRPCUnauthenticatedError,
  type ICompare,
  type IDuplexStream,
  type IEvent,
  type IKeyValue,
  type IOptions,
  type IRangeResponse,
  type IRequestOp,
  type ITxnResponse,
  type IWatchRequest,
  type IWatchResponse,
  isRecoverableError,
} from "etcd3";
import {
  ConflictError,
  deepFreeze,
  InternalError,
  InvalidArgumentError,
  LeaseBrokerError,
  type LeaseBrokerErrorOptions,
  PermissionDeniedError,
  UnauthenticatedError,
  UnavailableError,
} from "../../core/index.js";
import {
  COLLECTIONS,
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

/** How one collection's values are stored. Protobuf codecs plug in here (see the JSON default). */
export interface ValueCodec<T> {
  encode(value: T): Uint8Array;
  /** May throw on bytes it cannot read: the store reports that as `StoreDecodeError`. */
  decode(bytes: Uint8Array): T;
}

/**
 * UTF-8 JSON. It trusts what it reads (the cast): the broker is the only writer under its prefix.
 * Values must be JSON data: no `Map`, `Date`, `bigint`, `undefined` in arrays.
 */
export function jsonCodec<T>(): ValueCodec<T> {
  const encoder = new TextEncoder();
  // fatal: invalid UTF-8 is an error, not replacement characters parsed as data.
  const decoder = new TextDecoder("utf-8", { fatal: true });
  return {
    encode: (value) => encoder.encode(JSON.stringify(value)),
    decode: (bytes) => JSON.parse(decoder.decode(bytes)) as T,
  };
}

/** A stored value could not be decoded (corrupt, or written by an incompatible version). */
export class StoreDecodeError extends InternalError {
  constructor(
    readonly collection: string,
    readonly id: string,
    readonly revision: number,
    options?: LeaseBrokerErrorOptions,
  ) {
    super(`cannot decode ${collection}/${id} at revision ${revision}`, options);
  }
}

/**
 * A fence compare failed: the writer is no longer who it was when the fence was set (a deposed
 * leader). An `UnavailableError`, not a `ConflictError`: a conflict means "re-read and retry", and
 * a retry loop would spin on a write that can never succeed again; unavailable means "not here",
 * which is what a client of a deposed leader must hear (the election code catches this type to
 * step down).
 */
export class FencedError extends UnavailableError {
  constructor(
    readonly key: string,
    readonly expectedCreateRevision: number,
    readonly actualCreateRevision: number,
    options?: LeaseBrokerErrorOptions,
  ) {
    super(
      `fenced: ${key} has create revision ${actualCreateRevision === 0 ? "(absent)" : actualCreateRevision}, expected ${expectedCreateRevision}`,
      options,
    );
  }
}

/** An extra condition on every commit: `key` (a full etcd key) has this create revision. */
export interface StoreFence {
  readonly key: string;
  readonly createRevision: number;
}

export interface EtcdStoreTls {
  /** PEM CA bundle that signs etcd's server certificate. */
  readonly ca: Buffer;
  /** Client certificate and key (PEM), for etcd's `--client-cert-auth`. */
  readonly cert?: Buffer;
  readonly key?: Buffer;
}

export interface EtcdStoreOptions<S> {
  /** etcd client URLs (`http://127.0.0.1:2379`, `https://…` with `tls`). Required unless `client`. */
  readonly endpoints?: string | readonly string[];
  /** An existing client (shared with the leader election); `close()` then leaves it open. */
  readonly client?: Etcd3;
  /** Default `/leasebroker/`; a missing trailing `/` is added. */
  readonly prefix?: string;
  readonly tls?: EtcdStoreTls;
  readonly auth?: { readonly username: string; readonly password: string };
  /** Bound on connecting to an endpoint. Default 5 s. */
  readonly dialTimeoutMs?: number;
  /** Deadline of each request (watch streams excepted). Default 10 s. */
  readonly requestTimeoutMs?: number;
  /** The collections under the prefix (other keys there, like the election's, are ignored). */
  readonly collections?: readonly (keyof S & string)[];
  /** Codec per collection; JSON where none is given. */
  readonly codecs?: { readonly [C in keyof S]?: ValueCodec<S[C]> };
  /** Compares added to every commit (read per commit: the election sets it once it leads). */
  readonly fence?: readonly StoreFence[] | (() => readonly StoreFence[]);
  /** A watch listener threw. Default: rethrown on a later tick (a bug: crash loudly). */
  readonly onListenerError?: (error: unknown) => void;
  /**
   * A watch failed (`CompactedError`: reload and watch again; `StoreDecodeError`: that event was
   * skipped) and no per-watch `onError` was given. Default: rethrown on a later tick.
   */
  readonly onWatchError?: (error: LeaseBrokerError) => void;
  /** First delay before re-opening a broken watch stream (doubling up to 5 s). Default 100 ms. */
  readonly watchRetryMs?: number;
  /**
   * How often a watch asks etcd how far it has seen (a progress request). A watch on a quiet
   * prefix otherwise keeps an old resume revision, and after a compaction a mere reconnect would
   * report `CompactedError` although nothing was missed. Default 5 s; 0 turns it off.
   */
  readonly watchProgressMs?: number;
}

/**
 * An etcd watch. `ready` resolves once etcd has accepted it (rejects if it failed before that).
 * etcd accepts a watch from a compacted revision and then cancels it: that `CompactedError` comes
 * through the watch's `onError`, not through `ready`.
 */
export interface EtcdStoreWatch extends StoreWatch {
  readonly ready: Promise<void>;
}

const DEFAULT_PREFIX = "/leasebroker/";
const MAX_WATCH_RETRY_MS = 5_000;

/** The smallest key greater than every key starting with `prefix` (etcd's prefix range end). */
export function prefixEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    const byte = end[i] as number;
    if (byte < 0xff) {
      end[i] = byte + 1;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]); // all 0xff: to the end of the keyspace
}

function rethrowLater(error: unknown): void {
  setImmediate(() => {
    throw error;
  });
}

/** Maps what etcd3 throws to the project's typed errors (callers branch on `kind`). */
function storeError(error: unknown, what: string): LeaseBrokerError {
  if (error instanceof LeaseBrokerError) return error;
  if (error instanceof ClientClosedError) {
    return new UnavailableError(`${what}: the etcd store is closed`, { cause: error });
  }
  if (
    error instanceof EtcdAuthenticationFailedError ||
    error instanceof EtcdInvalidAuthTokenError ||
    error instanceof GRPCUnauthenticatedError
  ) {
    return new UnauthenticatedError(`${what}: etcd refused the credentials`, { cause: error });
  }
  if (error instanceof EtcdPermissionDeniedError) {
    return new PermissionDeniedError(`${what}: etcd denied access`, { cause: error });
  }
  // cockatiel's BrokenCircuitError (a host's breaker is open after repeated failures) is not
  // re-exported by etcd3; matched by name so as not to depend on a transitive package.
  if (
    (error instanceof Error &&
      (isRecoverableError(error) || error.name === "BrokenCircuitError")) ||
    error instanceof GRPCDeadlineExceededError
  ) {
    return new UnavailableError(`${what}: etcd is unavailable`, { cause: error });
  }
  // Connection-level failures that etcd3 does not classify (refused dials, DNS) still mean "etcd
  // cannot be reached"; anything else is a bug or a protocol problem.
  const message = error instanceof Error ? error.message : String(error);
  if (
    /ECONNREFUSED|EHOSTUNREACH|ENOTFOUND|No connection|UNAVAILABLE|DEADLINE|circuit breaker is open/i.test(
      message,
    )
  ) {
    return new UnavailableError(`${what}: etcd is unavailable`, { cause: error });
  }
  return new InternalError(`${what}: etcd failed: ${message}`, { cause: error });
}

export class EtcdStore<S = StoreSchema> implements Store<S> {
  readonly prefix: string;
  readonly #client: Etcd3;
  readonly #ownsClient: boolean;
  readonly #collections: ReadonlySet<string>;
  readonly #codecs = new Map<string, ValueCodec<unknown>>();
  readonly #fence: () => readonly StoreFence[];
  readonly #onListenerError: (error: unknown) => void;
  readonly #onWatchError: (error: LeaseBrokerError) => void;
  readonly #watchRetryMs: number;
  readonly #watchProgressMs: number;
  readonly #watches = new Set<EtcdWatch<S>>();
  /** The highest revision any response has shown this client: "now" for a watch without one. */
  #observed = 0;
  #closed = false;

  /** The etcd client (shared with the leader election, which must fence with the same etcd). */
  get client(): Etcd3 {
    return this.#client;
  }

  constructor(options: EtcdStoreOptions<S>) {
    const prefix = options.prefix ?? DEFAULT_PREFIX;
    this.prefix = prefix.endsWith("/") ? prefix : `${prefix}/`;
    const collections = options.collections ?? (COLLECTIONS as readonly string[]);
    for (const collection of collections) validateSegment("collection", collection);
    this.#collections = new Set(collections);
    const json = jsonCodec<unknown>();
    for (const collection of collections) {
      const codec = options.codecs?.[collection as keyof S] as ValueCodec<unknown> | undefined;
      this.#codecs.set(collection, codec ?? json);
    }
    const fence = options.fence;
    this.#fence = typeof fence === "function" ? fence : () => fence ?? [];
    this.#onListenerError = options.onListenerError ?? rethrowLater;
    this.#onWatchError = options.onWatchError ?? rethrowLater;
    this.#watchRetryMs = options.watchRetryMs ?? 100;
    this.#watchProgressMs = options.watchProgressMs ?? 5_000;

    if (options.client !== undefined) {
      this.#client = options.client;
      this.#ownsClient = false;
    } else {
      if (options.endpoints === undefined || options.endpoints.length === 0) {
        throw new InvalidArgumentError("etcd.endpoints", "at least one endpoint is required");
      }
      const requestTimeoutMs = options.requestTimeoutMs ?? 10_000;
      const etcdOptions: IOptions = {
        hosts: typeof options.endpoints === "string" ? options.endpoints : [...options.endpoints],
        dialTimeout: options.dialTimeoutMs ?? 5_000,
        // A deadline on every unary call: without one a request to a dead etcd waits forever.
        defaultCallOptions: (context) =>
          context.isStream ? {} : { deadline: Date.now() + requestTimeoutMs },
      };
      if (options.tls !== undefined) {
        etcdOptions.credentials = {
          rootCertificate: options.tls.ca,
          ...(options.tls.key === undefined ? {} : { privateKey: options.tls.key }),
          ...(options.tls.cert === undefined ? {} : { certChain: options.tls.cert }),
        };
      }
      if (options.auth !== undefined) {
        etcdOptions.auth = { username: options.auth.username, password: options.auth.password };
      }
      this.#client = new Etcd3(etcdOptions);
      this.#ownsClient = true;
    }
  }

  // --- keys and values -----------------------------------------------------------------------

  #collectionPrefix(collection: string): Buffer {
    return Buffer.from(`${this.prefix}${collection}/`);
  }

  #key(collection: keyof S, id: string): Buffer {
    const name = this.#checkCollection(collection);
    validateSegment("id", id);
    return Buffer.from(`${this.prefix}${name}/${id}`);
  }

  #checkCollection(collection: keyof S): string {
    const name = String(collection);
    if (!this.#collections.has(name)) {
      throw new InvalidArgumentError("collection", `${name} is not a collection of this store`);
    }
    return name;
  }

  /** `<collection>/<id>` of a key under the prefix, or undefined for keys that are not ours. */
  #parseKey(key: Buffer): { collection: string; id: string } | undefined {
    const text = key.toString("utf8");
    if (!text.startsWith(this.prefix)) return undefined;
    const rest = text.slice(this.prefix.length);
    const slash = rest.indexOf("/");
    if (slash <= 0) return undefined;
    const collection = rest.slice(0, slash);
    const id = rest.slice(slash + 1);
    if (!this.#collections.has(collection) || id === "" || id.includes("/")) return undefined;
    return { collection, id };
  }

  #decode(collection: string, id: string, kv: IKeyValue): unknown {
    const codec = this.#codecs.get(collection) as ValueCodec<unknown>;
    try {
      return deepFreeze(codec.decode(kv.value));
    } catch (error) {
      throw new StoreDecodeError(collection, id, Number(kv.mod_revision), { cause: error });
    }
  }

  #versioned<T>(collection: string, id: string, kv: IKeyValue): Versioned<T> {
    return {
      id,
      value: this.#decode(collection, id, kv) as T,
      revision: Number(kv.mod_revision),
      createRevision: Number(kv.create_revision),
    };
  }

  #observe(revision: string): number {
    const n = Number(revision);
    if (n > this.#observed) this.#observed = n;
    return n;
  }

  #checkOpen(what: string): void {
    if (this.#closed) throw new UnavailableError(`${what}: the etcd store is closed`);
  }

  // --- reads ---------------------------------------------------------------------------------

  async get<C extends keyof S>(collection: C, id: string): Promise<Versioned<S[C]> | undefined> {
    this.#checkOpen("get");
    const key = this.#key(collection, id);
    let response: IRangeResponse;
    try {
      response = await this.#client.kv.range({ key });
    } catch (error) {
      throw storeError(error, `get ${String(collection)}/${id}`);
    }
    this.#observe(response.header.revision);
    const kv = response.kvs[0];
    return kv === undefined ? undefined : this.#versioned<S[C]>(String(collection), id, kv);
  }

  async list<C extends keyof S>(collection: C, options: ListOptions = {}): Promise<ListPage<S[C]>> {
    this.#checkOpen("list");
    const name = this.#checkCollection(collection);
    const base = this.#collectionPrefix(name);
    if (options.limit !== undefined && options.limit <= 0) {
      // etcd reads limit 0 as "no limit"; the port reads it as an empty page.
      return { items: [], revision: await this.revision() };
    }
    // `after` + "\0" is the smallest key strictly after it: etcd orders keys bytewise.
    const start =
      options.after === undefined
        ? base
        : Buffer.concat([base, Buffer.from(options.after), Buffer.from([0])]);
    let response: IRangeResponse;
    try {
      response = await this.#client.kv.range({
        key: start,
        range_end: prefixEnd(base),
        ...(options.limit === undefined ? {} : { limit: options.limit }),
      });
    } catch (error) {
      throw storeError(error, `list ${name}`);
    }
    const revision = this.#observe(response.header.revision);
    const items: Versioned<S[C]>[] = [];
    for (const kv of response.kvs) {
      const id = kv.key.subarray(base.length).toString("utf8");
      items.push(this.#versioned<S[C]>(name, id, kv));
    }
    const last = items[items.length - 1];
    return response.more && last !== undefined
      ? { items, next: last.id, revision }
      : { items, revision };
  }

  async revision(): Promise<number> {
    this.#checkOpen("revision");
    try {
      // A linearizable count of one key: the cheapest read that returns the current revision.
      const response = await this.#client.kv.range({
        key: Buffer.from(this.prefix),
        count_only: true,
      });
      return this.#observe(response.header.revision);
    } catch (error) {
      throw storeError(error, "revision");
    }
  }

  // --- writes --------------------------------------------------------------------------------

  async commit(ops: readonly WriteOp<S>[]): Promise<number> {
    this.#checkOpen("commit");
    if (ops.length === 0) return this.revision();
    const fences = this.#fence();
    const keys = ops.map((op) => this.#key(op.collection, op.id));
    // etcd refuses a transaction that writes a key twice ("duplicate key given in txn request");
    // say so in the port's terms rather than as an etcd failure.
    const distinct = new Set(keys.map((key) => key.toString("utf8")));
    if (distinct.size !== keys.length) {
      throw new InvalidArgumentError("ops", "a commit may write each object at most once");
    }
    const compare: ICompare[] = [];
    const onFailure: IRequestOp[] = [];
    for (const fence of fences) {
      const key = Buffer.from(fence.key);
      compare.push({
        key,
        target: "Create",
        result: "Equal",
        create_revision: fence.createRevision,
      });
      onFailure.push({ request_range: { key, keys_only: true } });
    }
    const conditioned: number[] = [];
    ops.forEach((op, i) => {
      if (op.expectRevision === undefined) return;
      const key = keys[i] as Buffer;
      // 0: the key must not exist (create revision 0); n: its last write was at n.
      compare.push(
        op.expectRevision === 0
          ? { key, target: "Create", result: "Equal", create_revision: 0 }
          : { key, target: "Mod", result: "Equal", mod_revision: op.expectRevision },
      );
      onFailure.push({ request_range: { key, keys_only: true } });
      conditioned.push(i);
    });
    const success: IRequestOp[] = ops.map((op, i) => {
      const key = keys[i] as Buffer;
      if (op.type === "delete") return { request_delete_range: { key } };
      const codec = this.#codecs.get(String(op.collection)) as ValueCodec<unknown>;
      let bytes: Uint8Array;
      try {
        bytes = codec.encode(op.value);
      } catch (error) {
        // A value the codec cannot represent is the caller's bug, caught before anything is sent.
        throw new InvalidArgumentError(
          `${String(op.collection)}/${op.id}`,
          "the value cannot be encoded",
          { cause: error },
        );
      }
      return {
        request_put: { key, value: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length) },
      };
    });

    let response: ITxnResponse;
    try {
      response = await this.#client.kv.txn({ compare, success, failure: onFailure });
    } catch (error) {
      throw storeError(error, "commit");
    }
    const revision = this.#observe(response.header.revision);
    if (response.succeeded) return revision;

    // The failure branch read every compared key at the revision the compares failed at.
    const current = (j: number): IKeyValue | undefined =>
      response.responses[j]?.response_range?.kvs[0];
    for (let j = 0; j < fences.length; j++) {
      const fence = fences[j] as StoreFence;
      const actual = Number(current(j)?.create_revision ?? 0);
      if (actual !== fence.createRevision) {
        throw new FencedError(fence.key, fence.createRevision, actual);
      }
    }
    for (let j = 0; j < conditioned.length; j++) {
      const op = ops[conditioned[j] as number] as WriteOp<S>;
      const kv = current(fences.length + j);
      const expected = op.expectRevision as number;
      const actual = kv === undefined ? 0 : Number(kv.mod_revision);
      if (expected === 0 ? kv !== undefined : actual !== expected) {
        throw new WriteConflictError(String(op.collection), op.id, expected, actual);
      }
    }
    throw new ConflictError(`commit: a condition failed at revision ${revision} but none differs`);
  }

  // --- watches -------------------------------------------------------------------------------

  /**
   * Like `Store.watch`, but etcd answers asynchronously: a `CompactedError` (or any later failure)
   * goes to `onError` (else the store's `onWatchError`), and `ready` says when etcd has accepted
   * the watch. Without `fromRevision` the watch starts after the newest revision this store has
   * seen (so this process's own later writes are never missed), or etcd's current one if none;
   * if that revision has been compacted, at the oldest one kept (never a `CompactedError`).
   */
  watch(
    options: WatchOptions<S>,
    listener: (event: StoreEvent<S>) => void,
    onError?: (error: LeaseBrokerError) => void,
  ): EtcdStoreWatch {
    this.#checkOpen("watch");
    const only =
      options.collections === undefined
        ? undefined
        : new Set(options.collections.map((c) => this.#checkCollection(c)));
    const from = options.fromRevision ?? (this.#observed > 0 ? this.#observed : undefined);
    const watch = new EtcdWatch<S>({
      client: this.#client,
      key: Buffer.from(this.prefix),
      from,
      implicitFrom: options.fromRevision === undefined,
      retryMs: this.#watchRetryMs,
      progressMs: this.#watchProgressMs,
      toEvent: (event) => this.#toEvent(event, only),
      listener,
      onListenerError: this.#onListenerError,
      onError: onError ?? this.#onWatchError,
      onClose: (w) => this.#watches.delete(w),
    });
    this.#watches.add(watch);
    watch.open();
    return watch;
  }

  /** etcd's event as the port's, or undefined for keys this watch does not want. */
  #toEvent(event: IEvent, only: ReadonlySet<string> | undefined): StoreEvent<S> | undefined {
    const parsed = this.#parseKey(event.kv.key);
    if (parsed === undefined || (only !== undefined && !only.has(parsed.collection))) {
      return undefined;
    }
    const { collection, id } = parsed;
    const revision = Number(event.kv.mod_revision);
    const previous =
      event.prev_kv === undefined || event.prev_kv === null
        ? undefined
        : this.#decode(collection, id, event.prev_kv);
    if (event.type === "Put") {
      const value = this.#decode(collection, id, event.kv);
      return { revision, collection, id, type: "put", value, previous } as StoreEvent<S>;
    }
    if (previous === undefined) {
      // etcd sends prev_kv for a delete unless that history is gone: nothing to report as value.
      throw new StoreDecodeError(collection, id, revision, {
        cause: new Error("delete event without the previous value"),
      });
    }
    return { revision, collection, id, type: "delete", value: previous, previous } as StoreEvent<S>;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const watch of [...this.#watches]) watch.close();
    if (this.#ownsClient) this.#client.close();
  }
}

/** Ids and collection names are one key segment: non-empty, no `/`. */
function validateSegment(field: "id" | "collection", value: string): void {
  if (value === "" || value.includes("/")) {
    throw new InvalidArgumentError(
      field,
      `must be non-empty and contain no "/": ${JSON.stringify(value)}`,
    );
  }
}

interface EtcdWatchInit<S> {
  client: Etcd3;
  key: Buffer;
  from: number | undefined;
  /** `from` is the store's newest seen revision, not the caller's: it may fall back to etcd's now. */
  implicitFrom: boolean;
  retryMs: number;
  progressMs: number;
  toEvent: (event: IEvent) => StoreEvent<S> | undefined;
  listener: (event: StoreEvent<S>) => void;
  onListenerError: (error: unknown) => void;
  onError: (error: LeaseBrokerError) => void;
  onClose: (watch: EtcdWatch<S>) => void;
}

/**
 * One etcd watch stream for one store watch (a stream per watch keeps resumption simple: nothing
 * is shared between watches that resume from different revisions).
 */
class EtcdWatch<S> implements EtcdStoreWatch {
  readonly ready: Promise<void>;
  readonly #init: EtcdWatchInit<S>;
  #resolveReady!: () => void;
  #rejectReady!: (error: unknown) => void;
  /** Everything up to here has been delivered (or skipped as not wanted). */
  #last: number | undefined;
  #stream: IDuplexStream<IWatchRequest, IWatchResponse> | undefined;
  #retryMs: number;
  #timer: NodeJS.Timeout | undefined;
  #progress: NodeJS.Timeout | undefined;
  /** etcd has created the watch on the current stream (progress requests make sense). */
  #created = false;
  #delivered = false;
  #closed = false;

  constructor(init: EtcdWatchInit<S>) {
    this.#init = init;
    this.#last = init.from;
    this.#retryMs = init.retryMs;
    this.ready = new Promise<void>((resolve, reject) => {
      this.#resolveReady = resolve;
      this.#rejectReady = reject;
    });
    // Marks the rejection handled: a caller that never awaits `ready` still hears via onError.
    this.ready.catch(() => {});
    if (init.progressMs > 0) {
      this.#progress = setInterval(() => {
        // etcd answers only once the watch has caught up: the answer is a safe resume point.
        if (this.#created) this.#stream?.write({ progress_request: {} });
      }, init.progressMs);
      this.#progress.unref();
    }
  }

  open(): void {
    if (this.#closed) return;
    this.#init.client.watchClient.watch().then(
      (stream) => {
        if (this.#closed) {
          stream.cancel();
          return;
        }
        this.#stream = stream;
        this.#created = false;
        stream.on("data", (response) => this.#onResponse(stream, response));
        stream.on("error", () => this.#reconnect(stream));
        stream.on("end", () => this.#reconnect(stream));
        stream.write({
          create_request: {
            key: this.#init.key,
            range_end: prefixEnd(this.#init.key),
            // Resume after the last delivered revision: no gap, and `#onResponse` drops repeats.
            ...(this.#last === undefined ? {} : { start_revision: this.#last + 1 }),
            prev_kv: true,
            progress_notify: true,
          },
        });
      },
      () => this.#reconnect(undefined),
    );
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#timer);
    clearInterval(this.#progress);
    this.#stream?.cancel();
    this.#stream = undefined;
    this.#init.onClose(this);
  }

  #reconnect(stream: IDuplexStream<IWatchRequest, IWatchResponse> | undefined): void {
    if (this.#closed || stream !== this.#stream) return; // an old stream's late error
    stream?.cancel();
    this.#stream = undefined;
    this.#created = false;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.open(), this.#retryMs);
    this.#retryMs = Math.min(this.#retryMs * 2, MAX_WATCH_RETRY_MS);
  }

  #fail(error: LeaseBrokerError): void {
    this.close();
    this.#rejectReady(error);
    this.#init.onError(error);
  }

  #onResponse(
    stream: IDuplexStream<IWatchRequest, IWatchResponse>,
    response: IWatchResponse,
  ): void {
    if (this.#closed || stream !== this.#stream) return;
    if (response.canceled) {
      const compacted = Number(response.compact_revision);
      if (compacted > 0 && this.#init.implicitFrom && !this.#delivered) {
        // "Now" was the store's last seen revision, and it is gone (a store idle for a long
        // time): nobody asked for that history. Resume at the oldest revision kept, not at
        // etcd's now: this process may already have written after watch() (and been told the
        // watch was ready), and that write must not be skipped. Some older events come too.
        this.#last = compacted - 1;
        this.#reconnect(stream);
      } else if (compacted > 0) {
        // The oldest revision etcd still has is the compaction revision itself.
        this.#fail(new CompactedError(this.#last ?? 0, compacted));
      } else {
        this.#fail(
          new InternalError(`etcd cancelled the watch: ${response.cancel_reason || "no reason"}`),
        );
      }
      return;
    }
    if (response.created) {
      // Without a start revision etcd watches from after its current one: that is "now".
      this.#last ??= Number(response.header.revision);
      this.#created = true;
      this.#retryMs = this.#init.retryMs;
      this.#resolveReady();
      return;
    }
    if (response.events.length === 0) {
      // A progress notification (asked for, or etcd's periodic one): every later event has a
      // higher revision than the header's.
      const progress = Number(response.header.revision);
      if (this.#last === undefined || progress > this.#last) this.#last = progress;
      return;
    }
    for (const event of response.events) {
      const revision = Number(event.kv.mod_revision);
      if (this.#last !== undefined && revision <= this.#last) continue; // replayed after a resume
      let mapped: StoreEvent<S> | undefined;
      try {
        mapped = this.#init.toEvent(event);
      } catch (error) {
        // Skip the event, keep watching: one bad value must not stall every cache.
        this.#init.onError(storeError(error, "watch"));
        mapped = undefined;
      }
      // A transaction's events share a revision and arrive in one response: advance per response
      // position, not per revision, so that the rest of the transaction is not skipped.
      if (mapped !== undefined) {
        this.#delivered = true;
        try {
          this.#init.listener(mapped);
        } catch (error) {
          this.#init.onListenerError(error);
        }
        if (this.#closed) return;
      }
    }
    const lastEvent = response.events[response.events.length - 1] as IEvent;
    this.#last = Math.max(this.#last ?? 0, Number(lastEvent.kv.mod_revision));
  }
}
