/**
 * The agent host of the end-to-end benchmark: `--agents` real `Agent`s with the sim driver in one
 * process, over `--connections` NATS connections (agents share them round-robin). Prints
 * `E2E-AGENTS-READY <n>` once every agent's Hello was accepted. Stops (agents, then the
 * connections drained) on SIGTERM/SIGINT, and when its stdin closes (the benchmark is gone).
 *
 * Lines on stdin: `reset` starts a measurement (event-loop delay, GC, CPU); `stats <file>` ends it:
 * prints `E2E-AGENTS-STATS <json>` and writes to <file> when each lease's start reached its
 * driver and when its workload reported RUNNING (epoch ms, this machine's clock), for the
 * benchmark's per-stage figures.
 *
 * `--heartbeat-slot-ms` (default 10; 0: a timer per agent): the agents' heartbeats share a
 * TimerWheel of slots that wide.
 *
 *   node dist/bench/e2e-agents.js --nats-url nats://127.0.0.1:4222 --agents 1000 --boot-ms 50
 */
import { readFileSync, writeFileSync } from "node:fs";
import {
  constants,
  monitorEventLoopDelay,
  PerformanceObserver,
  performance,
} from "node:perf_hooks";
import { createInterface } from "node:readline";
import {
  Agent,
  type DriverEventListener,
  SimDriver,
  type SimDriverOptions,
  TimerWheel,
  type WorkloadSpec,
} from "../agent/index.js";
import { simHostAnnouncements } from "../broker/broker.js";
import { NatsBus } from "../bus/index.js";
import { createLogger, errorMessage, RealClock } from "../core/index.js";

interface Options {
  natsUrl: string;
  agents: number;
  connections: number;
  bootMs: number;
  cpus: number;
  memoryGib: number;
  seed: number;
  readyTimeoutMs: number;
  heartbeatSlotMs: number;
}

function parse(argv: readonly string[]): Options {
  const o: Options = {
    natsUrl: "",
    agents: 1000,
    connections: 4,
    bootMs: 10,
    cpus: 16,
    memoryGib: 64,
    seed: 1,
    readyTimeoutMs: 60_000,
    heartbeatSlotMs: 10,
  };
  const fail = (why: string): never => {
    process.stderr.write(`e2e-agents: ${why}\n`);
    process.exit(2);
  };
  for (let i = 0; i < argv.length; i += 2) {
    const flag = argv[i] ?? "";
    const value = argv[i + 1];
    if (value === undefined) fail(`${flag} needs a value`);
    const n = Number(value);
    const int = (): number =>
      Number.isInteger(n) && n >= 0 ? n : fail(`${flag}: expected a non-negative integer`);
    switch (flag) {
      case "--nats-url":
        o.natsUrl = value as string;
        break;
      case "--agents":
        o.agents = int();
        break;
      case "--connections":
        o.connections = Math.max(1, int());
        break;
      case "--boot-ms":
        o.bootMs = int();
        break;
      case "--cpus":
        o.cpus = int();
        break;
      case "--memory-gib":
        o.memoryGib = int();
        break;
      case "--seed":
        o.seed = int();
        break;
      case "--ready-timeout-ms":
        o.readyTimeoutMs = int();
        break;
      case "--heartbeat-slot-ms":
        o.heartbeatSlotMs = int();
        break;
      default:
        fail(`unknown flag ${flag}`);
    }
  }
  if (o.natsUrl === "") fail("--nats-url is required");
  return o;
}

/** Epoch ms (this machine's clock) of each lease's start at its driver and of its RUNNING event. */
class StageTimes {
  readonly started = new Map<string, number>();
  readonly running = new Map<string, number>();
  toJson(): string {
    return JSON.stringify({
      started: Object.fromEntries(this.started),
      running: Object.fromEntries(this.running),
    });
  }
}

/** The sim driver, noting when a start reaches it and when the workload reports RUNNING. */
class TimedSimDriver extends SimDriver {
  readonly #times: StageTimes;
  constructor(options: SimDriverOptions, times: StageTimes) {
    super(options);
    this.#times = times;
  }
  override start(workload: WorkloadSpec): Promise<void> {
    this.#times.started.set(workload.leaseId, performance.timeOrigin + performance.now());
    return super.start(workload);
  }
  override onEvent(listener: DriverEventListener): () => void {
    return super.onEvent((event) => {
      if (event.type === "workload" && event.state === "RUNNING")
        this.#times.running.set(event.leaseId, performance.timeOrigin + performance.now());
      listener(event);
    });
  }
}

/** This process's read and write system calls so far (Linux /proc; 0 elsewhere). */
function syscalls(): { reads: number; writes: number } {
  try {
    const io = readFileSync("/proc/self/io", "utf8");
    const field = (name: string): number =>
      Number(new RegExp(`^${name}: (\\d+)`, "m").exec(io)?.[1] ?? 0);
    return { reads: field("syscr"), writes: field("syscw") };
  } catch {
    return { reads: 0, writes: 0 };
  }
}

/** This process's event-loop delay, GC time, CPU and system calls since the last `reset`. */
class LoadMeter {
  // prom-client's resolution, as the broker's figure: a 1 ms timer would cost this process CPU.
  readonly #delay = monitorEventLoopDelay({ resolution: 10 });
  #gcMs = 0;
  /** Of which mark-compact (major) collections, and the longest single pause. */
  #majorGcMs = 0;
  #maxGcMs = 0;
  #since = performance.now();
  #cpu = process.cpuUsage();
  #syscalls = syscalls();
  constructor() {
    new PerformanceObserver((list) => {
      for (const entry of list.getEntries()) {
        this.#gcMs += entry.duration;
        this.#maxGcMs = Math.max(this.#maxGcMs, entry.duration);
        // A "gc" entry's detail says which collection it was (@types/node does not type it).
        const kind = (entry as unknown as { detail?: { kind?: number } }).detail?.kind;
        if (kind === constants.NODE_PERFORMANCE_GC_MAJOR) this.#majorGcMs += entry.duration;
      }
    }).observe({ entryTypes: ["gc"] });
  }
  reset(): void {
    this.#delay.enable();
    this.#delay.reset();
    this.#gcMs = 0;
    this.#majorGcMs = 0;
    this.#maxGcMs = 0;
    this.#since = performance.now();
    this.#cpu = process.cpuUsage();
    this.#syscalls = syscalls();
  }
  figures(): Record<string, number> {
    const wall = performance.now() - this.#since;
    const cpu = process.cpuUsage(this.#cpu);
    const calls = syscalls();
    return {
      read_syscalls: calls.reads - this.#syscalls.reads,
      write_syscalls: calls.writes - this.#syscalls.writes,
      event_loop_delay_p50_ms: this.#delay.percentile(50) / 1e6,
      event_loop_delay_p99_ms: this.#delay.percentile(99) / 1e6,
      event_loop_delay_max_ms: this.#delay.max / 1e6,
      gc_percent: (this.#gcMs / wall) * 100,
      gc_major_percent: (this.#majorGcMs / wall) * 100,
      gc_max_pause_ms: this.#maxGcMs,
      cpu_ms: (cpu.user + cpu.system) / 1000,
      wall_ms: wall,
    };
  }
}

async function main(): Promise<void> {
  const o = parse(process.argv.slice(2));
  const meter = new LoadMeter();
  const times = new StageTimes();
  const logger = createLogger({ level: "warn", name: "e2e-agents" });
  const clock = new RealClock();
  const buses: NatsBus[] = [];
  for (let i = 0; i < o.connections; i++) {
    buses.push(
      await NatsBus.connect({
        servers: o.natsUrl,
        name: `e2e-agents-${i}`,
        logger: logger,
        // 250 agents a connection: one socket write per turn, not one per beat, reply, event.
        coalescePublishes: true,
      }),
    );
  }
  // The agents' heartbeats on one wheel of slots: each agent keeps its own 1 s schedule, and the
  // beats due in a slot go out in one turn (one socket write per connection), not one each.
  const wheel = o.heartbeatSlotMs > 0 ? new TimerWheel(clock, o.heartbeatSlotMs) : undefined;
  const hosts = simHostAnnouncements({ count: o.agents, cpus: o.cpus, memoryGib: o.memoryGib });
  const drivers: SimDriver[] = [];
  const agents = hosts.map((host, i) => {
    const driver = new TimedSimDriver(
      // Stops are not measured; keep them short so the hosts free up quickly.
      { clock, seed: o.seed + i, bootMs: o.bootMs, shutdownMs: 10 },
      times,
    );
    drivers.push(driver);
    return new Agent({
      hostId: host.id,
      bus: buses[i % buses.length] as NatsBus,
      driver,
      clock,
      capacity: host.capacity,
      labels: host.labels,
      seed: o.seed + i,
      heartbeatTimers: wheel,
      logger: logger.child({ host: host.id }),
    });
  });
  await Promise.all(agents.map((a) => a.start()));
  let stopping = false;
  const stop = (code: number): void => {
    if (stopping) return;
    stopping = true;
    (async () => {
      await Promise.all(agents.map((a) => a.stop()));
      await Promise.all(drivers.map((d) => d.close()));
      await Promise.all(buses.map((b) => b.drain().catch(() => b.close())));
    })().then(
      () => process.exit(code),
      () => process.exit(1),
    );
  };
  process.on("SIGTERM", () => stop(0));
  process.on("SIGINT", () => stop(0));
  process.stdin.on("end", () => stop(0));
  process.stdin.on("error", () => stop(0));
  createInterface({ input: process.stdin }).on("line", (line) => {
    const [command, file] = line.trim().split(" ");
    if (command === "reset") meter.reset();
    else if (command === "stats") {
      if (file !== undefined) writeFileSync(file, times.toJson());
      process.stdout.write(`E2E-AGENTS-STATS ${JSON.stringify(meter.figures())}\n`);
    }
  });
  const timeout = setTimeout(() => {
    process.stderr.write(`e2e-agents: not all agents registered in ${o.readyTimeoutMs} ms\n`);
    stop(1);
  }, o.readyTimeoutMs);
  await Promise.all(agents.map((a) => a.registered()));
  clearTimeout(timeout);
  process.stdout.write(`E2E-AGENTS-READY ${agents.length}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`e2e-agents: ${errorMessage(error)}\n`);
  process.exit(1);
});
