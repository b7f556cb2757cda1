/**
 * The protobuf values of the etcd store (proto/leasebroker/v1/store.proto): `StoredLease`,
 * `StoredHost`, `StoredMigration`. The broker's domain objects map to them field for field, so a
 * value reads back exactly as it was written (the spec goes through the contract's LeaseSpec,
 * with absolute times only).
 */
import { createCodec, type LeaseEventType as ProtoLeaseEventType } from "../../proto/index.js";
import {
  resourcesFromProto,
  resourcesToProto,
  specFromProto,
  specToProto,
  stateFromProto,
  stateToProto,
} from "../api/convert.js";
import type { HostRecord } from "../hosts/registry.js";
import type { Lease, LeaseEventType, StopReason } from "../leases/model.js";
import {
  MIGRATION_REASONS,
  MIGRATION_STATES,
  type Migration,
  type MigrationReason,
  type MigrationState,
} from "../migrations/model.js";
import type { ValueCodec } from "./etcd-store.js";
import type { BrokerSchema } from "./index.js";

const leaseMessage = createCodec("leasebroker.v1.StoredLease");
const hostMessage = createCodec("leasebroker.v1.StoredHost");
const migrationMessage = createCodec("leasebroker.v1.StoredMigration");

const STOP_REASONS: readonly StopReason[] = ["end", "cancel", "preempt", "failure", "drain"];

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
      history: lease.history.map((h) => ({
        hostId: h.hostId,
        atMs: h.at,
        reason: h.reason,
        migrationId: h.migrationId ?? "",
      })),
      stopReason: lease.stopReason ?? "",
      stopDeadlineMs: lease.stopDeadline ?? 0,
      warned: lease.warned,
      lastEvent: `LEASE_EVENT_TYPE_${lease.lastEvent}`,
      migrationId: lease.migrationId ?? "",
      migrationTo: lease.migrationTo ?? "",
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
      history: m.history.map((h) => ({
        hostId: h.hostId,
        at: h.atMs,
        reason: h.reason,
        ...(h.migrationId === "" ? {} : { migrationId: h.migrationId }),
      })),
      ...(stopReason === undefined ? {} : { stopReason }),
      ...(m.stopDeadlineMs === 0 ? {} : { stopDeadline: m.stopDeadlineMs }),
      warned: m.warned,
      lastEvent: eventFrom(m.lastEvent),
      ...(m.migrationId === "" ? {} : { migrationId: m.migrationId }),
      ...(m.migrationTo === "" ? {} : { migrationTo: m.migrationTo }),
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

function oneOf<T extends string>(values: readonly T[], value: string, what: string): T {
  const found = values.find((v) => v === value);
  if (found === undefined) throw new Error(`unknown ${what} ${JSON.stringify(value)}`);
  return found;
}

export const storedMigrationCodec: ValueCodec<Migration> = {
  encode: (m) =>
    migrationMessage.encode({
      id: m.id,
      leaseId: m.leaseId,
      fromHostId: m.fromHostId,
      toHostId: m.toHostId,
      state: m.state,
      reason: m.reason,
      createdAtMs: m.createdAt,
      startedAtMs: m.startedAt,
      endedAtMs: m.endedAt,
      ...(m.progress === undefined
        ? {}
        : {
            progress: {
              bytesTransferred: m.progress.bytesTransferred,
              bytesRemaining: m.progress.bytesRemaining,
              rounds: m.progress.rounds,
              dirtyRateBytesPerS: m.progress.dirtyRateBytesPerS,
              bandwidthBytesPerS: m.progress.bandwidthBytesPerS,
              expectedDowntimeMs: m.progress.expectedDowntimeMs,
              timeMs: m.progress.time,
            },
          }),
      downtimeMs: m.downtimeMs ?? -1,
      totalTimeMs: m.totalTimeMs ?? 0,
      abortReason: m.abortReason,
      abortedByRequest: m.abortedByRequest ?? false,
      bandwidthLimitBytesPerS: m.bandwidthLimitBytesPerS,
      maxDowntimeMs: m.maxDowntimeMs,
      autoConverge: m.autoConverge,
      postCopy: m.postCopy,
      resources: resourcesToProto(m.resources),
    }),
  decode: (bytes) => {
    const m = migrationMessage.decode(bytes);
    const p = m.progress;
    return {
      id: m.id,
      leaseId: m.leaseId,
      fromHostId: m.fromHostId,
      toHostId: m.toHostId,
      state: oneOf<MigrationState>(MIGRATION_STATES, m.state, "migration state"),
      reason: oneOf<MigrationReason>(MIGRATION_REASONS, m.reason, "migration reason"),
      createdAt: m.createdAtMs,
      startedAt: m.startedAtMs,
      endedAt: m.endedAtMs,
      ...(p === null
        ? {}
        : {
            progress: {
              bytesTransferred: p.bytesTransferred,
              bytesRemaining: p.bytesRemaining,
              rounds: p.rounds,
              dirtyRateBytesPerS: p.dirtyRateBytesPerS,
              bandwidthBytesPerS: p.bandwidthBytesPerS,
              expectedDowntimeMs: p.expectedDowntimeMs,
              time: p.timeMs,
            },
          }),
      ...(m.downtimeMs < 0 ? {} : { downtimeMs: m.downtimeMs }),
      ...(m.totalTimeMs > 0 ? { totalTimeMs: m.totalTimeMs } : {}),
      abortReason: m.abortReason,
      ...(m.abortedByRequest ? { abortedByRequest: true } : {}),
      bandwidthLimitBytesPerS: m.bandwidthLimitBytesPerS,
      maxDowntimeMs: m.maxDowntimeMs,
      autoConverge: m.autoConverge,
      postCopy: m.postCopy,
      resources: resourcesFromProto(m.resources),
    };
  },
};

/** The codecs of the broker's collections, for `EtcdStore`'s `codecs` option. */
export const BROKER_CODECS: { readonly [C in keyof BrokerSchema]: ValueCodec<BrokerSchema[C]> } = {
  leases: storedLeaseCodec,
  hosts: storedHostCodec,
  migrations: storedMigrationCodec,
};
