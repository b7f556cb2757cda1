/**
 * The qemu driver against real QEMU under TCG: small idle VMs (64-128 MiB, 1 vCPU, no disk).
 * Start/stop, QEMU's own error on a failed start, live migration between two drivers (two data
 * directories: two "hosts"), an abort mid-way, suspend/resume, and re-adoption by a new driver.
 *
 * "With its state" is checked with the BIOS tick counter (0x46c, incremented by the guest's timer
 * interrupt since boot): after a migration or a resume it continues from where it was, where a
 * fresh boot would start again near 0.
 */
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { QemuDriver, qemuVmDir } from "../../agent/drivers/qemu/qemu-driver.js";
import { QmpClient } from "../../agent/drivers/qemu/qmp-client.js";
import { RealClock } from "../../core/index.js";
import { makeTempDir, QEMU, removeDir, requireBinary, waitFor } from "../helpers/index.js";
import {
  biosTicks,
  EventLog,
  killQemuUnder,
  pidsMentioning,
  processRunning,
  qmpStatus,
  smallVm,
} from "./qemu-helpers.js";

const clock = new RealClock();
let qemuBin: string;
let root: string;
const drivers: QemuDriver[] = [];

function newDriver(name: string, log?: EventLog, binary = qemuBin): QemuDriver {
  const driver = new QemuDriver({
    clock,
    dataDir: join(root, name),
    binary,
    accel: "tcg",
    pollIntervalMs: 200,
    quitGraceMs: 2000,
  });
  if (log !== undefined) driver.onEvent(log.listener);
  drivers.push(driver);
  return driver;
}

async function pidOf(driver: QemuDriver, leaseId: string): Promise<number> {
  const info = (await driver.list()).find((w) => w.leaseId === leaseId);
  return Number(info?.details.pid ?? Number.NaN);
}

async function waitState(log: EventLog, leaseId: string, state: string, timeoutMs = 30_000) {
  await waitFor(() => log.workloadStates(leaseId).includes(state), {
    what: `${leaseId} ${state}`,
    timeoutMs,
    detail: () => JSON.stringify(log.events.slice(-5)),
  });
}

/**
 * A 128 MiB VM `vm-NAME` on a new driver `NAME-src`, migrating to a new driver `NAME-dst` at
 * 20 kB/s (an idle guest, mostly zero pages, then takes far longer than the test), bytes moving.
 */
async function slowMigration(
  name: string,
  migrationId: string,
  log: EventLog,
  destinationLog = new EventLog(),
): Promise<{ source: QemuDriver; destination: QemuDriver; leaseId: string }> {
  const source = newDriver(`${name}-src`, log);
  const destination = newDriver(`${name}-dst`, destinationLog);
  const leaseId = `vm-${name}`;
  const spec = smallVm(leaseId, 128);
  await source.start(spec);
  await waitState(log, leaseId, "RUNNING");
  const endpoint = await destination.prepareIncoming({ ...spec, migrationId, postCopy: false });
  await source.migrateOut({
    migrationId,
    leaseId,
    destinationHostId: "dst",
    destinationAddress: endpoint.address,
    destinationPort: endpoint.port,
    bandwidthLimitBytesPerS: 20_000,
    downtimeLimitMs: 300,
    autoConverge: false,
    postCopy: false,
  });
  await waitFor(
    () => log.migration(migrationId, "TRANSFERRING").some((e) => e.stats.bytesTransferred > 0),
    { what: "bytes moving", timeoutMs: 20_000 },
  );
  return { source, destination, leaseId };
}

beforeAll(async () => {
  qemuBin = requireBinary(QEMU);
  root = await makeTempDir("qemu-driver");
});

afterEach(async () => {
  for (const driver of drivers.splice(0)) await driver.close();
  killQemuUnder(root);
});

afterAll(async () => {
  killQemuUnder(root);
  await removeDir(root);
});

describe("qemu driver (real QEMU, TCG)", () => {
  it("starts a QEMU process that QMP reports running, and stops it", async () => {
    const log = new EventLog();
    const driver = newDriver("start", log);
    await driver.start(smallVm("vm-start"));
    await waitState(log, "vm-start", "RUNNING");
    const pid = await pidOf(driver, "vm-start");
    expect(processRunning(pid)).toBe(true);
    expect(await qmpStatus(driver.socketPath("vm-start"))).toBe("running");

    await driver.stop("vm-start", { graceMs: 200, force: false, reason: "test" });
    await waitState(log, "vm-start", "STOPPED");
    await waitFor(() => !processRunning(pid), { what: "QEMU gone" });
    expect(await driver.list()).toEqual([]);
    expect(existsSync(join(root, "start", "qemu"))).toBe(true);
    expect(pidsMentioning(join(root, "start"))).toEqual([]);
  });

  it("reports a failed start with QEMU's own message", async () => {
    const log = new EventLog();
    const driver = newDriver("fail", log);
    const images = join(root, "fail", "images");
    mkdirSync(images, { recursive: true });
    writeFileSync(join(images, "bad.qcow2"), "not a qcow2 image at all");
    await driver.start({ ...smallVm("vm-bad"), image: "bad.qcow2" });
    await waitState(log, "vm-bad", "FAILED");
    expect(log.lastWorkload("vm-bad")?.message).toMatch(/qcow2/i);
    expect(await driver.list()).toEqual([]);

    // A lease cannot name a file outside the image directory.
    await expect(
      driver.start({ ...smallVm("vm-escape"), image: "../../etc/passwd" }),
    ).rejects.toThrow(/inside/);

    const missing = newDriver("missing", log, join(root, "no-such-qemu"));
    await missing.start(smallVm("vm-missing"));
    await waitState(log, "vm-missing", "FAILED");
    expect(log.lastWorkload("vm-missing")?.message).toMatch(/ENOENT/);
  });

  it("live-migrates a VM to another driver: the destination runs it with its state", async () => {
    const log = new EventLog();
    const source = newDriver("mig-src", log);
    const destination = newDriver("mig-dst", log);
    const spec = smallVm("vm-mig", 128);
    await source.start(spec);
    await waitState(log, "vm-mig", "RUNNING");
    const sourcePid = await pidOf(source, "vm-mig");
    await waitFor(async () => (await biosTicks(source.socketPath("vm-mig"))) > 20, {
      what: "BIOS ticks",
      timeoutMs: 20_000,
    });
    const ticksBefore = await biosTicks(source.socketPath("vm-mig"));

    const endpoint = await destination.prepareIncoming({
      ...spec,
      migrationId: "m1",
      postCopy: false,
    });
    expect(endpoint.port).toBeGreaterThan(0);
    expect((await destination.list())[0]?.state).toBe("INCOMING");
    await source.migrateOut({
      migrationId: "m1",
      leaseId: "vm-mig",
      destinationHostId: "dst",
      destinationAddress: endpoint.address,
      destinationPort: endpoint.port,
      bandwidthLimitBytesPerS: 0,
      downtimeLimitMs: 300,
      autoConverge: false,
      postCopy: false,
    });
    await waitFor(() => log.migration("m1", "COMPLETED").length === 2, {
      what: "both sides COMPLETED",
      timeoutMs: 60_000,
      detail: () => JSON.stringify(log.events.slice(-5)),
    });
    const completed = log.migration("m1", "COMPLETED").find((e) => e.downtimeMs !== undefined);
    // QEMU's own figures (an idle guest's downtime can round to 0 ms).
    expect(completed?.downtimeMs).toBeGreaterThanOrEqual(0);
    expect(completed?.totalTimeMs).toBeGreaterThan(0);
    expect(completed?.totalTimeMs).toBeGreaterThanOrEqual(completed?.downtimeMs ?? Number.NaN);
    expect(completed?.stats.bytesTransferred).toBeGreaterThan(0);

    await waitFor(() => !processRunning(sourcePid), { what: "source QEMU gone" });
    await waitFor(async () => (await destination.list())[0]?.state === "RUNNING", {
      what: "destination RUNNING",
    });
    expect(await qmpStatus(destination.socketPath("vm-mig"))).toBe("running");
    // The source forgets the VM once it has handled its QEMU's exit (just after the process ends).
    await waitFor(async () => (await source.list()).length === 0, { what: "source VM forgotten" });
    expect(await source.list()).toEqual([]);
    expect(await biosTicks(destination.socketPath("vm-mig"))).toBeGreaterThanOrEqual(ticksBefore);
  });

  it("an abort mid-way leaves the source running and discards the destination", async () => {
    const log = new EventLog();
    const destinationLog = new EventLog();
    const { source, destination } = await slowMigration("abort", "m2", log, destinationLog);
    await source.abortMigration("m2", "vm-abort", "operator abort");
    await waitFor(() => log.migration("m2", "ABORTED").length >= 1, { what: "ABORTED" });
    const aborted = log.migration("m2", "ABORTED")[0];
    expect(aborted?.error).toBe("operator abort");
    expect(log.migration("m2", "COMPLETED")).toEqual([]);
    expect(await qmpStatus(source.socketPath("vm-abort"))).toBe("running");
    expect((await source.list())[0]?.state).toBe("RUNNING");
    // The destination's QEMU loses its stream and exits; its half of the migration ends too.
    await waitState(destinationLog, "vm-abort", "STOPPED");
    expect(destinationLog.migration("m2", "ABORTED")).toHaveLength(1);
    expect(await destination.list()).toEqual([]);
  });

  it("suspends at once after an abort: the migration winds down, then the VM is saved", async () => {
    const log = new EventLog();
    const { source } = await slowMigration("abort-suspend", "m3", log);
    await source.abortMigration("m3", "vm-abort-suspend", "make way for a suspend");
    // No wait for ABORTED: the broker may ask for the suspend as soon as its abort was accepted.
    await source.suspend("vm-abort-suspend");
    await waitState(log, "vm-abort-suspend", "SUSPENDED");
    expect(log.migration("m3", "ABORTED")[0]?.error).toBe("make way for a suspend");
    expect((await source.list())[0]?.state).toBe("SUSPENDED");
  });

  it("a migration QEMU cannot make ends ABORTED with QEMU's reason, the source still running", async () => {
    const log = new EventLog();
    const source = newDriver("fail-src", log);
    await source.start(smallVm("vm-nowhere"));
    await waitState(log, "vm-nowhere", "RUNNING");
    // A port nothing listens on: QEMU's connect fails after `migrate` was accepted.
    const port = await new Promise<number>((resolvePort) => {
      const server = createServer().listen(0, "127.0.0.1", () => {
        const address = server.address();
        server.close(() => resolvePort(typeof address === "object" && address ? address.port : 0));
      });
    });
    await source.migrateOut({
      migrationId: "m-nowhere",
      leaseId: "vm-nowhere",
      destinationHostId: "nowhere",
      destinationAddress: "127.0.0.1",
      destinationPort: port,
      bandwidthLimitBytesPerS: 0,
      downtimeLimitMs: 300,
      autoConverge: false,
      postCopy: false,
    });
    await waitFor(() => log.migration("m-nowhere", "ABORTED").length === 1, {
      what: "ABORTED",
      timeoutMs: 20_000,
    });
    expect(log.migration("m-nowhere", "ABORTED")[0]?.error).toMatch(/connect|refused/i);
    expect(await qmpStatus(source.socketPath("vm-nowhere"))).toBe("running");
    expect((await source.list())[0]).toMatchObject({ state: "RUNNING", migrationId: "" });
  });

  it("suspends to a file and resumes with the VM's state", async () => {
    const log = new EventLog();
    const driver = newDriver("suspend", log);
    await driver.start(smallVm("vm-sus"));
    await waitState(log, "vm-sus", "RUNNING");
    const pid = await pidOf(driver, "vm-sus");
    await waitFor(async () => (await biosTicks(driver.socketPath("vm-sus"))) > 20, {
      what: "BIOS ticks",
      timeoutMs: 20_000,
    });
    const ticksBefore = await biosTicks(driver.socketPath("vm-sus"));

    await driver.suspend("vm-sus");
    await waitState(log, "vm-sus", "SUSPENDED");
    expect(processRunning(pid)).toBe(false);
    const suspended = (await driver.list())[0];
    expect(suspended?.state).toBe("SUSPENDED");
    expect(Number(suspended?.details.saved_bytes)).toBeGreaterThan(0);
    expect(log.lastWorkload("vm-sus")?.message).toMatch(/^saved \d+ bytes in \d+ ms$/);

    await driver.resume("vm-sus");
    await waitFor(() => log.workloadStates("vm-sus").filter((s) => s === "RUNNING").length === 2, {
      what: "RUNNING again",
      timeoutMs: 30_000,
    });
    expect(await qmpStatus(driver.socketPath("vm-sus"))).toBe("running");
    expect(await biosTicks(driver.socketPath("vm-sus"))).toBeGreaterThanOrEqual(ticksBefore);
  });

  it("resumes on another driver from the saved state it fetched, the source keeping its file", async () => {
    const logA = new EventLog();
    const logB = new EventLog();
    const a = newDriver("sus-a", logA);
    const b = newDriver("sus-b", logB);
    const spec = smallVm("vm-move");
    await a.start(spec);
    await waitState(logA, "vm-move", "RUNNING");
    await waitFor(async () => (await biosTicks(a.socketPath("vm-move"))) > 20, {
      what: "BIOS ticks",
      timeoutMs: 20_000,
    });
    const ticksBefore = await biosTicks(a.socketPath("vm-move"));
    await a.suspend("vm-move");
    await waitState(logA, "vm-move", "SUSPENDED");

    const image = await a.exportSuspended("vm-move");
    const saved = (await a.list())[0];
    expect(image.sizeBytes).toBe(Number(saved?.details.saved_bytes));
    expect(image.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(image.sha256).toBe(saved?.details.saved_sha256);
    expect(await a.exportSuspended("vm-move")).toEqual(image); // idempotent

    await b.resumeFrom(spec, image);
    await waitState(logB, "vm-move", "RUNNING");
    expect(logB.lastWorkload("vm-move")?.message).toMatch(
      new RegExp(`^resumed in \\d+ ms \\(fetched ${image.sizeBytes} bytes in \\d+ ms\\)$`),
    );
    expect(await qmpStatus(b.socketPath("vm-move"))).toBe("running");
    expect(await biosTicks(b.socketPath("vm-move"))).toBeGreaterThanOrEqual(ticksBefore);
    // The source still has it until told to discard it.
    expect((await a.list())[0]?.state).toBe("SUSPENDED");
    await a.stop("vm-move", { graceMs: 0, force: true, reason: "resumed elsewhere" });
    await waitState(logA, "vm-move", "STOPPED");
    expect(await a.list()).toEqual([]);
    expect(existsSync(qemuVmDir(join(root, "sus-a", "qemu"), "vm-move"))).toBe(false);
  });

  it("a fetch with a wrong token or checksum fails the resume cleanly; the source keeps its file", async () => {
    const logA = new EventLog();
    const logB = new EventLog();
    const a = newDriver("fetch-a", logA);
    const b = newDriver("fetch-b", logB);
    const spec = smallVm("vm-fetch");
    await a.start(spec);
    await waitState(logA, "vm-fetch", "RUNNING");
    await a.suspend("vm-fetch");
    await waitState(logA, "vm-fetch", "SUSPENDED");
    const image = await a.exportSuspended("vm-fetch");

    await b.resumeFrom(spec, { ...image, token: "0".repeat(64) });
    await waitState(logB, "vm-fetch", "FAILED");
    expect(logB.lastWorkload("vm-fetch")?.message).toMatch(
      /cannot fetch the saved state.*received 0 bytes/,
    );
    expect(await b.list()).toEqual([]);

    await b.resumeFrom(spec, { ...image, sha256: "f".repeat(64) });
    await waitFor(
      () => logB.workloadStates("vm-fetch").filter((s) => s === "FAILED").length === 2,
      {
        what: "second FAILED",
      },
    );
    expect(logB.lastWorkload("vm-fetch")?.message).toMatch(
      new RegExp(`received ${image.sizeBytes} bytes with SHA-256 [0-9a-f]{64}, expected`),
    );
    expect(await b.list()).toEqual([]);
    expect(pidsMentioning(join(root, "fetch-b"))).toEqual([]);
    expect((await a.list())[0]?.state).toBe("SUSPENDED");
    // Still fetchable with the right token: the file was kept.
    await b.resumeFrom(spec, image);
    await waitState(logB, "vm-fetch", "RUNNING");
  });

  it("a new driver on the same data directory re-adopts a running VM", async () => {
    const log = new EventLog();
    const first = newDriver("adopt", log);
    await first.start(smallVm("vm-adopt"));
    await waitState(log, "vm-adopt", "RUNNING");
    const pid = await pidOf(first, "vm-adopt");
    await first.close();

    const log2 = new EventLog();
    const second = newDriver("adopt", log2);
    expect(await second.recover()).toEqual(["vm-adopt"]);
    const [info] = await second.list();
    expect(info?.state).toBe("RUNNING");
    expect(Number(info?.details.pid)).toBe(pid);
    expect(processRunning(pid)).toBe(true);

    // The adopted QEMU is not this process's child; stopping it still works.
    await second.stop("vm-adopt", { graceMs: 0, force: false, reason: "test" });
    await waitState(log2, "vm-adopt", "STOPPED");
    await waitFor(() => !processRunning(pid), { what: "QEMU gone" });
  });

  it("re-adoption cancels a migration the previous agent left under way; the VM keeps running", async () => {
    const log = new EventLog();
    const { source: first } = await slowMigration("adopt-mig", "m3", log);
    const pid = await pidOf(first, "vm-adopt-mig");
    await first.close(); // the agent dies mid-migration; QEMU keeps migrating

    const second = newDriver("adopt-mig-src");
    expect(await second.recover()).toEqual(["vm-adopt-mig"]);
    expect((await second.list())[0]).toMatchObject({
      state: "RUNNING",
      details: { pid: String(pid) },
    });
    const qmp = await QmpClient.connect(second.socketPath("vm-adopt-mig"), 5000);
    try {
      const migration = await qmp.execute("query-migrate");
      expect(migration).toMatchObject({ status: "cancelled" });
    } finally {
      qmp.close();
    }
    expect(await qmpStatus(second.socketPath("vm-adopt-mig"))).toBe("running");
  });
});
