/**
 * The agents' hot messages, read straight from their bytes: a heartbeat from every host every
 * second, and a workload event per lease start or stop. The generic codec built protobufjs
 * objects, then converted and checked them (~5% of the broker at 2,000 leases/s, and garbage).
 *
 * Each reader takes only the simple, well-formed case and answers undefined for anything else
 * (an unknown field, a migration's progress, a stop's exit details, a field twice that is a
 * message, ...): the caller then decodes with the generic codec, which accepts what it accepts
 * and counts the rest as dropped. When a reader answers, the generic codec would have decoded the
 * same values (agent-wire.test.ts checks it on random and damaged messages).
 */
import { WIRE_LDELIM, WIRE_VARINT, WireReader } from "../../proto/index.js";

/** The fields of a Heartbeat the broker uses. */
export interface BeatFields {
  readonly hostId: string;
  readonly bootId: string;
  readonly sequence: number;
  readonly leaseIds: string[];
}

/** The fields of an AgentEvent about a workload that the broker uses. */
export interface WorkloadEventFields {
  readonly hostId: string;
  readonly kind: "workload";
  readonly workload: {
    readonly leaseId: string;
    readonly state: string;
    readonly message: string;
    readonly migrationId: string;
  };
}

const WORKLOAD_STATES = [
  "WORKLOAD_STATE_UNSPECIFIED",
  "WORKLOAD_STATE_STARTING",
  "WORKLOAD_STATE_RUNNING",
  "WORKLOAD_STATE_STOPPING",
  "WORKLOAD_STATE_STOPPED",
  "WORKLOAD_STATE_FAILED",
  "WORKLOAD_STATE_SUSPENDING",
  "WORKLOAD_STATE_SUSPENDED",
] as const;

const tag = (field: number, wire: number): number => (field << 3) | wire;

/**
 * Reads a message from an agent: host_id 1, sequence 2 and time 3 (a Timestamp) as Heartbeat and
 * AgentEvent both have them; every other field goes to `field`, which must read it or fail.
 */
function readFromHost(
  r: WireReader,
  field: (tag: number) => void,
): { hostId: string; sequence: number } {
  let hostId = "";
  let sequence = 0;
  // A message field twice is merged by protobuf, replaced by protobufjs: not read here.
  let time = false;
  while (r.more) {
    const t = r.tag();
    if (t === tag(1, WIRE_LDELIM)) hostId = r.string();
    else if (t === tag(2, WIRE_VARINT)) sequence = r.varint();
    else if (t === tag(3, WIRE_LDELIM)) {
      if (time) r.fail();
      r.timestamp();
      time = true;
    } else field(t);
  }
  return { hostId, sequence };
}

/** Heartbeat: (see readFromHost), usage 4 (Resources), lease_ids 5, boot_id 6, seen_epoch 7. */
export function readHeartbeat(bytes: Uint8Array, maxBytes: number): BeatFields | undefined {
  if (bytes.length > maxBytes) return undefined;
  const r = new WireReader(bytes);
  let bootId = "";
  const leaseIds: string[] = [];
  let usage = false;
  const { hostId, sequence } = readFromHost(r, (t) => {
    if (t === tag(4, WIRE_LDELIM)) {
      if (usage) r.fail();
      r.int64s(4);
      usage = true;
    } else if (t === tag(5, WIRE_LDELIM)) leaseIds.push(r.string());
    else if (t === tag(6, WIRE_LDELIM)) bootId = r.string();
    else if (t === tag(7, WIRE_VARINT)) r.varint();
    else r.fail();
  });
  return r.failed ? undefined : { hostId, bootId, sequence, leaseIds };
}

/**
 * AgentEvent (see readFromHost; boot_id 4) whose kind is a WorkloadEvent (5: lease_id 1, state
 * 2, message 3, migration_id 5; no exit details, 4).
 */
export function readWorkloadEvent(
  bytes: Uint8Array,
  maxBytes: number,
): WorkloadEventFields | undefined {
  if (bytes.length > maxBytes) return undefined;
  const r = new WireReader(bytes);
  let workload: WorkloadEventFields["workload"] | undefined;
  const { hostId } = readFromHost(r, (t) => {
    if (t === tag(4, WIRE_LDELIM)) r.string();
    else if (t === tag(5, WIRE_LDELIM) && workload === undefined) {
      const nested = r.message();
      workload = readWorkload(nested);
      if (nested.failed) r.fail();
    } else r.fail();
  });
  return r.failed || workload === undefined ? undefined : { hostId, kind: "workload", workload };
}

function readWorkload(r: WireReader): WorkloadEventFields["workload"] {
  let leaseId = "";
  let state: string = WORKLOAD_STATES[0];
  let message = "";
  let migrationId = "";
  while (r.more) {
    switch (r.tag()) {
      case tag(1, WIRE_LDELIM):
        leaseId = r.string();
        break;
      case tag(2, WIRE_VARINT): {
        const name = WORKLOAD_STATES[r.varint()];
        if (name === undefined) r.fail();
        else state = name;
        break;
      }
      case tag(3, WIRE_LDELIM):
        message = r.string();
        break;
      case tag(5, WIRE_LDELIM):
        migrationId = r.string();
        break;
      default:
        r.fail();
    }
  }
  return { leaseId, state, message, migrationId };
}
