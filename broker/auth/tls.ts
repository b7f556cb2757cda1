/** The gRPC server's transport security from PEM files: TLS, and mutual TLS with a client CA. */
import { readFileSync } from "node:fs";
import { createSecureContext } from "node:tls";
import { ServerCredentials } from "@grpc/grpc-js";
import { ConfigError, errorMessage } from "../../core/index.js";

export interface TlsFiles {
  readonly certFile: string;
  readonly keyFile: string;
  /** Set: clients must present a certificate signed by this CA (mutual TLS). */
  readonly clientCaFile?: string;
}

function readPem(flag: string, path: string): Buffer {
  let pem: Buffer;
  try {
    pem = readFileSync(path);
  } catch (error) {
    throw new ConfigError(`${flag} ${path}: cannot read it: ${errorMessage(error)}`, {
      cause: error,
    });
  }
  if (!pem.includes("-----BEGIN ")) throw new ConfigError(`${flag} ${path}: not a PEM file`);
  return pem;
}

export function serverCredentials(files: TlsFiles): ServerCredentials {
  const cert = readPem("--tls-cert-file", files.certFile);
  const key = readPem("--tls-key-file", files.keyFile);
  const ca =
    files.clientCaFile === undefined ? null : readPem("--tls-client-ca-file", files.clientCaFile);
  try {
    // Fails now, with a clear message, on a key that does not match its certificate.
    createSecureContext({ cert, key, ...(ca === null ? {} : { ca }) });
    return ServerCredentials.createSsl(ca, [{ cert_chain: cert, private_key: key }], ca !== null);
  } catch (error) {
    throw new ConfigError(`the TLS files do not make a server identity: ${errorMessage(error)}`, {
      cause: error,
    });
  }
}
