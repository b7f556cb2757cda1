/**
 * A load generator's LeaseBroker client that reads only what it measures. The generated client
 * turns every answer into whole objects (each lease with its spec, history and placement
 * explanation): at thousands of leases per second that cost the load generator more CPU than
 * the broker's own gRPC handling, on the same two cores. These calls send the same requests and
 * read the same answers, but decode only the fields named below, skipping the rest on the wire.
 * Requests are encoded once, before the load (`encodeSubmitLeaseRequest`): a SubmitLeases request
 * is its items' bytes, each framed as field `requests`, the same bytes as encoding it whole.
 */
import { type ChannelCredentials, Client, type Metadata, type ServiceError } from "@grpc/grpc-js";
import type { MethodDefinition } from "@grpc/proto-loader";
import protobuf from "protobufjs";
import {
  fieldNumber,
  LEASE_BROKER_SERVICE_NAME,
  type LeaseSpecInput,
  loadLeaseBrokerPackageDefinition,
  protobufRoot,
  type WatchLeasesRequestInput,
} from "../../proto/index.js";

/** One submission's outcome: the lease id, or the error message. */
export interface SubmitOutcome {
  readonly leaseId: string;
  readonly error: string;
  /** The lease's create_time, epoch ms (0 if absent): when the broker admitted it. */
  readonly createdMs: number;
}

/** What the load generator reads of a lease event. */
export interface LeanEvent {
  readonly leaseId: string;
  /** LeaseState's number (see `leaseStates`). */
  readonly state: number;
  /** The event's time stamp, epoch ms (0 if absent). */
  readonly timeMs: number;
}

const root = protobufRoot();
/** LeaseState by name → number. */
export const leaseStates: Readonly<Record<string, number>> = root.lookupEnum(
  "leasebroker.v1.LeaseState",
).values;

const F = {
  requests: fieldNumber("SubmitLeasesRequest", "requests"),
  results: fieldNumber("SubmitLeasesResponse", "results"),
  resultResponse: fieldNumber("SubmitLeaseResult", "response"),
  resultError: fieldNumber("SubmitLeaseResult", "error"),
  errorMessage: fieldNumber("SubmitLeaseError", "message"),
  responseLease: fieldNumber("SubmitLeaseResponse", "lease"),
  leaseId: fieldNumber("Lease", "id"),
  leaseState: fieldNumber("Lease", "state"),
  leaseCreateTime: fieldNumber("Lease", "createTime"),
  eventLease: fieldNumber("LeaseEvent", "lease"),
  eventTime: fieldNumber("LeaseEvent", "time"),
};
const LENGTH_DELIMITED = 2;

/** Visits the fields of the message that ends at `end`; `visit` returns false to skip one. */
function eachField(
  r: protobuf.Reader,
  end: number,
  visit: (field: number, wireType: number) => boolean,
): void {
  while (r.pos < end) {
    const tag = r.uint32();
    if (!visit(tag >>> 3, tag & 7)) r.skipType(tag & 7);
  }
}

/** The end of the length-delimited field the reader is at. */
const nested = (r: protobuf.Reader): number => {
  const length = r.uint32();
  return r.pos + length;
};

/** An int64 as a number (protobufjs reads a Long when long.js is there; its toString is slow). */
function longNumber(value: protobuf.Long | number): number {
  return typeof value === "number" ? value : value.high * 2 ** 32 + (value.low >>> 0);
}

/** A google.protobuf.Timestamp (seconds = 1, nanos = 2) that ends at `end`, as epoch ms. */
function timestampMs(r: protobuf.Reader, end: number): number {
  let seconds = 0;
  let nanos = 0;
  eachField(r, end, (f, w) => {
    if (w !== 0) return false;
    if (f === 1) seconds = longNumber(r.int64());
    else if (f === 2) nanos = r.int32();
    else return false;
    return true;
  });
  return seconds * 1000 + nanos / 1e6;
}

function leaseFields(
  r: protobuf.Reader,
  end: number,
): { id: string; state: number; createdMs: number } {
  let id = "";
  let state = 0;
  let createdMs = 0;
  eachField(r, end, (field, wire) => {
    if (field === F.leaseId && wire === LENGTH_DELIMITED) id = r.string();
    else if (field === F.leaseState && wire === 0) state = r.int32();
    else if (field === F.leaseCreateTime && wire === LENGTH_DELIMITED)
      createdMs = timestampMs(r, nested(r));
    else return false;
    return true;
  });
  return { id, state, createdMs };
}

/** The lease id and create time of a SubmitLeaseResponse. */
function responseLease(r: protobuf.Reader, end: number): { id: string; createdMs: number } {
  let lease = { id: "", createdMs: 0 };
  eachField(r, end, (field, wire) => {
    if (field !== F.responseLease || wire !== LENGTH_DELIMITED) return false;
    lease = leaseFields(r, nested(r));
    return true;
  });
  return lease;
}

function submitResult(r: protobuf.Reader, end: number): SubmitOutcome {
  let leaseId = "";
  let createdMs = 0;
  let error = "";
  eachField(r, end, (field, wire) => {
    if (wire !== LENGTH_DELIMITED) return false;
    if (field === F.resultResponse) ({ id: leaseId, createdMs } = responseLease(r, nested(r)));
    else if (field === F.resultError) {
      error = "the broker refused the submission";
      eachField(r, nested(r), (f, w) => {
        if (f !== F.errorMessage || w !== LENGTH_DELIMITED) return false;
        error = r.string();
        return true;
      });
    } else return false;
    return true;
  });
  return { leaseId, error, createdMs };
}

export function decodeSubmitLeases(bytes: Buffer): SubmitOutcome[] {
  const r = protobuf.Reader.create(bytes);
  const out: SubmitOutcome[] = [];
  eachField(r, bytes.length, (field, wire) => {
    if (field !== F.results || wire !== LENGTH_DELIMITED) return false;
    out.push(submitResult(r, nested(r)));
    return true;
  });
  return out;
}

export function decodeSubmitLease(bytes: Buffer): SubmitOutcome {
  const r = protobuf.Reader.create(bytes);
  const { id, createdMs } = responseLease(r, bytes.length);
  return { leaseId: id, error: "", createdMs };
}

export function decodeLeaseEvent(bytes: Buffer): LeanEvent {
  const r = protobuf.Reader.create(bytes);
  let lease = { id: "", state: 0 };
  let timeMs = 0;
  eachField(r, bytes.length, (field, wire) => {
    if (wire !== LENGTH_DELIMITED) return false;
    if (field === F.eventLease) lease = leaseFields(r, nested(r));
    else if (field === F.eventTime) timeMs = timestampMs(r, nested(r));
    else return false;
    return true;
  });
  return { leaseId: lease.id, state: lease.state, timeMs };
}

const service = loadLeaseBrokerPackageDefinition()[LEASE_BROKER_SERVICE_NAME] as Record<
  string,
  MethodDefinition<object, object>
>;

function method(name: string): MethodDefinition<object, object> {
  const m = service[name];
  if (m === undefined) throw new Error(`no method ${name}`);
  return m;
}

/** A SubmitLeaseRequest's bytes: one `SubmitLease` call, or one item of a `SubmitLeases` call. */
export function encodeSubmitLeaseRequest(spec: LeaseSpecInput): Buffer {
  return method("SubmitLease").requestSerialize({ spec });
}

/** A SubmitLeasesRequest of encoded SubmitLeaseRequests. */
export function encodeSubmitLeasesRequest(requests: readonly Uint8Array[]): Buffer {
  const w = protobuf.Writer.create();
  for (const request of requests) w.uint32((F.requests << 3) | LENGTH_DELIMITED).bytes(request);
  const bytes = w.finish();
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
}

const asIs = (bytes: Buffer): Buffer => bytes;

export class LeanClient {
  readonly #client: Client;

  constructor(address: string, channel: ChannelCredentials, options: Record<string, number>) {
    this.#client = new Client(address, channel, options);
  }

  #unary<T>(
    name: string,
    request: Buffer,
    decode: (bytes: Buffer) => T,
    metadata: Metadata,
    deadline: Date,
  ): Promise<T> {
    const m = method(name);
    return new Promise((resolve, reject) => {
      this.#client.makeUnaryRequest(
        m.path,
        asIs,
        decode,
        request,
        metadata,
        { deadline },
        (error: ServiceError | null, value?: T) => {
          if (error !== null) reject(error);
          else if (value === undefined) reject(new Error("empty response"));
          else resolve(value);
        },
      );
    });
  }

  /** `requests`: SubmitLeaseRequests from `encodeSubmitLeaseRequest`. */
  submitLeases(
    requests: readonly Uint8Array[],
    metadata: Metadata,
    deadline: Date,
  ): Promise<SubmitOutcome[]> {
    const request = encodeSubmitLeasesRequest(requests);
    return this.#unary("SubmitLeases", request, decodeSubmitLeases, metadata, deadline);
  }

  /** `request`: a SubmitLeaseRequest from `encodeSubmitLeaseRequest`. */
  submitLease(request: Buffer, metadata: Metadata, deadline: Date): Promise<SubmitOutcome> {
    return this.#unary("SubmitLease", request, decodeSubmitLease, metadata, deadline);
  }

  watchLeases(request: WatchLeasesRequestInput, metadata: Metadata) {
    const m = method("WatchLeases");
    return this.#client.makeServerStreamRequest(
      m.path,
      m.requestSerialize,
      decodeLeaseEvent,
      request,
      metadata,
      {},
    );
  }

  close(): void {
    this.#client.close();
  }
}
