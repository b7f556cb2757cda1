/** Human-readable explanations for the CLI. */

import { formatAmount } from "./resources.js";
import type { PlacementExplanation } from "./types.js";

function iso(t: number): string {
  const d = new Date(t);
  return Number.isNaN(d.getTime()) ? String(t) : d.toISOString();
}

export function formatWindow(start: number, end: number): string {
  return `[${iso(start)}, ${iso(end)})`;
}

/** One-line summary of a decision, used as `explanation.summary`. */
export function summarize(e: Omit<PlacementExplanation, "summary">): string {
  if (e.chosenHostId !== undefined) {
    const how =
      e.mode === "search"
        ? `evaluated ${e.hostsEvaluated} of ${e.hostsConsidered} hosts; the index proved the rest infeasible or no better`
        : `${e.feasibleHosts ?? 0} of ${e.hostsConsidered} hosts feasible`;
    return `placed on ${e.chosenHostId} (score ${(e.bestScore ?? 0).toFixed(4)}): ${how}`;
  }
  const removed = e.filters
    .filter((f) => f.removed > 0)
    .map((f) => `${f.name} removed ${f.removed}`)
    .join(", ");
  let text = `no host fits among ${e.hostsConsidered} hosts${removed.length > 0 ? ` (${removed})` : ""}`;
  const b = e.binding;
  if (b !== undefined) {
    const amount =
      b.shortBy === undefined ? "" : ` short by ${formatAmount(b.resource, b.shortBy)}`;
    text += `; ${b.resource} binds${b.hostId === undefined ? "" : ` on the closest host ${b.hostId}`}${amount} over ${formatWindow(b.start, b.end)}`;
  }
  return text;
}

/** Multi-line text for `leasectl explain`. */
export function explainText(e: PlacementExplanation): string {
  const lines: string[] = [e.summary];
  if (e.window !== undefined) lines.push(`window: ${formatWindow(e.window.start, e.window.end)}`);
  lines.push(
    `hosts: ${e.hostsConsidered} considered, ${e.hostsEvaluated} evaluated${
      e.feasibleHosts === undefined ? "" : `, ${e.feasibleHosts} feasible`
    } (${e.mode === "exhaustive" ? "every filter on every host" : "indexed search"})`,
  );
  lines.push("filters (hosts removed):");
  const width = Math.max(0, ...e.filters.map((f) => f.name.length));
  for (const f of e.filters) lines.push(`  ${f.name.padEnd(width)}  ${f.removed}`);
  if (e.top !== undefined && e.top.length > 0) {
    lines.push("best hosts:");
    for (const t of e.top) {
      const parts = Object.entries(t.breakdown)
        .map(([k, v]) => `${k} ${v.toFixed(3)}`)
        .join(", ");
      lines.push(`  ${t.hostId}  ${t.score.toFixed(4)}  (${parts})`);
    }
  }
  const b = e.binding;
  if (b !== undefined) {
    lines.push(
      `binding: ${b.resource}${b.shortBy === undefined ? "" : `, short by ${formatAmount(b.resource, b.shortBy)}`} over ${formatWindow(b.start, b.end)}${
        b.hostId === undefined ? "" : ` on ${b.hostId}`
      }`,
    );
    if (b.shortOnHosts !== undefined) {
      const parts = Object.entries(b.shortOnHosts)
        .sort((x, y) => y[1] - x[1])
        .map(([r, n]) => `${r} on ${n}`);
      if (parts.length > 0) lines.push(`  short: ${parts.join(", ")} hosts`);
    }
  }
  return lines.join("\n");
}
