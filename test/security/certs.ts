/**
 * Real X.509 material for TLS tests, made by the openssl CLI in a temp dir: a CA, a server
 * certificate for 127.0.0.1/localhost, a client certificate signed by the CA, and a client
 * certificate from an unrelated CA (which mutual TLS must refuse). EC P-256 keys: fast to make.
 */
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { requireBinary } from "../helpers/index.js";

export const OPENSSL = { name: "openssl", envVar: "OPENSSL_BIN", debPackage: "openssl" } as const;

export interface TestPki {
  readonly dir: string;
  readonly caCert: string;
  readonly serverCert: string;
  readonly serverKey: string;
  readonly clientCert: string;
  readonly clientKey: string;
  /** Signed by another CA: not trusted by the server. */
  readonly rogueCert: string;
  readonly rogueKey: string;
}

export function makeTestPki(dir: string): TestPki {
  const openssl = requireBinary(OPENSSL);
  const run = (...args: string[]): void => {
    execFileSync(openssl, args, { cwd: dir, stdio: "pipe", timeout: 20_000 });
  };
  const key = (name: string): void =>
    run(
      "genpkey",
      "-algorithm",
      "EC",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-out",
      `${name}.key`,
    );
  const ca = (name: string): void => {
    key(name);
    run(
      "req",
      "-x509",
      "-new",
      "-key",
      `${name}.key`,
      "-out",
      `${name}.crt`,
      "-days",
      "2",
      "-subj",
      `/CN=${name}`,
    );
  };
  const leaf = (name: string, signer: string, ext: string): void => {
    key(name);
    run("req", "-new", "-key", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=${name}`);
    writeFileSync(join(dir, `${name}.ext`), ext);
    run(
      "x509",
      "-req",
      "-in",
      `${name}.csr`,
      "-CA",
      `${signer}.crt`,
      "-CAkey",
      `${signer}.key`,
      "-CAcreateserial",
      "-out",
      `${name}.crt`,
      "-days",
      "2",
      "-extfile",
      `${name}.ext`,
    );
  };
  ca("test-ca");
  ca("rogue-ca");
  leaf(
    "server",
    "test-ca",
    "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
  );
  leaf("client", "test-ca", "extendedKeyUsage=clientAuth\n");
  leaf("rogue", "rogue-ca", "extendedKeyUsage=clientAuth\n");
  const p = (f: string): string => join(dir, f);
  return {
    dir,
    caCert: p("test-ca.crt"),
    serverCert: p("server.crt"),
    serverKey: p("server.key"),
    clientCert: p("client.crt"),
    clientKey: p("client.key"),
    rogueCert: p("rogue.crt"),
    rogueKey: p("rogue.key"),
  };
}
