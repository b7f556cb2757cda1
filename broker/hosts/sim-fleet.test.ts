import { describe, expect, it } from "vitest";
import { VirtualClock } from "../../core/index.js";
import type { MigrationReport, WorkloadReport } from "./gateway.js";
import { SimFleet, UnknownSimHostError } from "./sim-fleet.js";

const workload = (leaseId: string) => ({
  leaseId,
  resources: { cpuMillis: 1000, memoryMib: 1024, diskGib: 10, gpus: 0 },
  end: 1e9,
  image: "",
  params: {},
});

describe("SimFleet", () => {
  it("boots, runs and stops workloads on the clock", async () => {
    const clock = new VirtualClock(0);
    const fleet = new SimFleet(clock, { bootMs: 1000, shutdownMs: 300 });
    const reports: WorkloadReport[] = [];
    fleet.onReport((r) => reports.push(r));
    fleet.addHost("h1");
    await fleet.start("h1", workload("l1"));
    await fleet.start("h1", workload("l1")); // idempotent
    expect(fleet.workloads("h1")).toEqual(["l1"]);
    await clock.advance(999);
    expect(reports).toEqual([]);
    await clock.advance(1);
    expect(reports).toEqual([{ hostId: "h1", leaseId: "l1", state: "RUNNING", message: "" }]);

    await fleet.stop("h1", "l1", { graceMs: 10_000, force: false });
    await clock.advance(300);
    expect(reports.at(-1)).toMatchObject({ leaseId: "l1", state: "STOPPED" });
    expect(fleet.workloads("h1")).toEqual([]);
  });

  it("caps shutdown at the grace period, kills at once when forced, and reports unknown stops", async () => {
    const clock = new VirtualClock(0);
    const fleet = new SimFleet(clock, { bootMs: 0, shutdownMs: 5000 });
    const reports: WorkloadReport[] = [];
    fleet.onReport((r) => reports.push(r));
    fleet.addHost("h1");
    await fleet.start("h1", workload("a"));
    await fleet.start("h1", workload("b"));
    await clock.advance(0);
    await fleet.stop("h1", "a", { graceMs: 100, force: false });
    await fleet.stop("h1", "b", { graceMs: 100, force: true });
    await fleet.stop("h1", "ghost", { graceMs: 100, force: false });
    await clock.advance(0);
    expect(reports.filter((r) => r.state === "STOPPED").map((r) => r.leaseId)).toEqual([
      "b",
      "ghost",
    ]);
    await clock.advance(100);
    expect(reports.filter((r) => r.state === "STOPPED").map((r) => r.leaseId)).toEqual([
      "b",
      "ghost",
      "a",
    ]);
  });

  it("kills a workload that is still shutting down when a forced stop follows", async () => {
    const clock = new VirtualClock(0);
    const fleet = new SimFleet(clock, { bootMs: 0, shutdownMs: 5000 });
    const reports: WorkloadReport[] = [];
    fleet.onReport((r) => reports.push(r));
    fleet.addHost("h1");
    await fleet.start("h1", workload("a"));
    await clock.advance(0);
    await fleet.stop("h1", "a", { graceMs: 10_000, force: false });
    await clock.advance(1000);
    await fleet.stop("h1", "a", { graceMs: 10_000, force: true });
    await clock.advance(0);
    expect(reports.filter((r) => r.state === "STOPPED")).toEqual([
      { hostId: "h1", leaseId: "a", state: "STOPPED", message: "killed" },
    ]);
    await clock.advance(10_000); // the graceful stop's end was cancelled: no second report
    expect(reports.filter((r) => r.state === "STOPPED")).toHaveLength(1);
    expect(fleet.workloads("h1")).toEqual([]);
  });

  it("fails starts on failing hosts and refuses unknown hosts", async () => {
    const clock = new VirtualClock(0);
    const fleet = new SimFleet(clock, { failingHosts: new Set(["bad"]) });
    const reports: WorkloadReport[] = [];
    fleet.onReport((r) => reports.push(r));
    fleet.addHost("bad");
    await fleet.start("bad", workload("l"));
    await clock.advance(0);
    expect(reports).toMatchObject([{ state: "FAILED" }]);
    await expect(fleet.start("nope", workload("l"))).rejects.toBeInstanceOf(UnknownSimHostError);
  });

  it("migrates a running workload by pre-copy rounds, and aborts keeping the source", async () => {
    const clock = new VirtualClock(0);
    // 1 GiB at 128 MiB/s: round 1 takes 8 s.
    const fleet = new SimFleet(clock, { bootMs: 0, bandwidthBytesPerS: 128 * 1024 * 1024 });
    const reports: WorkloadReport[] = [];
    const progress: MigrationReport[] = [];
    fleet.onReport((r) => reports.push(r));
    fleet.onMigrationReport((r) => progress.push(r));
    for (const h of ["h1", "h2", "h3"]) fleet.addHost(h);
    await fleet.start("h1", workload("l1"));
    await clock.advance(0);
    const migrate = async (id: string, to: string) => {
      const destination = await fleet.prepareIncoming(to, {
        ...workload("l1"),
        migrationId: id,
        postCopy: false,
      });
      await fleet.migrateOut("h1", {
        migrationId: id,
        leaseId: "l1",
        destinationHostId: to,
        destination,
        bandwidthLimitBytesPerS: 0,
        downtimeLimitMs: 300,
        autoConverge: false,
        postCopy: false,
      });
    };

    await migrate("m1", "h2");
    await clock.advance(4000);
    expect(progress.at(-1)).toMatchObject({ migrationId: "m1", phase: "TRANSFERRING", rounds: 0 });
    await fleet.abortMigration("h1", "m1", "l1", "changed plans");
    await fleet.abortMigration("h2", "m1", "l1", "changed plans");
    expect(progress.at(-1)).toMatchObject({ phase: "ABORTED", error: "changed plans" });
    expect(fleet.workloads("h1")).toEqual(["l1"]);
    expect(fleet.workloads("h2")).toEqual([]);
    await expect(fleet.abortMigration("h1", "m1", "l1", "")).rejects.toThrow(/NOT_FOUND/);

    await migrate("m2", "h3");
    await clock.advance(60_000);
    const phases = progress.filter((p) => p.migrationId === "m2").map((p) => p.phase);
    expect(phases[0]).toBe("TRANSFERRING");
    expect(phases.slice(-2)).toEqual(["SWITCHOVER", "COMPLETED"]);
    const done = progress.at(-1);
    expect(done?.bytesTransferred).toBeGreaterThanOrEqual(1024 * 1024 * 1024);
    expect(done?.downtimeMs).toBeLessThanOrEqual(300);
    expect(reports.slice(-2)).toEqual([
      {
        hostId: "h1",
        leaseId: "l1",
        state: "STOPPED",
        message: "migrated to h3",
        migrationId: "m2",
      },
      { hostId: "h3", leaseId: "l1", state: "RUNNING", message: "migrated in", migrationId: "m2" },
    ]);
    expect(fleet.workloads("h1")).toEqual([]);
    expect(fleet.workloads("h3")).toEqual(["l1"]);
  });

  it("suspends and resumes a workload", async () => {
    const clock = new VirtualClock(0);
    const fleet = new SimFleet(clock, { bootMs: 0, suspendMs: 1000, resumeMs: 500 });
    const reports: WorkloadReport[] = [];
    fleet.onReport((r) => reports.push(r));
    fleet.addHost("h1");
    await fleet.start("h1", workload("l1"));
    await clock.advance(0);
    await fleet.suspend("h1", "l1");
    await clock.advance(1000);
    await expect(
      fleet.migrateOut("h1", {
        migrationId: "m",
        leaseId: "l1",
        destinationHostId: "h1",
        destination: { address: "h1", port: 1 },
        bandwidthLimitBytesPerS: 0,
        downtimeLimitMs: 300,
        autoConverge: false,
        postCopy: false,
      }),
    ).rejects.toThrow(/WRONG_STATE/);
    await fleet.resume("h1", "l1");
    await clock.advance(500);
    expect(reports.at(-1)).toEqual({
      hostId: "h1",
      leaseId: "l1",
      state: "RUNNING",
      message: "resumed",
    });
  });
});
