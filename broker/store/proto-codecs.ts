/**
 * The protobuf values of the etcd store (proto/leasebroker/v1/store.proto): `StoredLease`,
 * `StoredHost`, `StoredMigration`. The broker's domain objects map to them field for field, so a
 * value reads back exactly as it was written (the spec goes through the contract's LeaseSpec,
 * with absolute times only).
 */
import { createCodec, type LeaseEventType as ProtoLeaseEventType } from "../../proto/index.js";
import { specFromProto, specToProto, stateFromProto, stateToProto } from "../api/convert.js";
import type { HostRecord } from "../hosts/registry.js";
import type { Lease, LeaseEventType, StopReason } from "../leases/model.js";
import type { ValueCodec } from "./etcd-store.js";
import type { BrokerSchema, MigrationRecord } from "./index.js";

const leaseMessage = createCodec("leasebroker.v1.StoredLease");
const hostMessage = createCodec("leasebroker.v1.StoredHost");
const migrationMessage = createCodec("leasebroker.v1.StoredMigration");

const STOP_REASONS: readonly StopReason[] = ["end", "cancel", "preempt", "failure"];

function stopReasonFrom(value: string): StopReason | undefined {
  if (value === "") return undefined;
  const reason = STOP_REASONS.find((r) => r === value);
  if (reason === undefined) throw new Error(`unknown stop reason ${JSON.stringify(value)}`);
  return reason;
}

function eventFrom(value: ProtoLeaseEventType): LeaseEventType {
  if (value === "LEASE_EVENT_TYPE_UNSPECIFIED" || value === "LEASE_EVENT_TYPE_PLACED") {
    throw new Error(`unexpected last event ${value}`);
  }
  return value.replace(/^LEASE_EVENT_TYPE_/, "") as LeaseEventType;
}

export const storedLeaseCodec: ValueCodec<Lease> = {
  encode: (lease) =>
    leaseMessage.encode({
      id: lease.id,
      spec: specToProto(lease.spec),
      state: stateToProto(lease.state),
      hostId: lease.hostId,
      startMs: lease.start,
      endMs: lease.end,
      requestId: lease.requestId,
      createdAtMs: lease.createdAt,
      updatedAtMs: lease.updatedAt,
      statusMessage: lease.statusMessage,
      history: lease.history.map((h) => ({ hostId: h.hostId, atMs: h.at, reason: h.reason })),
      stopReason: lease.stopReason ?? "",
      stopDeadlineMs: lease.stopDeadline ?? 0,
      warned: lease.warned,
      lastEvent: `LEASE_EVENT_TYPE_${lease.lastEvent}`,
    }),
  decode: (bytes) => {
    const m = leaseMessage.decode(bytes);
    const stopReason = stopReasonFrom(m.stopReason);
    return {
      id: m.id,
      // Stored specs always carry every time, so `now` never fills one in.
      spec: specFromProto(m.spec, 0),
      state: m.state === "LEASE_STATE_UNSPECIFIED" ? "NEW" : stateFromProto(m.state, "state"),
      hostId: m.hostId,
      start: m.startMs,
      end: m.endMs,
      requestId: m.requestId,
      createdAt: m.createdAtMs,
      updatedAt: m.updatedAtMs,
      statusMessage: m.statusMessage,
      history: m.history.map((h) => ({ hostId: h.hostId, at: h.atMs, reason: h.reason })),
      ...(stopReason === undefined ? {} : { stopReason }),
      ...(m.stopDeadlineMs === 0 ? {} : { stopDeadline: m.stopDeadlineMs }),
      warned: m.warned,
      lastEvent: eventFrom(m.lastEvent),
    };
  },
};

export const storedHostCodec: ValueCodec<HostRecord> = {
  encode: (host) =>
    hostMessage.encode({
      id: host.id,
      cordoned: host.cordoned,
      reason: host.reason ?? "",
      drainDeadlineMs: host.drainDeadline ?? 0,
      updatedAtMs: host.updatedAt,
    }),
  decode: (bytes) => {
    const m = hostMessage.decode(bytes);
    return {
      id: m.id,
      cordoned: m.cordoned,
      ...(m.reason === "" ? {} : { reason: m.reason }),
      ...(m.drainDeadlineMs === 0 ? {} : { drainDeadline: m.drainDeadlineMs }),
      updatedAt: m.updatedAtMs,
    };
  },
};

export const storedMigrationCodec: ValueCodec<MigrationRecord> = {
  encode: (migration) => migrationMessage.encode({ id: migration.id, leaseId: migration.leaseId }),
  decode: (bytes) => {
    const m = migrationMessage.decode(bytes);
    return { id: m.id, leaseId: m.leaseId };
  },
};

/** The codecs of the broker's collections, for `EtcdStore`'s `codecs` option. */
export const BROKER_CODECS: { readonly [C in keyof BrokerSchema]: ValueCodec<BrokerSchema[C]> } = {
  leases: storedLeaseCodec,
  hosts: storedHostCodec,
  migrations: storedMigrationCodec,
};
