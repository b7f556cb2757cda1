/** leasectl's transport security from its flags: --tls-ca, and --tls-cert with --tls-key for mutual TLS. */
import { readFileSync } from "node:fs";
import { ConfigError, errorMessage } from "../../core/index.js";
import type { TransportSecurity } from "./client.js";

function readPem(flag: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    throw new ConfigError(`${flag} ${path}: cannot read it: ${errorMessage(error)}`, {
      cause: error,
    });
  }
}

export function transportSecurity(flags: {
  readonly tlsCa?: string;
  readonly tlsCert?: string;
  readonly tlsKey?: string;
}): TransportSecurity {
  if ((flags.tlsCert === undefined) !== (flags.tlsKey === undefined)) {
    throw new ConfigError("--tls-cert and --tls-key go together: give both or neither");
  }
  if (flags.tlsCa === undefined && flags.tlsCert === undefined) return { kind: "insecure" };
  return {
    kind: "tls",
    ...(flags.tlsCa === undefined ? {} : { ca: readPem("--tls-ca", flags.tlsCa) }),
    ...(flags.tlsCert === undefined ? {} : { cert: readPem("--tls-cert", flags.tlsCert) }),
    ...(flags.tlsKey === undefined ? {} : { key: readPem("--tls-key", flags.tlsKey) }),
  };
}
