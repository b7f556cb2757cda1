/**
 * The reference autoscaler as it runs for real: a broker on a real nats-server (real clock), the
 * autoscaler's webhook receiver, and `leasebroker-agent` processes (sim driver) that it starts on
 * ScaleOut and stops after ScaleIn. Bounded waits only; nothing is asserted about how long it took.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type AutoscaleSignalRecord, parseHostShape } from "../../broker/autoscale/index.js";
import { Broker } from "../../broker/broker.js";
import { NatsBus } from "../../bus/index.js";
import { RealClock, silentLogger } from "../../core/index.js";
import { ReferenceAutoscaler } from "../../deploy/examples/autoscaler/autoscaler.js";
import { agentProcessLauncher } from "../../deploy/examples/autoscaler/main.js";
import { AGENT_MAIN, buildAgent } from "../agent/agent-process.js";
import { type NatsHandle, startNats, waitFor } from "../helpers/index.js";
import { HOUR, SECRET, spec } from "./cluster.js";

let nats: NatsHandle;
const cleanups: Array<() => Promise<void>> = [];
beforeAll(async () => {
  buildAgent();
  nats = await startNats();
}, 240_000);
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
afterAll(async () => {
  await nats?.stop();
});

describe("the reference autoscaler with agent processes", () => {
  it("starts a leasebroker-agent for a waiting lease, and stops it once it is drained", async () => {
    const log: string[] = [];
    const launcher = agentProcessLauncher({
      natsUrl: nats.url,
      log: (line) => log.push(line),
      agentMain: AGENT_MAIN,
      stderr: "ignore",
    });
    cleanups.push(() => launcher.stopAll());
    const autoscaler = new ReferenceAutoscaler({ secret: SECRET, launcher });
    const url = await autoscaler.listen();
    cleanups.push(() => autoscaler.close());

    const bus = await NatsBus.connect({ servers: nats.url, name: "broker" });
    cleanups.push(() => bus.close());
    const broker = new Broker({
      clock: new RealClock(),
      logger: silentLogger(),
      grpcAddress: "127.0.0.1:0",
      bus,
      autoscale: {
        intervalMs: 300,
        scaleOutCooldownMs: 1000,
        scaleInCooldownMs: 1500,
        minHosts: 0,
        shapes: [parseHostShape("sim-4x8:4:8:50")],
        webhooks: { urls: [url], secret: SECRET },
      },
    });
    await broker.start();
    cleanups.push(() => broker.stop(100));
    const signals: Array<{ signal: AutoscaleSignalRecord; cordoned: boolean[] }> = [];
    broker.autoscale?.onSignal((signal) => {
      const r = signal.recommendation;
      const ids = r.kind === "scale-in" ? r.candidateHostIds : [];
      signals.push({ signal, cordoned: ids.map((id) => broker.hosts.view(id).cordoned) });
    });

    // No host at all: the lease waits, and the configured shape says what to add.
    const { lease } = await broker.leases.submit(
      spec(4, { kind: "immediate", durationMs: HOUR }, true),
    );
    expect(lease.state).toBe("PENDING");
    await waitFor(() => broker.leases.get(lease.id).value.state === "ACTIVE", {
      what: "the lease to run on a new agent",
      timeoutMs: 45_000,
      detail: () => log.join("\n"),
    });
    expect(broker.leases.get(lease.id).value.hostId).toBe("auto-1");
    expect(launcher.running()).toEqual(["auto-1"]);
    expect(signals[0]?.signal.recommendation).toMatchObject({
      kind: "scale-out",
      hosts: [{ shape: { name: "sim-4x8" }, count: 1 }],
    });

    // Demand gone: the host is cordoned, reported, and its process stopped.
    await broker.leases.cancel(lease.id);
    await waitFor(() => launcher.running().length === 0, {
      what: "the agent process to be stopped",
      timeoutMs: 45_000,
      detail: () => log.join("\n"),
    });
    const scaleIn = signals.find((s) => s.signal.recommendation.kind === "scale-in");
    expect(scaleIn?.signal.recommendation).toMatchObject({ candidateHostIds: ["auto-1"] });
    expect(scaleIn?.cordoned).toEqual([true]);
    expect(autoscaler.counts.refused).toBe(0);
  });
});
