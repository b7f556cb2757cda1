/**
 * The `leasebroker` and `leasectl` bins as processes: the security flags' bad combinations exit 2;
 * the zero-configuration broker says authentication is off; a broker with mutual TLS and a tokens
 * file serves leasectl with --token/--tls-* flags, or the same from LEASEBROKER_* variables.
 */
import { execFile } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { REPO_ROOT } from "../agent/agent-process.js";
import { BrokerApi } from "../broker/harness.js";
import { BROKER_MAIN } from "../cluster/cluster-processes.js";
import { freePort, makeTempDir, removeDir, spawnManaged } from "../helpers/index.js";
import { makeTestPki, type TestPki } from "./certs.js";

const LEASECTL = join(REPO_ROOT, "dist", "broker", "cli", "main.js");
const ALICE = "alice-token-0123456789";
const BOB = "bob-token-0123456789ab";

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a bin to its end (bounded), with only PATH and HOME from this environment. */
function run(script: string, args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [script, ...args],
      {
        timeout: 30_000,
        env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", ...env },
      },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === "number" ? error.code : -1;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

let dir: string;
let pki: TestPki;
let tokensFile: string;

beforeAll(async () => {
  dir = await makeTempDir("security-procs");
  pki = makeTestPki(dir);
  tokensFile = join(dir, "tokens.yaml");
  writeFileSync(
    tokensFile,
    `tokens:\n  - { name: alice, tenant: team-a, token: ${ALICE} }\n  - { name: bob, tenant: team-b, token: ${BOB} }\n`,
  );
});

afterAll(async () => {
  if (dir !== undefined) await removeDir(dir);
});

describe("leasebroker security flags", () => {
  it.each([
    [["--tls-cert-file", "x.pem"], "--tls-cert-file and --tls-key-file go together"],
    [["--tls-client-ca-file", "ca.pem"], "--tls-client-ca-file (mutual TLS) needs"],
    [["--grpc-address", "0.0.0.0:0"], "authentication is off"],
    [
      ["--grpc-address", "0.0.0.0:0", "--http-address", "127.0.0.1:0", "--tokens-file", "t.yaml"],
      "bearer tokens in clear",
    ],
    [["--tokens-file", "/nonexistent/tokens.yaml"], "cannot read it"],
    [
      ["--tls-cert-file", "/nonexistent/c.pem", "--tls-key-file", "/nonexistent/k.pem"],
      "cannot read it",
    ],
  ])("exits 2 on %j", async (args, message) => {
    const result = await run(BROKER_MAIN, args);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(message);
  });

  it("exits 2 on a key that does not match the certificate, and on a bad tokens file", async () => {
    const mismatch = await run(BROKER_MAIN, [
      "--tls-cert-file",
      pki.serverCert,
      "--tls-key-file",
      pki.clientKey,
    ]);
    expect(mismatch.code).toBe(2);
    expect(mismatch.stderr).toContain("TLS files");
    const bad = join(dir, "bad.yaml");
    writeFileSync(bad, "tokens:\n  - { tenant: team-a, token: short }\n");
    const result = await run(BROKER_MAIN, ["--tokens-file", bad]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("tokens[0].token: at least 16 characters");
  });

  it("the zero-configuration broker serves on loopback and says authentication is off", async () => {
    const port = await freePort();
    const proc = await spawnManaged(
      process.execPath,
      [
        BROKER_MAIN,
        "--grpc-address",
        `127.0.0.1:${port}`,
        "--http-address",
        "127.0.0.1:0",
        "--sim-hosts",
        "1",
      ],
      { name: "broker-open", readyWhen: /Stop with Ctrl-C/, readyTimeoutMs: 20_000 },
    );
    try {
      expect(proc.output()).toMatch(
        /security\s+authentication OFF: anyone who can connect may do anything \(plaintext, loopback only\)/,
      );
    } finally {
      await proc.stop();
    }
  });

  it("refuses a request over --grpc-max-receive-bytes unread, and serves the next", async () => {
    const port = await freePort();
    const proc = await spawnManaged(
      process.execPath,
      [
        BROKER_MAIN,
        "--grpc-address",
        `127.0.0.1:${port}`,
        "--http-address",
        "127.0.0.1:0",
        "--grpc-max-receive-bytes",
        "4096",
      ],
      { name: "broker-small", readyWhen: /Stop with Ctrl-C/, readyTimeoutMs: 20_000 },
    );
    const api = new BrokerApi(`127.0.0.1:${port}`);
    try {
      const big = await api.submit({ spec: { name: "x".repeat(8192) } }).then(
        () => undefined,
        (error: { code: number }) => error.code,
      );
      expect(big).toBe(status.RESOURCE_EXHAUSTED);
      expect((await api.listHosts({})).hosts.length).toBeGreaterThan(0);
    } finally {
      api.close();
      await proc.stop();
    }
  });
});

describe("leasectl against a broker with mutual TLS and tokens", () => {
  it("sends its token and certificates from flags or LEASEBROKER_* variables", async () => {
    const port = await freePort();
    // A name, as certificates are used: TLS to a bare IP makes Node warn (RFC 6066 SNI).
    const server = `localhost:${port}`;
    const proc = await spawnManaged(
      process.execPath,
      [
        BROKER_MAIN,
        "--grpc-address",
        `127.0.0.1:${port}`,
        "--http-address",
        "127.0.0.1:0",
        "--sim-hosts",
        "2",
        "--tls-cert-file",
        pki.serverCert,
        "--tls-key-file",
        pki.serverKey,
        "--tls-client-ca-file",
        pki.caCert,
        "--tokens-file",
        tokensFile,
      ],
      { name: "broker-secure", readyWhen: /Stop with Ctrl-C/, readyTimeoutMs: 20_000 },
    );
    try {
      expect(proc.output()).toContain("authentication on: 2 bearer tokens");
      const tlsFlags = [
        "--tls-ca",
        pki.caCert,
        "--tls-cert",
        pki.clientCert,
        "--tls-key",
        pki.clientKey,
      ];
      const submit = await run(LEASECTL, [
        "--server",
        server,
        ...tlsFlags,
        "--token",
        ALICE,
        "-o",
        "json",
        "submit",
        "--tenant",
        "team-a",
        "--cpu",
        "1",
        "--memory",
        "1Gi",
        "--duration",
        "10m",
      ]);
      expect(submit.stderr).toBe("");
      expect(submit.code).toBe(0);
      const lease = JSON.parse(submit.stdout) as {
        lease?: { id: string; spec: { tenant: string } };
      };
      const id = lease.lease?.id ?? "";
      expect(lease.lease?.spec.tenant).toBe("team-a");

      const anonymous = await run(LEASECTL, ["--server", server, ...tlsFlags, "list"]);
      expect(anonymous.code).toBe(9);
      expect(anonymous.stderr).toMatch(/UNAUTHENTICATED|credentials/);

      const env = {
        LEASEBROKER_SERVER: server,
        LEASEBROKER_TLS_CA: pki.caCert,
        LEASEBROKER_TLS_CERT: pki.clientCert,
        LEASEBROKER_TLS_KEY: pki.clientKey,
      };
      const mine = await run(LEASECTL, ["get", id, "-o", "json"], {
        ...env,
        LEASEBROKER_TOKEN: ALICE,
      });
      expect(mine.code).toBe(0);
      const foreign = await run(LEASECTL, ["get", id], { ...env, LEASEBROKER_TOKEN: BOB });
      expect(foreign.code).toBe(9);
      expect(foreign.stderr).toContain("does not exist or is not of tenant team-b");
      const noCert = await run(LEASECTL, ["--timeout", "5s", "list"], {
        LEASEBROKER_SERVER: server,
        LEASEBROKER_TLS_CA: pki.caCert,
        LEASEBROKER_TOKEN: ALICE,
      });
      expect(noCert.code).toBe(7);
    } finally {
      await proc.stop();
    }
  });
});
