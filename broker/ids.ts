/**
 * Lease ids: a prefix, the creation time and a counter, then random characters. They sort by
 * creation time (list order is submit order) and stay unique across broker restarts.
 */
import { randomFillSync } from "node:crypto";
import type { Clock } from "../core/index.js";

const ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz";

function base32(n: number, width: number): string {
  let out = "";
  let rest = Math.floor(n);
  for (let i = 0; i < width; i++) {
    out = (ALPHABET[rest % 32] as string) + out;
    rest = Math.floor(rest / 32);
  }
  return out;
}

/** Crypto-random numbers in [0, 1), drawn from the OS 4 KiB at a time rather than per call. */
function pooledRandom(): () => number {
  const pool = new Uint32Array(1024);
  let next = pool.length;
  return () => {
    if (next === pool.length) {
      randomFillSync(pool);
      next = 0;
    }
    return (pool[next++] as number) / 0x1_0000_0000;
  };
}

export interface IdGeneratorOptions {
  /** Source of random characters; tests and the simulator pass a seeded one. */
  readonly random?: () => number;
}

export function createIdGenerator(
  prefix: string,
  clock: Clock,
  options: IdGeneratorOptions = {},
): () => string {
  let lastTime = -1;
  let counter = 0;
  const random = options.random ?? pooledRandom();
  return () => {
    const now = Math.max(0, clock.now());
    if (now === lastTime) counter++;
    else {
      lastTime = now;
      counter = 0;
    }
    let suffix = "";
    for (let i = 0; i < 4; i++) suffix += ALPHABET[Math.floor(random() * 32)] as string;
    // 10 base-32 digits of milliseconds last until the year 36812.
    return `${prefix}${base32(now, 10)}${base32(counter, 3)}${suffix}`;
  };
}
