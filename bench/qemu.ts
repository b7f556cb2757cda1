/**
 * bench:qemu — real QEMU live migrations between two qemu drivers on this machine (two data
 * directories: two "hosts", migration over loopback TCP): VMs of 256 MiB, 1 GiB and 2 GiB, idle
 * (SeaBIOS with nothing to boot: almost all pages are zero) and with a guest that dirties memory
 * (a 512-byte boot sector written by this bench: it enters 32-bit protected mode and writes one
 * word into every 4 KiB page of a `--working-set-mib` region from 1 MiB up, over and over).
 * Records QEMU's own measured total time and downtime (query-migrate) beside the pre-copy model's
 * prediction.
 *
 *   node dist/bench/qemu.js [--reps N] [--downtime-ms N] [--bandwidth-mib N] [--working-set-mib N]
 *                           [--no-dirty] [--kvm] [--json]
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type DriverEvent, QemuDriver, type WorkloadSpec } from "../agent/index.js";
import { RealClock } from "../core/index.js";
import { parseFlags } from "./lib/args.js";
import { fmt, median, table } from "./lib/stats.js";

const flags = parseFlags(
  "qemu",
  {
    reps: { kind: "number", default: 1, help: "migrations per (size, guest)" },
    "downtime-ms": { kind: "number", default: 300, help: "downtime limit (QEMU's default: 300)" },
    "bandwidth-mib": {
      kind: "number",
      default: 0,
      help: "max-bandwidth in MiB/s; 0 = unlimited (loopback, CPU-bound)",
    },
    "working-set-mib": {
      kind: "number",
      default: 64,
      help: "memory the dirtying guest rewrites, from 1 MiB up",
    },
    "no-dirty": { kind: "boolean", default: false, help: "only idle guests" },
    kvm: { kind: "boolean", default: false, help: "use KVM if usable (default: TCG, like CI)" },
    json: { kind: "boolean", default: false, help: "print one JSON object instead of a table" },
  },
  process.argv.slice(2),
);

const MIB = 1024 * 1024;
const SIZES_MIB = [256, 1024, 2048];

/**
 * The dirtying guest: boot sector (see the header). Assembled from this source with GNU as
 * (`as --32`, `ld -m elf_i386 --oformat binary -Ttext 0`):
 *   cli; xor ax,ax; mov ds,ax; lgdt [0x7c60]; cr0 |= 1; ljmp 0x08:0x7c1d
 *   pm: ds = es = ss = 0x10; xor eax,eax
 *   outer: inc eax; mov edi,0x100000
 *   page: mov [edi],eax; add edi,4096; cmp edi,LIMIT; jb page; jmp outer
 *   gdt at 0x48: null, flat code 0x00cf9a000000ffff, flat data 0x00cf92000000ffff; descriptor at 0x60
 */
const BOOT_CODE =
  "fa31c08ed8660f0116607c0f20c06683c8010f22c066ea1d7c0000080066b810008ed88ec08ed031c040bf0000100089" +
  "0781c70010000081ff0000100472f0ebe88db426000000000000000000000000ffff0000009acf00ffff00000092cf00" +
  "1700487c0000";
/** Offset of the 32-bit LIMIT immediate of `cmp edi, LIMIT`. */
const LIMIT_OFFSET = 57;

function dirtyingBootSector(workingSetMib: number): Buffer {
  const sector = Buffer.alloc(512);
  Buffer.from(BOOT_CODE, "hex").copy(sector);
  sector.writeUInt32LE(MIB + workingSetMib * MIB, LIMIT_OFFSET);
  sector.writeUInt16LE(0xaa55, 510);
  return sector;
}

// -----------------------------------------------------------------------------------------------
// PLACEHOLDER MODEL — the lead replaces this with the pre-copy model of migration/ (branch
// migplan). Inputs are what a broker knows before a migration; the return is milliseconds.
export interface PrecopyInput {
  readonly memoryMib: number;
  readonly dirtyRateBytesPerS: number;
  readonly bandwidthBytesPerS: number;
  readonly downtimeLimitMs: number;
}

/**
 * Textbook pre-copy (Clark et al.): round 1 sends all memory, each next round what was dirtied
 * during the previous one, until the rest fits the downtime limit (at most 30 rounds).
 */
export function predictTotalMsPlaceholder(input: PrecopyInput): number {
  const { bandwidthBytesPerS: bw, dirtyRateBytesPerS: dirty, downtimeLimitMs } = input;
  if (!(bw > 0)) return Number.NaN;
  let remaining = input.memoryMib * MIB;
  let totalMs = 0;
  for (let round = 0; round < 30; round++) {
    const roundMs = (remaining / bw) * 1000;
    if (roundMs <= downtimeLimitMs) return totalMs + roundMs;
    totalMs += roundMs;
    remaining = Math.min(input.memoryMib * MIB, (dirty * roundMs) / 1000);
  }
  return totalMs + (remaining / bw) * 1000;
}
// -----------------------------------------------------------------------------------------------

interface Run {
  readonly memory_mib: number;
  readonly guest: "idle" | "dirty";
  readonly total_ms: number;
  readonly downtime_ms: number;
  readonly predicted_total_ms: number;
  readonly transferred_mib: number;
  readonly rounds: number;
  readonly bandwidth_mib_per_s: number;
  readonly dirty_rate_mib_per_s: number;
}

const clock = new RealClock();

function waitFor<T>(events: DriverEvent[], pick: (e: DriverEvent) => T | undefined, ms: number) {
  return new Promise<T>((resolve, reject) => {
    const started = Date.now();
    const tick = (): void => {
      for (const e of events) {
        const hit = pick(e);
        if (hit !== undefined) {
          resolve(hit);
          return;
        }
      }
      if (Date.now() - started > ms) reject(new Error(`timed out after ${ms} ms`));
      else setTimeout(tick, 50);
    };
    tick();
  });
}

async function migrateOnce(
  root: string,
  index: number,
  memoryMib: number,
  guest: "idle" | "dirty",
): Promise<Run> {
  const events: DriverEvent[] = [];
  const options = {
    clock,
    accel: flags.kvm ? ("auto" as const) : ("tcg" as const),
    pollIntervalMs: 200,
  };
  const src = new QemuDriver({ ...options, dataDir: join(root, `s${index}`) });
  const dst = new QemuDriver({ ...options, dataDir: join(root, `d${index}`) });
  src.onEvent((e) => events.push(e));
  dst.onEvent((e) => events.push(e));
  const leaseId = `bench-${index}`;
  let image = "";
  if (guest === "dirty") {
    for (const dir of [join(root, `s${index}`, "images"), join(root, `d${index}`, "images")]) {
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, "dirty.img"), dirtyingBootSector(flags["working-set-mib"]));
    }
    image = "dirty.img";
  }
  const spec: WorkloadSpec = {
    leaseId,
    name: leaseId,
    resources: { cpuMillis: 1000, memoryMib, diskGib: 0, gpus: 0 },
    image,
    // SeaBIOS boots a one-sector disk from IDE, not from virtio-blk.
    params: { image_format: "raw", disk_interface: "ide" },
    endTime: undefined,
  };
  try {
    await src.start(spec);
    await waitFor(
      events,
      (e) => (e.type === "workload" && e.state === "RUNNING" ? true : undefined),
      60_000,
    );
    // Let the guest reach its steady state (BIOS done; the dirtying loop has touched its set).
    await clock.sleep(2000);
    const migrationId = `m-${index}`;
    const endpoint = await dst.prepareIncoming({ ...spec, migrationId, postCopy: false });
    await src.migrateOut({
      migrationId,
      leaseId,
      destinationHostId: "dst",
      destinationAddress: endpoint.address,
      destinationPort: endpoint.port,
      bandwidthLimitBytesPerS: flags["bandwidth-mib"] * MIB,
      downtimeLimitMs: flags["downtime-ms"],
      autoConverge: false,
      postCopy: false,
    });
    const done = await waitFor(
      events,
      (e) =>
        e.type === "migration" &&
        e.migrationId === migrationId &&
        (e.phase === "ABORTED" || (e.phase === "COMPLETED" && e.downtimeMs !== undefined))
          ? e
          : undefined,
      10 * 60_000,
    );
    if (done.type !== "migration" || done.phase !== "COMPLETED") {
      throw new Error(
        `migration ${migrationId} aborted: ${done.type === "migration" ? done.error : ""}`,
      );
    }
    const progress = events.flatMap((e) =>
      e.type === "migration" && e.migrationId === migrationId && e.phase === "TRANSFERRING"
        ? [e.stats]
        : [],
    );
    const dirtyRate = Math.max(0, ...progress.map((s) => s.dirtyRateBytesPerS));
    const bandwidth = Math.max(
      0,
      ...progress.map((s) => s.bandwidthBytesPerS),
      done.stats.bandwidthBytesPerS,
    );
    return {
      memory_mib: memoryMib,
      guest,
      total_ms: done.totalTimeMs ?? Number.NaN,
      downtime_ms: done.downtimeMs ?? Number.NaN,
      predicted_total_ms: Math.round(
        predictTotalMsPlaceholder({
          memoryMib,
          dirtyRateBytesPerS: dirtyRate,
          bandwidthBytesPerS: bandwidth,
          downtimeLimitMs: flags["downtime-ms"],
        }),
      ),
      transferred_mib: Math.round((done.stats.bytesTransferred / MIB) * 10) / 10,
      rounds: done.stats.rounds,
      bandwidth_mib_per_s: Math.round(bandwidth / MIB),
      dirty_rate_mib_per_s: Math.round(dirtyRate / MIB),
    };
  } finally {
    for (const [driver, id] of [
      [src, leaseId],
      [dst, leaseId],
    ] as const) {
      await driver.stop(id, { graceMs: 0, force: true, reason: "bench" }).catch(() => undefined);
    }
    await clock.sleep(300);
    await src.close();
    await dst.close();
  }
}

const root = mkdtempSync(join(tmpdir(), "lb-bq-"));
const runs: Run[] = [];
// RealClock timers do not keep a process alive, and QEMU runs detached: hold the loop open.
const keepAlive = setInterval(() => {}, 1000);
try {
  let index = 0;
  const guests: Array<"idle" | "dirty"> = flags["no-dirty"] ? ["idle"] : ["idle", "dirty"];
  for (const guest of guests) {
    for (const memoryMib of SIZES_MIB) {
      for (let rep = 0; rep < Math.max(1, flags.reps); rep++) {
        index += 1;
        const run = await migrateOnce(root, index, memoryMib, guest);
        runs.push(run);
        if (!flags.json) {
          process.stderr.write(
            `${guest} ${memoryMib} MiB: total ${run.total_ms} ms, downtime ${run.downtime_ms} ms\n`,
          );
        }
      }
    }
  }
} finally {
  clearInterval(keepAlive);
  rmSync(root, { recursive: true, force: true });
}

const figures = {
  accel: flags.kvm ? "auto" : "tcg",
  downtime_limit_ms: flags["downtime-ms"],
  bandwidth_limit_mib_per_s: flags["bandwidth-mib"],
  working_set_mib: flags["working-set-mib"],
  runs,
  median_downtime_ms: median(runs.map((r) => r.downtime_ms)),
  predicted_total_is_placeholder: true,
};

if (flags.json) {
  process.stdout.write(`${JSON.stringify(figures)}\n`);
} else {
  const rows: string[][] = [
    [
      "guest",
      "memory MiB",
      "total ms",
      "downtime ms",
      "predicted ms",
      "sent MiB",
      "rounds",
      "MiB/s",
      "dirty MiB/s",
    ],
    ...runs.map((r) => [
      r.guest,
      fmt(r.memory_mib),
      fmt(r.total_ms),
      fmt(r.downtime_ms),
      fmt(r.predicted_total_ms),
      fmt(r.transferred_mib, 1),
      fmt(r.rounds),
      fmt(r.bandwidth_mib_per_s),
      fmt(r.dirty_rate_mib_per_s),
    ]),
  ];
  process.stdout.write(
    `${table(rows)}\n(predicted: placeholder pre-copy model, see bench/qemu.ts)\n`,
  );
}
