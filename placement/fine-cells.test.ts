/**
 * The index's fine cells (free cpu level × free memory level at the present × fine κ bin), kept
 * incrementally on every change and re-filed by `advanceTo` when a host's present piece ends:
 * checked against a recomputation from scratch after every operation (fast-check, seeded), and
 * the binpack search that uses them against the exhaustive scan for windows starting now.
 */

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  type ClusterIndex,
  FINE_COLUMNS,
  FINE_FREE_EDGES,
  FINE_KAPPA,
  FINE_LEVELS,
  FINE_MASK_WORDS,
  fineKappaOf,
  type HostRecord,
} from "./cluster-index.js";
import { CapacityExceededError } from "./errors.js";
import { place } from "./place.js";
import { DEFAULT_PLACEMENT_POLICY } from "./policy.js";
import { createRng } from "./random.js";
import { CORE_DIMS } from "./resources.js";
import { randomCluster, randomRequest, randomResources } from "./test-support.js";
import type { HostState } from "./types.js";

const FC = { seed: 20261124, numRuns: 40 } as const;

/** The cell a host belongs in, computed from its timeline alone. */
function expectedCell(index: ClusterIndex, h: HostRecord): number {
  const peak = h.timeline.peakAll();
  let kappa = 0;
  for (let k = 0; k < CORE_DIMS; k++) {
    const w = h.cls.wn[k] as number;
    if (w > 0) kappa += (w * (peak[k] as number)) / (h.cls.alloc[k] as number);
  }
  const use = h.timeline.usageAt(index.now);
  const level = (k: number): number => {
    const a = h.cls.alloc[k] as number;
    if (!(a > 0)) return FINE_LEVELS - 1;
    const free = (a - (use[k] as number)) / a;
    let l = 0;
    while (l < FINE_FREE_EDGES.length && free >= (FINE_FREE_EDGES[l] as number)) l++;
    return l;
  };
  return (level(0) * FINE_LEVELS + level(1)) * FINE_KAPPA + fineKappaOf(kappa);
}

/** Every READY host filed once, in the cell a recomputation gives; nobody else filed. */
function checkFineCells(index: ClusterIndex): void {
  let filed = 0;
  for (const cls of index.classList) {
    const perColumn = new Int32Array(FINE_COLUMNS);
    cls.fine.forEach((hosts, cell) => {
      hosts?.forEach((h, pos) => {
        expect(h.state).toBe("READY");
        expect(h.fineBin).toBe(cell);
        expect(h.finePos).toBe(pos);
        expect(h.cls).toBe(cls);
        const col = Math.floor(cell / FINE_KAPPA);
        perColumn[col] = (perColumn[col] as number) + 1;
        filed++;
      });
    });
    expect(Array.from(cls.fineColumnCount)).toEqual(Array.from(perColumn));
    const wrongBits: number[] = [];
    for (let cell = 0; cell < FINE_COLUMNS * FINE_KAPPA; cell++) {
      const col = Math.floor(cell / FINE_KAPPA);
      const word = cls.fineMask[(cell % FINE_KAPPA) * FINE_MASK_WORDS + (col >>> 5)] as number;
      const bit = ((word >>> (col & 31)) & 1) === 1;
      if (bit !== (cls.fine[cell]?.length ?? 0) > 0) wrongBits.push(cell);
    }
    expect(wrongBits).toEqual([]);
  }
  expect(filed).toBe(index.readyCount);
  for (const h of index.hostMap.values()) {
    if (h.state !== "READY") {
      expect(h.fineBin).toBe(-1);
      continue;
    }
    if (!Number.isNaN(index.now)) expect(h.fineBin).toBe(expectedCell(index, h));
  }
  if (!Number.isNaN(index.now)) expect(index.fineValidUntil()).toBeGreaterThan(index.now);
}

type Op =
  | { kind: "commit"; host: number; offset: number; length: number; seed: number }
  | { kind: "release"; pick: number }
  | { kind: "resize"; pick: number; length: number }
  | { kind: "move"; pick: number; host: number }
  | { kind: "state"; host: number; state: HostState }
  | { kind: "advance"; by: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    arbitrary: fc.record({
      kind: fc.constant("commit" as const),
      host: fc.nat(40),
      offset: fc.integer({ min: -3_000, max: 20_000 }),
      length: fc.integer({ min: 1, max: 30_000 }),
      seed: fc.nat(),
    }),
    weight: 6,
  },
  { arbitrary: fc.record({ kind: fc.constant("release" as const), pick: fc.nat() }), weight: 2 },
  {
    arbitrary: fc.record({
      kind: fc.constant("resize" as const),
      pick: fc.nat(),
      length: fc.integer({ min: 1, max: 30_000 }),
    }),
    weight: 1,
  },
  {
    arbitrary: fc.record({ kind: fc.constant("move" as const), pick: fc.nat(), host: fc.nat(40) }),
    weight: 1,
  },
  {
    arbitrary: fc.record({
      kind: fc.constant("state" as const),
      host: fc.nat(40),
      state: fc.constantFrom<HostState>("READY", "READY", "CORDONED", "DOWN"),
    }),
    weight: 1,
  },
  {
    arbitrary: fc.record({
      kind: fc.constant("advance" as const),
      by: fc.integer({ min: 0, max: 5_000 }),
    }),
    weight: 3,
  },
);

function apply(index: ClusterIndex, ids: string[], holds: string[], op: Op, seq: number): void {
  const hostId = (i: number) => ids[i % ids.length] as string;
  const now = Number.isNaN(index.now) ? 1_000_000 : index.now;
  try {
    switch (op.kind) {
      case "commit": {
        const start = now + op.offset;
        const rng = createRng(op.seed);
        const id = `c${seq}`;
        index.commit(id, hostId(op.host), { start, end: start + op.length }, randomResources(rng), {
          priority: 0,
          preemptible: false,
        });
        holds.push(id);
        return;
      }
      case "release":
        if (holds.length > 0) index.release(holds.splice(op.pick % holds.length, 1)[0] as string);
        return;
      case "resize": {
        if (holds.length === 0) return;
        const id = holds[op.pick % holds.length] as string;
        const h = index.hold(id);
        if (h !== undefined)
          index.resize(id, { window: { start: h.start, end: h.start + op.length } });
        return;
      }
      case "move":
        if (holds.length > 0) index.move(holds[op.pick % holds.length] as string, hostId(op.host));
        return;
      case "state":
        index.setHostState(hostId(op.host), op.state);
        return;
      case "advance":
        index.advanceTo(now + op.by);
        return;
    }
  } catch (err) {
    if (!(err instanceof CapacityExceededError)) throw err;
  }
}

describe("fine cells", () => {
  it("match a recomputation from scratch after every operation", () => {
    fc.assert(
      fc.property(
        fc.boolean(),
        fc.array(opArb, { minLength: 1, maxLength: 60 }),
        (advanceFirst, ops) => {
          const { index } = randomCluster(7, 24);
          const ids = index.hosts().map((h) => h.id);
          if (advanceFirst) index.advanceTo(1_000_000);
          const holds: string[] = [];
          ops.forEach((op, i) => {
            apply(index, ids, holds, op, i);
            checkFineCells(index);
          });
        },
      ),
      FC,
    );
  });

  it("let binpack find the exhaustive scan's host and score for windows starting now", () => {
    let compared = 0;
    let pruned = 0;
    for (let seed = 1; seed <= 6; seed++) {
      const c = randomCluster(100 + seed, 80);
      const { index, rng } = c;
      index.advanceTo(c.now);
      for (let step = 0; step < 300; step++) {
        c.now += rng.int(0, 600);
        index.advanceTo(c.now);
        for (const h of index.hosts()) {
          for (const hold of index.holdsOn(h.id)) if (hold.end <= c.now) index.release(hold.id);
        }
        const id = `l${seed}-${step}`;
        const drawn = randomRequest(rng, c.now, id);
        const { policy: _policy, ...rest } = drawn;
        const req = {
          ...rest,
          window: { start: c.now, end: c.now + (drawn.window.end - drawn.window.start) },
        };
        const fast = place(index, req, DEFAULT_PLACEMENT_POLICY);
        const slow = place(index, req, DEFAULT_PLACEMENT_POLICY, { explain: "exhaustive" });
        compared++;
        expect(fast.ok).toBe(slow.ok);
        if (fast.ok && slow.ok) {
          expect(fast.hostId).toBe(slow.hostId);
          expect(fast.score).toBe(slow.score);
          if (fast.explanation.hostsEvaluated < index.readyCount) pruned++;
          index.commit(id, fast.hostId, req.window, req.resources, {
            priority: 0,
            preemptible: false,
            ...(req.group === undefined ? {} : { group: req.group.name }),
          });
        }
      }
    }
    expect(compared).toBe(6 * 300);
    expect(pruned).toBeGreaterThan(500);
  });
});
