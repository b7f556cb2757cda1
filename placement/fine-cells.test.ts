/**
 * The index's fine cells and block cells (free cpu level × free memory level at the present × fine κ bin), kept
 * incrementally on every change and re-filed by `advanceTo` when a host's present piece ends:
 * checked against a recomputation from scratch after every operation (fast-check, seeded), and
 * the binpack search that uses them against the exhaustive scan for windows starting now. Block
 * bounds and block cells (per block of the bucket ring: minimum, maximum and suffix maximum of the
 * usage; hosts filed by free level at the block minimum × κ of the suffix maximum) likewise.
 */

import fc from "fast-check";
import { describe, expect, it, vi } from "vitest";
import {
  BLOCK_BUCKETS,
  BLOCK_REACH,
  BLOCK_VARIANTS,
  BOUNDS_EXACT,
  BOUNDS_STALE,
  CHUNK_SIZE,
  type ClusterIndex,
  coversCell,
  FINE_COLUMNS,
  FINE_FREE_EDGES,
  FINE_KAPPA,
  FINE_LEVELS,
  FINE_MASK_WORDS,
  fineKappaOf,
  freeLevel,
  type HostRecord,
  RUNG_BUCKETS,
  RUNGS,
  usageBelowLevel,
} from "./cluster-index.js";
import { CapacityExceededError } from "./errors.js";
import { place } from "./place.js";
import { DEFAULT_PLACEMENT_POLICY } from "./policy.js";
import { createRng } from "./random.js";
import { CORE_DIMS } from "./resources.js";
import { randomCluster, randomHostSpec, randomRequest, randomResources } from "./test-support.js";
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

/**
 * Every host's block bounds equal a recomputation from its timeline, and every READY host is
 * filed once per block of the ring, in the cell those bounds give (with column counts and mask
 * bits to match); nobody else, and nothing in slots outside the ring's blocks. Rung cells: see
 * below (`changed`: the hosts the last operation changed).
 */
function checkBlockCells(index: ClusterIndex, changed: ReadonlySet<string>): void {
  if (Number.isNaN(index.ringBase)) return;
  const ms = index.bucketMs;
  const first = index.firstBlock();
  const last = index.lastBlock();
  const inRing = new Set<number>();
  for (let b = first; b <= last; b++) inRing.add(index.blockSlotOf(b));
  expect(inRing.size).toBe(last - first + 1);
  // mismatches as text, asserted once (an expect per value is too slow for a 67-block ring)
  const wrong: string[] = [];
  const same = (what: string, got: ArrayLike<number>, want: ArrayLike<number>) => {
    for (let k = 0; k < CORE_DIMS; k++) {
      if (got[k] !== want[k]) wrong.push(`${what}[${k}] ${got[k]} ≠ ${want[k]}`);
    }
  };
  for (const h of index.hostMap.values()) {
    const suf = new Float64Array(CORE_DIMS);
    for (let b = last; b >= first; b--) {
      const from = Math.max(b * BLOCK_BUCKETS, index.ringBase) * ms;
      const to = Math.min((b + 1) * BLOCK_BUCKETS, index.ringBase + index.ringSize) * ms;
      const min = h.timeline.minOver(from, to);
      const max = h.timeline.peak(from, to);
      const o = index.blockSlotOf(b) * CORE_DIMS;
      for (let k = 0; k < CORE_DIMS; k++) suf[k] = Math.max(suf[k] as number, max[k] as number);
      same(`${h.id} min ${b}`, h.blockMin.subarray(o), min);
      same(`${h.id} max ${b}`, h.blockMax.subarray(o), max);
      same(`${h.id} suffix ${b}`, h.blockSuf.subarray(o), suf);
      let kappa = 0;
      for (let k = 0; k < CORE_DIMS; k++) {
        const w = h.cls.wn[k] as number;
        if (w > 0) kappa += (w * (suf[k] as number)) / (h.cls.alloc[k] as number);
      }
      BLOCK_REACH.forEach((reach, v) => {
        // lower bound: the block's minimum and the maxima of the buckets the variant reaches
        const lb = [min[0] as number, min[1] as number];
        const after = (b + 1) * BLOCK_BUCKETS;
        const to = Math.min(after + reach, index.ringBase + index.ringSize);
        if (to > after) {
          const m = h.timeline.peak(after * ms, to * ms);
          lb[0] = Math.max(lb[0] as number, m[0] as number);
          lb[1] = Math.max(lb[1] as number, m[1] as number);
        }
        const column =
          freeLevel(h.cls.alloc[0] as number, lb[0] as number) * FINE_LEVELS +
          freeLevel(h.cls.alloc[1] as number, lb[1] as number);
        const expected = h.state === "READY" ? column * FINE_KAPPA + fineKappaOf(kappa) : -1;
        const got = h.blockCell[index.cellSlot(v, b)];
        if (got !== expected) wrong.push(`${h.id} block ${b} variant ${v}: ${got} ≠ ${expected}`);
      });
    }
    for (let slot = 0; slot < BLOCK_VARIANTS * index.blockSlots; slot++) {
      if (!inRing.has(slot % index.blockSlots) && h.blockCell[slot] !== -1) {
        wrong.push(`${h.id} filed in slot ${slot} outside the ring`);
      }
    }
    // rung cells: exact for a host the operation changed; for the others a cell that covers the
    // exact one (the clock's advance may leave κ high and free levels high, never low)
    for (let r = 0; r < RUNGS; r++) {
      const want = expectedRungCell(index, h, r);
      const got = h.blockCell[index.rungSlot(r)] as number;
      const ok = changed.has(h.id) || want < 0 ? got === want : coversCell(got, want);
      if (!ok) wrong.push(`${h.id} rung ${r}: ${got} for ${want}`);
    }
  }
  expect(wrong).toEqual([]);
  // every filed host sits where its record says; column counts and mask bits match the hosts
  // filed, and the cells the mask marks hold nobody else
  const rungsFiled = !Number.isNaN(index.now);
  for (const cls of index.classList) {
    const mask = new Uint32Array(cls.blockMask.length);
    const columns = new Int32Array(cls.blockColumnCount.length);
    const filed = new Int32Array(index.cellSlots);
    for (const h of index.hostMap.values()) {
      if (h.cls !== cls) continue;
      for (let slot = 0; slot < index.cellSlots; slot++) {
        const cell = h.blockCell[slot] as number;
        if (cell < 0) continue;
        const at = cls.blockCells[slot]?.[cell];
        if (at?.[index.cellPosOf(h, slot)] !== h.num) {
          wrong.push(`${h.id} not at its place in slot ${slot}`);
        }
        const col = Math.floor(cell / FINE_KAPPA);
        const w = (slot * FINE_KAPPA + (cell % FINE_KAPPA)) * FINE_MASK_WORDS + (col >>> 5);
        mask[w] = (mask[w] as number) | (1 << (col & 31));
        columns[slot * FINE_COLUMNS + col] = (columns[slot * FINE_COLUMNS + col] as number) + 1;
        filed[slot] = (filed[slot] as number) + 1;
      }
    }
    for (let slot = 0; slot < index.cellSlots; slot++) {
      const rung = slot >= index.rungSlot(0);
      const expected = (rung ? rungsFiled : inRing.has(slot % index.blockSlots)) ? cls.ready : 0;
      if (filed[slot] !== expected)
        expect({ slot, filed: filed[slot] }).toEqual({ slot, filed: expected });
    }
    const wrongMask: number[] = [];
    for (let w = 0; w < mask.length; w++) if (mask[w] !== cls.blockMask[w]) wrongMask.push(w);
    expect(wrongMask).toEqual([]);
    const wrongColumns: number[] = [];
    for (let c = 0; c < columns.length; c++) {
      if (columns[c] !== cls.blockColumnCount[c]) wrongColumns.push(c);
    }
    expect(wrongColumns).toEqual([]);
    let listed = 0;
    for (let w = 0; w < mask.length; w++) {
      let m = mask[w] as number;
      while (m !== 0) {
        const bit = 31 - Math.clz32(m);
        m = (m & ~(1 << bit)) >>> 0;
        const kb = Math.floor(w / FINE_MASK_WORDS);
        const slot = Math.floor(kb / FINE_KAPPA);
        const col = (w % FINE_MASK_WORDS) * 32 + bit;
        listed += cls.blockCells[slot]?.[col * FINE_KAPPA + (kb % FINE_KAPPA)]?.length ?? 0;
      }
    }
    expect(listed).toBe(filed.reduce((a, b) => a + b, 0));
  }
  expect(wrong).toEqual([]);
}

/**
 * A rung's cell from the timeline alone: free level at the usage at the present and the maxima
 * of buckets base+1 … base+RUNG_BUCKETS[r], κ of the maxima of buckets base … base+RUNG_BUCKETS[r+1]
 * (to the ring's end for the last rung); -1 if the host is not filed.
 */
function expectedRungCell(index: ClusterIndex, h: HostRecord, r: number): number {
  if (h.state !== "READY" || Number.isNaN(index.now)) return -1;
  const ms = index.bucketMs;
  const base = index.ringBase;
  const end = base + index.ringSize - 1;
  const lb = Array.from(h.timeline.usageAt(index.now).subarray(0, CORE_DIMS));
  const reach = Math.min(RUNG_BUCKETS[r] as number, end - base);
  if (reach > 0) {
    const p = h.timeline.peak((base + 1) * ms, (base + reach + 1) * ms);
    for (let k = 0; k < CORE_DIMS; k++) lb[k] = Math.max(lb[k] as number, p[k] as number);
  }
  const next = RUNG_BUCKETS[r + 1];
  const ub =
    next === undefined || base + next >= end
      ? h.timeline.peak(base * ms, (end + 1) * ms)
      : h.timeline.peak(base * ms, (base + next + 1) * ms);
  let kappa = 0;
  for (let k = 0; k < CORE_DIMS; k++) {
    const w = h.cls.wn[k] as number;
    if (w > 0) kappa += (w * (ub[k] as number)) / (h.cls.alloc[k] as number);
  }
  const column =
    freeLevel(h.cls.alloc[0] as number, lb[0] as number) * FINE_LEVELS +
    freeLevel(h.cls.alloc[1] as number, lb[1] as number);
  return column * FINE_KAPPA + fineKappaOf(kappa);
}

type Op =
  | { kind: "commit"; host: number; offset: number; length: number; seed: number }
  | { kind: "release"; pick: number }
  | { kind: "resize"; pick: number; length: number }
  | { kind: "move"; pick: number; host: number }
  | { kind: "state"; host: number; state: HostState }
  | { kind: "advance"; by: number }
  | { kind: "add"; seed: number }
  | { kind: "remove"; host: number };

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
  {
    // a few buckets: with 100 ms buckets, often within the ring's first block
    arbitrary: fc.record({
      kind: fc.constant("advance" as const),
      by: fc.integer({ min: 0, max: 700 }),
    }),
    weight: 2,
  },
  {
    // past the whole ring (16 buckets of 1 s): every block is new
    arbitrary: fc.record({
      kind: fc.constant("advance" as const),
      by: fc.integer({ min: 10_000, max: 40_000 }),
    }),
    weight: 1,
  },
  { arbitrary: fc.record({ kind: fc.constant("add" as const), seed: fc.nat() }), weight: 1 },
  { arbitrary: fc.record({ kind: fc.constant("remove" as const), host: fc.nat(40) }), weight: 1 },
);

/** Apply `op`; returns the ids of the hosts whose usage or state it changed. */
function apply(index: ClusterIndex, ids: string[], holds: string[], op: Op, seq: number): string[] {
  const hostId = (i: number) => ids[i % ids.length] as string;
  const holder = (id: string) => index.hold(id)?.hostId ?? "";
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
        return [hostId(op.host)];
      }
      case "release": {
        if (holds.length === 0) return [];
        const id = holds.splice(op.pick % holds.length, 1)[0] as string;
        const on = holder(id);
        const ended = (index.hold(id)?.end ?? 0) <= index.now;
        index.release(id);
        // releasing a hold that ended by the present may leave the rungs' upper bounds high
        return ended ? [] : [on];
      }
      case "resize": {
        if (holds.length === 0) return [];
        const id = holds[op.pick % holds.length] as string;
        const h = index.hold(id);
        if (h !== undefined)
          index.resize(id, { window: { start: h.start, end: h.start + op.length } });
        return [holder(id)];
      }
      case "move": {
        if (holds.length === 0) return [];
        const id = holds[op.pick % holds.length] as string;
        const from = holder(id);
        index.move(id, hostId(op.host));
        return from === hostId(op.host) ? [] : [from, hostId(op.host)];
      }
      case "state": {
        const was = index.host(hostId(op.host))?.state;
        index.setHostState(hostId(op.host), op.state);
        return was === op.state ? [] : [hostId(op.host)];
      }
      case "advance":
        index.advanceTo(now + op.by);
        return [];
      case "add": {
        const spec = randomHostSpec(createRng(op.seed), 1000 + seq);
        index.addHost(spec);
        ids.push(spec.id);
        return [spec.id];
      }
      case "remove": {
        if (ids.length <= 1) return [];
        const at = op.host % ids.length;
        const released = new Set(index.removeHost(ids[at] as string));
        ids.splice(at, 1);
        for (let i = holds.length - 1; i >= 0; i--)
          if (released.has(holds[i] as string)) holds.splice(i, 1);
        return [];
      }
    }
  } catch (err) {
    if (!(err instanceof CapacityExceededError)) throw err;
  }
  return [];
}

/**
 * Every chunk slot's bounds against its hosts' bucket minima and maxima: equal where exact. Stale
 * slots are recomputed when `fill` (so later changes keep them exact or make them stale again),
 * and then must be exact. Returns how many exact slots it checked.
 */
function checkChunkBounds(index: ClusterIndex, fill: boolean): number {
  if (Number.isNaN(index.ringBase)) return 0;
  const R = index.ringSize;
  let exact = 0;
  for (const cls of index.classList) {
    for (const bin of cls.bins) {
      if (bin === undefined) continue;
      const chunks = Math.ceil(bin.hosts.length / CHUNK_SIZE);
      for (let c = 0; c < chunks; c++) {
        const hosts = bin.hosts.slice(c * CHUNK_SIZE, (c + 1) * CHUNK_SIZE);
        for (let slot = 0; slot < R; slot++) {
          let state = bin.valid[c * R + slot];
          if (state === BOUNDS_STALE) {
            if (!fill) continue;
            expect(index.chunkMinAt(bin, c, slot)).toBe((c * R + slot) * CORE_DIMS);
            state = bin.valid[c * R + slot];
          }
          expect(state).toBe(BOUNDS_EXACT);
          exact++;
          const off = (c * R + slot) * CORE_DIMS;
          for (let k = 0; k < CORE_DIMS; k++) {
            const min = Math.min(...hosts.map((h) => h.ring[slot * CORE_DIMS + k] as number));
            const max = Math.max(...hosts.map((h) => h.ringMax[slot * CORE_DIMS + k] as number));
            const lo = bin.chunkMin[off + k] as number;
            const hi = bin.chunkMax[off + k] as number;
            expect(lo).toBe(min);
            expect(hi).toBe(max);
          }
        }
      }
    }
  }
  return exact;
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

  // incremental (exact or stale) against a recomputation over the chunk's hosts
  it("keep chunk bounds exact, or stale, after every operation", () => {
    let exactSeen = 0;
    fc.assert(
      fc.property(
        fc.boolean(),
        fc.array(opArb, { minLength: 1, maxLength: 60 }),
        (advanceFirst, ops) => {
          const { index } = randomCluster(13, 24);
          const ids = index.hosts().map((h) => h.id);
          if (advanceFirst) index.advanceTo(1_000_000);
          const holds: string[] = [];
          ops.forEach((op, i) => {
            apply(index, ids, holds, op, i);
            exactSeen += checkChunkBounds(index, i % 3 === 0);
          });
        },
      ),
      FC,
    );
    expect(exactSeen).toBeGreaterThan(0);
  });

  // a ring of 3 blocks (every block within the rungs' reach), and one of 67 like the bench's
  it.each([
    { bucketMs: 1000, horizonBuckets: 16 },
    { bucketMs: 100, horizonBuckets: 400 },
  ])(
    "keep block bounds and block cells equal to a recomputation after every operation (%o)",
    (options) => {
      // the large ring's check reads 67 blocks per host per operation: fewer, shorter runs
      const big = options.horizonBuckets > 100;
      fc.assert(
        fc.property(
          fc.boolean(),
          fc.array(opArb, { minLength: 1, maxLength: big ? 30 : 60 }),
          (advanceFirst, ops) => {
            const { index } = randomCluster(11, 24, options);
            const ids = index.hosts().map((h) => h.id);
            if (advanceFirst) index.advanceTo(1_000_000);
            const holds: string[] = [];
            ops.forEach((op, i) => {
              checkBlockCells(index, new Set(apply(index, ids, holds, op, i)));
            });
          },
        ),
        big ? { ...FC, numRuns: 10 } : FC,
      );
    },
  );

  // The clock's advance by one bucket updates the rung bounds from the buckets that enter their
  // windows (see `shiftRungs`): reservations entering the rungs' reach, leases ending, hosts
  // emptying ahead of the far rungs, one bucket at a time.
  it("keep rung cells valid over one-bucket advances, and exact for the hosts a change touched", () => {
    for (let seed = 1; seed <= 2; seed++) {
      const { index, rng } = randomCluster(200 + seed, 10, { bucketMs: 100, horizonBuckets: 400 });
      const ids = index.hosts().map((h) => h.id);
      let now = 1_000_000;
      index.advanceTo(now);
      const holds: string[] = [];
      let shifted = 0;
      for (let step = 0; step < 100; step++) {
        const changed = new Set<string>();
        const host = ids[rng.int(0, ids.length - 1)] as string;
        try {
          // mostly reservations ahead (they enter the far rungs' windows as the clock moves)
          const start = now + rng.int(-200, 30_000);
          const id = `r${seed}-${step}`;
          index.commit(
            id,
            host,
            { start, end: start + rng.int(100, 8_000) },
            randomResources(rng),
            {
              priority: 0,
              preemptible: false,
            },
          );
          holds.push(id);
          changed.add(host);
        } catch (err) {
          if (!(err instanceof CapacityExceededError)) throw err;
        }
        if (holds.length > 0 && rng.int(0, 2) === 0) {
          const id = holds.splice(rng.int(0, holds.length - 1), 1)[0] as string;
          const hold = index.hold(id);
          if (hold !== undefined && hold.end > now) changed.add(hold.hostId);
          index.release(id);
        }
        checkBlockCells(index, changed);
        for (let i = rng.int(1, 4); i > 0; i--) {
          now += 100;
          const base = index.ringBase;
          index.advanceTo(now);
          if (index.ringBase === base + 1) shifted++;
          checkBlockCells(index, new Set());
        }
      }
      expect(shifted).toBeGreaterThan(150);
    }
  });

  it("keep blocks exact over one-bucket advances across block starts (idle ring ends, usage that steps in the first block)", () => {
    // 60 buckets of 100 ms: holds reach at most ~3 s ahead, so most hosts are idle at the ring's
    // end (a new block of zeros), and holds end mid-block near the present (the first block may
    // or may not keep its extremes when a bucket leaves it)
    const { index, rng } = randomCluster(31, 12, { bucketMs: 100, horizonBuckets: 60 });
    const internals = index as unknown as {
      zeroBlock(host: HostRecord, b: number): void;
      firstBlockKeeps(host: HostRecord, left: number, first: number): boolean;
      stepEmpty(host: HostRecord, oldFirst: number, first: number, newLast: number): void;
    };
    const zeroBlock = vi.spyOn(internals, "zeroBlock");
    const stepEmpty = vi.spyOn(internals, "stepEmpty");
    const keeps = vi.spyOn(internals, "firstBlockKeeps");
    const ids = index.hosts().map((h) => h.id);
    let now = 1_000_000;
    index.advanceTo(now);
    for (let step = 0; step < 90; step++) {
      for (let n = rng.int(0, 2); n > 0; n--) {
        const start = now + rng.int(-150, 1_500);
        try {
          index.commit(
            `s${step}-${n}`,
            ids[rng.int(0, ids.length - 1)] as string,
            { start, end: start + rng.int(30, 1_500) },
            randomResources(rng),
            { priority: 0, preemptible: false },
          );
        } catch (err) {
          if (!(err instanceof CapacityExceededError)) throw err;
        }
      }
      now += 100;
      index.advanceTo(now);
      checkBlockCells(index, new Set());
    }
    expect(zeroBlock.mock.calls.length).toBeGreaterThan(100);
    // empty hosts take their own step, some of them across block starts
    const steps = stepEmpty.mock.calls;
    expect(steps.length).toBeGreaterThan(50);
    expect(steps.filter((c) => !Number.isNaN(c[3])).length).toBeGreaterThan(5);
    expect(steps.filter((c) => c[2] > c[1]).length).toBeGreaterThan(5);
    const kept = keeps.mock.results.filter((r) => r.value === true).length;
    expect(kept).toBeGreaterThan(100);
    expect(keeps.mock.results.length - kept).toBeGreaterThan(10);
  });

  it("keep fine cells exact when holds that ended by the present are released (only κ may move)", () => {
    const c = randomCluster(41, 20);
    const { index, rng } = c;
    index.advanceTo(c.now);
    const ids = index.hosts().map((h) => h.id);
    let released = 0;
    for (let step = 0; step < 200; step++) {
      const start = c.now + rng.int(-500, 200);
      try {
        index.commit(
          `e${step}`,
          ids[rng.int(0, ids.length - 1)] as string,
          { start, end: start + rng.int(100, 3_000) },
          randomResources(rng),
          { priority: 0, preemptible: false },
        );
      } catch (err) {
        if (!(err instanceof CapacityExceededError)) throw err;
      }
      c.now += rng.int(0, 400);
      index.advanceTo(c.now);
      for (const h of index.hosts()) {
        for (const hold of index.holdsOn(h.id)) {
          if (hold.end > c.now) continue;
          index.release(hold.id);
          released++;
          checkFineCells(index);
        }
      }
    }
    expect(released).toBeGreaterThan(100);
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

describe("usageBelowLevel", () => {
  it("bounds the usage of every free level from below, within one level's width", () => {
    const rng = createRng(99);
    for (let i = 0; i < 20_000; i++) {
      const a = rng.pick([1, 48_000, 393_216, 8]);
      const used = rng.next() < 0.1 ? a : rng.next() * a;
      const level = freeLevel(a, used);
      const lb = usageBelowLevel(a, level);
      expect(lb).toBeLessThanOrEqual(used);
      // and tight: less than the level's edge below the usage (the top level bounds nothing)
      if (level < FINE_FREE_EDGES.length)
        expect(used - lb).toBeLessThanOrEqual(a * (FINE_FREE_EDGES[level] as number));
    }
    expect(usageBelowLevel(0, 0)).toBe(0);
    expect(usageBelowLevel(100, FINE_LEVELS - 1)).toBe(0);
  });
});
