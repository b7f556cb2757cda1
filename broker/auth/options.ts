/**
 * The broker's security flags (spread into BROKER_OPTIONS), the combinations they may not make
 * (exit 2), and what they load: TLS credentials and the tokens file.
 */
import type { ServerCredentials } from "@grpc/grpc-js";
import { ConfigError, type OptionSpecs } from "../../core/index.js";
import { serverCredentials } from "./tls.js";
import { type FileTokenSource, loadTokensFile } from "./tokens-file.js";

export const SECURITY_OPTIONS = {
  tlsCertFile: {
    type: "string",
    description: "serve gRPC over TLS with this certificate (PEM)",
    env: "LEASEBROKER_TLS_CERT_FILE",
  },
  tlsKeyFile: {
    type: "string",
    description: "the private key of --tls-cert-file (PEM)",
    env: "LEASEBROKER_TLS_KEY_FILE",
  },
  tlsClientCaFile: {
    type: "string",
    description: "mutual TLS: clients must present a certificate signed by this CA (PEM)",
    env: "LEASEBROKER_TLS_CLIENT_CA_FILE",
  },
  tokensFile: {
    type: "string",
    description: "bearer tokens, tenants, roles, quotas and rates (YAML); turns authentication on",
    env: "LEASEBROKER_TOKENS_FILE",
  },
  grpcMaxReceiveBytes: {
    type: "integer",
    description: "largest gRPC request accepted, in bytes (larger: RESOURCE_EXHAUSTED, unread)",
    env: "LEASEBROKER_GRPC_MAX_RECEIVE_BYTES",
    default: 1024 * 1024,
    min: 4096,
    max: 64 * 1024 * 1024,
  },
  insecure: {
    type: "boolean",
    description:
      "allow serving a non-loopback address without authentication, or tokens without TLS",
    env: "LEASEBROKER_INSECURE",
  },
} as const satisfies OptionSpecs;

export interface SecurityConfig {
  readonly grpcAddress: string;
  readonly tlsCertFile?: string;
  readonly tlsKeyFile?: string;
  readonly tlsClientCaFile?: string;
  readonly tokensFile?: string;
  readonly insecure: boolean;
}

/** 127.0.0.0/8, ::1 and localhost: only this machine can connect. */
export function isLoopback(address: string): boolean {
  const host = address.replace(/:\d+$/, "").replace(/^\[(.*)\]$/, "$1");
  return /^127\.\d+\.\d+\.\d+$/.test(host) || host === "::1" || host === "localhost";
}

/** The combinations no single flag can check; a problem is a ConfigError (exit 2). */
export function checkSecurity(c: SecurityConfig): void {
  if ((c.tlsCertFile === undefined) !== (c.tlsKeyFile === undefined)) {
    throw new ConfigError("--tls-cert-file and --tls-key-file go together: give both or neither");
  }
  const tls = c.tlsCertFile !== undefined;
  if (c.tlsClientCaFile !== undefined && !tls) {
    throw new ConfigError(
      "--tls-client-ca-file (mutual TLS) needs the server's own --tls-cert-file and --tls-key-file",
    );
  }
  if (isLoopback(c.grpcAddress) || c.insecure) return;
  if (c.tokensFile === undefined) {
    throw new ConfigError(
      `--grpc-address ${c.grpcAddress} is reachable from other machines but authentication is off: give --tokens-file (and TLS), or --insecure to serve it open anyway`,
    );
  }
  if (!tls) {
    throw new ConfigError(
      `--tokens-file on ${c.grpcAddress} without TLS would send bearer tokens in clear: give --tls-cert-file and --tls-key-file, or --insecure`,
    );
  }
}

export interface LoadedSecurity {
  readonly credentials?: ServerCredentials;
  readonly tokens?: FileTokenSource;
  /** One line for the banner: what protects the API. */
  readonly summary: string;
}

/** Reads the files the flags name; ConfigError (exit 2) when one is missing or wrong. */
export function loadSecurity(c: SecurityConfig): LoadedSecurity {
  const credentials =
    c.tlsCertFile === undefined || c.tlsKeyFile === undefined
      ? undefined
      : serverCredentials({
          certFile: c.tlsCertFile,
          keyFile: c.tlsKeyFile,
          ...(c.tlsClientCaFile === undefined ? {} : { clientCaFile: c.tlsClientCaFile }),
        });
  const tokens = c.tokensFile === undefined ? undefined : loadTokensFile(c.tokensFile);
  const transport =
    credentials === undefined
      ? "plaintext"
      : c.tlsClientCaFile === undefined
        ? "TLS"
        : "mutual TLS";
  const summary =
    tokens === undefined
      ? `authentication OFF: anyone who can connect may do anything (${transport}${isLoopback(c.grpcAddress) ? ", loopback only" : ", --insecure"})`
      : `authentication on: ${tokens.tokenCount} bearer tokens from ${c.tokensFile}; ${transport}; quotas and rates per tenant`;
  return {
    ...(credentials === undefined ? {} : { credentials }),
    ...(tokens === undefined ? {} : { tokens }),
    summary,
  };
}
