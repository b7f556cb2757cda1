import { describe, expect, it } from "vitest";
import { VirtualClock } from "../../core/index.js";
import {
  type DriverEvent,
  InvalidWorkloadError,
  WorkloadNotFoundError,
  type WorkloadSpec,
  WorkloadStateError,
} from "../driver.js";
import { SimDriver, type SimDriverOptions, SimNetwork } from "./sim-driver.js";

const MIB = 1024 * 1024;

function spec(
  leaseId: string,
  params: Record<string, string> = {},
  memoryMib = 1024,
): WorkloadSpec {
  return {
    leaseId,
    name: "",
    resources: { cpuMillis: 2000, memoryMib, diskGib: 10, gpus: 0 },
    image: "",
    params,
    endTime: undefined,
  };
}

function driverWith(options: Partial<SimDriverOptions> = {}) {
  const clock = options.clock ?? new VirtualClock(0);
  const driver = new SimDriver({ seed: 1, ...options, clock });
  const events: Array<DriverEvent & { at: number }> = [];
  driver.onEvent((e) => events.push({ ...e, at: clock.now() }));
  const states = (leaseId: string): string[] =>
    events.flatMap((e) =>
      e.type === "workload" && e.leaseId === leaseId ? [`${e.state}@${e.at}`] : [],
    );
  return { clock: clock as VirtualClock, driver, events, states };
}

describe("SimDriver", () => {
  it("boots, runs and stops a VM on the clock", async () => {
    const { clock, driver, states } = driverWith({ shutdownMs: 300 });
    await driver.start(spec("l1", { boot_ms: "1000" }));
    expect(states("l1")).toEqual(["STARTING@0"]);
    expect((await driver.list()).map((w) => w.state)).toEqual(["STARTING"]);
    await clock.advance(999);
    expect(states("l1")).toEqual(["STARTING@0"]);
    await clock.advance(1);
    expect(states("l1")).toEqual(["STARTING@0", "RUNNING@1000"]);
    const [info] = await driver.list();
    expect(info).toMatchObject({ leaseId: "l1", state: "RUNNING", startedAt: 1000 });
    expect(info?.memoryUsedMib).toBeGreaterThan(0);
    expect(info?.memoryUsedMib).toBeLessThanOrEqual(1024);

    await driver.stop("l1", { graceMs: 10_000, force: false, reason: "" });
    await clock.advance(300);
    expect(states("l1")).toEqual(["STARTING@0", "RUNNING@1000", "STOPPING@1000", "STOPPED@1300"]);
    expect(await driver.list()).toEqual([]);
    await expect(driver.stop("l1", { graceMs: 0, force: true, reason: "" })).rejects.toBeInstanceOf(
      WorkloadNotFoundError,
    );
    expect(clock.pendingTimers).toBe(0);
  });

  it("kills at once on a forced stop, and after the grace when shutdown takes longer", async () => {
    const { clock, driver, events, states } = driverWith({ shutdownMs: 5000 });
    await driver.start(spec("a", { boot_ms: "0" }));
    await driver.start(spec("b", { boot_ms: "0" }));
    await clock.advance(0);
    await driver.stop("a", { graceMs: 60_000, force: true, reason: "" });
    await driver.stop("b", { graceMs: 1000, force: false, reason: "" });
    await clock.advance(1000);
    expect(states("a")).toEqual(["STARTING@0", "RUNNING@0", "STOPPING@0", "STOPPED@0"]);
    expect(states("b")).toEqual(["STARTING@0", "RUNNING@0", "STOPPING@0", "STOPPED@1000"]);
    const exits = events.flatMap((e) => (e.type === "workload" && e.exit ? [e.exit] : []));
    expect(exits).toEqual([
      { exitCode: -1, signal: "SIGKILL", forced: true, guestInitiated: false },
      { exitCode: -1, signal: "SIGKILL", forced: true, guestInitiated: false },
    ]);
  });

  it("escalates a graceful stop in progress to a forced one", async () => {
    const { clock, driver, states } = driverWith({ shutdownMs: 5000 });
    await driver.start(spec("a", { boot_ms: "0" }));
    await clock.advance(0);
    await driver.stop("a", { graceMs: 60_000, force: false, reason: "" });
    await clock.advance(100);
    await driver.stop("a", { graceMs: 0, force: true, reason: "" });
    await clock.advance(0);
    expect(states("a")).toEqual(["STARTING@0", "RUNNING@0", "STOPPING@0", "STOPPED@100"]);
  });

  it("stops a VM that is still booting", async () => {
    const { clock, driver, states } = driverWith({ shutdownMs: 100 });
    await driver.start(spec("a", { boot_ms: "1000" }));
    await clock.advance(10);
    await driver.stop("a", { graceMs: 1000, force: false, reason: "" });
    await clock.advance(2000);
    expect(states("a")).toEqual(["STARTING@0", "STOPPING@10", "STOPPED@110"]);
  });

  it("fails a VM whose boot is set to fail", async () => {
    const { clock, driver, states } = driverWith();
    await driver.start(spec("a", { boot_ms: "50", fail_start: "true" }));
    await clock.advance(50);
    expect(states("a")).toEqual(["STARTING@0", "FAILED@50"]);
    expect(await driver.list()).toEqual([]);
  });

  it("refuses bad parameters", async () => {
    const { driver } = driverWith();
    await expect(driver.start(spec("a", { boot_ms: "soon" }))).rejects.toBeInstanceOf(
      InvalidWorkloadError,
    );
    await expect(driver.start(spec("a", { working_set_mib: "4096" }))).rejects.toThrow(
      /working_set_mib/,
    );
    expect(await driver.list()).toEqual([]);
  });

  it("is deterministic under a seed, whatever order the leases arrive in", async () => {
    const timeline = async (seed: number, order: string[]): Promise<Record<string, string[]>> => {
      const { clock, driver, states } = driverWith({ seed });
      for (const id of order) await driver.start(spec(id));
      await clock.advance(5000);
      const info = await driver.list();
      return Object.fromEntries(
        order.map((id) => [
          id,
          [...states(id), JSON.stringify(info.find((w) => w.leaseId === id)?.details)],
        ]),
      );
    };
    const a = await timeline(42, ["x", "y", "z"]);
    const b = await timeline(42, ["z", "x", "y"]);
    const c = await timeline(43, ["x", "y", "z"]);
    expect(b).toEqual(a);
    expect(c).not.toEqual(a);
    // Boot times scatter around the 1 s default.
    for (const states of Object.values(a)) {
      const running = Number(states[1]?.split("@")[1]);
      expect(running).toBeGreaterThanOrEqual(800);
      expect(running).toBeLessThanOrEqual(1200);
    }
  });

  it("suspends and resumes", async () => {
    const { clock, driver, states } = driverWith({ suspendMs: 100, resumeMs: 50 });
    await driver.start(spec("a", { boot_ms: "0" }));
    await clock.advance(0);
    await driver.suspend("a");
    await clock.advance(100);
    expect((await driver.usage()).memoryMib).toBe(0);
    await driver.resume("a");
    await clock.advance(50);
    expect(states("a").slice(2)).toEqual([
      "SUSPENDING@0",
      "SUSPENDED@100",
      "RESUMING@100",
      "RUNNING@150",
    ]);
    await expect(driver.resume("a")).resolves.toBeUndefined();
    await expect(driver.suspend("nope")).rejects.toBeInstanceOf(WorkloadNotFoundError);
  });

  it("reports usage of its VMs", async () => {
    const { clock, driver } = driverWith();
    expect(await driver.usage()).toEqual({ cpuMillis: 0, memoryMib: 0, diskGib: 0, gpus: 0 });
    await driver.start(spec("a", { boot_ms: "0" }));
    await clock.advance(0);
    const usage = await driver.usage();
    expect(usage.cpuMillis).toBeGreaterThan(0);
    expect(usage.cpuMillis).toBeLessThanOrEqual(2000);
    expect(usage.diskGib).toBe(10);
  });

  describe("migration", () => {
    async function pair(options: Partial<SimDriverOptions> = {}) {
      const clock = new VirtualClock(0);
      const network = new SimNetwork();
      const source = driverWith({ clock, network, bandwidthBytesPerS: 100 * MIB, ...options });
      const dest = driverWith({ clock, network, ...options });
      return { clock, source, dest };
    }

    it("pre-copies in rounds, switches over and runs on the destination", async () => {
      const { clock, source, dest } = await pair();
      const params = {
        boot_ms: "0",
        working_set_mib: "64",
        dirty_rate_bytes_per_s: String(20 * MIB),
      };
      await source.driver.start(spec("vm", params));
      await clock.advance(0);
      const endpoint = await dest.driver.prepareIncoming({
        ...spec("vm", params),
        migrationId: "m1",
        postCopy: false,
      });
      expect(endpoint.address).toBe("127.0.0.1");
      expect((await dest.driver.list())[0]?.state).toBe("INCOMING");
      await source.driver.migrateOut({
        migrationId: "m1",
        leaseId: "vm",
        destinationHostId: "dest",
        destinationAddress: endpoint.address,
        destinationPort: endpoint.port,
        bandwidthLimitBytesPerS: 0,
        downtimeLimitMs: 300,
        autoConverge: false,
        postCopy: false,
      });
      await clock.advance(60_000);
      const phases = source.events.flatMap((e) => (e.type === "migration" ? [e.phase] : []));
      expect(phases[0]).toBe("TRANSFERRING");
      expect(phases.slice(-2)).toEqual(["SWITCHOVER", "COMPLETED"]);
      const rounds = source.events.flatMap((e) =>
        e.type === "migration" && e.phase === "TRANSFERRING" ? [e.stats.rounds] : [],
      );
      expect(rounds.length).toBeGreaterThan(2);
      const done = source.events.at(-2);
      expect(done?.type === "migration" && done.downtimeMs).toBeLessThanOrEqual(300);
      expect(source.states("vm").at(-1)).toMatch(/^STOPPED@/);
      expect(await source.driver.list()).toEqual([]);
      expect((await dest.driver.list())[0]?.state).toBe("RUNNING");
      expect(dest.states("vm").map((s) => s.split("@")[0])).toEqual(["INCOMING", "RUNNING"]);
      expect(dest.events.some((e) => e.type === "migration" && e.phase === "COMPLETED")).toBe(true);
    });

    it("aborts a migration that does not converge; the source keeps running", async () => {
      const { clock, source, dest } = await pair({ maxRounds: 5 });
      const params = {
        boot_ms: "0",
        working_set_mib: "512",
        dirty_rate_bytes_per_s: String(500 * MIB),
      };
      await source.driver.start(spec("vm", params));
      await clock.advance(0);
      const endpoint = await dest.driver.prepareIncoming({
        ...spec("vm"),
        migrationId: "m1",
        postCopy: false,
      });
      await source.driver.migrateOut({
        migrationId: "m1",
        leaseId: "vm",
        destinationHostId: "dest",
        destinationAddress: endpoint.address,
        destinationPort: endpoint.port,
        bandwidthLimitBytesPerS: 0,
        downtimeLimitMs: 100,
        autoConverge: false,
        postCopy: false,
      });
      await clock.advance(600_000);
      const last = source.events.at(-1);
      expect(last?.type === "migration" && last.phase).toBe("ABORTED");
      expect(last?.type === "migration" && last.error).toMatch(/did not converge/);
      expect((await source.driver.list())[0]?.state).toBe("RUNNING");
      // The destination discards on the broker's abort.
      await dest.driver.abortMigration("m1", "vm", "rolled back");
      expect(await dest.driver.list()).toEqual([]);
    });

    it("aborts on request, and when the destination is unreachable", async () => {
      const { clock, source } = await pair();
      await source.driver.start(spec("vm", { boot_ms: "0" }));
      await clock.advance(0);
      const out = {
        migrationId: "m1",
        leaseId: "vm",
        destinationHostId: "dest",
        destinationAddress: "10.0.0.9",
        destinationPort: 4444,
        bandwidthLimitBytesPerS: 0,
        downtimeLimitMs: 300,
        autoConverge: false,
        postCopy: false,
      };
      await source.driver.migrateOut(out);
      await clock.advance(0);
      const last = source.events.at(-1);
      expect(last?.type === "migration" && last.error).toMatch(/not reachable/);
      await expect(source.driver.abortMigration("m1", "vm", "")).rejects.toBeInstanceOf(
        WorkloadNotFoundError,
      );
      await expect(source.driver.migrateOut({ ...out, leaseId: "nope" })).rejects.toBeInstanceOf(
        WorkloadNotFoundError,
      );
      await source.driver.suspend("vm");
      await expect(source.driver.migrateOut(out)).rejects.toBeInstanceOf(WorkloadStateError);
    });
  });
});
