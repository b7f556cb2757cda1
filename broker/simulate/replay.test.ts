/**
 * The simulator against the broker itself: a trace driven by hand through a `Broker` on a
 * VirtualClock gives the same lease events, event for event, as `replay`; and the report's
 * figures on a 2-host, 5-lease trace are the ones worked out by hand below.
 */
import { describe, expect, it } from "vitest";
import { VirtualClock } from "../../core/index.js";
import { Broker } from "../broker.js";
import {
  type ClusterDescription,
  clusterHosts,
  parseCluster,
  totalAllocatable,
} from "./cluster.js";
import { generateTrace } from "./generate.js";
import {
  brokerOptionsFor,
  DEFAULT_SIM_POLICY,
  leaseSpecOf,
  replay,
  SIM_EPOCH_MS,
  type SimEvent,
  simEventOf,
} from "./replay.js";
import { buildReport } from "./report.js";
import { searchHostsNeeded } from "./search.js";
import { parseTrace, type TraceEntry } from "./trace.js";

const SMALL: ClusterDescription = parseCluster(`
ratios: {cpu: 1}
zones: 1
shapes:
  - {name: h, count: 2, cpu: 4, memory_gib: 8}
`);

/** The broker, driven directly: submit each request at its time, let timers fire in between. */
async function directRun(
  trace: readonly TraceEntry[],
  cluster: ClusterDescription,
  hostCount: number,
): Promise<SimEvent[]> {
  const clock = new VirtualClock(SIM_EPOCH_MS);
  const broker = new Broker(brokerOptionsFor(DEFAULT_SIM_POLICY, clock, 1, {}));
  await broker.start();
  for (const host of clusterHosts(cluster, hostCount)) {
    broker.fleet?.addHost(host.id);
    broker.hosts.register(host);
  }
  const events: SimEvent[] = [];
  const watch = broker.leases.watch({ fromRevision: 0 }, ({ type, lease }) =>
    events.push(simEventOf(clock.now(), type, lease)),
  );
  for (const entry of trace) {
    await clock.advanceTo(SIM_EPOCH_MS + entry.submitMs);
    await broker.leases.submit(leaseSpecOf(entry, SIM_EPOCH_MS), entry.id).catch(() => {});
  }
  while (await clock.runNext()) {}
  watch.close();
  await broker.stop(0);
  return events;
}

/** The report of a hand-computed run of `trace` on SMALL-shaped `hosts`. */
function handReport(
  trace: readonly TraceEntry[],
  hosts: ReturnType<typeof clusterHosts>,
  result: Awaited<ReturnType<typeof replay>>,
  extra: Partial<Parameters<typeof buildReport>[0]> = {},
): ReturnType<typeof buildReport> {
  return buildReport({
    source: "hand",
    trace,
    cluster: SMALL,
    shapeCounts: [hosts.length],
    allocatable: totalAllocatable(hosts),
    policy: DEFAULT_SIM_POLICY,
    seed: 1,
    result,
    hostsNeeded: null,
    ...extra,
  });
}

describe("replay", () => {
  it("makes the same decisions as the broker driven directly, event for event", async () => {
    // A contended cluster: queueing, preemption, rejections and reservations all happen.
    const trace = generateTrace({ mix: "bursty", seed: 11, leases: 300, days: 0.5 }).map(
      (e, i): TraceEntry => (i % 4 === 0 ? { ...e, allowQueue: true } : e),
    );
    const cluster = parseCluster(`
shapes:
  - {name: a, count: 3, cpu: 16, memory_gib: 128}
  - {name: b, count: 1, cpu: 32, memory_gib: 256}
`);
    const simulated: SimEvent[] = [];
    const result = await replay({
      trace,
      hosts: clusterHosts(cluster, 4),
      onEvent: (e) => simulated.push(e),
    });
    const direct = await directRun(trace, cluster, 4);
    expect(simulated.length).toBe(direct.length);
    expect(simulated).toEqual(direct);
    const types = new Set(direct.map((e) => `${e.type}/${e.state}`));
    for (const seen of [
      "STATE_CHANGED/ACTIVE",
      "STATE_CHANGED/REJECTED",
      "PREEMPTION_NOTICE/ACTIVE",
      "STATE_CHANGED/PREEMPTED",
      "CREATED/RESERVED",
      "CREATED/PENDING",
    ])
      expect(types).toContain(seen);
    expect(result.outcomes.some((o) => o.state === "REFUSED")).toBe(true);
  });

  it("gives the hand-computed figures on 2 hosts and 5 leases", async () => {
    // Hosts: 4 cores (ratio 1) and 8 GiB each. A and B fill both hosts for the first hour; C
    // finds no room; D (flexible) is reserved for when they end; E reserves the third hour.
    const trace = parseTrace(
      [
        "id,submit,kind,start,earliest,latest,duration,cpu,memory_gib",
        "a,0,immediate,,,,3600,4,8",
        "b,0,immediate,,,,3600,4,8",
        "c,60,immediate,,,,600,1,1",
        "d,60,flexible,,60,7200,1800,2,4",
        "e,120,reserved,7200,,,3600,4,8",
      ].join("\n"),
    );
    const hosts = clusterHosts(SMALL, 2);
    const result = await replay({ trace, hosts });
    const report = handReport(trace, hosts, result, { bucketMs: 3_600_000 });
    const l = report.leases;
    expect([l.submitted, l.accepted, l.rejected, l.acceptance_rate, l.rejection_rate]).toEqual([
      5, 4, 1, 0.8, 0.2,
    ]);
    expect(l.by_kind.immediate).toMatchObject({
      submitted: 3,
      accepted: 2,
      rejected: 1,
      rejected_by_reason: { no_fit: 1 },
    });
    expect(l.by_kind.flexible).toMatchObject({ submitted: 1, accepted: 1, rejected: 0 });
    expect(l.by_kind.reserved).toMatchObject({ submitted: 1, accepted: 1, rejected: 0 });
    expect(report.rejection_examples.map((e) => [e.id, e.line, e.reason])).toEqual([
      ["c", 4, "no_fit"],
    ]);
    // D could start at 60 s; the first room is when A and B end at 3600 s.
    expect(report.queueing_delay.flexible).toMatchObject({ count: 1, mean_s: 3540, max_s: 3540 });
    // E ends at 10,800 s; its workload's 500 ms shutdown is the last event.
    expect(report.simulation.simulated_s).toBe(10_800.5);
    const u = report.utilisation;
    expect(u.allocatable).toEqual({ cpu_cores: 8, memory_gib: 16, disk_gib: 2000, gpus: 0 });
    // Hour 1: A + B = 8 of 8 cores; hour 2: D's 2 cores for half of it; hour 3: E's 4; then 0.
    expect(u.series.cpu).toEqual([1, 0.125, 0.5, 0]);
    expect(u.series.memory).toEqual([1, 0.125, 0.5, 0]);
    expect(u.peak.cpu).toBe(1);
    // (4·3600 + 4·3600 + 2·1800 + 4·3600) core-seconds over 10,800.5 s of 8 cores.
    expect(u.mean.cpu).toBeCloseTo(46_800 / (10_800.5 * 8), 4);
    expect(report.migrations.performed).toBe(0);
  });

  it("counts queueing and its rejections by hand-computed reasons", async () => {
    // One host. A fills it until 600 s. B (immediate, may queue) waits and starts when A ends;
    // C (flexible, latest start 300 s) and D (reserved at 120 s, may queue) give up; E (immediate,
    // may queue) is still waiting when the 1-minute queue timeout passes.
    const trace = parseTrace(
      [
        "id,submit,kind,start,earliest,latest,duration,cpu,memory_gib,allow_queue",
        "a,0,immediate,,,,600,4,8,false",
        "b,60,immediate,,,,600,4,8,true",
        "c,60,flexible,,60,300,600,4,8,false",
        "d,60,reserved,120,,,600,4,8,true",
        "e,100,immediate,,,,60,4,8,true",
      ].join("\n"),
    );
    const hosts = clusterHosts(SMALL, 1);
    const result = await replay({ trace, hosts, timings: { queueTimeoutMs: 60_000 } });
    const report = handReport(trace, hosts, result);
    expect(result.outcomes.map((o) => o.state)).toEqual([
      "ENDED",
      "REJECTED",
      "REJECTED",
      "REJECTED",
      "REJECTED",
    ]);
    // B's queue timeout (60 s + 1 min) comes before A ends: it is rejected too.
    expect(report.leases.by_kind.immediate.rejected_by_reason).toEqual({ queue_timeout: 2 });
    expect(report.leases.by_kind.flexible.rejected_by_reason).toEqual({ latest_start_passed: 1 });
    expect(report.leases.by_kind.reserved.rejected_by_reason).toEqual({
      reservation_start_passed: 1,
    });
    expect(report.leases.queued).toBe(4);
    const longer = await replay({ trace, hosts, timings: { queueTimeoutMs: 3_600_000 } });
    // With the default 1 h timeout B and E wait for A (ends at 600 s) and run one after the other.
    expect(longer.outcomes.map((o) => o.state)).toEqual([
      "ENDED",
      "ENDED",
      "REJECTED",
      "REJECTED",
      "ENDED",
    ]);
    const again = handReport(trace, hosts, longer);
    // B starts at 600 s (asked at 60 s); E when B ends at 1200 s (asked at 100 s).
    expect(again.queueing_delay.queued_fixed).toMatchObject({ count: 2, max_s: 1100, p50_s: 540 });
  });

  it("finds the hosts needed where the answer is known", async () => {
    // Seven whole-host leases at once need seven hosts; the described cluster has two.
    const lines = ["submit,duration,cpu,memory_gib"];
    for (let i = 0; i < 7; i++) lines.push(`${i},3600,4,8`);
    const trace = parseTrace(lines.join("\n"));
    const found = await searchHostsNeeded({
      trace,
      cluster: SMALL,
      policy: DEFAULT_SIM_POLICY,
      seed: 1,
      maxHosts: 100,
    });
    expect(found.hosts).toBe(7);
    expect(found.shapes).toEqual({ h: 7 });
    const tried = new Map(found.runs.map((r) => [r.hosts, r.admitted]));
    expect(tried.get(6)).toBe(false);
    expect(tried.get(7)).toBe(true);
    expect(found.runs.find((r) => r.hosts === 6)?.first_problem).toMatch(/line 8.*refused/);
  });

  it("says when no size admits the trace", async () => {
    const trace = parseTrace("submit,duration,cpu,memory_gib\n0,60,5,1\n");
    const tooBig = await searchHostsNeeded({
      trace,
      cluster: SMALL,
      policy: DEFAULT_SIM_POLICY,
      seed: 1,
      maxHosts: 100,
    });
    expect(tooBig.hosts).toBeNull();
    expect(tooBig.note).toMatch(/line-2 \(line 2\) fits no host shape/);
    expect(tooBig.runs).toEqual([]);
    const nowhere = await searchHostsNeeded({
      trace: parseTrace(
        '{"submit":0,"duration":60,"cpu":1,"memory_gib":1,"constraints":["gpu=true"]}',
      ),
      cluster: SMALL,
      policy: DEFAULT_SIM_POLICY,
      seed: 1,
      maxHosts: 100,
    });
    expect(nowhere.note).toMatch(/line-1 \(line 1\) fits no host shape/);
    // Longer than the broker's 90-day limit: refused as invalid at any size, so one size is enough.
    const invalid = await searchHostsNeeded({
      trace: parseTrace(`submit,duration,cpu,memory_gib\n0,${91 * 86_400},1,1`),
      cluster: SMALL,
      policy: DEFAULT_SIM_POLICY,
      seed: 1,
      maxHosts: 100,
    });
    expect(invalid.hosts).toBeNull();
    expect(invalid.note).toMatch(/line-2 \(line 2\): the broker refuses it as invalid/);
    expect(invalid.runs).toHaveLength(1);
    const capped = await searchHostsNeeded({
      trace: parseTrace(
        `submit,duration,cpu,memory_gib\n${Array.from({ length: 5 }, () => "0,60,4,8").join("\n")}`,
      ),
      cluster: SMALL,
      policy: DEFAULT_SIM_POLICY,
      seed: 1,
      maxHosts: 3,
    });
    expect(capped.hosts).toBeNull();
    expect(capped.note).toMatch(/even with 3 hosts/);
  });

  it("turns preemption off when the policy says so", async () => {
    const trace = parseTrace(
      [
        "id,submit,duration,cpu,memory_gib,priority,preemptible",
        "low,0,3600,4,8,0,true",
        "low2,0,3600,4,8,0,true",
        "high,10,3600,4,8,100,false",
      ].join("\n"),
    );
    const hosts = clusterHosts(SMALL, 2);
    const on = await replay({ trace, hosts });
    const off = await replay({
      trace,
      hosts,
      policy: { ...DEFAULT_SIM_POLICY, preemption: false },
    });
    expect(on.outcomes.map((o) => o.state)).toEqual(["PREEMPTED", "ENDED", "ENDED"]);
    expect(off.outcomes.map((o) => o.state)).toEqual(["ENDED", "ENDED", "REFUSED"]);
  });
  it("makes room: a lease that fits no single host is admitted after one live migration", async () => {
    // At 600 s a ends: sim-01 holds b (4 GiB), sim-02 c1 and c2 (2 GiB each). x (6 GiB) fits
    // neither until c1 or c2 (or b) moves.
    const trace = parseTrace(
      [
        "id,submit,duration,cpu,memory_gib",
        "a,0,600,1,4",
        "b,0,3600,1,4",
        "c1,0,3600,1,2",
        "c2,0,3600,1,2",
        "x,700,3600,1,6",
      ].join("\n"),
    );
    const hosts = clusterHosts(SMALL, 2);
    const on = await replay({ trace, hosts, policy: { ...DEFAULT_SIM_POLICY, makeRoom: true } });
    const off = await replay({ trace, hosts, policy: { ...DEFAULT_SIM_POLICY, makeRoom: false } });
    expect(off.outcomes.map((o) => o.state)).toEqual([
      "ENDED",
      "ENDED",
      "ENDED",
      "ENDED",
      "REFUSED",
    ]);
    expect(off.migrations).toBe(0);
    expect(on.outcomes.map((o) => o.state)).toEqual(["ENDED", "ENDED", "ENDED", "ENDED", "ENDED"]);
    expect(on.outcomes[4]?.queued).toBe(true);
    expect(on.migrations).toBe(1);
    expect(on.migrationPredictedMs).toBeGreaterThan(0);
    expect(on.migrationPredictedDowntimeMs).toBeGreaterThan(0);
  });
});
