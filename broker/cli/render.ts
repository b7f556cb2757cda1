/**
 * Table and text views of the broker's messages (the `-o table` output).
 */
import type {
  AutoscaleStatus,
  CapacityForecast,
  DrainHostResponse,
  ExplainPlacementResponse,
  Host,
  Lease,
  LeaseEvent,
  Migration,
  PlacementExplanation,
  PlannedMove,
  RebalanceResponse,
  Resources,
  SubmitLeaseResponse,
} from "../../proto/index.js";
import {
  bytes,
  cores,
  durationOf,
  fields,
  labelsText,
  localTime,
  mebibytes,
  orDash,
  relativeTime,
  resourcesText,
  score,
  shortEnum,
  table,
  timeWithRelative,
  tsMs,
} from "./format.js";

const state = (s: string): string => shortEnum(s, "LEASE_STATE_");
const hostState = (s: string): string => shortEnum(s, "HOST_STATE_");

function cpuOf(r: Resources | null): number {
  return r?.cpuMillis ?? 0;
}
function memOf(r: Resources | null): number {
  return r?.memoryMib ?? 0;
}

/** The window of a lease in words: "immediate 2h", "reserved 2h", "flexible 2h". */
export function windowText(lease: Lease): string {
  const spec = lease.spec;
  const kind = spec?.window;
  const win = kind === undefined ? undefined : spec?.[kind];
  if (kind === undefined || win === undefined || win === null) return "-";
  return `${kind} ${durationOf(win.duration)}`;
}

export function leaseTable(leases: readonly Lease[], now: number): string[] {
  return table(
    ["ID", "NAME", "TENANT", "STATE", "HOST", "CPU", "MEMORY", "START", "END"],
    leases.map((l) => [
      l.id,
      orDash(l.spec?.name),
      orDash(l.spec?.tenant),
      state(l.state),
      orDash(l.hostId),
      cores(cpuOf(l.spec?.resources ?? null)),
      mebibytes(memOf(l.spec?.resources ?? null)),
      relativeTime(tsMs(l.start), now),
      relativeTime(tsMs(l.end), now),
    ]),
  );
}

export function leaseDetail(lease: Lease, now: number): string[] {
  const spec = lease.spec;
  const entries: [string, string][] = [
    ["Lease", lease.id === "" ? "(not stored)" : lease.id],
    ["Name", orDash(spec?.name)],
    ["Tenant", orDash(spec?.tenant)],
    ["State", state(lease.state)],
    ["Host", orDash(lease.hostId)],
    ["Window", windowText(lease)],
    ["Start", timeWithRelative(tsMs(lease.start), now)],
    ["End", timeWithRelative(tsMs(lease.end), now)],
    ["Resources", resourcesText(spec?.resources)],
  ];
  if (lease.statusMessage !== "") entries.push(["Status", lease.statusMessage]);
  if (spec !== null && spec !== undefined) {
    entries.push(["Labels", labelsText(spec.labels)]);
    if (spec.priority !== 0 || spec.preemptible) {
      entries.push(["Priority", `${spec.priority}${spec.preemptible ? " (preemptible)" : ""}`]);
    }
    if (spec.constraints.length > 0) entries.push(["Constraints", spec.constraints.join("; ")]);
    if (spec.affinity !== null && spec.affinity.group !== "") {
      const a = spec.affinity;
      const kind = a.kind === "AFFINITY_KIND_ANTI_AFFINITY" ? "anti-affinity" : "affinity";
      entries.push([
        "Affinity",
        `${kind} group ${a.group}${a.hard ? " (hard)" : ""}${a.topologyKey === "" ? "" : ` by ${a.topologyKey}`}${a.maxSkew > 0 ? `, max skew ${a.maxSkew}` : ""}`,
      ]);
    }
    if (spec.migration?.liveMigratable === true) {
      const m = spec.migration;
      const extras = [
        m.maxDowntime === null ? undefined : `max downtime ${durationOf(m.maxDowntime)}`,
        m.allowSuspend ? "may suspend" : undefined,
      ].filter((e) => e !== undefined);
      entries.push([
        "Migration",
        `live-migratable${extras.length > 0 ? ` (${extras.join(", ")})` : ""}`,
      ]);
    }
    if (spec.driver !== null && spec.driver.image !== "")
      entries.push(["Image", spec.driver.image]);
  }
  if (lease.stopDeadline !== null) {
    entries.push([
      "Stop by",
      `${timeWithRelative(tsMs(lease.stopDeadline), now)} ${lease.stopReason}`.trim(),
    ]);
  }
  if (lease.migrationId !== "") entries.push(["Migration id", lease.migrationId]);
  if (lease.requestId !== "") entries.push(["Request id", lease.requestId]);
  entries.push(["Revision", String(lease.revision)]);
  if (lease.createTime !== null)
    entries.push(["Created", timeWithRelative(tsMs(lease.createTime), now)]);
  const lines = fields(entries);
  if (lease.placementHistory.length > 0) {
    lines.push("Placements:");
    for (const p of lease.placementHistory) {
      const reason = shortEnum(p.reason, "PLACEMENT_REASON_").toLowerCase();
      lines.push(
        `  ${localTime(tsMs(p.at))}  ${p.hostId}  ${reason}${p.message === "" ? "" : `  ${p.message}`}`,
      );
    }
  }
  return lines;
}

function startsText(start: number, now: number): string {
  const relative = relativeTime(start, now);
  if (relative === "now") return "starts now";
  return start > now ? `starts ${relative}` : `started ${relative}`;
}

/** What `submit` prints: id, state, host, window. */
export function submitSummary(
  response: SubmitLeaseResponse,
  requestId: string,
  now: number,
): string[] {
  const lease = response.lease;
  if (lease === null) return ["the broker answered without a lease"];
  const start = tsMs(lease.start);
  const end = tsMs(lease.end);
  const entries: [string, string][] = [
    ["Lease", lease.id],
    ["State", state(lease.state)],
    ["Host", orDash(lease.hostId)],
    [
      "Window",
      start === undefined
        ? `${windowText(lease)} (not placed yet)`
        : `${localTime(start)} → ${localTime(end)} (${startsText(start, now)})`,
    ],
  ];
  if (lease.statusMessage !== "") entries.push(["Status", lease.statusMessage]);
  if (requestId !== "") entries.push(["Request id", requestId]);
  const lines = fields(entries);
  if (response.duplicate) {
    lines.push("(this request id was submitted before: this is the lease it created)");
  }
  return lines;
}

function moveText(m: PlannedMove): string {
  const predicted = m.predicted;
  const extra =
    predicted === null
      ? ""
      : ` (~${durationOf(predicted.totalTime)}, downtime ~${durationOf(predicted.downtime)}${predicted.converges ? "" : ", may not converge"})`;
  return `${m.leaseId}: ${m.fromHostId} → ${m.toHostId}${extra}`;
}

/** The placement pipeline's explanation, one fact per line. */
export function explanationLines(e: PlacementExplanation): string[] {
  const lines: string[] = [];
  if (e.summary !== "") lines.push(e.summary);
  lines.push(`Hosts considered: ${e.hostsConsidered}`);
  if (e.filters.length > 0) {
    lines.push("Hosts removed by each filter:");
    // LEFT and WHY only when the broker fills them in (hosts_remaining, reason, sample_hosts).
    const withLeft = e.filters.some((f) => f.hostsRemaining > 0);
    const withWhy = e.filters.some((f) => f.reason !== "" || f.sampleHosts.length > 0);
    const rows = e.filters.map((f) => {
      const sample = f.sampleHosts.length === 0 ? "" : ` (e.g. ${f.sampleHosts.join(", ")})`;
      return [
        f.filter,
        String(f.hostsRemoved),
        ...(withLeft ? [String(f.hostsRemaining)] : []),
        ...(withWhy ? [`${f.reason}${sample}`.trim()] : []),
      ];
    });
    const headers = [
      "FILTER",
      "REMOVED",
      ...(withLeft ? ["LEFT"] : []),
      ...(withWhy ? ["WHY"] : []),
    ];
    lines.push(...table(headers, rows).map((l) => `  ${l}`));
  }
  if (e.bindingResource !== "") {
    const w = e.bindingWindow;
    const when =
      w === null ? "" : `, from ${localTime(tsMs(w.start))} to ${localTime(tsMs(w.end))}`;
    lines.push(`Binding resource: ${e.bindingResource}${when}`);
  }
  if (e.shortfall !== null)
    lines.push(`Short by: ${resourcesText(e.shortfall, true)} on the closest host`);
  if (e.chosenHostId !== "") {
    const policy = shortEnum(e.policy, "PLACEMENT_POLICY_").toLowerCase();
    lines.push(
      `Chosen host: ${e.chosenHostId} (score ${score(e.bestScore)}${policy === "unspecified" ? "" : `, policy ${policy}`})`,
    );
  }
  if (e.start !== null && e.chosenHostId !== "") lines.push(`Start: ${localTime(tsMs(e.start))}`);
  if (e.top.length > 1) {
    lines.push(`Top hosts: ${e.top.map((h) => `${h.hostId} ${score(h.score)}`).join(", ")}`);
  }
  if (e.preemption !== null) {
    const p = e.preemption;
    lines.push(`Fits by preemption on ${p.hostId}: victims ${p.victimLeaseIds.join(", ")}`);
    for (const m of p.moves) lines.push(`  migrate ${moveText(m)}`);
  }
  if (e.makeRoom !== null) {
    const r = e.makeRoom;
    lines.push(`Fits after making room on ${r.hostId} (ready ${localTime(tsMs(r.readyTime))}):`);
    for (const m of r.moves) lines.push(`  migrate ${moveText(m)}`);
  }
  return lines;
}

export function explainResult(response: ExplainPlacementResponse): string[] {
  const head = response.fits
    ? `Fits: on ${response.hostId}, ${localTime(tsMs(response.start))} → ${localTime(tsMs(response.end))}`
    : "Does not fit: no host can take this lease now";
  return [head, ...(response.explanation === null ? [] : explanationLines(response.explanation))];
}

/** Allocatable - allocated per host (free), for cpu and memory. */
export function hostTable(hosts: readonly Host[]): string[] {
  return table(
    [
      "ID",
      "STATE",
      "CPU ALLOCATABLE",
      "CPU ALLOCATED",
      "CPU FREE",
      "MEM ALLOCATABLE",
      "MEM ALLOCATED",
      "MEM FREE",
      "LEASES",
      "LABELS",
    ],
    hosts.map((h) => {
      const cpu = cpuOf(h.allocatable);
      const mem = memOf(h.allocatable);
      return [
        h.id,
        hostState(h.state),
        cores(cpu),
        cores(cpuOf(h.allocated)),
        cores(cpu - cpuOf(h.allocated)),
        mebibytes(mem),
        mebibytes(memOf(h.allocated)),
        mebibytes(mem - memOf(h.allocated)),
        String(h.leaseCount),
        labelsText(h.labels),
      ];
    }),
  );
}

function minus(a: Resources | null, b: Resources | null): Resources {
  return {
    cpuMillis: cpuOf(a) - cpuOf(b),
    memoryMib: memOf(a) - memOf(b),
    diskGib: (a?.diskGib ?? 0) - (b?.diskGib ?? 0),
    gpus: (a?.gpus ?? 0) - (b?.gpus ?? 0),
    extended: {},
  };
}

export function hostDetail(h: Host, now: number): string[] {
  const entries: [string, string][] = [
    ["Host", h.id],
    [
      "State",
      `${hostState(h.state)}${h.cordoned && h.state !== "HOST_STATE_CORDONED" ? " (cordoned)" : ""}`,
    ],
  ];
  if (h.stateReason !== "") entries.push(["Reason", h.stateReason]);
  entries.push(
    ["Capacity", resourcesText(h.capacity)],
    ["Allocatable", resourcesText(h.allocatable)],
    ["Allocated", resourcesText(h.allocated)],
    ["Free", resourcesText(minus(h.allocatable, h.allocated))],
    ["Usage", resourcesText(h.usage)],
    ["Leases", String(h.leaseCount)],
    ["Labels", labelsText(h.labels)],
    ["Driver", `${orDash(h.driver)}${h.agentVersion === "" ? "" : ` (agent ${h.agentVersion})`}`],
    ["Address", orDash(h.address)],
    ["Last heartbeat", timeWithRelative(tsMs(h.lastHeartbeat), now)],
  );
  if (h.drainDeadline !== null)
    entries.push(["Drain deadline", timeWithRelative(tsMs(h.drainDeadline), now)]);
  entries.push(["Revision", String(h.revision)]);
  return fields(entries);
}

export function capacityTable(forecast: CapacityForecast): string[] {
  const rows = forecast.buckets.map((b) => [
    localTime(tsMs(b.start)),
    cores(cpuOf(b.allocatable)),
    cores(cpuOf(b.allocated)),
    cores(cpuOf(b.free)),
    mebibytes(memOf(b.allocatable)),
    mebibytes(memOf(b.allocated)),
    mebibytes(memOf(b.free)),
    `${cores(cpuOf(b.maxHostFree))} / ${mebibytes(memOf(b.maxHostFree))}`,
  ]);
  const selector = forecast.selector.length === 0 ? "all hosts" : forecast.selector.join(", ");
  return [
    `${forecast.hostCount} hosts (${selector}); CPU in cores`,
    ...table(
      [
        "START",
        "CPU ALLOCATABLE",
        "CPU ALLOCATED",
        "CPU FREE",
        "MEM ALLOCATABLE",
        "MEM ALLOCATED",
        "MEM FREE",
        "LARGEST FREE (CPU / MEM)",
      ],
      rows,
    ),
  ];
}

const EVENT_WIDTHS = [25, 8, 19, 24, 17] as const;

function fixed(cells: readonly string[]): string {
  return cells
    .map((c, i) => (i < EVENT_WIDTHS.length ? c.padEnd(EVENT_WIDTHS[i] ?? 0) : c))
    .join("  ")
    .trimEnd();
}

export function eventHeader(): string {
  return fixed(["TIME", "REVISION", "TYPE", "LEASE", "STATE", "HOST"]);
}

/** One line per event: time, revision, type, lease id, state, host (and the message). */
export function eventLine(e: LeaseEvent): string {
  const lease = e.lease;
  const st =
    e.type === "LEASE_EVENT_TYPE_STATE_CHANGED" && e.previousState !== "LEASE_STATE_UNSPECIFIED"
      ? `${state(e.previousState)}→${state(lease?.state ?? "")}`
      : state(lease?.state ?? "-");
  const line = fixed([
    localTime(tsMs(e.time)),
    String(e.revision),
    shortEnum(e.type, "LEASE_EVENT_TYPE_"),
    orDash(lease?.id),
    st,
    orDash(lease?.hostId),
  ]);
  return e.message === "" ? line : `${line}  ${e.message}`;
}

export function migrationTable(migrations: readonly Migration[], now: number): string[] {
  return table(
    ["ID", "LEASE", "FROM", "TO", "STATE", "REASON", "CREATED", "DOWNTIME"],
    migrations.map((m) => [
      m.id,
      m.leaseId,
      m.fromHostId,
      m.toHostId,
      shortEnum(m.state, "MIGRATION_STATE_"),
      shortEnum(m.reason, "MIGRATION_REASON_").toLowerCase(),
      relativeTime(tsMs(m.createTime), now),
      m.downtime === null ? "-" : durationOf(m.downtime),
    ]),
  );
}

export function migrationDetail(m: Migration, now: number): string[] {
  const entries: [string, string][] = [
    ["Migration", m.id],
    ["Lease", m.leaseId],
    ["From", m.fromHostId],
    ["To", m.toHostId],
    ["State", shortEnum(m.state, "MIGRATION_STATE_")],
    ["Reason", shortEnum(m.reason, "MIGRATION_REASON_").toLowerCase()],
    ["Created", timeWithRelative(tsMs(m.createTime), now)],
  ];
  if (m.predicted !== null) {
    entries.push([
      "Predicted",
      `${durationOf(m.predicted.totalTime)} total, ${durationOf(m.predicted.downtime)} downtime, ${m.predicted.rounds} rounds${m.predicted.converges ? "" : " (may not converge)"}`,
    ]);
  }
  if (m.progress !== null) {
    entries.push([
      "Progress",
      `${bytes(m.progress.bytesTransferred)} sent, ${bytes(m.progress.bytesRemaining)} left, round ${m.progress.rounds}`,
    ]);
  }
  if (m.downtime !== null) entries.push(["Downtime", durationOf(m.downtime)]);
  if (m.totalTime !== null) entries.push(["Total time", durationOf(m.totalTime)]);
  if (m.abortReason !== "") entries.push(["Abort reason", m.abortReason]);
  return fields(entries);
}

export function drainResult(r: DrainHostResponse): string[] {
  const lines = [`Host ${r.host?.id ?? "?"}: ${hostState(r.host?.state ?? "-")}`];
  if (r.moves.length > 0) {
    lines.push("Migrations:", ...r.moves.map((m) => `  ${moveText(m)}`));
  }
  if (r.stopLeaseIds.length > 0)
    lines.push(`Stopped at the deadline: ${r.stopLeaseIds.join(", ")}`);
  if (r.replannedLeaseIds.length > 0)
    lines.push(`Reservations moved: ${r.replannedLeaseIds.join(", ")}`);
  return lines;
}

export function rebalanceResult(r: RebalanceResponse): string[] {
  const lines = [
    `Imbalance: ${r.imbalanceBefore.toFixed(3)} → ${r.imbalanceAfter.toFixed(3)} with ${r.moves.length} moves`,
  ];
  r.moves.forEach((m, i) => {
    const id = r.migrationIds[i];
    lines.push(`  ${moveText(m)}${id === undefined ? "" : `  [${id}]`}`);
  });
  return lines;
}

export function autoscaleResult(s: AutoscaleStatus, now: number): string[] {
  const signal = s.lastSignal;
  let last = "none yet";
  if (signal !== null) {
    const at = timeWithRelative(tsMs(signal.time), now);
    if (signal.signal === "scaleOut" && signal.scaleOut !== null && signal.scaleOut !== undefined) {
      const out = signal.scaleOut;
      const hosts = out.hosts.map((h) => `${h.count}× ${h.shape}`).join(", ");
      const deadline = out.deadline === null ? "now" : timeWithRelative(tsMs(out.deadline), now);
      last = `scale out #${signal.sequence}: ${hosts} (${out.reason}; needed by ${deadline}) at ${at}`;
    } else if (
      signal.signal === "scaleIn" &&
      signal.scaleIn !== null &&
      signal.scaleIn !== undefined
    ) {
      const moves = signal.scaleIn.moves.length;
      last = `scale in #${signal.sequence}: ${signal.scaleIn.candidateHostIds.join(", ")} (${signal.scaleIn.reason}${moves > 0 ? `; ${moves} migrations` : ""}) at ${at}`;
    } else {
      const why = signal.steady?.reason ?? "";
      last = `steady #${signal.sequence}${why === "" ? "" : ` (${why})`} at ${at}`;
    }
  }
  return fields([
    ["Enabled", s.enabled ? "yes" : "no"],
    ["Ready hosts", String(s.readyHosts)],
    ["Allocatable", resourcesText(s.allocatable)],
    ["Allocated", resourcesText(s.allocated)],
    ["Pending", `${s.pendingLeases} leases needing ${resourcesText(s.pendingDemand)}`],
    ["Idle hosts", s.idleHostIds.length === 0 ? "-" : s.idleHostIds.join(", ")],
    ["Last signal", last],
  ]);
}
