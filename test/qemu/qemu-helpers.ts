/**
 * Helpers of the qemu driver's tests: asking a VM over its own QMP socket, and killing every QEMU
 * a test left under its data directory (QEMU runs detached from the agent on purpose, so the
 * process helpers' watchdog does not know it).
 */
import { readdirSync, readFileSync } from "node:fs";
import { QmpClient } from "../../agent/drivers/qemu/qmp-client.js";
import type { DriverEvent, WorkloadSpec } from "../../agent/index.js";

/** `query-status` over a fresh QMP connection: `running`, `paused`, ... */
/** `leasebroker-agent` flags for a qemu-driver agent under TCG, on loopback (as in CI). */
export const QEMU_AGENT_ARGS = [
  "--driver",
  "qemu",
  "--qemu-accel",
  "tcg",
  "--address",
  "127.0.0.1",
] as const;

export async function qmpStatus(socketPath: string): Promise<string> {
  const qmp = await QmpClient.connect(socketPath, 5000);
  try {
    const result = await qmp.execute("query-status");
    return typeof result === "object" && result !== null && "status" in result
      ? String(result.status)
      : "";
  } finally {
    qmp.close();
  }
}

/**
 * The BIOS tick counter (a 32-bit word at 0x46c, incremented by the guest's timer interrupt since
 * boot) over a fresh QMP connection: after a migration or a resume it continues from where it was,
 * where a fresh boot would start again near 0.
 */
export async function biosTicks(socketPath: string): Promise<number> {
  const qmp = await QmpClient.connect(socketPath, 5000);
  try {
    const out = await qmp.execute("human-monitor-command", {
      "command-line": "xp /1wx 0x46c",
    });
    const match = /:\s*0x([0-9a-f]+)/.exec(String(out));
    if (match?.[1] === undefined) throw new Error(`unexpected xp output ${String(out)}`);
    return Number.parseInt(match[1], 16);
  } finally {
    qmp.close();
  }
}

/** Pids of live processes whose command line mentions `text`. */
export function pidsMentioning(text: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, "utf8");
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const zombie = stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z");
      if (!zombie && cmdline.includes("qemu-system") && cmdline.includes(text)) {
        pids.push(Number(entry));
      }
    } catch {
      // Gone meanwhile.
    }
  }
  return pids;
}

export function processRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return !stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z");
  } catch {
    return false;
  }
}

/** SIGKILLs every QEMU whose command line mentions `dir` (a test's data directory). */
export function killQemuUnder(dir: string): void {
  for (const pid of pidsMentioning(dir)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // Gone meanwhile.
    }
  }
}

/** A small idle VM: 1 vCPU, no disk (SeaBIOS finds nothing to boot and waits: it still runs). */
export function smallVm(leaseId: string, memoryMib = 64): WorkloadSpec {
  return {
    leaseId,
    name: leaseId,
    resources: { cpuMillis: 500, memoryMib, diskGib: 0, gpus: 0 },
    image: "",
    params: {},
    endTime: undefined,
  };
}

/** Collects a driver's events. */
export class EventLog {
  readonly events: DriverEvent[] = [];

  readonly listener = (event: DriverEvent): void => {
    this.events.push(event);
  };

  workloadStates(leaseId: string): string[] {
    return this.events.flatMap((e) =>
      e.type === "workload" && e.leaseId === leaseId ? [e.state] : [],
    );
  }

  migration(migrationId: string, phase: string): Extract<DriverEvent, { type: "migration" }>[] {
    return this.events.flatMap((e) =>
      e.type === "migration" && e.migrationId === migrationId && e.phase === phase ? [e] : [],
    );
  }

  lastWorkload(leaseId: string): Extract<DriverEvent, { type: "workload" }> | undefined {
    return this.events
      .flatMap((e) => (e.type === "workload" && e.leaseId === leaseId ? [e] : []))
      .at(-1);
  }
}
