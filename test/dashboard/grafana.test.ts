/**
 * deploy/grafana: the dashboard's queries name only series the broker exports (a renamed metric
 * fails here, not in an operator's empty panel), and the Prometheus scrape config points at the
 * broker's default HTTP address.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { BROKER_OPTIONS } from "../../broker/config.js";
import { type DashboardBroker, startDashboardBroker } from "../../broker/dashboard/test-support.js";
import { VirtualClock } from "../../core/index.js";
import { parseExposition } from "./exposition.js";

const DEPLOY = join(import.meta.dirname, "..", "..", "deploy", "grafana");

interface Panel {
  readonly id: number;
  readonly type: string;
  readonly title: string;
  readonly targets?: readonly { readonly expr: string }[];
}

let dash: DashboardBroker;
let exported: Set<string>;

beforeAll(async () => {
  dash = await startDashboardBroker({ clock: new VirtualClock(Date.UTC(2031, 0, 6)) });
  const text = await (await fetch(`${dash.base}/metrics`)).text();
  // A labelled histogram has no samples until observed: its parts count as exported.
  exported = new Set(
    [...parseExposition(text).values()].flatMap((f) => [
      f.name,
      ...(f.type === "histogram" ? ["_bucket", "_sum", "_count"].map((s) => f.name + s) : []),
      ...f.samples.map((s) => s.name),
    ]),
  );
});
afterAll(async () => {
  await dash.stop();
});

describe("deploy/grafana", () => {
  it("queries only series the broker exports", () => {
    const board = JSON.parse(readFileSync(join(DEPLOY, "leasebroker.json"), "utf8")) as {
      uid: string;
      panels: Panel[];
    };
    expect(board.uid).toBe("leasebroker-capacity");
    const ids = board.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    const queried = new Set<string>();
    for (const panel of board.panels) {
      if (panel.type === "row") continue;
      expect(panel.targets?.length, panel.title).toBeGreaterThan(0);
      for (const { expr } of panel.targets ?? []) {
        for (const name of expr.match(/\b(?:leasebroker|process|nodejs)_[a-z0-9_]+/g) ?? [])
          queried.add(name);
      }
    }
    expect(queried.size).toBeGreaterThan(15);
    const missing = [...queried].filter((name) => !exported.has(name));
    expect(missing).toEqual([]);
  });

  it("scrapes the broker's default HTTP address at /metrics", () => {
    const config = parse(readFileSync(join(DEPLOY, "prometheus.yml"), "utf8")) as {
      scrape_configs: {
        job_name: string;
        metrics_path: string;
        static_configs: { targets: string[] }[];
      }[];
    };
    const job = config.scrape_configs.find((c) => c.job_name === "leasebroker");
    expect(job?.metrics_path).toBe("/metrics");
    expect(job?.static_configs[0]?.targets).toEqual([BROKER_OPTIONS.httpAddress.default]);
  });
});
