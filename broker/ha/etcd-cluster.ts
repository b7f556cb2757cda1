/**
 * `--store etcd`: the etcd store (protobuf values, every write fenced by this broker's election
 * key) and the leader election, sharing one etcd client.
 */
import { readFileSync } from "node:fs";
import { ConfigError, errorMessage, type Logger } from "../../core/index.js";
import type { BrokerHaOptions } from "../broker.js";
import { BROKER_CODECS, type BrokerSchema, EtcdStore } from "../store/index.js";
import { LeaderElection } from "./election.js";

export interface EtcdClusterOptions {
  readonly endpoints: readonly string[];
  readonly prefix: string;
  readonly caFile?: string | undefined;
  readonly certFile?: string | undefined;
  readonly keyFile?: string | undefined;
  readonly electionTtlMs: number;
  readonly advertiseAddress: string;
  readonly logger: Logger;
  /** Deadline of each etcd request. Default 3 s: a write to an unreachable etcd fails quickly. */
  readonly requestTimeoutMs?: number;
}

function readPem(flag: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (error) {
    throw new ConfigError(`${flag}: cannot read ${file}: ${errorMessage(error)}`);
  }
}

/** Throws ConfigError for an unreadable TLS file. Nothing connects until the first request. */
export function etcdCluster(options: EtcdClusterOptions): BrokerHaOptions {
  const tls =
    options.caFile === undefined
      ? undefined
      : {
          ca: readPem("--etcd-ca-file", options.caFile),
          ...(options.certFile === undefined
            ? {}
            : { cert: readPem("--etcd-cert-file", options.certFile) }),
          ...(options.keyFile === undefined
            ? {}
            : { key: readPem("--etcd-key-file", options.keyFile) }),
        };
  let election: LeaderElection | undefined;
  const store = new EtcdStore<BrokerSchema>({
    endpoints: options.endpoints,
    prefix: options.prefix,
    ...(tls === undefined ? {} : { tls }),
    codecs: BROKER_CODECS,
    collections: ["leases", "hosts", "migrations"],
    requestTimeoutMs: options.requestTimeoutMs ?? 3000,
    fence: () => election?.fence() ?? [],
    onWatchError: (error) => options.logger.warn({ err: error }, "etcd watch failed"),
  });
  election = new LeaderElection({
    client: store.client,
    prefix: store.prefix,
    value: options.advertiseAddress,
    ttlMs: options.electionTtlMs,
    logger: options.logger,
  });
  return { store, election, advertiseAddress: options.advertiseAddress };
}
