/**
 * The qemu driver: each workload is a `qemu-system-x86_64` process driven over QMP.
 *
 * Files: every VM has a directory `<data-dir>/qemu/<h>/` (h: a hash of the lease id, so that a
 * lease id never becomes a path and the QMP socket path stays short) holding `qmp.sock` (the
 * agent's QMP connection), `operator.sock` (a second QMP monitor for operators and tests: QEMU
 * serves one client per QMP socket),
 * `state.json` (lease id, spec, state, pid: what a restarted agent re-adopts from), `qemu.log`
 * (QEMU's stdout and stderr: a failure is reported with QEMU's own words) and, while suspended,
 * `suspend.state` (the migration stream of the paused VM).
 *
 * QEMU runs detached from the agent (own process group, output to a file), so an agent restart
 * leaves VMs running; `recover()` reconnects to them. Live migration is QEMU's pre-copy over TCP:
 * the destination waits with `-incoming defer` + `migrate-incoming`, the source sets
 * `downtime-limit`, `max-bandwidth` and `auto-converge`, runs `migrate` and polls `query-migrate`
 * on the Clock. Suspend is `stop` + `migrate` to `exec:cat > file` (its SHA-256 kept); resume is
 * `-incoming exec:cat file` + `cont`. Resume on another host: the source's driver exports the file
 * (`exportSuspended`: a TCP listener that serves it to whoever sends its one-time token), the
 * destination's fetches it (`resumeFrom`), checks its size and SHA-256, then resumes from it. The
 * source keeps its file until it is told to discard it (a stop).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import {
  closeSync,
  createReadStream,
  createWriteStream,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { createConnection, createServer, type Server } from "node:net";
import { join, resolve, sep } from "node:path";
import {
  type Clock,
  errorMessage,
  type Logger,
  silentLogger,
  type Timer,
} from "../../../core/index.js";
import {
  type Driver,
  type DriverEventListener,
  DriverFailedError,
  type ExitInfo,
  type IncomingEndpoint,
  type IncomingSpec,
  InvalidWorkloadError,
  type MigrateOutSpec,
  type MigrationPhase,
  type ResourceVector,
  type StopOptions,
  type SuspendImage,
  type TransferStats,
  type WorkloadInfo,
  WorkloadNotFoundError,
  type WorkloadSpec,
  type WorkloadState,
  WorkloadStateError,
} from "../../driver.js";
import { DriverEvents, type MigrationEventExtra } from "../driver-events.js";
import { QmpClient } from "./qmp-client.js";

export type QemuAccel = "auto" | "kvm" | "tcg";

export interface QemuDriverOptions {
  readonly clock: Clock;
  /** The agent's data directory; VMs live under `<dataDir>/qemu/`. */
  readonly dataDir: string;
  /** Default `qemu-system-x86_64` (looked up on PATH). */
  readonly binary?: string | undefined;
  /** `auto` (default): KVM when /dev/kvm opens read-write, TCG otherwise. */
  readonly accel?: QemuAccel | undefined;
  /** Address incoming migrations listen on and PrepareIncoming answers with; default 127.0.0.1. */
  readonly address?: string | undefined;
  /** Where a lease's `image` is looked up (it must stay inside); default `<dataDir>/images`. */
  readonly imageDir?: string | undefined;
  /** `query-migrate`/`query-status` poll interval; default 300 ms. */
  readonly pollIntervalMs?: number | undefined;
  /** Bound on QEMU coming up (QMP answering); default 20 s. */
  readonly startTimeoutMs?: number | undefined;
  /** After `quit`, how long until SIGKILL; default 3 s. */
  readonly quitGraceMs?: number | undefined;
  /** How long an exported suspend image stays fetchable; default 10 minutes. */
  readonly exportTtlMs?: number | undefined;
  readonly logger?: Logger | undefined;
}

/** What `max-bandwidth` is set to when the broker sets no limit: more than any link (100 GB/s). */
const UNLIMITED_BANDWIDTH = 100_000_000_000;
const LOG_TAIL_BYTES = 2048;
const UNIX_PATH_MAX = 107;
const MACHINES = new Set(["pc", "q35"]);
const IMAGE_FORMATS = new Set(["raw", "qcow2"]);
const DISK_INTERFACES = new Set(["virtio", "ide"]);
/** query-migrate statuses of a migration still under way. */
const ACTIVE_MIGRATION = new Set([
  "setup",
  "active",
  "pre-switchover",
  "device",
  "wait-unplug",
  "cancelling",
]);

/** The VM state a restarted agent needs; one `state.json` per VM. */
interface PersistedVm {
  readonly version: 1;
  readonly spec: WorkloadSpec;
  readonly state: WorkloadState;
  readonly pid: number | undefined;
  readonly startedAt: number | undefined;
  readonly endTime: number | undefined;
  readonly details: Readonly<Record<string, string>>;
}

interface OutgoingMigration {
  readonly spec: MigrateOutSpec;
  readonly acceptedAt: number;
  timer: Timer | undefined;
  /** Set by an abort: the reason the ABORTED event carries. */
  cancelReason: string | undefined;
  stats: TransferStats;
  /** Resolves when the migration has ended (completed, failed or cancelled). */
  readonly ended: Promise<void>;
  readonly end: () => void;
}

/** How long a suspend waits for an aborted migration to wind down before it gives up. */
const ABORT_WIND_DOWN_MS = 30_000;

interface IncomingMigration {
  readonly endpoint: IncomingEndpoint;
  readonly acceptedAt: number;
  timer: Timer | undefined;
}

/** A suspended VM's saved state, served to another host's agent. */
interface SuspendExport {
  readonly image: SuspendImage;
  readonly server: Server;
  readonly timer: Timer;
}

/** The length of an export's token: 32 random bytes, hex. */
const TOKEN_CHARS = 64;
/** A fetch that receives nothing for this long fails. */
const FETCH_IDLE_MS = 30_000;

/** SHA-256 of a file, hex. */
function sha256File(path: string): Promise<string> {
  return new Promise((resolveHash, reject) => {
    const hash = createHash("sha256");
    createReadStream(path)
      .on("data", (chunk) => hash.update(chunk))
      .on("error", reject)
      .on("end", () => resolveHash(hash.digest("hex")));
  });
}

/**
 * Fetches an exported suspend image into `file` (through `file.part`): sends the token, reads to
 * the end, checks size and SHA-256. Rejects with DriverFailedError on any mismatch or error.
 */
function fetchSuspendImage(image: SuspendImage, file: string): Promise<void> {
  const part = `${file}.part`;
  return new Promise<void>((resolveFetch, reject) => {
    const hash = createHash("sha256");
    let bytes = 0;
    let failed = false;
    const out = createWriteStream(part, { mode: 0o600 });
    const socket = createConnection({ host: image.address, port: image.port });
    const fail = (why: string, cause?: unknown): void => {
      if (failed) return;
      failed = true;
      socket.destroy();
      out.destroy();
      rmSync(part, { force: true });
      reject(
        new DriverFailedError(
          `cannot fetch the saved state from ${image.address}:${image.port}: ${why}`,
          { cause },
        ),
      );
    };
    socket.setTimeout(FETCH_IDLE_MS, () => fail(`nothing received for ${FETCH_IDLE_MS} ms`));
    socket.once("connect", () => socket.write(`${image.token}\n`));
    socket.on("data", (chunk: Buffer) => {
      bytes += chunk.length;
      hash.update(chunk);
      if (bytes > image.sizeBytes) fail(`more than the ${image.sizeBytes} bytes announced`);
    });
    socket.pipe(out);
    socket.once("error", (error) => fail(errorMessage(error), error));
    out.once("error", (error) => fail(errorMessage(error), error));
    out.once("finish", () => {
      if (failed) return;
      const sha256 = hash.digest("hex");
      if (bytes !== image.sizeBytes || sha256 !== image.sha256) {
        fail(
          `received ${bytes} bytes with SHA-256 ${sha256}, expected ${image.sizeBytes} bytes with ${image.sha256}`,
        );
        return;
      }
      try {
        renameSync(part, file);
      } catch (error) {
        // The VM's directory went away meanwhile (a stop discarded it).
        fail(errorMessage(error), error);
        return;
      }
      resolveFetch();
    });
  });
}

/** Why a QEMU exit is expected, which decides what it means. */
type ExpectedExit = "stop" | "migrated" | "suspended" | "discard";

interface QemuVm {
  readonly spec: WorkloadSpec;
  readonly dir: string;
  state: WorkloadState;
  endTime: number | undefined;
  startedAt: number | undefined;
  pid: number | undefined;
  child: ChildProcess | undefined;
  qmp: QmpClient | undefined;
  migrationId: string;
  outgoing: OutgoingMigration | undefined;
  incoming: IncomingMigration | undefined;
  expectExit: ExpectedExit | undefined;
  stopForced: boolean;
  guestShutdown: boolean;
  exited: boolean;
  /** #launch is waiting for QMP: an exit now is a launch failure, reported by #failLaunch. */
  launching: boolean;
  timers: Timer[];
  details: Record<string, string>;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function num(value: unknown): number {
  return typeof value === "number" && Number.isFinite(value) ? value : 0;
}

/**
 * A VM's directory under `root` (`<data-dir>/qemu`): a hash of the lease id, so that no lease id
 * becomes a path and the socket paths stay short.
 */
export function qemuVmDir(root: string, leaseId: string): string {
  return join(root, createHash("sha256").update(leaseId).digest("hex").slice(0, 16));
}

/** KVM is usable when /dev/kvm opens read-write (exists and we are in its group). */
export function kvmUsable(path = "/dev/kvm"): boolean {
  try {
    closeSync(openSync(path, "r+"));
    return true;
  } catch {
    return false;
  }
}

/** A free TCP port on `address` (the kernel picks it; QEMU binds it a moment later). */
function freePort(address: string): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, address, () => {
      const bound = server.address();
      const port = typeof bound === "object" && bound !== null ? bound.port : 0;
      server.close(() => resolvePort(port));
    });
  });
}

/** Alive and not a zombie (an adopted QEMU's parent may be an init that does not reap). */
function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

/** A single-quoted shell word (the exec: migration URIs run through /bin/sh). */
function shellQuote(path: string): string {
  return `'${path.replaceAll("'", `'\\''`)}'`;
}

function transferStats(info: Record<string, unknown>): TransferStats {
  const ram = isRecord(info.ram) ? info.ram : {};
  const pageSize = num(ram["page-size"]) || 4096;
  return {
    bytesTransferred: num(ram.transferred),
    bytesRemaining: num(ram.remaining),
    rounds: num(ram["dirty-sync-count"]),
    dirtyRateBytesPerS: num(ram["dirty-pages-rate"]) * pageSize,
    bandwidthBytesPerS: Math.round((num(ram.mbps) * 1e6) / 8),
    expectedDowntimeMs: num(info["expected-downtime"]),
  };
}

const NO_STATS: TransferStats = {
  bytesTransferred: 0,
  bytesRemaining: 0,
  rounds: 0,
  dirtyRateBytesPerS: 0,
  bandwidthBytesPerS: 0,
  expectedDowntimeMs: 0,
};

export class QemuDriver implements Driver {
  readonly name = "qemu";
  readonly #clock: Clock;
  readonly #root: string;
  readonly #binary: string;
  readonly #accel: "kvm" | "tcg";
  readonly #address: string;
  readonly #imageDir: string;
  readonly #pollMs: number;
  readonly #startTimeoutMs: number;
  readonly #quitGraceMs: number;
  readonly #log: Logger;
  readonly #vms = new Map<string, QemuVm>();
  readonly #exports = new Map<string, SuspendExport>();
  readonly #exportTtlMs: number;
  readonly #events: DriverEvents;
  #closed = false;

  constructor(options: QemuDriverOptions) {
    this.#clock = options.clock;
    this.#root = resolve(options.dataDir, "qemu");
    this.#binary = options.binary ?? "qemu-system-x86_64";
    const accel = options.accel ?? "auto";
    this.#accel = accel === "auto" ? (kvmUsable() ? "kvm" : "tcg") : accel;
    this.#address = options.address ?? "127.0.0.1";
    this.#imageDir = resolve(options.imageDir ?? join(options.dataDir, "images"));
    this.#pollMs = options.pollIntervalMs ?? 300;
    this.#startTimeoutMs = options.startTimeoutMs ?? 20_000;
    this.#quitGraceMs = options.quitGraceMs ?? 3000;
    this.#exportTtlMs = options.exportTtlMs ?? 10 * 60_000;
    this.#log = options.logger ?? silentLogger();
    this.#events = new DriverEvents(this.#log);
    // <root>/<16 hex>/operator.sock must fit a unix socket address.
    if (join(this.#root, "0123456789abcdef", "operator.sock").length > UNIX_PATH_MAX) {
      throw new InvalidWorkloadError(
        "data-dir",
        `${JSON.stringify(options.dataDir)} is too long for QMP unix sockets (at most ${UNIX_PATH_MAX - 37} characters)`,
      );
    }
  }

  /** `kvm` or `tcg`: what the VMs run with. */
  get accel(): "kvm" | "tcg" {
    return this.#accel;
  }

  /**
   * The operator's QMP socket of a lease's VM (`socat - UNIX:<path>`); the agent keeps the other
   * one, `qmp.sock`, connected.
   */
  socketPath(leaseId: string): string {
    return join(this.#vmDir(leaseId), "operator.sock");
  }

  onEvent(listener: DriverEventListener): () => void {
    return this.#events.on(listener);
  }

  /**
   * Re-adopts the VMs a previous agent process left: reads every `state.json`, reconnects to its
   * QMP socket and asks `query-status`. A VM whose QEMU is gone is forgotten (the broker learns it
   * from the next Hello); a suspended one stays suspended. Returns the lease ids adopted.
   */
  async recover(): Promise<string[]> {
    if (!existsSync(this.#root)) return [];
    const adopted: string[] = [];
    for (const entry of readdirSync(this.#root)) {
      const dir = join(this.#root, entry);
      const persisted = this.#readState(dir);
      if (persisted === undefined || this.#vms.has(persisted.spec.leaseId)) continue;
      const vm = this.#newVm(persisted.spec, persisted.state);
      vm.startedAt = persisted.startedAt;
      vm.endTime = persisted.endTime;
      vm.details = { ...persisted.details };
      if (persisted.state === "SUSPENDED") {
        this.#vms.set(vm.spec.leaseId, vm);
        adopted.push(vm.spec.leaseId);
        continue;
      }
      vm.pid =
        persisted.pid !== undefined && this.#ownsPid(vm, persisted.pid) ? persisted.pid : undefined;
      try {
        vm.qmp = await QmpClient.connect(join(dir, "qmp.sock"), 3000);
        const status = await this.#status(vm);
        if (status === "postmigrate" || status === "inmigrate") {
          await vm.qmp.execute("quit").catch(() => undefined);
          vm.qmp.close();
          vm.qmp = undefined;
          vm.pid = undefined;
          if (persisted.state === "SUSPENDING" && existsSync(join(dir, "suspend.state"))) {
            // The suspend finished while the agent was away: the saved state is the VM now.
            vm.state = "SUSPENDED";
            this.#vms.set(vm.spec.leaseId, vm);
            this.#persist(vm);
            adopted.push(vm.spec.leaseId);
            continue;
          }
          // Its migration ended (or can no longer end) while the agent was away: the broker has
          // the lease elsewhere or will retry. Discard it.
          rmSync(dir, { recursive: true, force: true });
          continue;
        }
        // A migration or suspend that nobody watches any more could still switch the VM over
        // (or pause it for good): cancel it, so that this QEMU stays the workload, and run it.
        await this.#cancelUnwatchedMigration(vm);
        if ((await this.#status(vm)) === "paused") await vm.qmp.execute("cont");
      } catch (error) {
        this.#log.warn(
          { leaseId: vm.spec.leaseId, err: error },
          `cannot re-adopt QEMU of ${vm.spec.leaseId}: ${errorMessage(error)}`,
        );
        vm.qmp?.close();
        rmSync(dir, { recursive: true, force: true });
        continue;
      }
      vm.state = "RUNNING";
      this.#vms.set(vm.spec.leaseId, vm);
      this.#watchQmp(vm);
      this.#persist(vm);
      adopted.push(vm.spec.leaseId);
      this.#log.info({ leaseId: vm.spec.leaseId, pid: vm.pid }, "re-adopted QEMU");
    }
    return adopted;
  }

  async #cancelUnwatchedMigration(vm: QemuVm): Promise<void> {
    const qmp = this.#qmp(vm);
    for (let attempt = 0; attempt < 50; attempt++) {
      const info = await qmp.execute("query-migrate");
      const status = isRecord(info) ? String(info.status ?? "") : "";
      if (!ACTIVE_MIGRATION.has(status)) return;
      if (status !== "cancelling") await qmp.execute("migrate_cancel");
      await this.#clock.sleep(100);
    }
  }

  async start(workload: WorkloadSpec): Promise<void> {
    const existing = this.#vms.get(workload.leaseId);
    if (existing !== undefined) {
      if (existing.state === "STOPPING" || existing.state === "INCOMING") {
        throw new WorkloadStateError(workload.leaseId, existing.state, "start");
      }
      existing.endTime = workload.endTime;
      this.#persist(existing);
      return;
    }
    const args = this.#vmArgs(workload);
    const vm = this.#newVm(workload, "STARTING");
    this.#vms.set(workload.leaseId, vm);
    this.#emitWorkload(vm, "STARTING", `starting QEMU (${this.#accel})`);
    void (async () => {
      try {
        await this.#launch(vm, args);
        if (vm.state !== "STARTING") return;
        const status = await this.#status(vm);
        if (status !== "running") await this.#qmp(vm).execute("cont");
      } catch (error) {
        this.#failLaunch(vm, error);
        return;
      }
      vm.startedAt = this.#clock.now();
      this.#setState(vm, "RUNNING", `QEMU running (pid ${vm.pid ?? "?"}, ${this.#accel})`);
    })();
  }

  async stop(leaseId: string, options: StopOptions): Promise<void> {
    const vm = this.#require(leaseId);
    if (vm.state === "STOPPING") {
      if (options.force && !vm.stopForced) this.#kill(vm);
      return;
    }
    if (vm.outgoing !== undefined) {
      vm.outgoing.cancelReason = "the workload is being stopped";
      await vm.qmp?.execute("migrate_cancel").catch(() => undefined);
    }
    if (vm.incoming !== undefined) {
      this.#endIncoming(vm, "ABORTED", "the prepared workload was stopped");
    }
    this.#setState(vm, "STOPPING", options.reason === "" ? "stopping" : options.reason);
    vm.expectExit = "stop";
    if (vm.pid === undefined && vm.child === undefined) {
      // Suspended: there is no process, only the saved state.
      this.#finish(vm, "STOPPED", "discarded the suspended state", {
        exitCode: 0,
        signal: "",
        forced: false,
        guestInitiated: false,
      });
      return;
    }
    if (options.force || vm.qmp === undefined) {
      this.#kill(vm);
      return;
    }
    // ACPI power button: a guest OS shuts down cleanly; without one nothing happens and the
    // grace runs out into `quit` (a hard stop of the emulator), then SIGKILL.
    await vm.qmp.execute("system_powerdown").catch(() => undefined);
    vm.timers.push(
      this.#clock.setTimer(Math.max(0, options.graceMs), () => {
        vm.stopForced = true;
        void this.#quit(vm, "stop");
      }),
    );
  }

  async list(): Promise<WorkloadInfo[]> {
    return [...this.#vms.values()]
      .sort((a, b) => (a.spec.leaseId < b.spec.leaseId ? -1 : 1))
      .map((vm) => ({
        leaseId: vm.spec.leaseId,
        state: vm.state,
        resources: vm.spec.resources,
        memoryUsedMib: this.#residentMib(vm),
        startedAt: vm.startedAt,
        endTime: vm.endTime,
        migrationId: vm.migrationId,
        details: {
          driver: "qemu",
          accel: this.#accel,
          ...(vm.pid === undefined ? {} : { pid: String(vm.pid) }),
          qmp_socket: join(vm.dir, "operator.sock"),
          ...vm.details,
        },
      }));
  }

  async usage(): Promise<ResourceVector> {
    let cpuMillis = 0;
    let memoryMib = 0;
    let diskGib = 0;
    let gpus = 0;
    for (const vm of this.#vms.values()) {
      const active = vm.state !== "SUSPENDED" && vm.state !== "INCOMING";
      if (active) {
        cpuMillis += vm.spec.resources.cpuMillis;
        memoryMib += this.#residentMib(vm);
      }
      diskGib += vm.spec.resources.diskGib;
      gpus += vm.spec.resources.gpus;
    }
    return { cpuMillis, memoryMib, diskGib, gpus };
  }

  async prepareIncoming(spec: IncomingSpec): Promise<IncomingEndpoint> {
    const existing = this.#vms.get(spec.leaseId);
    if (existing !== undefined) {
      if (existing.incoming !== undefined && existing.migrationId === spec.migrationId) {
        return existing.incoming.endpoint;
      }
      throw new WorkloadStateError(spec.leaseId, existing.state, "prepare-incoming");
    }
    const args = [...this.#vmArgs(spec), "-incoming", "defer"];
    const vm = this.#newVm(spec, "INCOMING");
    vm.migrationId = spec.migrationId;
    this.#vms.set(spec.leaseId, vm);
    const acceptedAt = this.#clock.now();
    let endpoint: IncomingEndpoint;
    try {
      await this.#launch(vm, args);
      const port = await freePort(this.#address);
      endpoint = { address: this.#address, port };
      await this.#qmp(vm).execute("migrate-incoming", { uri: `tcp:${this.#address}:${port}` });
    } catch (error) {
      const message = this.#failureMessage(vm, error);
      vm.expectExit = "discard";
      this.#kill(vm);
      this.#vms.delete(spec.leaseId);
      rmSync(vm.dir, { recursive: true, force: true });
      throw new DriverFailedError(`QEMU could not wait for the migration: ${message}`, {
        cause: error,
      });
    }
    vm.incoming = { endpoint, acceptedAt, timer: undefined };
    this.#emitWorkload(
      vm,
      "INCOMING",
      `waiting for the migration on ${endpoint.address}:${endpoint.port}`,
    );
    this.#pollIncoming(vm);
    return endpoint;
  }

  async migrateOut(spec: MigrateOutSpec): Promise<void> {
    const vm = this.#require(spec.leaseId);
    if (vm.outgoing !== undefined && vm.outgoing.spec.migrationId === spec.migrationId) return;
    if (vm.state !== "RUNNING" || vm.outgoing !== undefined || vm.qmp === undefined) {
      throw new WorkloadStateError(spec.leaseId, vm.state, "migrate-out");
    }
    if (!(spec.downtimeLimitMs > 0)) {
      throw new InvalidWorkloadError("migrate_out.downtime_limit", "must be > 0");
    }
    if (spec.postCopy) {
      throw new InvalidWorkloadError(
        "migrate_out.post_copy",
        "the qemu driver migrates pre-copy only",
      );
    }
    const qmp = vm.qmp;
    let end = (): void => undefined;
    const ended = new Promise<void>((resolve) => {
      end = resolve;
    });
    const outgoing: OutgoingMigration = {
      spec,
      acceptedAt: this.#clock.now(),
      timer: undefined,
      cancelReason: undefined,
      stats: NO_STATS,
      ended,
      end,
    };
    vm.outgoing = outgoing;
    vm.migrationId = spec.migrationId;
    try {
      await qmp.execute("migrate-set-capabilities", {
        capabilities: [{ capability: "auto-converge", state: spec.autoConverge }],
      });
      await qmp.execute("migrate-set-parameters", {
        "downtime-limit": Math.max(1, Math.round(spec.downtimeLimitMs)),
        "max-bandwidth":
          spec.bandwidthLimitBytesPerS > 0
            ? Math.round(spec.bandwidthLimitBytesPerS)
            : UNLIMITED_BANDWIDTH,
      });
      await qmp.execute("migrate", {
        uri: `tcp:${spec.destinationAddress}:${spec.destinationPort}`,
      });
    } catch (error) {
      this.#endOutgoing(vm, outgoing);
      vm.migrationId = "";
      throw new DriverFailedError(`QEMU refused the migration: ${errorMessage(error)}`, {
        cause: error,
      });
    }
    this.#emitMigration(vm, spec.migrationId, "TRANSFERRING", NO_STATS, {});
    this.#pollOutgoing(vm, outgoing);
  }

  /** Until `m` has ended, or ABORT_WIND_DOWN_MS have passed. */
  #windDown(m: OutgoingMigration): Promise<void> {
    return new Promise((resolve) => {
      const timer = this.#clock.setTimer(ABORT_WIND_DOWN_MS, resolve);
      void m.ended.then(() => {
        timer.cancel();
        resolve();
      });
    });
  }

  async abortMigration(migrationId: string, leaseId: string, reason: string): Promise<void> {
    const vm = this.#vms.get(leaseId);
    if (vm === undefined || vm.migrationId !== migrationId) {
      throw new WorkloadNotFoundError("migration", migrationId);
    }
    const why = reason === "" ? "aborted" : reason;
    if (vm.outgoing !== undefined) {
      // The poll reports ABORTED once QEMU says `cancelled`; the source keeps running.
      vm.outgoing.cancelReason = why;
      await this.#qmp(vm).execute("migrate_cancel");
      return;
    }
    if (vm.incoming !== undefined) {
      this.#endIncoming(vm, "ABORTED", why);
      void this.#quit(vm, "discard");
      return;
    }
    throw new WorkloadNotFoundError("migration", migrationId);
  }

  async suspend(leaseId: string): Promise<void> {
    const vm = this.#require(leaseId);
    if (vm.state === "SUSPENDING" || vm.state === "SUSPENDED") return;
    // Right after an abort QEMU is still cancelling the migration: let it wind down (the source
    // runs on), then suspend, rather than refuse a broker that just aborted to suspend.
    const winding = vm.outgoing;
    if (winding?.cancelReason !== undefined) await this.#windDown(winding);
    if (vm.state !== "RUNNING" || vm.outgoing !== undefined || vm.qmp === undefined) {
      throw new WorkloadStateError(leaseId, vm.state, "suspend");
    }
    const qmp = vm.qmp;
    const file = join(vm.dir, "suspend.state");
    const began = this.#clock.now();
    this.#setState(vm, "SUSPENDING", "pausing and saving the VM to disk");
    try {
      await qmp.execute("stop");
      await qmp.execute("migrate-set-capabilities", {
        capabilities: [{ capability: "auto-converge", state: false }],
      });
      await qmp.execute("migrate-set-parameters", { "max-bandwidth": UNLIMITED_BANDWIDTH });
      // QEMU 7.2 has no `file:` URI yet: the stream goes through a shell into the file.
      await qmp.execute("migrate", { uri: `exec:cat > ${shellQuote(file)}` });
    } catch (error) {
      await qmp.execute("cont").catch(() => undefined);
      this.#setState(vm, "RUNNING", `suspend failed, still running: ${errorMessage(error)}`);
      throw new DriverFailedError(`QEMU could not suspend: ${errorMessage(error)}`, {
        cause: error,
      });
    }
    const poll = (): void => {
      vm.timers.push(
        this.#clock.setTimer(this.#pollMs, () => {
          void this.#queryMigrate(vm).then(async (info) => {
            if (info === undefined || vm.state !== "SUSPENDING") return;
            const status = String(info.status ?? "");
            if (status === "completed") {
              const savedBytes = existsSync(file) ? statSync(file).size : 0;
              // Kept with the file: a fetch on another host checks what it received against it.
              const sha256 = await sha256File(file).catch(() => "");
              vm.details = {
                ...vm.details,
                saved_bytes: String(savedBytes),
                saved_sha256: sha256,
                suspend_ms: String(this.#clock.now() - began),
                qemu_total_time_ms: String(num(info["total-time"])),
              };
              await this.#quit(vm, "suspended");
            } else if (status === "failed" || status === "cancelled") {
              await qmp.execute("cont").catch(() => undefined);
              this.#setState(
                vm,
                "RUNNING",
                `suspend failed, still running: ${String(info["error-desc"] ?? status)}`,
              );
            } else {
              poll();
            }
          });
        }),
      );
    };
    poll();
  }

  async resume(leaseId: string): Promise<void> {
    const vm = this.#require(leaseId);
    if (vm.state === "RESUMING" || vm.state === "RUNNING") return;
    if (vm.state !== "SUSPENDED") throw new WorkloadStateError(leaseId, vm.state, "resume");
    const file = join(vm.dir, "suspend.state");
    if (!existsSync(file)) {
      throw new DriverFailedError(`the saved state of ${leaseId} is missing (${file})`);
    }
    const args = [...this.#vmArgs(vm.spec), "-incoming", `exec:cat ${shellQuote(file)}`];
    const began = this.#clock.now();
    this.#closeExport(leaseId);
    const { fetch_ms: _ms, fetched_bytes: _bytes, ...details } = vm.details;
    vm.details = details;
    vm.exited = false;
    vm.expectExit = undefined;
    this.#setState(vm, "RESUMING", "loading the saved state");
    void (async () => {
      try {
        await this.#launch(vm, args);
      } catch (error) {
        this.#failLaunch(vm, error);
        return;
      }
      await this.#waitLoaded(vm, began, file);
    })();
  }

  async exportSuspended(leaseId: string): Promise<SuspendImage> {
    const vm = this.#require(leaseId);
    const current = this.#exports.get(leaseId);
    if (current !== undefined) return current.image;
    const file = join(vm.dir, "suspend.state");
    if (vm.state !== "SUSPENDED") throw new WorkloadStateError(leaseId, vm.state, "export");
    if (!existsSync(file)) {
      throw new DriverFailedError(`the saved state of ${leaseId} is missing (${file})`);
    }
    const sizeBytes = statSync(file).size;
    const sha256 = vm.details.saved_sha256 || (await sha256File(file));
    const token = randomBytes(TOKEN_CHARS / 2).toString("hex");
    const expected = Buffer.from(`${token}\n`);
    const server = createServer((socket) => {
      socket.setTimeout(FETCH_IDLE_MS, () => socket.destroy());
      socket.on("error", () => socket.destroy());
      let received = Buffer.alloc(0);
      const onData = (chunk: Buffer): void => {
        received = Buffer.concat([received, chunk]);
        if (received.length < expected.length) return;
        socket.off("data", onData);
        if (!timingSafeEqual(received.subarray(0, expected.length), expected)) {
          this.#log.warn({ leaseId }, "a suspend image fetch sent a wrong token");
          socket.destroy();
          return;
        }
        createReadStream(file)
          .on("error", () => socket.destroy())
          .pipe(socket);
      };
      socket.on("data", onData);
    });
    const port = await new Promise<number>((resolvePort, reject) => {
      server.once("error", reject);
      server.listen(0, this.#address, () => {
        const bound = server.address();
        resolvePort(typeof bound === "object" && bound !== null ? bound.port : 0);
      });
    });
    const image: SuspendImage = { address: this.#address, port, token, sizeBytes, sha256 };
    const timer = this.#clock.setTimer(this.#exportTtlMs, () => this.#closeExport(leaseId));
    this.#exports.set(leaseId, { image, server, timer });
    vm.details = { ...vm.details, saved_sha256: sha256 };
    this.#log.info({ leaseId, port, sizeBytes }, "serving a suspended VM's saved state");
    return image;
  }

  #closeExport(leaseId: string): void {
    const current = this.#exports.get(leaseId);
    if (current === undefined) return;
    this.#exports.delete(leaseId);
    current.timer.cancel();
    current.server.close();
  }

  async resumeFrom(workload: WorkloadSpec, image: SuspendImage): Promise<void> {
    const existing = this.#vms.get(workload.leaseId);
    if (existing !== undefined) {
      if (existing.state === "RESUMING" || existing.state === "RUNNING") return;
      throw new WorkloadStateError(workload.leaseId, existing.state, "resume-from");
    }
    const args = [...this.#vmArgs(workload)];
    const vm = this.#newVm(workload, "RESUMING");
    this.#vms.set(workload.leaseId, vm);
    const file = join(vm.dir, "suspend.state");
    const began = this.#clock.now();
    this.#setState(
      vm,
      "RESUMING",
      `fetching the saved state (${image.sizeBytes} bytes) from ${image.address}:${image.port}`,
    );
    void (async () => {
      try {
        mkdirSync(vm.dir, { recursive: true, mode: 0o700 });
        await fetchSuspendImage(image, file);
        vm.details = {
          ...vm.details,
          fetched_bytes: String(image.sizeBytes),
          fetch_ms: String(this.#clock.now() - began),
        };
        if (vm.state !== "RESUMING" || this.#vms.get(vm.spec.leaseId) !== vm) return;
        await this.#launch(vm, [...args, "-incoming", `exec:cat ${shellQuote(file)}`]);
      } catch (error) {
        this.#failLaunch(vm, error);
        return;
      }
      await this.#waitLoaded(vm, began, file);
    })();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const leaseId of [...this.#exports.keys()]) this.#closeExport(leaseId);
    for (const vm of this.#vms.values()) {
      for (const timer of vm.timers) timer.cancel();
      vm.outgoing?.timer?.cancel();
      vm.incoming?.timer?.cancel();
      // Leave QEMU running: a restarted agent re-adopts it.
      vm.child?.removeAllListeners();
      vm.child?.unref();
      vm.qmp?.close();
    }
    this.#vms.clear();
    this.#events.close();
  }

  // -------------------------------------------------------------------------------------------
  // Processes

  #vmDir(leaseId: string): string {
    return qemuVmDir(this.#root, leaseId);
  }

  #newVm(spec: WorkloadSpec, state: WorkloadState): QemuVm {
    return {
      spec,
      dir: this.#vmDir(spec.leaseId),
      state,
      endTime: spec.endTime,
      startedAt: undefined,
      pid: undefined,
      child: undefined,
      qmp: undefined,
      migrationId: "",
      outgoing: undefined,
      incoming: undefined,
      expectExit: undefined,
      stopForced: false,
      guestShutdown: false,
      exited: false,
      launching: false,
      timers: [],
      details: {},
    };
  }

  /** QEMU's command line for a workload (without `-incoming`); throws InvalidWorkloadError. */
  #vmArgs(spec: WorkloadSpec): string[] {
    const { resources, params } = spec;
    if (!(resources.cpuMillis > 0) || !(resources.memoryMib >= 16)) {
      throw new InvalidWorkloadError(
        "resources",
        "the qemu driver needs cpu_millis > 0 and memory_mib >= 16",
      );
    }
    const machine = params.machine ?? "pc";
    if (!MACHINES.has(machine)) {
      throw new InvalidWorkloadError(
        "driver.params.machine",
        `must be one of ${[...MACHINES].join(", ")}`,
      );
    }
    const dir = this.#vmDir(spec.leaseId);
    const args = [
      "-name",
      `lb-${dir.slice(-16)}`,
      "-machine",
      machine,
      "-accel",
      this.#accel,
      "-smp",
      String(Math.ceil(resources.cpuMillis / 1000)),
      "-m",
      `${Math.floor(resources.memoryMib)}M`,
      "-display",
      "none",
      "-nodefaults",
      "-no-user-config",
      "-qmp",
      `unix:${join(dir, "qmp.sock")},server=on,wait=off`,
      "-qmp",
      `unix:${join(dir, "operator.sock")},server=on,wait=off`,
    ];
    if (spec.image !== "") args.push("-drive", this.#driveOption(spec));
    return args;
  }

  /** The image must be a file inside the image dir: a lease cannot name any file of the host. */
  #driveOption(spec: WorkloadSpec): string {
    const path = resolve(this.#imageDir, spec.image);
    if (!path.startsWith(this.#imageDir + sep) || path.includes(",")) {
      throw new InvalidWorkloadError(
        "driver.image",
        `must name a file inside ${this.#imageDir} (no "..", no commas), got ${JSON.stringify(spec.image)}`,
      );
    }
    if (!existsSync(path) || !statSync(path).isFile()) {
      throw new InvalidWorkloadError("driver.image", `${path} is not a file`);
    }
    const format = spec.params.image_format ?? (path.endsWith(".qcow2") ? "qcow2" : "raw");
    if (!IMAGE_FORMATS.has(format)) {
      throw new InvalidWorkloadError("driver.params.image_format", "must be raw or qcow2");
    }
    const diskInterface = spec.params.disk_interface ?? "virtio";
    if (!DISK_INTERFACES.has(diskInterface)) {
      throw new InvalidWorkloadError("driver.params.disk_interface", "must be virtio or ide");
    }
    return `file=${path},format=${format},if=${diskInterface}`;
  }

  /** Spawns QEMU detached and waits until its QMP socket answers. */
  async #launch(vm: QemuVm, args: readonly string[]): Promise<void> {
    mkdirSync(vm.dir, { recursive: true, mode: 0o700 });
    const socket = join(vm.dir, "qmp.sock");
    rmSync(socket, { force: true });
    const logFd = openSync(join(vm.dir, "qemu.log"), "w");
    let child: ChildProcess;
    try {
      // Detached, output to a file: QEMU must outlive the agent (re-adoption after a restart).
      child = spawn(this.#binary, args, { detached: true, stdio: ["ignore", logFd, logFd] });
    } finally {
      closeSync(logFd);
    }
    child.unref();
    vm.child = child;
    const spawnError = new Promise<Error>((resolveError) => child.once("error", resolveError));
    child.once("error", () => this.#onExit(vm, 127, ""));
    child.once("exit", (code, signal) => this.#onExit(vm, code ?? -1, signal ?? ""));
    vm.pid = child.pid;
    this.#persist(vm);
    const deadline = this.#clock.now() + this.#startTimeoutMs;
    vm.launching = true;
    try {
      await this.#connectQmp(vm, socket, spawnError, deadline);
    } finally {
      vm.launching = false;
    }
    this.#watchQmp(vm);
  }

  async #connectQmp(
    vm: QemuVm,
    socket: string,
    spawnError: Promise<Error>,
    deadline: number,
  ): Promise<void> {
    let lastError: unknown;
    for (;;) {
      if (vm.exited) {
        const error = await Promise.race([spawnError, Promise.resolve(undefined)]);
        throw new DriverFailedError(
          error !== undefined
            ? `cannot run ${this.#binary}: ${error.message}`
            : this.#logTail(vm) || "QEMU exited",
          { cause: error },
        );
      }
      if (existsSync(socket)) {
        try {
          vm.qmp = await QmpClient.connect(socket, 2000);
          break;
        } catch (error) {
          lastError = error;
        }
      }
      if (this.#clock.now() > deadline) {
        throw new DriverFailedError(
          `QEMU did not answer on QMP within ${this.#startTimeoutMs} ms`,
          {
            cause: lastError,
          },
        );
      }
      await this.#clock.sleep(50);
    }
  }

  #watchQmp(vm: QemuVm): void {
    const qmp = vm.qmp;
    if (qmp === undefined) return;
    qmp.onEvent((event) => {
      if (event.event === "SHUTDOWN" && event.data.guest === true) vm.guestShutdown = true;
    });
    qmp.onClose(() => {
      if (vm.child !== undefined || vm.exited) return;
      // An adopted QEMU is not our child: its closed socket says it is exiting; wait for the pid.
      const check = (): void => {
        if (vm.pid !== undefined && processAlive(vm.pid)) {
          vm.timers.push(this.#clock.setTimer(100, check));
          return;
        }
        this.#onExit(vm, vm.expectExit === undefined ? -1 : 0, "");
      };
      check();
    });
  }

  /** The pid is a QEMU of ours: its command line names this VM's socket. */
  #ownsPid(vm: QemuVm, pid: number): boolean {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(join(vm.dir, "qmp.sock"));
    } catch {
      return false;
    }
  }

  #failLaunch(vm: QemuVm, error: unknown): void {
    const message = this.#failureMessage(vm, error);
    const exitCode = vm.child?.exitCode ?? -1;
    const stopped = vm.expectExit !== undefined;
    this.#kill(vm);
    if (this.#vms.get(vm.spec.leaseId) !== vm) return;
    // Stopped while it was still starting: that is the STOPPED asked for, not a failure.
    this.#finish(vm, stopped ? "STOPPED" : "FAILED", stopped ? "stopped while starting" : message, {
      exitCode,
      signal: "",
      forced: stopped,
      guestInitiated: false,
    });
  }

  /** QEMU's own message (its stderr) if it wrote one, else the error's. */
  #failureMessage(vm: QemuVm, error: unknown): string {
    const tail = this.#logTail(vm);
    return tail !== "" ? tail : errorMessage(error);
  }

  #logTail(vm: QemuVm): string {
    try {
      const text = readFileSync(join(vm.dir, "qemu.log"), "utf8");
      return text.slice(-LOG_TAIL_BYTES).trim();
    } catch {
      return "";
    }
  }

  async #status(vm: QemuVm): Promise<string> {
    const result = await this.#qmp(vm).execute("query-status");
    return isRecord(result) ? String(result.status ?? "") : "";
  }

  #qmp(vm: QemuVm): QmpClient {
    if (vm.qmp === undefined || vm.qmp.closed) {
      throw new DriverFailedError(`QEMU of ${vm.spec.leaseId} is not connected`);
    }
    return vm.qmp;
  }

  /** `quit` over QMP, SIGKILL if QEMU is still there after the quit grace. */
  async #quit(vm: QemuVm, why: ExpectedExit): Promise<void> {
    vm.expectExit = why;
    vm.timers.push(this.#clock.setTimer(this.#quitGraceMs, () => this.#kill(vm)));
    await vm.qmp?.execute("quit").catch(() => undefined);
  }

  #kill(vm: QemuVm): void {
    vm.stopForced = true;
    if (vm.exited) return;
    const pid = vm.pid;
    if (pid === undefined) return;
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // Already gone.
    }
  }

  /** QEMU exited: what that means depends on why we expected it (or did not). */
  #onExit(vm: QemuVm, exitCode: number, signal: string): void {
    if (vm.exited) return;
    vm.exited = true;
    vm.child = undefined;
    vm.qmp?.close();
    vm.qmp = undefined;
    vm.pid = undefined;
    for (const timer of vm.timers.splice(0)) timer.cancel();
    if (vm.launching || this.#vms.get(vm.spec.leaseId) !== vm) return;
    const exit: ExitInfo = {
      exitCode: signal === "" ? exitCode : -1,
      signal,
      forced: vm.stopForced,
      guestInitiated: vm.guestShutdown,
    };
    if (vm.outgoing !== undefined) {
      const m = vm.outgoing;
      this.#endOutgoing(vm, m);
      this.#emitMigration(vm, m.spec.migrationId, "ABORTED", m.stats, {
        error: `the source QEMU exited: ${this.#logTail(vm) || `code ${exitCode}`}`,
        totalTimeMs: this.#clock.now() - m.acceptedAt,
      });
    }
    if (vm.incoming !== undefined) {
      this.#endIncoming(
        vm,
        "ABORTED",
        `the destination QEMU exited: ${this.#logTail(vm) || `code ${exitCode}`}`,
      );
    }
    switch (vm.expectExit) {
      case "suspended":
        vm.stopForced = false;
        vm.expectExit = undefined;
        this.#setState(
          vm,
          "SUSPENDED",
          `saved ${vm.details.saved_bytes ?? "?"} bytes in ${vm.details.suspend_ms ?? "?"} ms`,
        );
        return;
      case "migrated":
        this.#finish(vm, "STOPPED", vm.details.migrated_to ?? "migrated", exit);
        return;
      case "discard":
        this.#finish(vm, "STOPPED", "discarded", exit);
        return;
      case "stop":
        this.#finish(vm, "STOPPED", vm.stopForced ? "QEMU killed" : "QEMU shut down", exit);
        return;
      default:
        if (vm.guestShutdown) {
          this.#finish(vm, "STOPPED", "the guest shut down", exit);
        } else {
          const tail = this.#logTail(vm);
          this.#finish(
            vm,
            "FAILED",
            tail !== "" ? tail : `QEMU exited (${signal || exitCode})`,
            exit,
          );
        }
    }
  }

  #residentMib(vm: QemuVm): number {
    if (vm.pid === undefined) return 0;
    try {
      const resident = Number(readFileSync(`/proc/${vm.pid}/statm`, "utf8").split(" ")[1]);
      return Math.round((resident * 4096) / (1024 * 1024));
    } catch {
      return 0;
    }
  }

  // -------------------------------------------------------------------------------------------
  // Migration

  async #queryMigrate(vm: QemuVm): Promise<Record<string, unknown> | undefined> {
    try {
      const info = await this.#qmp(vm).execute("query-migrate");
      return isRecord(info) ? info : {};
    } catch {
      return undefined; // QEMU is gone: #onExit reports it.
    }
  }

  /** `m` has ended (or never started): no more polls, and a suspend waiting on it goes on. */
  #endOutgoing(vm: QemuVm, m: OutgoingMigration): void {
    if (vm.outgoing === m) vm.outgoing = undefined;
    m.timer?.cancel();
    m.end();
  }

  #pollOutgoing(vm: QemuVm, m: OutgoingMigration): void {
    m.timer = this.#clock.setTimer(this.#pollMs, () => {
      m.timer = undefined;
      void this.#queryMigrate(vm).then(async (info) => {
        if (info === undefined || vm.outgoing !== m) return;
        const status = String(info.status ?? "");
        m.stats = transferStats(info);
        if (status === "completed") {
          this.#endOutgoing(vm, m);
          vm.details = { ...vm.details, migrated_to: `migrated to ${m.spec.destinationHostId}` };
          this.#emitMigration(
            vm,
            m.spec.migrationId,
            "COMPLETED",
            { ...m.stats, bytesRemaining: 0 },
            {
              downtimeMs: num(info.downtime),
              totalTimeMs: num(info["total-time"]),
            },
          );
          // The destination runs it now; the source's QEMU sits in `postmigrate`: end it.
          await this.#quit(vm, "migrated");
          return;
        }
        if (status === "failed" || status === "cancelled") {
          this.#endOutgoing(vm, m);
          vm.migrationId = "";
          // QEMU restarts the source's vCPUs itself after a failed or cancelled migration; make
          // sure, so that the workload keeps running whatever happened.
          if ((await this.#status(vm).catch(() => "")) !== "running") {
            await vm.qmp?.execute("cont").catch(() => undefined);
          }
          this.#emitMigration(vm, m.spec.migrationId, "ABORTED", m.stats, {
            error: m.cancelReason ?? String(info["error-desc"] ?? `migration ${status}`),
            totalTimeMs: this.#clock.now() - m.acceptedAt,
          });
          return;
        }
        const phase: MigrationPhase =
          status === "device" || status === "pre-switchover" ? "SWITCHOVER" : "TRANSFERRING";
        this.#emitMigration(vm, m.spec.migrationId, phase, m.stats, {});
        this.#pollOutgoing(vm, m);
      });
    });
  }

  /** Destination: waits for QEMU to leave `inmigrate`, then makes sure the VM runs. */
  #pollIncoming(vm: QemuVm): void {
    const incoming = vm.incoming;
    if (incoming === undefined) return;
    incoming.timer = this.#clock.setTimer(this.#pollMs, () => {
      incoming.timer = undefined;
      void this.#status(vm).then(
        async (status) => {
          if (vm.incoming !== incoming) return;
          if (status === "inmigrate") {
            this.#pollIncoming(vm);
            return;
          }
          if (status !== "running") await vm.qmp?.execute("cont").catch(() => undefined);
          vm.startedAt = this.#clock.now();
          const migrationId = vm.migrationId;
          this.#endIncoming(vm, "COMPLETED", "");
          this.#setState(vm, "RUNNING", `migrated in (migration ${migrationId})`);
        },
        () => undefined,
      );
    });
  }

  #endIncoming(vm: QemuVm, phase: "COMPLETED" | "ABORTED", error: string): void {
    const incoming = vm.incoming;
    if (incoming === undefined) return;
    incoming.timer?.cancel();
    vm.incoming = undefined;
    const migrationId = vm.migrationId;
    vm.migrationId = "";
    this.#emitMigration(vm, migrationId, phase, NO_STATS, {
      error,
      totalTimeMs: this.#clock.now() - incoming.acceptedAt,
    });
    if (phase === "ABORTED") vm.expectExit = "discard";
  }

  /** Resume: waits for the saved state to load, then `cont`. */
  async #waitLoaded(vm: QemuVm, began: number, file: string): Promise<void> {
    for (;;) {
      if (vm.state !== "RESUMING" || vm.exited) return;
      let status: string;
      try {
        status = await this.#status(vm);
      } catch {
        return; // QEMU is gone: #onExit reports it.
      }
      if (status !== "inmigrate") break;
      await this.#clock.sleep(this.#pollMs);
    }
    await vm.qmp?.execute("cont").catch(() => undefined);
    rmSync(file, { force: true });
    vm.details = { ...vm.details, resume_ms: String(this.#clock.now() - began) };
    const fetched =
      vm.details.fetch_ms === undefined
        ? ""
        : ` (fetched ${vm.details.fetched_bytes ?? "?"} bytes in ${vm.details.fetch_ms} ms)`;
    this.#setState(vm, "RUNNING", `resumed in ${this.#clock.now() - began} ms${fetched}`);
  }

  // -------------------------------------------------------------------------------------------
  // State and events

  #require(leaseId: string): QemuVm {
    const vm = this.#vms.get(leaseId);
    if (vm === undefined) throw new WorkloadNotFoundError("workload", leaseId);
    return vm;
  }

  #readState(dir: string): PersistedVm | undefined {
    try {
      const value: unknown = JSON.parse(readFileSync(join(dir, "state.json"), "utf8"));
      if (!isRecord(value) || value.version !== 1 || !isRecord(value.spec)) return undefined;
      if (typeof value.spec.leaseId !== "string" || typeof value.state !== "string")
        return undefined;
      // Written by this driver only; the fields above are what decide anything.
      return value as unknown as PersistedVm;
    } catch {
      return undefined;
    }
  }

  #persist(vm: QemuVm): void {
    if (this.#closed || this.#vms.get(vm.spec.leaseId) !== vm) return;
    const persisted: PersistedVm = {
      version: 1,
      spec: vm.spec,
      state: vm.state,
      pid: vm.pid,
      startedAt: vm.startedAt,
      endTime: vm.endTime,
      details: vm.details,
    };
    try {
      mkdirSync(vm.dir, { recursive: true, mode: 0o700 });
      const tmp = join(vm.dir, "state.json.tmp");
      writeFileSync(tmp, JSON.stringify(persisted));
      renameSync(tmp, join(vm.dir, "state.json"));
    } catch (error) {
      this.#log.error(
        { leaseId: vm.spec.leaseId, err: error },
        `cannot write QEMU state: ${errorMessage(error)}`,
      );
    }
  }

  #setState(vm: QemuVm, state: WorkloadState, message: string): void {
    vm.state = state;
    this.#persist(vm);
    this.#emitWorkload(vm, state, message);
  }

  /** Moves to a terminal state, forgets the VM and removes its directory. */
  #finish(vm: QemuVm, state: "STOPPED" | "FAILED", message: string, exit: ExitInfo): void {
    vm.state = state;
    this.#closeExport(vm.spec.leaseId);
    for (const timer of vm.timers.splice(0)) timer.cancel();
    this.#vms.delete(vm.spec.leaseId);
    if (vm.pid === undefined || !processAlive(vm.pid)) {
      rmSync(vm.dir, { recursive: true, force: true });
    }
    this.#emitWorkload(vm, state, message, exit);
  }

  #emitWorkload(vm: QemuVm, state: WorkloadState, message: string, exit?: ExitInfo): void {
    this.#events.workload(vm.spec.leaseId, vm.migrationId, state, message, exit);
  }

  #emitMigration(
    vm: QemuVm,
    migrationId: string,
    phase: MigrationPhase,
    stats: TransferStats,
    extra: MigrationEventExtra,
  ): void {
    this.#events.migration(vm.spec.leaseId, migrationId, phase, stats, extra);
  }
}
