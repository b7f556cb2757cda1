/**
 * The report as one self-contained HTML page: inline CSS and inline SVG charts, no scripts and
 * nothing fetched, so it can be mailed or archived as a single file.
 */
import { formatDuration } from "../../core/index.js";
import type { SimulationReport } from "./report.js";
import { WINDOW_KINDS } from "./trace.js";

const COLOURS = { cpu: "#2563eb", memory: "#16a34a", disk: "#d97706", gpu: "#9333ea" } as const;

function esc(text: string): string {
  return text
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;");
}

const pct = (x: number): string => `${(x * 100).toFixed(1)}%`;

function utilisationChart(report: SimulationReport): string {
  const u = report.utilisation;
  const w = 880;
  const h = 260;
  const left = 44;
  const bottom = 28;
  const n = u.series.cpu.length;
  const x = (i: number): number => left + (n <= 1 ? 0 : (i / (n - 1)) * (w - left - 10));
  const y = (v: number): number => 10 + (1 - Math.min(1, v)) * (h - bottom - 10);
  const grid = [0, 0.25, 0.5, 0.75, 1]
    .map(
      (v) =>
        `<line x1="${left}" x2="${w - 10}" y1="${y(v)}" y2="${y(v)}" stroke="#ddd"/><text x="${left - 6}" y="${y(v) + 4}" text-anchor="end">${v * 100}%</text>`,
    )
    .join("");
  const days = (n * u.bucket_s) / 86_400;
  const ticks: string[] = [];
  const step = days > 20 ? 7 : days > 2 ? 1 : days > 0.5 ? 0.25 : 1 / 24;
  for (let d = 0; d <= days + 1e-9; d += step) {
    const i = (d * 86_400) / u.bucket_s;
    const label = step >= 1 ? `day ${Math.round(d)}` : `${Math.round(d * 24)}h`;
    ticks.push(
      `<text x="${x(Math.min(n - 1, i))}" y="${h - 8}" text-anchor="middle">${label}</text>`,
    );
  }
  const lines = (Object.keys(COLOURS) as (keyof typeof COLOURS)[])
    .filter((k) => k !== "gpu" || u.allocatable.gpus > 0)
    .map((k) => {
      const pts = u.series[k].map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
      return `<polyline fill="none" stroke="${COLOURS[k]}" stroke-width="1.5" points="${pts}"><title>${k}</title></polyline>`;
    })
    .join("");
  const legend = (Object.keys(COLOURS) as (keyof typeof COLOURS)[])
    .filter((k) => k !== "gpu" || u.allocatable.gpus > 0)
    .map(
      (k) =>
        `<span class="key" style="background:${COLOURS[k]}"></span>${k} (mean ${pct(u.mean[k])}, peak ${pct(u.peak[k])})`,
    )
    .join(" &nbsp; ");
  return `<svg viewBox="0 0 ${w} ${h}" width="100%" role="img" aria-label="utilisation over time">${grid}${ticks.join("")}${lines}</svg><p>${legend}</p><p class="small">Share of the cluster's allocatable held by running leases, averaged over ${u.bucket_s / 60} min buckets from ${esc(u.start)}.</p>`;
}

function acceptanceChart(report: SimulationReport): string {
  const w = 880;
  const rowH = 30;
  const left = 90;
  const rows = WINDOW_KINDS.map((k, r) => {
    const f = report.leases.by_kind[k];
    const total = Math.max(1, f.submitted);
    const aw = ((w - left - 200) * f.accepted) / total;
    const rw = ((w - left - 200) * f.rejected) / total;
    const yy = 10 + r * rowH;
    return `<text x="${left - 8}" y="${yy + 16}" text-anchor="end">${k}</text><rect x="${left}" y="${yy}" width="${aw}" height="20" fill="#16a34a"><title>accepted ${f.accepted}</title></rect><rect x="${left + aw}" y="${yy}" width="${rw}" height="20" fill="#dc2626"><title>rejected ${f.rejected}</title></rect><text x="${left + aw + rw + 8}" y="${yy + 16}">${pct(f.acceptance_rate)} of ${f.submitted} accepted</text>`;
  }).join("");
  return `<svg viewBox="0 0 ${w} ${20 + WINDOW_KINDS.length * rowH}" width="100%" role="img" aria-label="acceptance by window kind">${rows}</svg>`;
}

function searchChart(report: SimulationReport): string {
  const s = report.hosts_needed;
  if (s === null) return "<p>Not searched (<code>--no-search</code>).</p>";
  const runs = s.runs;
  const answer =
    s.hosts === null
      ? `<p><b>No size up to ${s.max_hosts} hosts admits the trace.</b> ${esc(s.note ?? "")}</p>`
      : `<p><b>${s.hosts} hosts</b> (${Object.entries(s.shapes ?? {})
          .map(([k, v]) => `${v} × ${esc(k)}`)
          .join(", ")}) admit the whole trace.</p>`;
  const w = 880;
  const max = Math.max(1, ...runs.map((r) => r.hosts));
  const marks = runs
    .map((r) => {
      const xx = 20 + (r.hosts / max) * (w - 60);
      return `<circle cx="${xx}" cy="30" r="6" fill="${r.admitted ? "#16a34a" : "#dc2626"}"><title>${r.hosts} hosts: ${r.admitted ? "admitted" : esc(r.first_problem ?? "not admitted")}</title></circle><text x="${xx}" y="56" text-anchor="middle">${r.hosts}</text>`;
    })
    .join("");
  return `${answer}<svg viewBox="0 0 ${w} 70" width="100%" role="img" aria-label="sizes tried"><line x1="20" x2="${w - 40}" y1="30" y2="30" stroke="#999"/>${marks}</svg><p class="small">Green: the size admitted every request; red: it did not. Search over the ${esc(s.method)}.</p>`;
}

function table(rows: readonly (readonly (string | number)[])[], header: readonly string[]): string {
  return `<table><tr>${header.map((h) => `<th>${esc(h)}</th>`).join("")}</tr>${rows
    .map(
      (r) =>
        `<tr>${r
          .map((c) => {
            // Figures line up on the right, words read from the left.
            const words = typeof c === "string" && !/^[-\d.,%]+$/.test(c);
            return `<td${words ? ' class="text"' : ""}>${esc(String(c))}</td>`;
          })
          .join("")}</tr>`,
    )
    .join("")}</table>`;
}

export function renderHtml(report: SimulationReport): string {
  const i = report.inputs;
  const l = report.leases;
  const reasons = new Set<string>();
  for (const k of WINDOW_KINDS)
    for (const r of Object.keys(l.by_kind[k].rejected_by_reason)) reasons.add(r);
  const reasonList = [...reasons].sort();
  const kindRows = WINDOW_KINDS.map((k) => {
    const f = l.by_kind[k];
    return [
      k,
      f.submitted,
      f.accepted,
      pct(f.acceptance_rate),
      f.queued,
      f.preempted,
      ...reasonList.map((r) => (f.rejected_by_reason as Record<string, number>)[r] ?? 0),
    ];
  });
  const d = report.queueing_delay;
  const delayRows = [
    ["flexible", d.flexible],
    ["queued immediate / reserved", d.queued_fixed],
  ].map(([name, x]) => {
    const v = x as typeof d.flexible;
    return [name as string, v.count, v.mean_s, v.p50_s, v.p90_s, v.p99_s, v.max_s];
  });
  const examples = report.rejection_examples.map((e) => [e.id, e.line, e.reason, e.message]);
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>leasebroker simulation</title>
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:920px;color:#111}
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}
th{background:#f4f4f5}td:first-child,th:first-child,td.text{text-align:left}
svg text{font-size:11px;fill:#333}.key{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:middle}
.small{color:#555;font-size:12px}code{background:#f4f4f5;padding:0 3px}
</style></head><body>
<h1>leasebroker simulation</h1>
<p>Trace <code>${esc(i.trace.source)}</code>: ${i.trace.leases} requests over ${formatDuration(i.trace.span_s * 1000)}.
Cluster: ${i.cluster.hosts} hosts (${Object.entries(i.cluster.shapes)
    .map(([k, v]) => `${v} × ${esc(k)}`)
    .join(", ")}; ${i.cluster.zones} zones).
Policy: ${i.policy.placement}, rebalance ${i.policy.rebalance}, make-room ${i.policy.make_room ? "on" : "off"}, preemption ${i.policy.preemption ? "on" : "off"}. Seed ${i.seed}.
Simulated ${formatDuration(report.simulation.simulated_s * 1000)}, ${report.simulation.lease_events} lease events.</p>
<h2>Acceptance</h2>
<p>${l.accepted} of ${l.submitted} requests accepted (${pct(l.acceptance_rate)}), ${l.rejected} rejected, ${l.preempted} preempted after acceptance.</p>
${acceptanceChart(report)}
${table(kindRows, ["window", "submitted", "accepted", "rate", "queued", "preempted", ...reasonList.map((r) => `rejected: ${r}`)])}
${examples.length === 0 ? "" : `<p>First rejections:</p>${table(examples, ["request", "line", "reason", "the broker said"])}`}
<h2>Queueing delay (seconds)</h2>
${table(delayRows, ["leases", "count", "mean", "p50", "p90", "p99", "max"])}
<p class="small">Flexible: actual start − max(earliest start, submit time). Queued immediate / reserved: start − requested start.</p>
<h2>Utilisation</h2>
${utilisationChart(report)}
<h2>Hosts needed</h2>
${searchChart(report)}
<h2>Migrations</h2>
<p>${report.migrations.performed} live migrations performed; predicted total ${report.migrations.predicted_total_s} s, downtime ${report.migrations.predicted_downtime_s} s.</p>
</body></html>
`;
}
