/**
 * Hand-written encoders of the agent's hot messages: heartbeats (every host, every second),
 * workload events and command replies (each lease's start is one reply and two events). The
 * checked generic codec builds a protobufjs object tree of each message after checking it field by
 * field: in bench:e2e's agent host (1,000 agents) that was ~12% of the process's CPU, and garbage.
 * Inputs here are the agent's own typed values, so there is nothing to check; what a receiver
 * decodes is the same message (the tests decode both encodings with the codec). Hello and
 * migration progress, rare, stay on the codec.
 */
import {
  type CommandError,
  encodeWith,
  fieldNumber,
  protobufRoot,
  type WorkloadState as WorkloadStateName,
  writeTimestamp,
} from "../proto/index.js";
import type { ExitInfo, ResourceVector, SuspendImage } from "./driver.js";

const root = protobufRoot();

/** Field numbers by name, from the .proto files: a renumbered field cannot go unnoticed. */
function fields<const K extends string>(type: string, names: readonly K[]): Record<K, number> {
  const out = {} as Record<K, number>;
  for (const name of names) out[name] = fieldNumber(type, name);
  return out;
}

const HEARTBEAT = fields("Heartbeat", [
  "hostId",
  "sequence",
  "time",
  "usage",
  "leaseIds",
  "bootId",
  "seenEpoch",
]);
const EVENT = fields("AgentEvent", ["hostId", "sequence", "time", "bootId", "workload"]);
const WORKLOAD = fields("WorkloadEvent", ["leaseId", "state", "message", "exit", "migrationId"]);
const EXIT = fields("ExitDetails", ["exitCode", "signal", "forced", "guestInitiated"]);
const REPLY = fields("CommandReply", [
  "idempotencyKey",
  "ok",
  "error",
  "errorMessage",
  "duplicate",
  "incomingAddress",
  "incomingPort",
  "seenEpoch",
  "suspendImage",
]);
const IMAGE = fields("SuspendImage", ["address", "port", "token", "sizeBytes", "sha256"]);
const RESOURCES = fields("Resources", ["cpuMillis", "memoryMib", "diskGib", "gpus"]);

const workloadStates = root.lookupEnum("leasebroker.v1.WorkloadState").values;
const commandErrors = root.lookupEnum("leasebroker.v1.CommandError").values;

function enumNumber(values: Readonly<Record<string, number>>, name: string): number {
  const n = values[name];
  if (n === undefined) throw new RangeError(`unknown enum value ${name}`);
  return n;
}

export interface HeartbeatFields {
  readonly hostId: string;
  readonly sequence: number;
  readonly timeMs: number;
  readonly usage: ResourceVector;
  /** Sorted. */
  readonly leaseIds: readonly string[];
  readonly bootId: string;
  readonly seenEpoch: number;
}

export function encodeHeartbeat(beat: HeartbeatFields): Uint8Array {
  return encodeWith((w) => {
    w.string(HEARTBEAT.hostId, beat.hostId).int(HEARTBEAT.sequence, beat.sequence);
    writeTimestamp(w, HEARTBEAT.time, beat.timeMs);
    const u = beat.usage;
    w.begin(HEARTBEAT.usage)
      .int(RESOURCES.cpuMillis, Math.round(u.cpuMillis))
      .int(RESOURCES.memoryMib, Math.round(u.memoryMib))
      .int(RESOURCES.diskGib, Math.round(u.diskGib))
      .int(RESOURCES.gpus, Math.round(u.gpus))
      .end();
    for (const id of beat.leaseIds) w.string(HEARTBEAT.leaseIds, id);
    w.string(HEARTBEAT.bootId, beat.bootId).int(HEARTBEAT.seenEpoch, beat.seenEpoch);
  });
}

/** The envelope of an AgentEvent. */
export interface EventHeader {
  readonly hostId: string;
  readonly sequence: number;
  readonly timeMs: number;
  readonly bootId: string;
}

export interface WorkloadEventFields {
  readonly leaseId: string;
  readonly state: WorkloadStateName;
  readonly message: string;
  readonly exit: ExitInfo | null;
  readonly migrationId: string;
}

/** An AgentEvent of kind `workload`. */
export function encodeWorkloadEvent(header: EventHeader, event: WorkloadEventFields): Uint8Array {
  return encodeWith((w) => {
    w.string(EVENT.hostId, header.hostId).int(EVENT.sequence, header.sequence);
    writeTimestamp(w, EVENT.time, header.timeMs);
    w.string(EVENT.bootId, header.bootId)
      .begin(EVENT.workload)
      .string(WORKLOAD.leaseId, event.leaseId)
      .int(WORKLOAD.state, enumNumber(workloadStates, event.state))
      .string(WORKLOAD.message, event.message);
    const exit = event.exit;
    if (exit !== null) {
      w.begin(WORKLOAD.exit)
        .int(EXIT.exitCode, exit.exitCode)
        .string(EXIT.signal, exit.signal)
        .bool(EXIT.forced, exit.forced)
        .bool(EXIT.guestInitiated, exit.guestInitiated)
        .end();
    }
    w.string(WORKLOAD.migrationId, event.migrationId).end();
  });
}

export interface CommandReplyFields {
  readonly idempotencyKey: string;
  readonly ok: boolean;
  readonly error: CommandError;
  readonly errorMessage: string;
  readonly duplicate: boolean;
  readonly incomingAddress: string;
  readonly incomingPort: number;
  readonly suspendImage: SuspendImage | null;
  readonly seenEpoch: number;
}

export function encodeCommandReply(reply: CommandReplyFields): Uint8Array {
  return encodeWith((w) => {
    w.string(REPLY.idempotencyKey, reply.idempotencyKey)
      .bool(REPLY.ok, reply.ok)
      .int(REPLY.error, enumNumber(commandErrors, reply.error))
      .string(REPLY.errorMessage, reply.errorMessage)
      .bool(REPLY.duplicate, reply.duplicate)
      .string(REPLY.incomingAddress, reply.incomingAddress)
      .int(REPLY.incomingPort, reply.incomingPort)
      .int(REPLY.seenEpoch, reply.seenEpoch);
    const image = reply.suspendImage;
    if (image !== null) {
      w.begin(REPLY.suspendImage)
        .string(IMAGE.address, image.address)
        .int(IMAGE.port, image.port)
        .string(IMAGE.token, image.token)
        .int(IMAGE.sizeBytes, image.sizeBytes)
        .string(IMAGE.sha256, image.sha256)
        .end();
    }
  });
}
