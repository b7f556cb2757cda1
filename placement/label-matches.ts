/**
 * Which hosts a label selector matches, by host number, learnt as searches test them. A cell walk
 * settles most hosts from arrays kept by number (see `Search.visit`); a host's labels are on its
 * record, a cache miss at 10,000 hosts. So per distinct selector the index keeps one byte per host
 * number: unknown, matches, or not. A host is tested on its record the first time a search with
 * that selector meets it, and read from the byte after that. A host whose labels change, or whose
 * number a new host takes, is forgotten in every selector's bytes.
 */

import type { Requirement } from "./selector.js";

/** A host number's state in a selector's bytes. */
export const MATCH_UNKNOWN = 0;
export const MATCH_YES = 1;
export const MATCH_NO = 2;

/** Selectors kept (least recently used dropped): a cluster's leases share a few selectors. */
export const LABEL_SELECTORS_KEPT = 256;

export class LabelMatches {
  private readonly bySelector = new Map<string, Uint8Array>();

  /** Selectors kept now. */
  get size(): number {
    return this.bySelector.size;
  }

  /**
   * The bytes of the selector `constraints` (MATCH_UNKNOWN, MATCH_YES or MATCH_NO per host
   * number), made on its first use, at least `hosts` long.
   */
  bytesFor(constraints: readonly Requirement[], hosts: number): Uint8Array {
    // (JSON: two different selectors never share a key, whatever their values hold)
    const key = JSON.stringify(constraints);
    let bytes = this.bySelector.get(key);
    if (bytes !== undefined) {
      // most recently used last
      this.bySelector.delete(key);
    } else {
      if (this.bySelector.size >= LABEL_SELECTORS_KEPT) {
        const oldest = this.bySelector.keys().next().value as string;
        this.bySelector.delete(oldest);
      }
      bytes = new Uint8Array(0);
    }
    if (bytes.length < hosts) {
      const grown = new Uint8Array(Math.max(64, hosts, bytes.length * 2));
      grown.set(bytes);
      bytes = grown;
    }
    this.bySelector.set(key, bytes);
    return bytes;
  }

  /** Forget host number `num` in every selector (its labels changed, or a new host took it). */
  forget(num: number): void {
    for (const bytes of this.bySelector.values()) {
      if (num < bytes.length) bytes[num] = MATCH_UNKNOWN;
    }
  }
}
