/**
 * A small seeded pseudo-random source (mulberry32). Backoff jitter and the sim driver draw from it
 * instead of Math.random, so that a run under a VirtualClock with a given seed is reproducible.
 * Not for anything security-related (boot ids, inboxes and lease ids use node:crypto).
 */

/** Returns numbers in [0, 1); the same seed gives the same sequence. */
export type RandomSource = () => number;

/** A generator seeded with the 32-bit integer part of `seed`. */
export function seededRandom(seed: number): RandomSource {
  let state = Math.trunc(seed) >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/**
 * A seed derived from a base seed and a name (FNV-1a over both), so that each named thing (a
 * workload) gets its own stream: what it draws does not depend on what others drew before it.
 */
export function deriveSeed(seed: number, name: string): number {
  let hash = (0x811c9dc5 ^ (Math.trunc(seed) >>> 0)) >>> 0;
  for (let i = 0; i < name.length; i++) {
    hash ^= name.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash;
}
