/**
 * A real `leasebroker-agent` process against a real nats-server, with the test playing the
 * broker: it says hello, heartbeats, runs a start command, says hello again (with its workload)
 * after NATS restarts, and exits 0 on SIGTERM; a bad flag exits 2.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { NatsBus } from "../../bus/index.js";
import { agentCodecs, timestampFromMs } from "../../proto/index.js";
import { type NatsHandle, spawnManaged, startNats, withTimeout } from "../helpers/index.js";
import { AGENT_MAIN, type AgentProcess, buildAgent, startAgent } from "./agent-process.js";
import { FakeBroker } from "./fake-broker.js";

describe("the leasebroker-agent process", () => {
  let nats: NatsHandle;
  let brokerBus: NatsBus;
  let broker: FakeBroker;
  const agents: AgentProcess[] = [];

  beforeAll(async () => {
    buildAgent();
    nats = await startNats();
  });

  afterEach(async () => {
    broker?.stop();
    await brokerBus?.close();
    await Promise.all(agents.splice(0).map((a) => a.dispose()));
  });

  afterAll(async () => {
    await nats?.stop();
  });

  async function startBroker(): Promise<void> {
    brokerBus = await NatsBus.connect({
      servers: nats.url,
      name: "test-broker",
      reconnectTimeWaitMs: 100,
    });
    broker = new FakeBroker({ bus: brokerBus, epoch: 3, heartbeatIntervalMs: 200 }).start();
    await brokerBus.flush();
  }

  async function agent(hostId: string): Promise<AgentProcess> {
    const started = await startAgent(hostId, nats.url);
    agents.push(started);
    return started;
  }

  it("says hello, heartbeats, runs a start command and exits 0 on SIGTERM", async () => {
    await startBroker();
    const { proc } = await agent("it-host-1");
    await broker.until(() => broker.hellos.length >= 1, "a hello");
    expect(broker.hellos[0]).toMatchObject({
      hostId: "it-host-1",
      capacity: { cpuMillis: 4000, memoryMib: 8192 },
      labels: { zone: "test" },
      driver: "sim",
      workloads: [],
    });
    expect(broker.hellos[0]?.capacity?.diskGib).toBeGreaterThan(0);
    expect(broker.hellos[0]?.bootId).not.toBe("");

    await broker.until(() => broker.beats.length >= 3, "three heartbeats");
    const seqs = broker.beats.map((b) => b.sequence);
    expect(seqs.slice(0, 3)).toEqual([1, 2, 3]);
    expect(broker.beats.every((b) => b.seenEpoch === 3)).toBe(true);

    const reply = await broker.command("it-host-1", {
      start: {
        leaseId: "lease-it-1",
        resources: { cpuMillis: 1000, memoryMib: 512 },
        driver: { params: { boot_ms: "100" } },
        endTime: timestampFromMs(Date.now() + 3_600_000),
      },
    });
    expect(reply).toMatchObject({ ok: true, duplicate: false, seenEpoch: 3 });
    await broker.until(
      () => broker.workloadStates("lease-it-1").includes("RUNNING"),
      "the workload to run",
    );
    expect(broker.workloadStates("lease-it-1")).toEqual(["STARTING", "RUNNING"]);
    await broker.until(
      () => broker.beats.at(-1)?.leaseIds.includes("lease-it-1") === true,
      "a heartbeat naming the lease",
    );

    const exit = await proc.stop(10_000);
    expect(exit).toEqual({ code: 0, signal: null });
    expect(proc.output()).toMatch(/"msg":"stopped"/);
  });

  it("says hello again, with its workloads, after NATS restarts", async () => {
    await startBroker();
    await agent("it-host-2");
    await broker.until(() => broker.hellos.length >= 1, "a hello");
    await broker.command("it-host-2", {
      start: {
        leaseId: "lease-it-2",
        resources: { cpuMillis: 500, memoryMib: 256 },
        driver: { params: { boot_ms: "50" } },
        endTime: timestampFromMs(Date.now() + 3_600_000),
      },
    });
    await broker.until(
      () => broker.workloadStates("lease-it-2").includes("RUNNING"),
      "the workload to run",
    );
    const bootId = broker.hellos[0]?.bootId;
    await nats.restart();
    await broker.until(() => broker.hellos.length >= 2, "a second hello", 30_000);
    const again = broker.hellos.at(-1);
    expect(again?.bootId).toBe(bootId);
    expect(again?.seenEpoch).toBe(3);
    expect(again?.workloads).toMatchObject([
      { leaseId: "lease-it-2", state: "WORKLOAD_STATE_RUNNING" },
    ]);
    const beatsSoFar = broker.beats.length;
    await broker.until(() => broker.beats.length > beatsSoFar + 1, "heartbeats after", 20_000);
  });

  it("works under the NATS permissions the protocol documents, with a user and password", async () => {
    // docs/agent-protocol.md, "NATS permissions": an agent may publish only under its own host id.
    const secured = await startNats({
      config: `
        authorization {
          users = [
            { user: "broker", password: "broker-pw" }
            { user: "agent-it-host-3", password: "agent-pw", permissions: {
                publish: { allow: ["lb.v1.host.it-host-3.hello", "lb.v1.host.it-host-3.beat", "lb.v1.host.it-host-3.event"] }
                subscribe: { allow: ["lb.v1.host.it-host-3.cmd", "_INBOX.>"] }
                allow_responses: true
            } }
          ]
        }`,
    });
    try {
      brokerBus = await NatsBus.connect({
        servers: secured.url,
        user: "broker",
        pass: "broker-pw",
        name: "test-broker",
      });
      broker = new FakeBroker({ bus: brokerBus, epoch: 4, heartbeatIntervalMs: 200 }).start();
      await brokerBus.flush();
      const started = await startAgent("it-host-3", secured.url, [
        "--nats-user",
        "agent-it-host-3",
        "--nats-password",
        "agent-pw",
      ]);
      agents.push(started);
      await broker.until(() => broker.beats.length >= 2, "heartbeats through the permissions");
      const reply = await broker.command("it-host-3", { stop: { leaseId: "nothing-here" } });
      expect(reply).toMatchObject({ ok: true, seenEpoch: 4 });
      await broker.until(
        () => broker.workloadStates("nothing-here").includes("STOPPED"),
        "the STOPPED event",
      );
      expect(started.proc.output()).not.toMatch(/Permissions Violation/i);

      // And the permissions do bite: the agent's user cannot speak for another host.
      const marker = agentCodecs.heartbeat.encode({ hostId: "marker" });
      const seen: string[] = [];
      brokerBus.subscribe("lb.v1.host.*.beat", (m) => {
        if (agentCodecs.heartbeat.decode(m.data).hostId === "marker") seen.push(m.subject);
      });
      await brokerBus.flush();
      const impostor = await NatsBus.connect({
        servers: secured.url,
        user: "agent-it-host-3",
        pass: "agent-pw",
        name: "impostor",
      });
      impostor.publish("lb.v1.host.other-host.beat", marker);
      impostor.publish("lb.v1.host.it-host-3.beat", marker);
      await impostor.flush();
      await impostor.close();
      await broker.until(() => seen.length > 0, "the permitted publish");
      await brokerBus.flush();
      expect(seen).toEqual(["lb.v1.host.it-host-3.beat"]);
    } finally {
      broker.stop();
      await brokerBus.close();
      await Promise.all(agents.splice(0).map((a) => a.dispose()));
      await secured.stop();
    }
  });

  it("exits 2 on a bad flag, saying which", async () => {
    const proc = await spawnManaged(process.execPath, [AGENT_MAIN, "--cpu-ratio", "0"], {
      name: "agent-bad-flag",
    });
    const exit = await withTimeout(proc.exited, 20_000, "the agent to exit");
    expect(exit.code).toBe(2);
    expect(proc.output()).toMatch(/--cpu-ratio: must be in \(0, 100\]/);
  });
});
