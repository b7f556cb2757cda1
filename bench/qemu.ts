/**
 * bench:qemu — real QEMU live migrations between two qemu drivers on this machine (two data
 * directories: two "hosts", migration over loopback TCP): VMs of 256 MiB, 1 GiB and 2 GiB, idle
 * (SeaBIOS with nothing to boot: almost all pages are zero) and with a guest that dirties memory
 * (a 512-byte boot sector written by this bench: it enters 32-bit protected mode and writes one
 * word into every 4 KiB page of a `--working-set-mib` region from 1 MiB up, over and over).
 * Records QEMU's own measured total time and downtime (query-migrate) beside the prediction of
 * the pre-copy model of migration/ (predictPreCopy with QEMU's page costs), fed measured inputs:
 *
 * - per VM, before it migrates: its working set from QEMU's `calc-dirty-rate` (page sampling, 1 s)
 *   and, for the dirtying guest, its dirty rate from its pass counter (read twice over QMP); the
 *   zero-page share is what the working set leaves;
 * - per rep, by calibration migrations of sizes not in the table: idle VMs of `--calibration-mib`
 *   and 3× that give QEMU's fixed cost (its reported setup time + downtime) and the zero-page scan
 *   rate (their memory over the rest of their time); a dirtying
 *   VM of `--calibration-mib` held in resend rounds (downtime limit 1 ms for 4 dirty syncs) gives
 *   the first-copy and the resend rate (its non-zero page count over time, polled every 10 ms);
 * - the bandwidths of the migration itself, as QEMU's counters show them while it runs (first
 *   pass, resends), where it has them: `predicted_total_ms`. With every rate from the calibration
 *   instead: `calibrated_predicted_total_ms`, fully out of sample.
 *
 *   node dist/bench/qemu.js [--reps N] [--idle-reps N] [--downtime-ms N] [--bandwidth-mib N]
 *                           [--working-set-mib N] [--calibration-mib N] [--no-dirty] [--kvm] [--json]
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { type DriverEvent, QemuDriver, QmpClient, type WorkloadSpec } from "../agent/index.js";
import { RealClock } from "../core/index.js";
import { type PreCopyResult, predictPreCopy } from "../migration/index.js";
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
    "idle-reps": {
      kind: "number",
      default: 0,
      help: "idle migrations per size and rep (quick, and noisier than dirty ones); 0 = 3",
    },
    "calibration-mib": {
      kind: "number",
      default: 512,
      help: "memory of the calibration VMs (not a table size: the table is out of sample)",
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

/** One `query-migrate` of the source, polled every 10 ms on its operator socket. */
interface Sample {
  readonly t: number;
  readonly status: string;
  readonly sync: number;
  readonly normal: number;
  /** QEMU's `setup-time` (ms), once it reports one. */
  readonly setupMs: number;
}

/** What the bench measures of a guest before migrating it (the model's per-VM inputs). */
interface GuestInputs {
  /** `calc-dirty-rate` (page sampling, 1 s) × 1 s: the pages written within one second. */
  readonly wwsBytes: number;
  /** The dirtying guest's passes per second (its counter, read twice) × the set; else the sampled rate. */
  readonly dirtyRateBytesPerS: number;
}

/** One migration as QEMU measured it, with what was measured before it. */
interface Migration {
  readonly memoryMib: number;
  readonly guest: "idle" | "dirty";
  readonly totalMs: number;
  readonly downtimeMs: number;
  /** QEMU's `setup-time` (0 if the trace missed it). */
  readonly setupMs: number;
  readonly transferredBytes: number;
  readonly rounds: number;
  readonly inputs: GuestInputs;
  readonly trace: readonly Sample[];
}

interface Run {
  readonly memory_mib: number;
  readonly guest: "idle" | "dirty";
  readonly total_ms: number;
  readonly downtime_ms: number;
  readonly predicted_total_ms: number;
  readonly predicted_downtime_ms: number;
  readonly error_percent: number;
  /** With every rate from the calibration: fully out of sample. */
  readonly calibrated_predicted_total_ms: number;
  readonly calibrated_error_percent: number;
  /** The rates the prediction used (QEMU's counters in this run, else the calibration's). */
  readonly first_copy_mib_per_s: number;
  readonly resend_mib_per_s: number;
  readonly transferred_mib: number;
  readonly predicted_sent_mib: number;
  readonly rounds: number;
  readonly predicted_rounds: number;
  readonly wws_mib: number;
  readonly dirty_rate_mib_per_s: number;
}

/** The host's page rates, measured by calibration migrations of a size not in the table. */
interface Calibration {
  readonly memory_mib: number;
  /** Median scan time of the idle calibration VMs (`memory_mib`, 3× that): total − setup − downtime. */
  readonly idle_scan_ms: readonly [number, number];
  readonly fixed_cost_ms: number;
  readonly scan_mib_per_s: number;
  readonly first_copy_mib_per_s: number;
  readonly resend_mib_per_s: number;
}

const PAGE = 4096;
const clock = new RealClock();

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function numberAt(record: Record<string, unknown>, key: string): number {
  const v = record[key];
  return typeof v === "number" && Number.isFinite(v) ? v : 0;
}

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

/** The value of the guest's pass counter (the word it writes at 1 MiB). */
async function guestPass(qmp: QmpClient): Promise<number> {
  const out = await qmp.execute("human-monitor-command", { "command-line": "xp /1wx 0x100000" });
  const hex = /: (0x[0-9a-f]+)/i.exec(String(out))?.[1];
  if (hex === undefined) throw new Error(`cannot read the guest's counter: ${String(out)}`);
  return Number(hex);
}

/**
 * The model's per-VM inputs, measured on the running VM: QEMU's `calc-dirty-rate` (page sampling,
 * 4096 pages per GiB, 1 s; its `dirty-bitmap` mode crashes QEMU 7.2 under TCG) gives the pages
 * written within a second, i.e. the working set of a guest that rewrites its set faster; the
 * dirtying guest's counter read before and after gives its passes per second.
 */
async function measureGuest(
  qmp: QmpClient,
  memoryMib: number,
  guest: "idle" | "dirty",
): Promise<GuestInputs> {
  const began = performance.now();
  const passBefore = guest === "dirty" ? await guestPass(qmp) : 0;
  await qmp.execute("calc-dirty-rate", { "calc-time": 1, "sample-pages": 4096 });
  let sampledMibPerS = 0;
  for (;;) {
    await clock.sleep(100);
    const r = await qmp.execute("query-dirty-rate");
    if (isRecord(r) && r.status === "measured") {
      sampledMibPerS = numberAt(r, "dirty-rate");
      break;
    }
  }
  const wwsBytes = Math.min(memoryMib * MIB, sampledMibPerS * MIB);
  if (guest === "idle") return { wwsBytes, dirtyRateBytesPerS: wwsBytes };
  const passes = (await guestPass(qmp)) - passBefore;
  const seconds = (performance.now() - began) / 1000;
  return { wwsBytes, dirtyRateBytesPerS: (passes / seconds) * wwsBytes };
}

/** Polls `query-migrate` every 10 ms until the migration ends or the source goes away. */
async function traceMigration(
  qmp: QmpClient,
  into: Sample[],
  onSample: (sample: Sample) => void,
): Promise<void> {
  const began = performance.now();
  for (;;) {
    let info: unknown;
    try {
      info = await qmp.execute("query-migrate");
    } catch {
      return;
    }
    const record = isRecord(info) ? info : {};
    const ram = isRecord(record.ram) ? record.ram : {};
    const status = String(record.status ?? "");
    const sample = {
      t: performance.now() - began,
      status,
      sync: numberAt(ram, "dirty-sync-count"),
      normal: numberAt(ram, "normal"),
      setupMs: numberAt(record, "setup-time"),
    };
    into.push(sample);
    onSample(sample);
    if (status !== "setup" && status !== "active" && status !== "device") return;
    await clock.sleep(10);
  }
}

/**
 * A calibration migration starts with a 1 ms downtime limit, so that QEMU keeps resending the
 * working set in full passes; after `CALIBRATION_RESENDS` of them the bench sets the real limit
 * and the migration ends like every other.
 */
const CALIBRATION_RESENDS = 4;

async function migrateOnce(
  root: string,
  index: number,
  memoryMib: number,
  guest: "idle" | "dirty",
  calibrating = false,
): Promise<Migration> {
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
  let operator: QmpClient | undefined;
  try {
    await src.start(spec);
    await waitFor(
      events,
      (e) => (e.type === "workload" && e.state === "RUNNING" ? true : undefined),
      60_000,
    );
    // Let the guest reach its steady state (BIOS done; the dirtying loop has touched its set).
    await clock.sleep(2000);
    operator = await QmpClient.connect(src.socketPath(leaseId), 5000);
    const inputs = await measureGuest(operator, memoryMib, guest);
    const migrationId = `m-${index}`;
    const endpoint = await dst.prepareIncoming({ ...spec, migrationId, postCopy: false });
    const trace: Sample[] = [];
    await src.migrateOut({
      migrationId,
      leaseId,
      destinationHostId: "dst",
      destinationAddress: endpoint.address,
      destinationPort: endpoint.port,
      bandwidthLimitBytesPerS: flags["bandwidth-mib"] * MIB,
      downtimeLimitMs: calibrating ? 1 : flags["downtime-ms"],
      autoConverge: false,
      postCopy: false,
    });
    const qmp = operator;
    const tracing = traceMigration(qmp, trace, (sample) => {
      if (!calibrating || sample.sync < 2 + CALIBRATION_RESENDS) return;
      calibrating = false;
      void qmp
        .execute("migrate-set-parameters", { "downtime-limit": flags["downtime-ms"] })
        .catch(() => undefined);
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
    await tracing;
    if (done.type !== "migration" || done.phase !== "COMPLETED") {
      throw new Error(
        `migration ${migrationId} aborted: ${done.type === "migration" ? done.error : ""}`,
      );
    }
    return {
      memoryMib,
      guest,
      totalMs: done.totalTimeMs ?? Number.NaN,
      downtimeMs: done.downtimeMs ?? Number.NaN,
      setupMs: trace.at(-1)?.setupMs ?? 0,
      transferredBytes: done.stats.bytesTransferred,
      rounds: done.stats.rounds,
      inputs,
      trace,
    };
  } finally {
    operator?.close();
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

/** Fewer pages than this (16 MiB) between two samples measure the poll more than QEMU. */
const MIN_RATE_PAGES = 4096;

/** Bytes per second of non-zero pages between two samples; NaN when too few to tell. */
function pageRate(a: Sample | undefined, b: Sample | undefined): number {
  if (a === undefined || b === undefined || !(b.t > a.t)) return Number.NaN;
  if (b.normal - a.normal < MIN_RATE_PAGES) return Number.NaN;
  return ((b.normal - a.normal) * PAGE) / ((b.t - a.t) / 1000);
}

/**
 * The dirtying guest's calibration migration: the first pass copies its set a first time (the
 * samples of dirty-sync 1 until the non-zero page count stops growing); the next full passes
 * resend it (from the first sample of dirty-sync 2 to the last before the real limit is set).
 */
function copyRates(
  trace: readonly Sample[],
  beforeSync = Number.POSITIVE_INFINITY,
): { firstCopy: number; resend: number } {
  const live = trace.filter((s) => s.status === "active");
  const first = live.filter((s) => s.sync === 1);
  const firstCopied = Math.max(...first.map((s) => s.normal));
  const later = live.filter((s) => s.sync >= 2 && s.sync < beforeSync);
  return {
    firstCopy: pageRate(
      first[0],
      first.find((s) => s.normal === firstCopied),
    ),
    resend: pageRate(later[0], later[later.length - 1]),
  };
}

/** Page rates, bytes per second. */
interface Rates {
  readonly fixedCostMs: number;
  readonly scan: number;
  readonly firstCopy: number;
  readonly resend: number;
}

function calibratedRates(c: Calibration): Rates {
  return {
    fixedCostMs: c.fixed_cost_ms,
    scan: c.scan_mib_per_s * MIB,
    firstCopy: c.first_copy_mib_per_s * MIB,
    resend: c.resend_mib_per_s * MIB,
  };
}

/**
 * The rates QEMU's own counters show during this migration (its non-zero pages over time in the
 * first pass and in the resends), where it had them; the calibration's where not (a migration
 * that switched over after its first pass resent nothing). The scan rate is always calibrated.
 */
function inRunRates(m: Migration, c: Calibration): Rates {
  const measured = copyRates(m.trace);
  const fallback = calibratedRates(c);
  const usable = (v: number): boolean => Number.isFinite(v) && v > 0;
  return {
    fixedCostMs: fallback.fixedCostMs,
    scan: fallback.scan,
    firstCopy: usable(measured.firstCopy) ? measured.firstCopy : fallback.firstCopy,
    resend: usable(measured.resend) ? measured.resend : fallback.resend,
  };
}

function predict(m: Migration, rates: Rates): PreCopyResult {
  const memoryBytes = m.memoryMib * MIB;
  const bandwidthLimit = flags["bandwidth-mib"] * MIB;
  const capped = (rate: number): number =>
    bandwidthLimit > 0 ? Math.min(rate, bandwidthLimit) : rate;
  return predictPreCopy({
    memoryBytes,
    // A fresh VM's memory is zero except what the guest wrote: its working set.
    zeroPageShare: 1 - m.inputs.wwsBytes / memoryBytes,
    dirtyRateBytesPerS: m.inputs.dirtyRateBytesPerS,
    wwsBytes: m.inputs.wwsBytes,
    bandwidthBytesPerS: capped(rates.resend),
    firstCopyBytesPerS: capped(rates.firstCopy),
    scanBytesPerS: rates.scan,
    fixedCostMs: rates.fixedCostMs,
    downtimeLimitMs: flags["downtime-ms"],
  });
}

const round1 = (v: number): number => Math.round(v * 10) / 10;

function runOf(m: Migration, c: Calibration): Run {
  const rates = inRunRates(m, c);
  const p = predict(m, rates);
  const calibrated = predict(m, calibratedRates(c));
  const errorPercent = (predicted: number): number =>
    round1(((predicted - m.totalMs) / m.totalMs) * 100);
  return {
    memory_mib: m.memoryMib,
    guest: m.guest,
    total_ms: m.totalMs,
    downtime_ms: m.downtimeMs,
    predicted_total_ms: Math.round(p.totalTimeMs),
    predicted_downtime_ms: Math.round(p.downtimeMs),
    error_percent: errorPercent(p.totalTimeMs),
    calibrated_predicted_total_ms: Math.round(calibrated.totalTimeMs),
    calibrated_error_percent: errorPercent(calibrated.totalTimeMs),
    first_copy_mib_per_s: Math.round(rates.firstCopy / MIB),
    resend_mib_per_s: Math.round(rates.resend / MIB),
    transferred_mib: round1(m.transferredBytes / MIB),
    predicted_sent_mib: round1(p.bytesSent / MIB),
    rounds: m.rounds,
    predicted_rounds: p.rounds,
    wws_mib: round1(m.inputs.wwsBytes / MIB),
    dirty_rate_mib_per_s: Math.round(m.inputs.dirtyRateBytesPerS / MIB),
  };
}

const root = mkdtempSync(join(tmpdir(), "lb-bq-"));
const reps = Math.max(1, flags.reps);
const calibrationMib = flags["calibration-mib"];
const idleReps = flags["idle-reps"] > 0 ? flags["idle-reps"] : 3;
let index = 0;
const note = (line: string): void => {
  if (!flags.json) process.stderr.write(`${line}\n`);
};
const migrations: Migration[] = [];
let calibration: Calibration;
// RealClock timers do not keep a process alive, and QEMU runs detached: hold the loop open.
const keepAlive = setInterval(() => {}, 1000);
try {
  // Each rep runs the calibration (sizes the table does not have: its predictions are out of
  // sample) and then the table, so that both see the same load on a shared machine. Idle VMs of
  // two sizes give QEMU's fixed cost and the zero-page scan rate; the dirtying guest with forced
  // resends gives the first-copy and resend rates.
  const idleSizes = [calibrationMib, 3 * calibrationMib];
  /** Per size: QEMU's time scanning (total − setup − downtime); and its setup + downtime. */
  const scanTimes = idleSizes.map(() => [] as number[]);
  const fixedTimes: number[] = [];
  const firstCopies: number[] = [];
  const resends: number[] = [];
  const guests: Array<"idle" | "dirty"> = flags["no-dirty"] ? ["idle"] : ["idle", "dirty"];
  for (let rep = 0; rep < reps; rep++) {
    for (let idleRep = 0; idleRep < idleReps; idleRep++) {
      for (const [i, size] of idleSizes.entries()) {
        const idle = await migrateOnce(root, ++index, size, "idle");
        const fixed = idle.setupMs + idle.downtimeMs;
        scanTimes[i]?.push(idle.totalMs - fixed);
        fixedTimes.push(fixed);
        note(`calibration idle ${size} MiB: ${idle.totalMs} ms`);
      }
    }
    if (!flags["no-dirty"]) {
      const dirty = await migrateOnce(root, ++index, calibrationMib, "dirty", true);
      const rates = copyRates(dirty.trace, 2 + CALIBRATION_RESENDS);
      firstCopies.push(rates.firstCopy);
      resends.push(rates.resend);
      note(
        `calibration dirty ${calibrationMib} MiB: first copy ${fmt(rates.firstCopy / MIB)} MiB/s, resend ${fmt(rates.resend / MIB)} MiB/s`,
      );
    }
    for (const guest of guests) {
      for (let again = 0; again < (guest === "idle" ? idleReps : 1); again++) {
        for (const memoryMib of SIZES_MIB) {
          const m = await migrateOnce(root, ++index, memoryMib, guest);
          migrations.push(m);
          note(`${guest} ${memoryMib} MiB: total ${m.totalMs} ms, downtime ${m.downtimeMs} ms`);
        }
      }
    }
  }
  // QEMU reports the parts of a migration that do not scan (setup, the switchover's downtime):
  // those are the fixed cost; the rest of the idle VMs' time, over their memory, the scan rate.
  const scanMs = scanTimes.reduce((sum, times) => sum + median(times), 0);
  const scanBytesPerS = ((4 * calibrationMib * MIB) / Math.max(1, scanMs)) * 1000;
  const fixedCostMs = median(fixedTimes);
  const finite = (values: number[]): number[] => values.filter((v) => Number.isFinite(v));
  // Without a dirtying guest no page is copied, so the rate does not matter.
  const rateMib = (values: number[]): number =>
    flags["no-dirty"] ? 1 : Math.round(median(finite(values)) / MIB);
  calibration = {
    memory_mib: calibrationMib,
    idle_scan_ms: scanTimes.map((times) => round1(median(times))) as [number, number],
    fixed_cost_ms: round1(fixedCostMs),
    scan_mib_per_s: Math.round(scanBytesPerS / MIB),
    first_copy_mib_per_s: rateMib(firstCopies),
    resend_mib_per_s: rateMib(resends),
  };
  if (
    ![
      calibration.scan_mib_per_s,
      calibration.first_copy_mib_per_s,
      calibration.resend_mib_per_s,
    ].every((v) => v > 0)
  ) {
    throw new Error(`the calibration measured no rate: ${JSON.stringify(calibration)}`);
  }
} finally {
  clearInterval(keepAlive);
  rmSync(root, { recursive: true, force: true });
}

const runs = migrations.map((m) => runOf(m, calibration));
/** Medians per (guest, size): the rows the target is about. */
const rows = [...new Set(runs.map((r) => `${r.guest}/${r.memory_mib}`))].map((key) => {
  const same = runs.filter((r) => `${r.guest}/${r.memory_mib}` === key);
  const first = same[0] as Run;
  const pick = (f: (r: Run) => number): number => median(same.map(f));
  const total = pick((r) => r.total_ms);
  const predicted = pick((r) => r.predicted_total_ms);
  const calibrated = pick((r) => r.calibrated_predicted_total_ms);
  return {
    guest: first.guest,
    memory_mib: first.memory_mib,
    runs: same.length,
    total_ms: total,
    predicted_total_ms: predicted,
    error_percent: round1(((predicted - total) / total) * 100),
    calibrated_predicted_total_ms: calibrated,
    calibrated_error_percent: round1(((calibrated - total) / total) * 100),
    downtime_ms: pick((r) => r.downtime_ms),
    predicted_downtime_ms: pick((r) => r.predicted_downtime_ms),
    transferred_mib: pick((r) => r.transferred_mib),
    predicted_sent_mib: pick((r) => r.predicted_sent_mib),
    rounds: pick((r) => r.rounds),
    predicted_rounds: pick((r) => r.predicted_rounds),
    wws_mib: pick((r) => r.wws_mib),
  };
});
const maxAbsError = Math.max(...rows.map((r) => Math.abs(r.error_percent)));
// The prediction a broker can make before it migrates: every rate from the calibration.
const maxAbsCalibratedError = Math.max(...rows.map((r) => Math.abs(r.calibrated_error_percent)));

const figures = {
  accel: flags.kvm ? "auto" : "tcg",
  downtime_limit_ms: flags["downtime-ms"],
  bandwidth_limit_mib_per_s: flags["bandwidth-mib"],
  working_set_mib: flags["working-set-mib"],
  reps,
  idle_reps: reps * idleReps,
  calibration,
  runs,
  rows,
  median_downtime_ms: median(runs.map((r) => r.downtime_ms)),
  max_abs_error_percent: maxAbsError,
  max_abs_run_error_percent: Math.max(...runs.map((r) => Math.abs(r.error_percent))),
  within_25_percent: maxAbsError <= 25,
  max_abs_calibrated_error_percent: maxAbsCalibratedError,
  calibrated_within_25_percent: maxAbsCalibratedError <= 25,
  load_average: loadavg().map((v) => round1(v)),
};

if (flags.json) {
  process.stdout.write(`${JSON.stringify(figures)}\n`);
} else {
  const header = [
    "guest",
    "memory MiB",
    "total ms",
    "predicted ms",
    "error %",
    "calibrated ms",
    "cal. error %",
    "downtime ms",
    "pred. downtime",
    "sent MiB",
    "pred. sent",
    "rounds",
    "pred. rounds",
    "WWS MiB",
  ];
  const line = (r: (typeof rows)[number] | Run): string[] => [
    r.guest,
    fmt(r.memory_mib),
    fmt(r.total_ms),
    fmt(r.predicted_total_ms),
    fmt(r.error_percent, 1),
    fmt(r.calibrated_predicted_total_ms),
    fmt(r.calibrated_error_percent, 1),
    fmt(r.downtime_ms),
    fmt(r.predicted_downtime_ms),
    fmt(r.transferred_mib, 1),
    fmt(r.predicted_sent_mib, 1),
    fmt(r.rounds),
    fmt(r.predicted_rounds),
    fmt(r.wws_mib, 1),
  ];
  process.stdout.write(
    [
      "runs:",
      table([header, ...runs.map(line)]),
      "",
      `medians of ${reps} per row:`,
      table([header, ...rows.map(line)]),
      "",
      `calibration (idle ${calibrationMib} and ${3 * calibrationMib} MiB, dirty ${calibrationMib} MiB; medians of ${reps}): fixed cost ${fmt(calibration.fixed_cost_ms, 1)} ms, zero-page scan ${fmt(calibration.scan_mib_per_s)} MiB/s, first copy ${fmt(calibration.first_copy_mib_per_s)} MiB/s, resend ${fmt(calibration.resend_mib_per_s)} MiB/s`,
      `max |error| ${fmt(maxAbsError, 1)}% of the medians: ${maxAbsError <= 25 ? "every row within 25%" : "NOT every row within 25%"}`,
      "",
    ].join("\n"),
  );
}
