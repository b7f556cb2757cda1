/**
 * Issue #8 end to end through the API: a real broker process (`--bus nats`, no sim hosts) and two
 * real agent processes with the qemu driver (TCG) on a real nats-server. A lease submitted over
 * gRPC runs as a real QEMU process; MigrateLease moves it (the Migration records the downtime and
 * total time QEMU measured); AbortMigration mid-way leaves the source running; SuspendLease then
 * ResumeLease runs the VM again; with its host cordoned, ResumeLease resumes it on the other host
 * from the saved state fetched there (its BIOS ticks go on), and a damaged saved state puts it
 * back to SUSPENDED on its source. Every check goes through the gRPC API, the VM's own QMP socket
 * or the agents' data directories; every wait is bounded.
 */
import { appendFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import type { ServiceError } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { qemuVmDir } from "../../agent/index.js";
import {
  type Duration,
  type Lease,
  type LeaseSpecInput,
  type Migration,
  msFromDuration,
} from "../../proto/index.js";
import { type AgentProcess, buildAgent, startAgent } from "../agent/agent-process.js";
import { immediate } from "../broker/harness.js";
import { type BrokerProcess, hostsById, startBrokerProcess } from "../cluster/cluster-processes.js";
import { type NatsHandle, QEMU, requireBinary, startNats, waitFor } from "../helpers/index.js";
import {
  biosTicks,
  killQemuUnder,
  pidsMentioning,
  processRunning,
  QEMU_AGENT_ARGS,
  qmpStatus,
} from "./qemu-helpers.js";

const HOSTS = ["qapi-1", "qapi-2"];
/** TCG on a shared machine is slow: every step gets tens of seconds. */
const STEP_MS = 45_000;
/** A generous switchover limit: the check is that QEMU kept within what the lease asked. */
const MAX_DOWNTIME_MS = 5000;
/** A small live-migratable VM: 64 MiB, 1 vCPU, no disk. */
function smallLease(params: Record<string, string> = {}): LeaseSpecInput {
  return immediate({ memoryGib: 1 / 16 }, 3_600_000, {
    migration: {
      liveMigratable: true,
      allowSuspend: true,
      maxDowntime: { seconds: String(MAX_DOWNTIME_MS / 1000), nanos: 0 },
    },
    driver: { image: "", params },
  });
}

function ms(duration: Duration | null): number {
  return duration === null ? -1 : (msFromDuration(duration) ?? -1);
}

describe("the qemu driver through the broker's API (real broker, agents, QEMU, NATS)", () => {
  let nats: NatsHandle;
  let broker: BrokerProcess;
  const agents = new Map<string, AgentProcess>();

  const agent = (hostId: string): AgentProcess => {
    const a = agents.get(hostId);
    if (a === undefined) throw new Error(`no agent ${hostId}`);
    return a;
  };
  const vmDir = (hostId: string, leaseId: string): string =>
    qemuVmDir(join(agent(hostId).dir, "qemu"), leaseId);
  const status = (hostId: string, leaseId: string): Promise<string> =>
    qmpStatus(join(vmDir(hostId, leaseId), "operator.sock")).catch(() => "unreachable");
  const detail = (): string =>
    [broker.proc.outputTail(15), ...[...agents.values()].map((a) => a.proc.outputTail(8))].join(
      "\n---\n",
    );

  /** A unary call of the raw client as a promise (the calls BrokerApi does not wrap). */
  function call<T>(fn: (cb: (error: ServiceError | null, value?: T) => void) => void): Promise<T> {
    return new Promise((resolve, reject) => {
      fn((error, value) =>
        error === null && value !== undefined ? resolve(value) : reject(error),
      );
    });
  }
  const getMigration = (id: string) =>
    call<Migration>((cb) => broker.api.raw.GetMigration({ id }, cb));
  const abortMigration = (id: string, reason: string) =>
    call<Migration>((cb) => broker.api.raw.AbortMigration({ id, reason }, cb));
  const suspendLease = (id: string) =>
    call<Lease>((cb) => broker.api.raw.SuspendLease({ id, reason: "test" }, cb));
  const resumeLease = (id: string) => call<Lease>((cb) => broker.api.raw.ResumeLease({ id }, cb));
  const cordon = (id: string) =>
    call<unknown>((cb) => broker.api.raw.CordonHost({ id, reason: "test" }, cb));
  const uncordon = (id: string) => call<unknown>((cb) => broker.api.raw.UncordonHost({ id }, cb));

  async function untilLease(id: string, ok: (lease: Lease) => boolean, what: string) {
    let lease: Lease | undefined;
    await waitFor(
      async () => {
        lease = await broker.api.get({ id });
        return ok(lease);
      },
      { what, timeoutMs: STEP_MS, detail: () => `${JSON.stringify(lease)}\n${detail()}` },
    );
    return lease as Lease;
  }

  async function untilMigration(id: string, state: string): Promise<Migration> {
    let m: Migration | undefined;
    await waitFor(
      async () => {
        m = await getMigration(id);
        return m.state === state;
      },
      { what: `migration ${id} ${state}`, timeoutMs: STEP_MS, detail: () => JSON.stringify(m) },
    );
    return m as Migration;
  }

  async function untilRunning(hostId: string, leaseId: string): Promise<void> {
    await waitFor(async () => (await status(hostId, leaseId)) === "running", {
      what: `${leaseId}'s QEMU running on ${hostId}`,
      timeoutMs: STEP_MS,
      detail,
    });
  }

  /** Submits a lease and waits until its QEMU runs; returns the lease (ACTIVE, placed). */
  async function runLease(params: Record<string, string> = {}): Promise<Lease> {
    const submitted = await broker.api.submitLease(smallLease(params));
    const lease = await untilLease(
      submitted.id,
      (l) => l.state === "LEASE_STATE_ACTIVE" && l.hostId !== "",
      `${submitted.id} ACTIVE`,
    );
    await untilRunning(lease.hostId, lease.id);
    return lease;
  }

  const otherHost = (hostId: string): string => HOSTS.find((h) => h !== hostId) ?? "";

  beforeAll(async () => {
    requireBinary(QEMU);
    buildAgent();
    nats = await startNats();
    broker = await startBrokerProcess(nats.url);
    for (const hostId of HOSTS)
      agents.set(hostId, await startAgent(hostId, nats.url, QEMU_AGENT_ARGS));
    await waitFor(
      async () =>
        [...(await hostsById(broker.api)).values()].filter((h) => h.state === "HOST_STATE_READY")
          .length === HOSTS.length,
      { what: "both qemu hosts READY", timeoutMs: STEP_MS, detail },
    );
  }, 240_000);

  afterAll(async () => {
    for (const a of agents.values()) {
      killQemuUnder(a.dir);
      await a.proc.stop();
    }
    await broker?.dispose();
    for (const a of agents.values()) await a.dispose();
    await nats?.stop();
  });

  it("runs a lease as QEMU and live-migrates it with MigrateLease", async () => {
    const lease = await runLease();
    const source = lease.hostId;
    const destination = otherHost(source);
    const [pid] = pidsMentioning(vmDir(source, lease.id));
    expect(pid).toBeDefined();

    const planned = await broker.api.migrate({ leaseId: lease.id, targetHostId: destination });
    expect(planned.toHostId).toBe(destination);
    await untilMigration(planned.id, "MIGRATION_STATE_COMPLETED");
    // The source's COMPLETED may come after the destination's: its figures are filled in then.
    let done: Migration | undefined;
    await waitFor(
      async () => {
        done = await getMigration(planned.id);
        return done.downtime !== null;
      },
      {
        what: "the source's figures recorded",
        timeoutMs: STEP_MS,
        detail: () => JSON.stringify(done),
      },
    );
    if (done === undefined) throw new Error("no migration");

    // The figures QEMU measured on the source: total time > 0, downtime within the lease's limit.
    expect(done.downtime).not.toBeNull();
    expect(ms(done.downtime)).toBeGreaterThanOrEqual(0);
    expect(ms(done.downtime)).toBeLessThanOrEqual(ms(done.maxDowntime));
    expect(ms(done.maxDowntime)).toBe(MAX_DOWNTIME_MS);
    expect(ms(done.totalTime)).toBeGreaterThan(0);
    expect(Number(done.progress?.bytesTransferred ?? 0)).toBeGreaterThan(0);

    await untilLease(
      lease.id,
      (l) => l.state === "LEASE_STATE_ACTIVE" && l.hostId === destination,
      "the lease ACTIVE on the destination",
    );
    await untilRunning(destination, lease.id);
    await waitFor(() => !processRunning(pid ?? 0), {
      what: "the source's QEMU gone",
      timeoutMs: STEP_MS,
      detail,
    });
    await broker.api.cancel({ id: lease.id, reason: "done" });
  }, 180_000);

  it("AbortMigration mid-way leaves the source running and the Migration ABORTED", async () => {
    // 20 kB/s: even an idle guest (zero pages) outlasts the test.
    const lease = await runLease({ migration_bandwidth_bytes_per_s: "20000" });
    const source = lease.hostId;
    const [pid] = pidsMentioning(vmDir(source, lease.id));
    expect(pid).toBeDefined();

    const planned = await broker.api.migrate({ leaseId: lease.id, targetHostId: "" });
    expect(planned.toHostId).toBe(otherHost(source));
    let moving: Migration | undefined;
    await waitFor(
      async () => {
        moving = await getMigration(planned.id);
        return Number(moving.progress?.bytesTransferred ?? 0) > 0;
      },
      { what: "bytes moving", timeoutMs: STEP_MS, detail: () => JSON.stringify(moving) },
    );
    expect(Number(moving?.bandwidthLimitBytesPerS)).toBe(20_000);

    await abortMigration(planned.id, "test abort");
    const aborted = await untilMigration(planned.id, "MIGRATION_STATE_ABORTED");
    expect(aborted.abortReason).toBe("test abort");
    const after = await untilLease(
      lease.id,
      (l) => l.state === "LEASE_STATE_ACTIVE",
      "the lease ACTIVE again",
    );
    expect(after.hostId).toBe(source);
    expect(processRunning(pid ?? 0)).toBe(true);
    await untilRunning(source, lease.id);
  }, 180_000);

  it("SuspendLease then ResumeLease runs the VM again", async () => {
    // A lease of its own: right after an abort the source's QEMU may still be cancelling.
    const lease = await runLease();
    await suspendLease(lease.id);
    await untilLease(lease.id, (l) => l.state === "LEASE_STATE_SUSPENDED", "SUSPENDED");
    await waitFor(() => pidsMentioning(vmDir(lease.hostId, lease.id)).length === 0, {
      what: "the suspended VM's QEMU gone",
      timeoutMs: STEP_MS,
      detail,
    });

    await resumeLease(lease.id);
    const resumed = await untilLease(
      lease.id,
      (l) => l.state === "LEASE_STATE_ACTIVE" && l.hostId !== "",
      "ACTIVE after resume",
    );
    await untilRunning(resumed.hostId, lease.id);
  }, 180_000);

  it("ResumeLease with its own host cordoned resumes on the other host from the fetched saved state", async () => {
    const lease = await runLease();
    const from = lease.hostId;
    const to = otherHost(from);
    const socket = (hostId: string) => join(vmDir(hostId, lease.id), "operator.sock");
    await waitFor(async () => (await biosTicks(socket(from))) > 20, {
      what: "BIOS ticks",
      timeoutMs: STEP_MS,
    });
    const ticksBefore = await biosTicks(socket(from));
    await suspendLease(lease.id);
    await untilLease(lease.id, (l) => l.state === "LEASE_STATE_SUSPENDED", "SUSPENDED");
    const savedFile = join(vmDir(from, lease.id), "suspend.state");
    await waitFor(() => pidsMentioning(vmDir(from, lease.id)).length === 0, {
      what: "the suspended VM's QEMU gone",
      timeoutMs: STEP_MS,
      detail,
    });
    await cordon(from);
    try {
      const starting = await resumeLease(lease.id);
      expect(starting).toMatchObject({ state: "LEASE_STATE_STARTING", hostId: to });
      expect(starting.statusMessage).toBe(
        `resuming on ${to}: fetching the saved state from ${from}`,
      );
      const resumed = await untilLease(
        lease.id,
        (l) => l.state === "LEASE_STATE_ACTIVE",
        "ACTIVE on the other host",
      );
      expect(resumed.hostId).toBe(to);
      await untilRunning(to, lease.id);
      // Its state came along: the BIOS ticks go on from where they were, not from a fresh boot.
      expect(await biosTicks(socket(to))).toBeGreaterThanOrEqual(ticksBefore);
      // Once it runs there, the source's saved state is discarded.
      await waitFor(() => !existsSync(savedFile), {
        what: "the source's saved state discarded",
        timeoutMs: STEP_MS,
        detail,
      });
    } finally {
      await uncordon(from);
    }
  }, 180_000);

  it("a damaged saved state fails the resume elsewhere cleanly: SUSPENDED on its source, with why", async () => {
    const lease = await runLease();
    const from = lease.hostId;
    const to = otherHost(from);
    await suspendLease(lease.id);
    await untilLease(lease.id, (l) => l.state === "LEASE_STATE_SUSPENDED", "SUSPENDED");
    const savedFile = join(vmDir(from, lease.id), "suspend.state");
    await waitFor(
      () => existsSync(savedFile) && pidsMentioning(vmDir(from, lease.id)).length === 0,
      {
        what: "saved, QEMU gone",
        timeoutMs: STEP_MS,
        detail,
      },
    );
    appendFileSync(savedFile, "damage");
    await cordon(from);
    try {
      await resumeLease(lease.id);
      const back = await untilLease(
        lease.id,
        (l) => l.state === "LEASE_STATE_SUSPENDED",
        "SUSPENDED again",
      );
      expect(back.hostId).toBe(from);
      expect(back.statusMessage).toMatch(
        new RegExp(`^resume on ${to} failed, still suspended on ${from}: .*SHA-256`),
      );
      expect(existsSync(savedFile)).toBe(true);
      expect(pidsMentioning(vmDir(to, lease.id))).toEqual([]);
    } finally {
      await uncordon(from);
    }
    await call<Lease>((cb) => broker.api.raw.CancelLease({ id: lease.id, reason: "test" }, cb));
  }, 180_000);
});
