/**
 * Agent identity on NATS with the SHIPPED deploy/nats/nats.conf (and the accounts.conf it
 * includes) on a real nats-server: the broker and a real agent process (agent-2) work under it (the agent registers, a lease runs on it: hello,
 * beats, commands and their replies all pass), while a client holding agent-1's credentials
 * cannot publish as agent-2, cannot subscribe to agent-2's commands or to other inboxes, and a
 * payload claiming another host on its own subject is refused by the broker.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { status } from "@grpc/grpc-js";
import { connect, type NatsConnection, type NatsError } from "nats";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { agentCodecs } from "../../proto/index.js";
import { type AgentProcess, REPO_ROOT, startAgent } from "../agent/agent-process.js";
import { BrokerApi, immediate } from "../broker/harness.js";
import { BROKER_MAIN } from "../cluster/cluster-processes.js";
import {
  freePort,
  type ManagedProcess,
  type NatsHandle,
  spawnManaged,
  startNats,
  waitFor,
} from "../helpers/index.js";

const NATS_DIR = join(REPO_ROOT, "deploy", "nats");
/** The shipped single-server nats.conf with the accounts.conf it includes written in. */
const SHIPPED = readFileSync(join(NATS_DIR, "nats.conf"), "utf8").replace(
  "include ./accounts.conf",
  readFileSync(join(NATS_DIR, "accounts.conf"), "utf8"),
);
const PASSWORDS = {
  LB_NATS_BROKER_PASSWORD: "broker-secret-1",
  LB_NATS_AGENT_1_PASSWORD: "agent-1-secret",
  LB_NATS_AGENT_2_PASSWORD: "agent-2-secret",
  LB_NATS_AGENT_3_PASSWORD: "agent-3-secret",
};

let nats: NatsHandle;
let broker: ManagedProcess;
let api: BrokerApi;
let agent: AgentProcess;
const connections: NatsConnection[] = [];

async function connectAs(
  user: string,
  pass: string,
  inboxPrefix?: string,
): Promise<NatsConnection> {
  const nc = await connect({
    servers: nats.url,
    user,
    pass,
    ...(inboxPrefix === undefined ? {} : { inboxPrefix }),
  });
  connections.push(nc);
  return nc;
}

/** The permission errors the server reports on `nc`'s status stream. */
function permissionErrors(nc: NatsConnection): string[] {
  const errors: string[] = [];
  void (async () => {
    for await (const s of nc.status()) if (s.type === "error") errors.push(String(s.data));
  })();
  return errors;
}

beforeAll(async () => {
  // nats-server reads the passwords the shipped file names from its environment.
  Object.assign(process.env, PASSWORDS);
  expect(SHIPPED).not.toMatch(/^\s*include /m);
  nats = await startNats({ config: SHIPPED });
  const port = await freePort();
  broker = await spawnManaged(
    process.execPath,
    [
      BROKER_MAIN,
      "--bus",
      "nats",
      "--nats-url",
      nats.url,
      "--nats-user",
      "broker",
      "--nats-password",
      PASSWORDS.LB_NATS_BROKER_PASSWORD,
      "--grpc-address",
      `127.0.0.1:${port}`,
      "--http-address",
      "127.0.0.1:0",
    ],
    { name: "broker-nats-auth", readyWhen: /"msg":"broker serving"/, readyTimeoutMs: 20_000 },
  );
  api = new BrokerApi(`127.0.0.1:${port}`);
  agent = await startAgent("agent-2", nats.url, [
    "--nats-user",
    "agent-2",
    "--nats-password",
    PASSWORDS.LB_NATS_AGENT_2_PASSWORD,
  ]);
});

afterAll(async () => {
  for (const nc of connections) await nc.close().catch(() => {});
  api?.close();
  await agent?.dispose();
  await broker?.stop();
  await nats?.stop();
});

describe("the shipped NATS permissions", () => {
  it("let a real agent register and run a lease: hello, beats, commands and replies pass", async () => {
    await waitFor(async () => (await api.getHost({ id: "agent-2" })).state === "HOST_STATE_READY", {
      what: "agent-2 READY",
      timeoutMs: 20_000,
    });
    const lease = await api.submitLease(immediate({ memoryGib: 1 }, 600_000));
    await waitFor(async () => (await api.get({ id: lease.id })).state === "LEASE_STATE_ACTIVE", {
      what: "the lease ACTIVE on agent-2",
      timeoutMs: 20_000,
    });
    // Nothing the real agent or the broker does (beats with reply inboxes included) is refused.
    expect(nats.outputTail(500)).not.toMatch(/Violation/);
  });

  it("refuse a wrong password", async () => {
    await expect(connectAs("agent-1", "wrong")).rejects.toThrow(/Authorization/i);
  });

  it("do not let agent-1 publish as agent-2: the message never reaches a subscriber", async () => {
    const observer = await connectAs("broker", PASSWORDS.LB_NATS_BROKER_PASSWORD);
    const seen: string[] = [];
    observer.subscribe("lb.v1.host.>", {
      callback: (_err, m) => {
        if (new TextDecoder().decode(m.data).startsWith("hostile")) seen.push(m.subject);
      },
    });
    await observer.flush();
    const hostile = await connectAs(
      "agent-1",
      PASSWORDS.LB_NATS_AGENT_1_PASSWORD,
      "_INBOX.agent-1",
    );
    const errors = permissionErrors(hostile);
    const bytes = (text: string) => new TextEncoder().encode(text);
    for (const kind of ["hello", "beat", "event"]) {
      hostile.publish(`lb.v1.host.agent-2.${kind}`, bytes(`hostile ${kind}`));
    }
    hostile.publish("lb.v1.host.agent-2.cmd", bytes("hostile cmd"));
    // Its own subject is allowed: once this arrives, anything published before it has too
    // (one connection's messages arrive in order).
    hostile.publish("lb.v1.host.agent-1.event", bytes("hostile marker"));
    await hostile.flush();
    await waitFor(() => seen.includes("lb.v1.host.agent-1.event"), { what: "the marker" });
    expect(seen).toEqual(["lb.v1.host.agent-1.event"]);
    await waitFor(() => errors.length >= 4, { what: "four permission errors" });
    expect(new Set(errors)).toEqual(new Set(["PERMISSIONS_VIOLATION"]));
    expect(nats.outputTail(200)).toMatch(
      /Publish Violation - User "agent-1", Subject "lb.v1.host.agent-2.beat"/,
    );
  });

  it("do not let agent-1 read agent-2's commands, or anyone's replies", async () => {
    const hostile = await connectAs(
      "agent-1",
      PASSWORDS.LB_NATS_AGENT_1_PASSWORD,
      "_INBOX.agent-1",
    );
    for (const subject of [
      "lb.v1.host.agent-2.cmd",
      "lb.v1.host.*.cmd",
      "_INBOX.>",
      "_INBOX.agent-2.>",
      ">",
    ]) {
      const refused = await new Promise<NatsError | null>((resolve) => {
        const sub = hostile.subscribe(subject, { callback: (error) => resolve(error) });
        void sub.closed.then(() => resolve(null));
      });
      expect(refused?.code, subject).toBe("PERMISSIONS_VIOLATION");
    }
    // Without its own inbox prefix a client cannot even wait for a reply.
    const noPrefix = await connectAs("agent-1", PASSWORDS.LB_NATS_AGENT_1_PASSWORD);
    await expect(
      noPrefix.request("lb.v1.host.agent-1.hello", new Uint8Array(), { timeout: 5000 }),
    ).rejects.toThrow(/Permissions Violation for Subscription/);
  });

  it("the broker refuses a payload that names another host than its subject", async () => {
    const hostile = await connectAs(
      "agent-1",
      PASSWORDS.LB_NATS_AGENT_1_PASSWORD,
      "_INBOX.agent-1",
    );
    const hello = agentCodecs.hello.encode({
      hostId: "agent-3",
      bootId: "boot-spoof",
      capacity: { cpuMillis: 64_000, memoryMib: 1_048_576, diskGib: 10_000 },
      driver: "sim",
      agentVersion: "0.0.0",
    });
    const reply = agentCodecs.helloReply.decode(
      (await hostile.request("lb.v1.host.agent-1.hello", hello, { timeout: 10_000 })).data,
    );
    expect(reply.accepted).toBe(false);
    expect(reply.message).toContain("is not the subject's agent-1");
    const error = await api.getHost({ id: "agent-3" }).then(
      () => undefined,
      (e: { code: number }) => e,
    );
    expect(error?.code).toBe(status.NOT_FOUND);
  });
});
