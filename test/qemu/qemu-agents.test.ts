/**
 * Two real `leasebroker-agent` processes with `--driver qemu` (TCG) on a real nats-server, the
 * test playing the broker with the agent commands the broker's orchestrator sends: a lease runs
 * as a real QEMU process; PrepareIncoming on the destination + MigrateOut on the source move it
 * (the completion carries QEMU's measured downtime and total time); an abort mid-way leaves the
 * source running; Suspend + Resume; Suspend on one agent, ExportSuspended there and Resume with
 * `from` on the other; and an agent killed with SIGKILL is restarted and re-adopts its VM without
 * restarting it.
 */
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { qemuVmDir } from "../../agent/index.js";
import { NatsBus } from "../../bus/index.js";
import { type AgentEvent, durationFromMs, timestampFromMs } from "../../proto/index.js";
import { type AgentProcess, buildAgent, startAgent } from "../agent/agent-process.js";
import { FakeBroker } from "../agent/fake-broker.js";
import { type NatsHandle, QEMU, requireBinary, startNats, waitFor } from "../helpers/index.js";
import {
  biosTicks,
  killQemuUnder,
  pidsMentioning,
  processRunning,
  QEMU_AGENT_ARGS,
  qmpStatus,
} from "./qemu-helpers.js";

const SOURCE = "qa-src";
const DESTINATION = "qa-dst";

function operatorSocket(agent: AgentProcess, leaseId: string): string {
  return join(qemuVmDir(join(agent.dir, "qemu"), leaseId), "operator.sock");
}

function progress(events: readonly AgentEvent[], migrationId: string, phase: string) {
  return events.flatMap((e) =>
    e.migrationProgress?.migrationId === migrationId &&
    e.migrationProgress.phase === `MIGRATION_STATE_${phase}`
      ? [{ hostId: e.hostId, ...e.migrationProgress }]
      : [],
  );
}

describe("two agents with the qemu driver (real QEMU under TCG, real NATS)", () => {
  let nats: NatsHandle;
  let brokerBus: NatsBus;
  let broker: FakeBroker;
  let source: AgentProcess;
  let destination: AgentProcess;
  const resources = { cpuMillis: 1000, memoryMib: 64 };
  const endTime = timestampFromMs(Date.now() + 3_600_000);

  beforeAll(async () => {
    requireBinary(QEMU);
    buildAgent();
    nats = await startNats();
    brokerBus = await NatsBus.connect({ servers: nats.url, name: "test-broker" });
    broker = new FakeBroker({ bus: brokerBus, epoch: 1, heartbeatIntervalMs: 300 }).start();
    await brokerBus.flush();
    source = await startAgent(SOURCE, nats.url, QEMU_AGENT_ARGS);
    destination = await startAgent(DESTINATION, nats.url, QEMU_AGENT_ARGS);
    await broker.until(() => broker.hellos.length >= 2, "two hellos");
  }, 240_000);

  afterAll(async () => {
    broker?.stop();
    await brokerBus?.close();
    for (const agent of [source, destination]) {
      if (agent === undefined) continue;
      killQemuUnder(agent.dir);
      await agent.dispose();
    }
    await nats?.stop();
  });

  async function startLease(leaseId: string): Promise<number> {
    const reply = await broker.command(SOURCE, {
      start: { leaseId, resources, driver: { params: {} }, endTime },
    });
    expect(reply).toMatchObject({ ok: true });
    await broker.until(
      () => broker.workloadStates(leaseId).includes("RUNNING"),
      `${leaseId} RUNNING`,
      30_000,
    );
    const [pid] = pidsMentioning(qemuVmDir(join(source.dir, "qemu"), leaseId));
    expect(pid).toBeDefined();
    return pid ?? 0;
  }

  it("runs a lease as a QEMU process and live-migrates it to the other agent", async () => {
    const pid = await startLease("qa-lease-1");
    expect(processRunning(pid)).toBe(true);
    expect(await qmpStatus(operatorSocket(source, "qa-lease-1"))).toBe("running");
    expect(broker.hellos[0]?.driver).toBe("qemu");

    const prepared = await broker.command(DESTINATION, {
      prepareIncoming: { migrationId: "qa-m1", leaseId: "qa-lease-1", resources, endTime },
    });
    expect(prepared).toMatchObject({ ok: true, incomingAddress: "127.0.0.1" });
    expect(prepared.incomingPort).toBeGreaterThan(0);
    const migrate = await broker.command(SOURCE, {
      migrateOut: {
        migrationId: "qa-m1",
        leaseId: "qa-lease-1",
        destinationHostId: DESTINATION,
        destinationAddress: prepared.incomingAddress,
        destinationPort: prepared.incomingPort,
        bandwidthLimitBytesPerS: 0,
        downtimeLimit: durationFromMs(300),
        autoConverge: false,
      },
    });
    expect(migrate).toMatchObject({ ok: true });
    await broker.until(
      () => progress(broker.events, "qa-m1", "COMPLETED").length === 2,
      "both sides COMPLETED",
      60_000,
    );
    const done = progress(broker.events, "qa-m1", "COMPLETED").find((p) => p.hostId === SOURCE);
    // QEMU's measured figures travel as Durations (an idle guest's downtime may be 0 ms).
    expect(done?.downtime).toBeDefined();
    expect(done?.downtime).not.toBeNull();
    const totalNanos =
      Number(done?.totalTime?.seconds ?? 0) * 1e9 + Number(done?.totalTime?.nanos ?? 0);
    expect(totalNanos).toBeGreaterThan(0);
    expect(Number(done?.progress?.bytesTransferred ?? 0)).toBeGreaterThan(0);

    await waitFor(() => !processRunning(pid), { what: "the source QEMU gone" });
    await waitFor(
      async () => (await qmpStatus(operatorSocket(destination, "qa-lease-1"))) === "running",
      { what: "the destination QEMU running", timeoutMs: 20_000 },
    );
    await broker.until(
      () =>
        broker.events.some(
          (e) =>
            e.hostId === DESTINATION &&
            e.workload?.leaseId === "qa-lease-1" &&
            e.workload.state === "WORKLOAD_STATE_RUNNING",
        ),
      "the destination reports RUNNING",
    );
    await broker.command(DESTINATION, {
      stop: { leaseId: "qa-lease-1", grace: durationFromMs(0) },
    });
  });

  it("reports a QEMU that cannot start as FAILED to the broker, with QEMU's own message", async () => {
    mkdirSync(join(source.dir, "images"), { recursive: true });
    writeFileSync(join(source.dir, "images", "broken.qcow2"), "this is not a qcow2 image");
    const reply = await broker.command(SOURCE, {
      start: {
        leaseId: "qa-broken",
        resources,
        driver: { image: "broken.qcow2", params: {} },
        endTime,
      },
    });
    expect(reply).toMatchObject({ ok: true });
    await broker.until(
      () => broker.workloadStates("qa-broken").includes("FAILED"),
      "qa-broken FAILED",
      30_000,
    );
    const failed = broker.events.find(
      (e) => e.workload?.leaseId === "qa-broken" && e.workload.state === "WORKLOAD_STATE_FAILED",
    );
    expect(failed?.workload?.message).toMatch(/qemu-system-x86_64: .*qcow2/i);
  });

  it("an abort mid-way leaves the source running", async () => {
    const pid = await startLease("qa-lease-2");
    const prepared = await broker.command(DESTINATION, {
      prepareIncoming: { migrationId: "qa-m2", leaseId: "qa-lease-2", resources, endTime },
    });
    await broker.command(SOURCE, {
      migrateOut: {
        migrationId: "qa-m2",
        leaseId: "qa-lease-2",
        destinationHostId: DESTINATION,
        destinationAddress: prepared.incomingAddress,
        destinationPort: prepared.incomingPort,
        // Slow enough that even an idle guest (zero pages) outlasts the test.
        bandwidthLimitBytesPerS: 20_000,
        downtimeLimit: durationFromMs(300),
        autoConverge: false,
      },
    });
    await broker.until(
      () =>
        progress(broker.events, "qa-m2", "TRANSFERRING").some(
          (p) => Number(p.progress?.bytesTransferred ?? 0) > 0,
        ),
      "bytes moving",
      20_000,
    );
    // The broker aborts both sides.
    const aborted = await broker.command(SOURCE, {
      abortMigration: { migrationId: "qa-m2", leaseId: "qa-lease-2", reason: "test abort" },
    });
    expect(aborted).toMatchObject({ ok: true });
    await broker.command(DESTINATION, {
      abortMigration: { migrationId: "qa-m2", leaseId: "qa-lease-2", reason: "test abort" },
    });
    await broker.until(
      () => progress(broker.events, "qa-m2", "ABORTED").some((p) => p.hostId === SOURCE),
      "the source's ABORTED",
    );
    const sourceAbort = progress(broker.events, "qa-m2", "ABORTED").find(
      (p) => p.hostId === SOURCE,
    );
    expect(sourceAbort?.error).toBe("test abort");
    expect(progress(broker.events, "qa-m2", "COMPLETED")).toEqual([]);
    expect(processRunning(pid)).toBe(true);
    expect(await qmpStatus(operatorSocket(source, "qa-lease-2"))).toBe("running");
  });

  it("suspends and resumes a lease", async () => {
    const pid = pidsMentioning(qemuVmDir(join(source.dir, "qemu"), "qa-lease-2"))[0] ?? 0;
    expect(pid).toBeGreaterThan(0);
    expect(await broker.command(SOURCE, { suspend: { leaseId: "qa-lease-2" } })).toMatchObject({
      ok: true,
    });
    await broker.until(
      () => broker.workloadStates("qa-lease-2").includes("SUSPENDED"),
      "SUSPENDED",
      30_000,
    );
    expect(processRunning(pid)).toBe(false);
    const suspended = broker.events.findLast(
      (e) => e.workload?.state === "WORKLOAD_STATE_SUSPENDED",
    );
    expect(suspended?.workload?.message).toMatch(/^saved \d+ bytes/);

    expect(await broker.command(SOURCE, { resume: { leaseId: "qa-lease-2" } })).toMatchObject({
      ok: true,
    });
    await broker.until(
      () => broker.workloadStates("qa-lease-2").at(-1) === "RUNNING",
      "RUNNING after resume",
      30_000,
    );
    expect(await qmpStatus(operatorSocket(source, "qa-lease-2"))).toBe("running");
  });

  it("suspends on one agent and resumes on the other from the saved state it fetched", async () => {
    const leaseId = "qa-lease-3";
    await startLease(leaseId);
    const sourceSocket = operatorSocket(source, leaseId);
    await waitFor(async () => (await biosTicks(sourceSocket)) > 20, {
      what: "BIOS ticks",
      timeoutMs: 30_000,
    });
    const ticksBefore = await biosTicks(sourceSocket);
    expect(await broker.command(SOURCE, { suspend: { leaseId } })).toMatchObject({ ok: true });
    await broker.until(
      () => broker.workloadStates(leaseId).includes("SUSPENDED"),
      "SUSPENDED",
      30_000,
    );
    const savedFile = join(qemuVmDir(join(source.dir, "qemu"), leaseId), "suspend.state");
    expect(existsSync(savedFile)).toBe(true);

    const exported = await broker.command(SOURCE, { exportSuspended: { leaseId } });
    expect(exported).toMatchObject({ ok: true });
    const image = exported.suspendImage;
    expect(image).toMatchObject({
      address: "127.0.0.1",
      sha256: expect.stringMatching(/^[0-9a-f]{64}$/),
    });
    expect(Number(image?.sizeBytes)).toBeGreaterThan(0);

    const resumed = await broker.command(DESTINATION, {
      resume: {
        leaseId,
        from: image,
        workload: { leaseId, resources, driver: { params: {} }, endTime },
      },
    });
    expect(resumed).toMatchObject({ ok: true });
    await broker.until(
      () =>
        broker.events.some(
          (e) =>
            e.hostId === DESTINATION &&
            e.workload?.leaseId === leaseId &&
            e.workload.state === "WORKLOAD_STATE_RUNNING",
        ),
      "RUNNING on the destination",
      30_000,
    );
    const running = broker.events.findLast(
      (e) => e.hostId === DESTINATION && e.workload?.state === "WORKLOAD_STATE_RUNNING",
    );
    expect(running?.workload?.message).toMatch(
      new RegExp(`\\(fetched ${Number(image?.sizeBytes)} bytes in \\d+ ms\\)$`),
    );
    const destinationSocket = operatorSocket(destination, leaseId);
    expect(await qmpStatus(destinationSocket)).toBe("running");
    expect(await biosTicks(destinationSocket)).toBeGreaterThanOrEqual(ticksBefore);
    // The source keeps its saved state until the broker discards it.
    expect(existsSync(savedFile)).toBe(true);
    expect(await broker.command(SOURCE, { stop: { leaseId, force: true } })).toMatchObject({
      ok: true,
    });
    await waitFor(() => !existsSync(savedFile), { what: "the source's saved state discarded" });
    await broker.command(DESTINATION, { stop: { leaseId, force: true } });
  });

  it("an agent killed and restarted re-adopts its VM without restarting it", async () => {
    const [pid] = pidsMentioning(qemuVmDir(join(source.dir, "qemu"), "qa-lease-2"));
    expect(pid).toBeDefined();
    const hellos = broker.hellos.length;
    await source.proc.kill();
    expect(processRunning(pid ?? 0)).toBe(true);

    source = await startAgent(SOURCE, nats.url, QEMU_AGENT_ARGS, source.dir);
    await broker.until(
      () => broker.hellos.slice(hellos).some((h) => h.hostId === SOURCE),
      "the restarted agent's hello",
      20_000,
    );
    const hello = broker.hellos.slice(hellos).find((h) => h.hostId === SOURCE);
    expect(hello?.workloads).toMatchObject([
      { leaseId: "qa-lease-2", state: "WORKLOAD_STATE_RUNNING", details: { pid: String(pid) } },
    ]);
    expect(await qmpStatus(operatorSocket(source, "qa-lease-2"))).toBe("running");

    // Still under the agent's control: a stop ends the same QEMU.
    await broker.command(SOURCE, { stop: { leaseId: "qa-lease-2", grace: durationFromMs(0) } });
    await waitFor(() => !processRunning(pid ?? 0), { what: "QEMU stopped", timeoutMs: 20_000 });
  });
});
