import type { HostRecord } from "../hosts/registry.js";
import type { Lease } from "../leases/model.js";
import type { Migration } from "../migrations/model.js";
import type { Store } from "./store.js";

export {
  EtcdStore,
  type EtcdStoreOptions,
  type EtcdStoreTls,
  type EtcdStoreWatch,
  FencedError,
  jsonCodec,
  prefixEnd,
  StoreDecodeError,
  type StoreFence,
  type ValueCodec,
} from "./etcd-store.js";
export { MemoryStore, type MemoryStoreOptions } from "./memory-store.js";
export {
  COLLECTIONS,
  type CollectionName,
  CompactedError,
  forEachObject,
  type ListOptions,
  type ListPage,
  type Store,
  type StoreEvent,
  type StoreWatch,
  type Versioned,
  type WatchOptions,
  WriteConflictError,
  type WriteOp,
} from "./store.js";

/** What the broker keeps in its Store. */
export interface BrokerSchema {
  leases: Lease;
  hosts: HostRecord;
  migrations: Migration;
}

export type BrokerStore = Store<BrokerSchema>;
export {
  BROKER_CODECS,
  storedHostCodec,
  storedLeaseCodec,
  storedMigrationCodec,
} from "./proto-codecs.js";
