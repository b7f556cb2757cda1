/**
 * The tokens file: bearer tokens (each with a name, a tenant and a role) and per-tenant quotas and
 * write rates, in YAML (or JSON). Tokens may be given as their SHA-256 (`sha256:`), so that the
 * file need not hold secrets, or in clear (`token:`). Every mistake is a ConfigError naming the
 * file and the field (the broker exits with code 2). See docs/security.md for an example.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { parse } from "yaml";
import { ConfigError, errorMessage, parseDuration } from "../../core/index.js";
import { parseCount, parseCpuMillis, parseDiskGib, parseMemoryMib } from "../cli/quantities.js";
import {
  type Identity,
  type RateLimit,
  ROLES,
  type Role,
  type TenantPolicy,
  type TenantQuota,
  type TokenSource,
} from "./identity.js";

/** The tenant rule of the contract (lease.proto): 1..63 of [a-z0-9-], alphanumeric at both ends. */
const TENANT = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const SHA256_HEX = /^[0-9a-f]{64}$/;
/** A clear-text token shorter than this is guessable. */
const MIN_TOKEN_LENGTH = 16;

export function sha256Hex(text: string): string {
  return createHash("sha256").update(text, "utf8").digest("hex");
}

type Fields = Readonly<Record<string, unknown>>;

function isFields(value: unknown): value is Fields {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

class FileReader {
  constructor(readonly file: string) {}

  fail(field: string, why: string): never {
    throw new ConfigError(`${this.file}: ${field}: ${why}`);
  }

  /** A mapping whose keys are `allowed` ("any": free keys, e.g. tenant names). */
  fields(value: unknown, field: string, allowed: readonly string[] | "any"): Fields {
    if (value === undefined || value === null) return {};
    if (!isFields(value)) this.fail(field, "expected a mapping");
    for (const key of Object.keys(value)) {
      if (allowed !== "any" && !allowed.includes(key))
        this.fail(`${field}.${key}`, `unknown key (known: ${allowed.join(", ")})`);
    }
    return value;
  }

  text(value: unknown, field: string): string {
    if (typeof value === "string") return value;
    if (typeof value === "number") return String(value);
    return this.fail(field, "expected a string or number");
  }

  /** Wraps the quantity parsers, whose errors already name `field`. */
  quantity(
    value: unknown,
    field: string,
    parse: (text: string, what: string) => number,
  ): number | undefined {
    if (value === undefined) return undefined;
    try {
      return parse(this.text(value, field), `${this.file}: ${field}`);
    } catch (error) {
      if (error instanceof ConfigError) throw error;
      return this.fail(field, errorMessage(error));
    }
  }

  quota(value: unknown, field: string): TenantQuota {
    const f = this.fields(value, field, [
      "cpu",
      "memory",
      "disk",
      "gpus",
      "leases",
      "max_duration",
    ]);
    const maxDuration =
      f.max_duration === undefined
        ? undefined
        : parseDuration(this.text(f.max_duration, `${field}.max_duration`));
    if (f.max_duration !== undefined && (maxDuration === undefined || maxDuration <= 0)) {
      this.fail(`${field}.max_duration`, "expected a duration like 90s, 2h or 7d");
    }
    const entries: [keyof TenantQuota, number | undefined][] = [
      ["cpuMillis", this.quantity(f.cpu, `${field}.cpu`, parseCpuMillis)],
      ["memoryMib", this.quantity(f.memory, `${field}.memory`, parseMemoryMib)],
      ["diskGib", this.quantity(f.disk, `${field}.disk`, parseDiskGib)],
      ["gpus", this.quantity(f.gpus, `${field}.gpus`, parseCount)],
      ["leases", this.quantity(f.leases, `${field}.leases`, parseCount)],
      ["maxDurationMs", maxDuration],
    ];
    return Object.fromEntries(entries.filter(([, v]) => v !== undefined));
  }

  rate(value: unknown, field: string): RateLimit | undefined {
    if (value === undefined) return undefined;
    const f = this.fields(value, field, ["writes_per_second", "burst"]);
    const perSecond = Number(f.writes_per_second);
    if (!(Number.isFinite(perSecond) && perSecond > 0))
      this.fail(`${field}.writes_per_second`, "expected a number > 0");
    const burst = f.burst === undefined ? Math.max(1, Math.ceil(perSecond)) : Number(f.burst);
    if (!(Number.isInteger(burst) && burst >= 1))
      this.fail(`${field}.burst`, "expected a whole number >= 1");
    return { perSecond, burst };
  }

  policy(value: unknown, field: string): TenantPolicy {
    const f = this.fields(value, field, ["quota", "rate"]);
    const rate = this.rate(f.rate, `${field}.rate`);
    return {
      quota: this.quota(f.quota, `${field}.quota`),
      ...(rate === undefined ? {} : { rate }),
    };
  }
}

/** Tokens and tenant policies from a parsed tokens file. */
export class FileTokenSource implements TokenSource {
  readonly #bySha = new Map<string, Identity>();
  readonly #tenants = new Map<string, TenantPolicy>();
  readonly #defaults: TenantPolicy;

  constructor(document: unknown, file = "tokens file") {
    const r: FileReader = new FileReader(file);
    const top = r.fields(document, "(top level)", ["defaults", "tenants", "tokens"]);
    this.#defaults = r.policy(top.defaults, "defaults");
    for (const [tenant, policy] of Object.entries(r.fields(top.tenants, "tenants", "any"))) {
      if (!TENANT.test(tenant))
        r.fail(
          `tenants.${tenant}`,
          "a tenant is 1..63 characters of [a-z0-9-], alphanumeric at both ends",
        );
      this.#tenants.set(tenant, r.policy(policy, `tenants.${tenant}`));
    }
    const list: unknown = top.tokens;
    if (!Array.isArray(list) || list.length === 0) r.fail("tokens", "expected a non-empty list");
    list.forEach((entry: unknown, i: number) => {
      const field = `tokens[${i}]`;
      const f = r.fields(entry, field, ["name", "tenant", "role", "token", "sha256"]);
      const name = r.text(f.name ?? `token-${i}`, `${field}.name`);
      const tenant = r.text(f.tenant, `${field}.tenant`);
      if (!TENANT.test(tenant))
        r.fail(
          `${field}.tenant`,
          "a tenant is 1..63 characters of [a-z0-9-], alphanumeric at both ends",
        );
      const role = r.text(f.role ?? "tenant", `${field}.role`);
      if (!(ROLES as readonly string[]).includes(role))
        r.fail(`${field}.role`, `one of ${ROLES.join(", ")}`);
      let sha = "";
      if (f.sha256 !== undefined && f.token === undefined) {
        sha = r.text(f.sha256, `${field}.sha256`).toLowerCase();
        if (!SHA256_HEX.test(sha))
          r.fail(`${field}.sha256`, "expected 64 hex digits (sha256sum of the token)");
      } else if (f.token !== undefined && f.sha256 === undefined) {
        const token = r.text(f.token, `${field}.token`);
        if (token.length < MIN_TOKEN_LENGTH)
          r.fail(`${field}.token`, `at least ${MIN_TOKEN_LENGTH} characters`);
        sha = sha256Hex(token);
      } else {
        r.fail(field, "give exactly one of token or sha256");
      }
      if (this.#bySha.has(sha)) r.fail(field, "the same token appears twice");
      this.#bySha.set(sha, { name, tenant, role: role as Role });
    });
  }

  get tokenCount(): number {
    return this.#bySha.size;
  }

  identify(token: string): Identity | undefined {
    // Looked up by digest: the comparison never runs over the secret itself.
    return this.#bySha.get(sha256Hex(token));
  }

  policy(tenant: string): TenantPolicy {
    return this.#tenants.get(tenant) ?? this.#defaults;
  }
}

/** Reads and parses `path`; any problem is a ConfigError naming it. */
export function loadTokensFile(path: string): FileTokenSource {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    throw new ConfigError(`--tokens-file ${path}: cannot read it: ${errorMessage(error)}`, {
      cause: error,
    });
  }
  let document: unknown;
  try {
    document = parse(text);
  } catch (error) {
    throw new ConfigError(`${path}: not valid YAML: ${errorMessage(error)}`, { cause: error });
  }
  return new FileTokenSource(document, path);
}
