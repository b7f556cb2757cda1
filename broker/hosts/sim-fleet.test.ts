import { describe, expect, it } from "vitest";
import { VirtualClock } from "../../core/index.js";
import type { WorkloadReport } from "./gateway.js";
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
});
