/**
 * The connection to the broker: one gRPC client per address, a deadline per call, leader
 * following (UNAVAILABLE with `lb-leader` → the same call once more against the leader), and
 * failures as `BrokerCallError`. Channel credentials are made in one place (`channelCredentials`)
 * so that TLS flags can be added there.
 */
import * as grpc from "@grpc/grpc-js";
import {
  type LeaseBrokerClient,
  type LeaseBrokerGrpcType,
  loadLeaseBrokerPackage,
} from "../../proto/index.js";
import { BrokerCallError } from "./errors.js";

export interface ConnectionOptions {
  /** host:port of the broker; several brokers comma-separated. */
  readonly address: string;
  /**
   * How long a call keeps trying while no broker answers it (a leader failing over, a broker
   * restarting): UNAVAILABLE is retried, on the leader a follower names, else on the next
   * address. Default 10 s with several addresses, else 0: no retries beyond following a named
   * leader once (a single unreachable broker fails fast).
   */
  readonly failoverMs?: number;
  /** Deadline of each unary call, in milliseconds. */
  readonly timeoutMs: number;
  /** Transport security: plaintext, or TLS (mutual with a client certificate and key). */
  readonly security: TransportSecurity;
  /** Sent as `authorization: Bearer <token>` with every call. */
  readonly token?: string;
  /** Where progress notes go (only used when verbose). */
  readonly note: (line: string) => void;
  readonly verbose: boolean;
  /** Aborting cancels the calls in flight. */
  readonly signal?: AbortSignal;
}

export type TransportSecurity =
  | { readonly kind: "insecure" }
  | {
      readonly kind: "tls";
      /** PEM of the CA to trust; undefined: the system's roots. */
      readonly ca?: Buffer;
      readonly cert?: Buffer;
      readonly key?: Buffer;
    };

/** The channel credentials for `security`. */
export function channelCredentials(security: TransportSecurity): grpc.ChannelCredentials {
  switch (security.kind) {
    case "insecure":
      return grpc.credentials.createInsecure();
    case "tls":
      return grpc.credentials.createSsl(
        security.ca ?? null,
        security.key ?? null,
        security.cert ?? null,
      );
  }
}

let grpcPackage: LeaseBrokerGrpcType | undefined;

function brokerPackage(): LeaseBrokerGrpcType {
  grpcPackage ??= loadLeaseBrokerPackage();
  return grpcPackage;
}

export function createLeaseBrokerClient(
  address: string,
  options: ConnectionOptions,
): LeaseBrokerClient {
  const Client = brokerPackage().leasebroker.v1.LeaseBroker;
  return new Client(address, channelCredentials(options.security));
}

export type UnaryInvoke<Res> = (
  client: LeaseBrokerClient,
  metadata: grpc.Metadata,
  options: grpc.CallOptions,
  callback: (error: grpc.ServiceError | null, value?: Res) => void,
) => grpc.ClientUnaryCall;

type StreamInvoke<Res> = (
  client: LeaseBrokerClient,
  metadata: grpc.Metadata,
  options: grpc.CallOptions,
) => grpc.ClientReadableStream<Res>;

/**
 * Calls that may run twice when retried after an UNAVAILABLE that names no leader (the first
 * attempt may have reached a leader that died before answering). ExtendLease by an amount is not
 * idempotent: it is retried only when a broker refused it (a follower naming the leader).
 */
const NOT_BLINDLY_RETRIED: ReadonlySet<string> = new Set(["ExtendLease"]);

export class BrokerConnection {
  readonly #options: ConnectionOptions;
  readonly #clients = new Map<string, LeaseBrokerClient>();
  readonly #addresses: readonly string[];
  #address: string;

  constructor(options: ConnectionOptions) {
    this.#options = options;
    this.#addresses = options.address
      .split(",")
      .map((a) => a.trim())
      .filter((a) => a !== "");
    this.#address = this.#addresses[0] ?? options.address;
  }

  /** Every call's metadata: the bearer token, when there is one. */
  #metadata(): grpc.Metadata {
    const metadata = new grpc.Metadata();
    const token = this.#options.token;
    if (token !== undefined && token !== "") metadata.set("authorization", `Bearer ${token}`);
    return metadata;
  }

  /** The address calls go to now (the leader's, once followed). */
  get address(): string {
    return this.#address;
  }

  get timeoutMs(): number {
    return this.#options.timeoutMs;
  }

  #client(address: string): LeaseBrokerClient {
    let client = this.#clients.get(address);
    if (client === undefined) {
      client = createLeaseBrokerClient(address, this.#options);
      this.#clients.set(address, client);
    }
    return client;
  }

  /**
   * Switches to the leader named by an UNAVAILABLE error, if it names another address. Returns
   * whether it did.
   */
  followLeader(error: BrokerCallError): boolean {
    if (error.code !== grpc.status.UNAVAILABLE || error.leader === undefined) return false;
    if (error.leader === this.#address) return false;
    if (this.#options.verbose) {
      this.#options.note(
        `${this.#address} is not the leader; following the leader at ${error.leader}`,
      );
    }
    this.#address = error.leader;
    return true;
  }

  #once<Res>(method: string, invoke: UnaryInvoke<Res>): Promise<Res> {
    const address = this.#address;
    const signal = this.#options.signal;
    return new Promise<Res>((resolve, reject) => {
      const deadline = new Date(Date.now() + this.#options.timeoutMs);
      const onAbort = (): void => call.cancel();
      const call = invoke(this.#client(address), this.#metadata(), { deadline }, (error, value) => {
        signal?.removeEventListener("abort", onAbort);
        if (error !== null) {
          reject(BrokerCallError.fromServiceError(error, address, method, this.#options.timeoutMs));
        } else if (value === undefined) {
          reject(new Error(`${method}: the broker answered without a message`));
        } else {
          resolve(value);
        }
      });
      if (signal?.aborted === true) call.cancel();
      else signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  /**
   * A unary call with the deadline. UNAVAILABLE is retried within `failoverMs`: on the leader a
   * follower names (at once the first time), else on the next address after a backoff.
   */
  async unary<Res>(method: string, invoke: UnaryInvoke<Res>): Promise<Res> {
    const budget =
      Date.now() + (this.#options.failoverMs ?? (this.#addresses.length > 1 ? 10_000 : 0));
    let delay = 100;
    let followed = false;
    for (;;) {
      try {
        return await this.#once(method, invoke);
      } catch (error) {
        if (!(error instanceof BrokerCallError) || error.code !== grpc.status.UNAVAILABLE) {
          throw error;
        }
        const moved = this.followLeader(error);
        if (moved && !followed) {
          followed = true;
          continue;
        }
        const refused = error.leader !== undefined || /taking over/.test(error.details);
        if (!refused && NOT_BLINDLY_RETRIED.has(method)) throw error;
        if (Date.now() + delay > budget || this.#options.signal?.aborted === true) throw error;
        if (!moved) this.#next();
        await new Promise((resolve) => setTimeout(resolve, delay));
        delay = Math.min(delay * 2, 1000);
      }
    }
  }

  /** The next configured address (round robin): the current one did not answer. */
  #next(): void {
    if (this.#addresses.length < 2) return;
    const i = this.#addresses.indexOf(this.#address);
    this.#address = this.#addresses[(i + 1) % this.#addresses.length] as string;
    if (this.#options.verbose) this.#options.note(`trying ${this.#address}`);
  }

  /** Starts a server stream (no deadline) against the current address. */
  stream<Res>(invoke: StreamInvoke<Res>): grpc.ClientReadableStream<Res> {
    return invoke(this.#client(this.#address), this.#metadata(), {});
  }

  /** Wraps a stream's error as a BrokerCallError for `method`. */
  streamError(error: grpc.ServiceError, method: string, address: string): BrokerCallError {
    return BrokerCallError.fromServiceError(error, address, method, this.#options.timeoutMs);
  }

  close(): void {
    for (const client of this.#clients.values()) client.close();
    this.#clients.clear();
  }
}
