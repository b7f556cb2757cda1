import { describe, expect, it } from "vitest";
import { type Clock, silentLogger, type Timer, VirtualClock } from "../../core/index.js";
import { ClusterIndex, DEFAULT_PLACEMENT_POLICY } from "../../placement/index.js";
import { MemoryStore } from "../store/index.js";
import { HostRegistry } from "./registry.js";

const T0 = Date.UTC(2030, 0, 1);

/**
 * The broker's process as the registry sees it: virtual time, plus `stall`, which moves the
 * process's time on with no timer firing meanwhile (its event loop was busy).
 */
class StallingClock implements Clock {
  readonly virtual = new VirtualClock(T0);
  #offset = 0;
  now(): number {
    return this.virtual.now() + this.#offset;
  }
  setTimer(delayMs: number, fn: () => void): Timer {
    return this.virtual.setTimer(delayMs, fn);
  }
  setTimerAt(atMs: number, fn: () => void): Timer {
    return this.virtual.setTimerAt(atMs - this.#offset, fn);
  }
  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return this.virtual.sleep(ms, signal);
  }
  stall(ms: number): void {
    this.#offset += ms;
  }
}

function setup() {
  const clock = new StallingClock();
  const index = new ClusterIndex({ resourceWeights: DEFAULT_PLACEMENT_POLICY.resourceWeights });
  const registry = new HostRegistry({
    store: new MemoryStore(),
    index,
    clock,
    logger: silentLogger(),
  });
  registry.register({
    id: "h1",
    capacity: { cpuMillis: 4000, memoryMib: 8192, diskGib: 10, gpus: 0 },
    labels: {},
    driver: "sim",
    agentVersion: "test",
    bootId: "boot-1",
  });
  registry.startLiveness({ suspectAfterMs: 3000, downAfterMs: 10_000, checkEveryMs: 500 });
  return { clock, registry };
}

describe("host liveness when the broker itself stalls", () => {
  it("does not hold the broker's own busy time against a host", async () => {
    const { clock, registry } = setup();
    await clock.virtual.advance(1000);
    expect(registry.heartbeat("h1", "boot-1", 1)).toBe("ok");
    // 5 s in which the broker ran no timer (and read no beat): the host is not SUSPECT for it.
    clock.stall(5000);
    await clock.virtual.advance(500);
    expect(registry.view("h1").state).toBe("READY");
    // Its beats are read now: it stays READY.
    expect(registry.heartbeat("h1", "boot-1", 2)).toBe("ok");
    await clock.virtual.advance(2500);
    expect(registry.view("h1").state).toBe("READY");
  });

  it("still finds a silent host SUSPECT, then DOWN, counting only the time the broker listened", async () => {
    const { clock, registry } = setup();
    await clock.virtual.advance(1000);
    registry.heartbeat("h1", "boot-1", 1);
    clock.stall(5000);
    await clock.virtual.advance(2500);
    expect(registry.view("h1").state).toBe("READY");
    await clock.virtual.advance(1000);
    expect(registry.view("h1").state).toBe("SUSPECT");
    await clock.virtual.advance(7000);
    expect(registry.view("h1").state).toBe("DOWN");
  });
});
