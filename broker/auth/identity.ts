/**
 * Who a caller is and what a tenant may hold. The `TokenSource` port says which identity a bearer
 * token stands for and each tenant's policy; the tokens file implements it today (tokens-file.ts),
 * and keys in etcd can implement it later without touching the guard or the quota ledger.
 */

/** tenant: its own leases only; operator: hosts, drains, migrations, every lease read-only; admin: all. */
export type Role = "tenant" | "operator" | "admin";

export const ROLES: readonly Role[] = ["tenant", "operator", "admin"];

export interface Identity {
  /** For logs: the token's name in the tokens file (never the token). */
  readonly name: string;
  readonly tenant: string;
  readonly role: Role;
}

/** Limits on what one tenant holds; an absent field is unlimited. */
export interface TenantQuota {
  /** Held at once, at any instant of any window. */
  readonly cpuMillis?: number;
  readonly memoryMib?: number;
  readonly diskGib?: number;
  readonly gpus?: number;
  /** Live (not yet ended) leases. */
  readonly leases?: number;
  /** Longest lease (its window's duration; an extend counts from its start). */
  readonly maxDurationMs?: number;
}

/** A token bucket: `perSecond` writes on average, bursts of up to `burst`. */
export interface RateLimit {
  readonly perSecond: number;
  readonly burst: number;
}

export interface TenantPolicy {
  readonly quota: TenantQuota;
  /** Undefined: writes are not rate limited. */
  readonly rate?: RateLimit;
}

/** The port: bearer tokens → identities, tenant names → policies. */
export interface TokenSource {
  /** The identity `token` stands for, or undefined when it is unknown. */
  identify(token: string): Identity | undefined;
  /** The policy of `tenant` (the default policy when the tenant is not listed). */
  policy(tenant: string): TenantPolicy;
}
