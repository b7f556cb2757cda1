/** Small statistics and measurement helpers for the benchmarks. */

import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i] as number;
}

export function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return percentile(s, 50);
}

let gcFn: (() => void) | undefined;

/** Run a full GC if we can (bench runs under plain `node`, so enable it at run time). */
export function collectGarbage(): void {
  if (gcFn === undefined) {
    setFlagsFromString("--expose-gc");
    gcFn = runInNewContext("gc") as () => void;
  }
  gcFn();
  gcFn();
}

export interface HeapFigures {
  /** V8 heap in use after a full GC. */
  readonly heapMib: number;
  /** Typed-array backing stores (outside the V8 heap). */
  readonly arrayBuffersMib: number;
  readonly rssMib: number;
}

export function heapAfterGc(): HeapFigures {
  collectGarbage();
  const m = process.memoryUsage();
  const mib = (b: number) => Math.round((b / 1024 / 1024) * 10) / 10;
  return { heapMib: mib(m.heapUsed), arrayBuffersMib: mib(m.arrayBuffers), rssMib: mib(m.rss) };
}

/** Fixed-width text table. */
export function table(rows: readonly (readonly string[])[]): string {
  const widths: number[] = [];
  for (const r of rows) {
    r.forEach((c, i) => {
      widths[i] = Math.max(widths[i] ?? 0, c.length);
    });
  }
  return rows
    .map((r) =>
      r.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join("  "),
    )
    .join("\n");
}

export function fmt(v: number, digits = 0): string {
  return v.toLocaleString("en-US", {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  });
}
