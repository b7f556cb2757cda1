/** `place` with `excludeHosts`: the search and the exhaustive scan agree and never pick an excluded host. */

import { describe, expect, it } from "vitest";
import { eligibilityCheck, place } from "./place.js";
import { randomCluster, randomRequest } from "./test-support.js";

describe("place with excludeHosts", () => {
  it("skips excluded hosts, the search agreeing with the scan", () => {
    const { index, rng, now } = randomCluster(7, 60);
    for (let i = 0; i < 150; i++) {
      const req = randomRequest(rng, now, `l${i}`);
      const d = place(index, req);
      if (d.ok)
        index.commit(`l${i}`, d.hostId, req.window, req.resources, {
          priority: 0,
          preemptible: false,
        });
    }
    let excludedSome = 0;
    for (let i = 0; i < 100; i++) {
      const req = randomRequest(rng, now, `q${i}`);
      const first = place(index, req);
      if (!first.ok) continue;
      const excludeHosts = new Set([first.hostId]);
      const s = place(index, req, undefined, { excludeHosts });
      const x = place(index, req, undefined, { excludeHosts, explain: "exhaustive" });
      expect(s.ok).toBe(x.ok);
      if (s.ok && x.ok) {
        expect(s.hostId).not.toBe(first.hostId);
        expect(s.hostId).toBe(x.hostId);
        expect(s.score).toBe(x.score);
      } else {
        const f = x.explanation.filters.find((c) => c.name === "excluded");
        expect(f?.removed).toBe(1);
      }
      excludedSome++;
    }
    expect(excludedSome).toBeGreaterThan(20);
  });

  it("eligibilityCheck applies the non-resource filters only", () => {
    const { index } = randomCluster(3, 20);
    const req = {
      resources: { cpuMillis: 1e9, memoryMib: 1, diskGib: 0, gpus: 0 },
      window: { start: 0, end: 10 },
      constraints: [{ key: "zone", op: "=" as const, value: "a" }],
    };
    const ok = eligibilityCheck(index, req);
    for (const h of index.hosts()) {
      expect(ok(h.id)).toBe(h.state === "READY" && h.labels.zone === "a");
    }
  });

  it("scanPeaks visits every host with its peak over the window, as peakOver reports it", () => {
    const { index, rng, now } = randomCluster(11, 30);
    for (let i = 0; i < 80; i++) {
      const req = randomRequest(rng, now, `l${i}`);
      const d = place(index, req);
      if (d.ok)
        index.commit(`l${i}`, d.hostId, req.window, req.resources, {
          priority: 0,
          preemptible: false,
        });
    }
    const window = { start: now + 2_000, end: now + 9_000 };
    const seen: string[] = [];
    index.scanPeaks(window, (id, state, limit, peak) => {
      seen.push(id);
      const view = index.host(id);
      const p = index.peakOver(id, window);
      expect(state).toBe(view?.state);
      expect([limit[0], limit[1]]).toEqual([
        view?.allocatable.cpuMillis,
        view?.allocatable.memoryMib,
      ]);
      expect([peak[0], peak[1], peak[2], peak[3]]).toEqual([
        p.cpuMillis,
        p.memoryMib,
        p.diskGib,
        p.gpus,
      ]);
    });
    expect(seen).toEqual(index.hosts().map((h) => h.id));
  });

  it("explain none: the same answer, a no-fit not explained beyond the search", () => {
    const { index, rng, now } = randomCluster(5, 40);
    let noFits = 0;
    for (let i = 0; i < 150; i++) {
      const req = randomRequest(rng, now, `l${i}`);
      const a = place(index, req);
      const b = place(index, req, undefined, { explain: "none" });
      expect(b.ok).toBe(a.ok);
      if (a.ok && b.ok) {
        expect(b.hostId).toBe(a.hostId);
        index.commit(`l${i}`, a.hostId, req.window, req.resources, {
          priority: 0,
          preemptible: false,
        });
      } else {
        noFits++;
        expect(b.explanation.mode).toBe("search");
      }
    }
    expect(noFits).toBeGreaterThan(0);
  });
});
