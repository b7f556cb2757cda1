/**
 * deploy/nats/accounts.conf is tight (an agent publishes only its own hello/beat/event, subscribes
 * only to its own commands and its own _INBOX.<id>.> replies): this checks it is not too tight for the real protocol. A real
 * nats-server with that file, the broker process logged in as `broker`, and the agent process run
 * with compose.yaml's agent-1 environment (only the NATS URL, data dir and host capacity changed
 * for this machine): the agent registers (Hello request/reply), stays READY (heartbeats) and runs
 * a lease (the broker's start command and the agent's reply).
 */
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AGENT_MAIN, buildAgent } from "../agent/agent-process.js";
import { BrokerApi, immediate } from "../broker/harness.js";
import { BROKER_MAIN } from "../cluster/cluster-processes.js";
import {
  freePort,
  type ManagedProcess,
  makeTempDir,
  type NatsHandle,
  removeDir,
  spawnManaged,
  startNats,
  waitFor,
} from "../helpers/index.js";
import {
  accountsConfWithPasswords,
  DEPLOY,
  readCompose,
  readEnvFile,
  serviceEnv,
} from "./deploy-files.js";

describe("deploy/nats/accounts.conf with the real broker and agent", () => {
  const natsEnv = readEnvFile(join(DEPLOY, "env", "nats.env"));
  const agentService = readCompose().services.get("agent-1");
  let nats: NatsHandle;
  let broker: ManagedProcess;
  let agent: ManagedProcess;
  let api: BrokerApi;
  let dir: string;

  const detail = (): string =>
    [broker?.outputTail(20), agent?.outputTail(20), nats?.outputTail(20)].join("\n---\n");

  beforeAll(async () => {
    buildAgent();
    nats = await startNats({ config: accountsConfWithPasswords() });
    dir = await makeTempDir("deploy-accounts");
    const address = `127.0.0.1:${await freePort()}`;
    broker = await spawnManaged(
      process.execPath,
      [
        BROKER_MAIN,
        "--bus",
        "nats",
        "--grpc-address",
        address,
        "--http-address",
        "127.0.0.1:0",
        "--sim-hosts",
        "0",
      ],
      {
        name: "broker",
        inheritEnv: false,
        env: {
          LEASEBROKER_NATS_URL: nats.url,
          LEASEBROKER_NATS_USER: "broker",
          LEASEBROKER_NATS_PASSWORD: natsEnv.LB_NATS_BROKER_PASSWORD,
        },
        logFile: join(dir, "broker.log"),
        readyWhen: /"msg":"broker serving"/,
        readyTimeoutMs: 20_000,
        stopGraceMs: 10_000,
      },
    );
    api = new BrokerApi(address);
    if (agentService === undefined) throw new Error("compose.yaml has no agent-1");
    agent = await spawnManaged(process.execPath, [AGENT_MAIN, ...agentService.command.slice(1)], {
      name: "agent-1",
      inheritEnv: false,
      env: {
        ...serviceEnv(agentService),
        LEASEBROKER_AGENT_NATS_URL: nats.url,
        LEASEBROKER_AGENT_DATA_DIR: dir,
        LEASEBROKER_AGENT_CPUS: "4",
        LEASEBROKER_AGENT_MEMORY_GIB: "8",
      },
      logFile: join(dir, "agent.log"),
      readyWhen: /"msg":"agent registered"/,
      readyTimeoutMs: 20_000,
      stopGraceMs: 10_000,
    });
  });

  afterAll(async () => {
    api?.close();
    await agent?.stop();
    await broker?.stop();
    await nats?.stop();
    if (dir !== undefined) await removeDir(dir);
  });

  it("lets agent-1 register, heartbeat and run a lease", async () => {
    const host = await api.getHost({ id: "agent-1" });
    expect(host.state).toBe("HOST_STATE_READY");
    const lease = await api.submitLease(immediate({ cpus: 1, memoryGib: 1 }, 60_000));
    await waitFor(async () => (await api.get({ id: lease.id })).state === "LEASE_STATE_ACTIVE", {
      what: "the lease ACTIVE on agent-1",
      timeoutMs: 15_000,
      detail,
    });
    expect((await api.get({ id: lease.id })).hostId).toBe("agent-1");
    // No permission was refused on the way (nats-server logs each violation).
    expect(nats.outputTail(200)).not.toMatch(/Violation/i);
  });
});
