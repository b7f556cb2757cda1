/**
 * Autoscale signals on a real nats-server: a subscriber to `lb.v1.autoscale` receives each signal
 * as a protobuf AutoscaleSignal (the contract's codec), in order, with the broker's epoch.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { autoscaleSignalCodec } from "../../broker/autoscale/index.js";
import { Broker } from "../../broker/broker.js";
import { runCliCaptured } from "../../broker/cli/capture.js";
import { AUTOSCALE_SUBJECT, NatsBus } from "../../bus/index.js";
import { silentLogger, VirtualClock } from "../../core/index.js";
import type { AutoscaleSignal } from "../../proto/index.js";
import { type NatsHandle, startNats, waitFor } from "../helpers/index.js";
import { HOUR, SECOND, spec, T0 } from "./cluster.js";

let nats: NatsHandle;
const cleanups: Array<() => Promise<void>> = [];
beforeAll(async () => {
  nats = await startNats();
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
afterAll(async () => {
  await nats?.stop();
});

describe("autoscale signals on NATS", () => {
  it("are published on lb.v1.autoscale as protobuf AutoscaleSignal", async () => {
    const publisher = await NatsBus.connect({ servers: nats.url, name: "broker" });
    const subscriber = await NatsBus.connect({ servers: nats.url, name: "autoscaler" });
    cleanups.push(
      () => publisher.close(),
      () => subscriber.close(),
    );
    const received: AutoscaleSignal[] = [];
    subscriber.subscribe(AUTOSCALE_SUBJECT, (m) => {
      received.push(autoscaleSignalCodec.decode(m.data));
    });
    await subscriber.flush();

    const clock = new VirtualClock(T0);
    // Two simulated hosts of 4 CPUs and 16 GiB, called directly (no agent bus).
    const broker = new Broker({
      clock,
      logger: silentLogger(),
      grpcAddress: "127.0.0.1:0",
      simHosts: { count: 2, cpus: 4, memoryGib: 16, zones: 1 },
      epoch: 11,
      autoscale: { intervalMs: 30 * SECOND, bus: publisher },
    });
    const port = await broker.start();
    cleanups.push(() => broker.stop(100));
    await waitFor(() => received.length === 1, { what: "the first signal" });
    expect(received[0]).toMatchObject({ signal: "steady", sequence: 1, epoch: 11 });

    for (let i = 0; i < 3; i++) {
      await broker.leases.submit(spec(12, { kind: "immediate", durationMs: HOUR }, true));
    }
    await clock.advance(30 * SECOND);
    await waitFor(() => received.length === 2, { what: "the ScaleOut" });
    const out = received[1] as AutoscaleSignal;
    expect(out.signal).toBe("scaleOut");
    expect(out.sequence).toBe(2);
    expect(out.time).toEqual({ seconds: (T0 + 30 * SECOND) / 1000, nanos: 0 });
    // Two of the three 12 GiB leases run; one waits and needs one more 16 GiB host.
    expect(out.scaleOut?.hosts).toEqual([expect.objectContaining({ shape: "4c-16g", count: 1 })]);
    expect(out.scaleOut?.hosts[0]?.resources?.memoryMib).toBe(16 * 1024);
    expect(out.scaleOut?.leaseIds).toHaveLength(1);
    expect(out.scaleOut?.deadline).toBeNull(); // needed now

    // GetAutoscaleStatus and `leasectl autoscale` show the same signal and why.
    const run = await runCliCaptured(["--server", `127.0.0.1:${port}`, "autoscale"], {
      now: clock.now(),
    });
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/Enabled:\s+yes/);
    expect(run.stdout).toMatch(/Ready hosts:\s+2/);
    expect(run.stdout).toMatch(/Pending:\s+1 leases/);
    expect(run.stdout).toContain("scale out #2: 1× 4c-16g (1 waiting lease needs");
    expect(run.stdout).toContain("needed by now");
  });
});
