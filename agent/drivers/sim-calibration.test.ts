/**
 * The pre-copy model (`migration/precopy.ts`, the reference) against the sim driver: the same
 * inputs — memory, resident memory (the rest counts as zero pages), writable working set, dirty
 * rate, bandwidth, downtime limit — give a total time within 10% and a downtime under the limit.
 * The planners' costs and each migration record's prediction come from the model; the sim is what
 * the tests and the simulator migrate with, so the two must agree.
 */
import { describe, expect, it } from "vitest";
import { VirtualClock } from "../../core/index.js";
import { predictPreCopy } from "../../migration/index.js";
import type { DriverEvent } from "../driver.js";
import { SimDriver, SimNetwork } from "./sim-driver.js";

const MIB = 1024 * 1024;

async function simMigration(
  memoryMib: number,
  params: { working_set_mib: string; dirty_rate_bytes_per_s: string },
  bandwidth: number,
  downtimeLimitMs: number,
): Promise<{ totalTimeMs: number; downtimeMs: number; memoryUsedMib: number }> {
  const clock = new VirtualClock(0);
  const network = new SimNetwork();
  const source = new SimDriver({ clock, network, seed: 7, bandwidthBytesPerS: bandwidth });
  const dest = new SimDriver({ clock, network, seed: 8 });
  const events: DriverEvent[] = [];
  source.onEvent((e) => events.push(e));
  const spec = {
    leaseId: "vm",
    name: "",
    resources: { cpuMillis: 1000, memoryMib, diskGib: 10, gpus: 0 },
    image: "",
    params: { boot_ms: "0", ...params },
    endTime: undefined,
  };
  await source.start(spec);
  await clock.advance(0);
  const memoryUsedMib = (await source.list())[0]?.memoryUsedMib ?? 0;
  const endpoint = await dest.prepareIncoming({ ...spec, migrationId: "m", postCopy: false });
  await source.migrateOut({
    migrationId: "m",
    leaseId: "vm",
    destinationHostId: "dest",
    destinationAddress: endpoint.address,
    destinationPort: endpoint.port,
    bandwidthLimitBytesPerS: 0,
    downtimeLimitMs,
    autoConverge: false,
    postCopy: false,
  });
  await clock.advance(3_600_000);
  const done = events.find((e) => e.type === "migration" && e.phase === "COMPLETED");
  if (done?.type !== "migration") throw new Error("the sim migration did not complete");
  return {
    totalTimeMs: done.totalTimeMs ?? 0,
    downtimeMs: done.downtimeMs ?? 0,
    memoryUsedMib,
  };
}

describe("the sim driver, calibrated against the pre-copy model", () => {
  it.each([
    { memoryMib: 4096, wwsMib: 256, dirty: 20 * MIB, bandwidth: 125_000_000, limit: 300 },
    { memoryMib: 8192, wwsMib: 1024, dirty: 60 * MIB, bandwidth: 125_000_000, limit: 300 },
    { memoryMib: 16_384, wwsMib: 2048, dirty: 30 * MIB, bandwidth: 250_000_000, limit: 500 },
  ])("$memoryMib MiB, WWS $wwsMib MiB: total time within 10%", async (c) => {
    const sim = await simMigration(
      c.memoryMib,
      { working_set_mib: String(c.wwsMib), dirty_rate_bytes_per_s: String(c.dirty) },
      c.bandwidth,
      c.limit,
    );
    const model = predictPreCopy({
      memoryBytes: c.memoryMib * MIB,
      zeroPageShare: 1 - sim.memoryUsedMib / c.memoryMib,
      wwsBytes: c.wwsMib * MIB,
      dirtyRateBytesPerS: c.dirty,
      bandwidthBytesPerS: c.bandwidth,
      downtimeLimitMs: c.limit,
      autoConverge: false,
    });
    expect(model.converges).toBe(true);
    expect(sim.totalTimeMs).toBeGreaterThan(0);
    expect(Math.abs(sim.totalTimeMs - model.totalTimeMs) / model.totalTimeMs).toBeLessThan(0.1);
    expect(sim.downtimeMs).toBeLessThanOrEqual(c.limit);
    expect(model.downtimeMs).toBeLessThanOrEqual(c.limit);
  });
});
