/**
 * Authentication and authorization of every LeaseBroker call, in one place: a wrapper around the
 * service's handlers (the handlers themselves know nothing of callers). A call carries
 * `authorization: Bearer <token>`; the TokenSource says who that is. Then the method's rule:
 *
 * - tenant role: only leases of its own tenant. A lease id of another tenant is refused exactly
 *   like an id that does not exist (PERMISSION_DENIED, same message), so ids cannot be probed.
 *   List and Watch are narrowed to its tenant; a spec with no tenant gets the caller's.
 * - operator: hosts, drains, migrations, rebalancing, and every lease read-only.
 * - admin: everything.
 *
 * A method missing from the table (one added later) is admin-only until it is listed: closed by
 * default. Writes then spend one token of the caller's tenant's rate bucket.
 */
import type {
  handleServerStreamingCall,
  handleUnaryCall,
  Metadata,
  ServerUnaryCall,
  ServerWritableStream,
  ServiceDefinition,
  ServiceError,
  sendUnaryData,
} from "@grpc/grpc-js";
import {
  type Clock,
  isLeaseBrokerError,
  type Logger,
  NotFoundError,
  PermissionDeniedError,
  UnauthenticatedError,
} from "../../core/index.js";
import { MAX_SUBMIT_BATCH } from "../api/limits.js";
import { toItemError, toServiceError } from "../api/status.js";
import type { Identity, TokenSource } from "./identity.js";
import { RateLimiter } from "./rate-limiter.js";

/** What a tenant-role caller may do with a method. */
type TenantRule =
  /** `spec.tenant` must be its own (empty: filled in). */
  | "spec"
  /** `id` must be a lease of its own. */
  | "lease"
  /** `tenant` must be its own (empty: narrowed to it). */
  | "query"
  /** Any authenticated caller. */
  | "open"
  | "deny";

interface MethodRule {
  readonly tenant: TenantRule;
  readonly operator: boolean;
  readonly write: boolean;
}

const rule = (tenant: TenantRule, operator: boolean, write: boolean): MethodRule => ({
  tenant,
  operator,
  write,
});

export const METHOD_RULES: Readonly<Record<string, MethodRule>> = {
  SubmitLease: rule("spec", false, true),
  // Each item is then checked as a SubmitLease of its own (BATCH_METHODS).
  SubmitLeases: rule("open", false, false),
  GetLease: rule("lease", true, false),
  ListLeases: rule("query", true, false),
  CancelLease: rule("lease", false, true),
  ExtendLease: rule("lease", false, true),
  SuspendLease: rule("lease", false, true),
  ResumeLease: rule("lease", false, true),
  WatchLeases: rule("query", true, false),
  ExplainPlacement: rule("spec", true, false),
  // Host inventory and capacity are readable by every caller: tenants need the labels and the
  // free capacity to write constraints; they reveal no other tenant's leases.
  ListHosts: rule("open", true, false),
  GetHost: rule("open", true, false),
  GetCapacity: rule("open", true, false),
  CordonHost: rule("deny", true, true),
  UncordonHost: rule("deny", true, true),
  DrainHost: rule("deny", true, true),
  MigrateLease: rule("deny", true, true),
  GetMigration: rule("deny", true, false),
  ListMigrations: rule("deny", true, false),
  AbortMigration: rule("deny", true, true),
  GetAutoscaleStatus: rule("deny", true, false),
  Rebalance: rule("deny", true, true),
};

/**
 * Methods whose request is a list of another method's requests: each item is authorized (and
 * rate-limited) as that method on its own; a refused item is answered in its place in the
 * results, and the others go on.
 */
interface BatchMethod {
  /** The method each item is authorized as. */
  readonly item: string;
  /** The request's list of items, and the response's list of results. */
  readonly requests: string;
  readonly results: string;
  /** More items: the handler refuses the whole call, so none is authorized (nor rate-counted). */
  readonly maxItems: number;
}

const BATCH_METHODS: Readonly<Record<string, BatchMethod>> = {
  SubmitLeases: {
    item: "SubmitLease",
    requests: "requests",
    results: "results",
    maxItems: MAX_SUBMIT_BATCH,
  },
};

const ADMIN_ONLY: MethodRule = rule("deny", false, true);
const BEARER = /^Bearer\s+(\S+)\s*$/i;

export interface CallGuardDeps {
  readonly tokens: TokenSource;
  /** The tenant of lease `id`; throws NotFoundError when there is none. */
  readonly leases: {
    get(id: string): { readonly value: { readonly spec: { readonly tenant: string } } };
  };
  readonly clock: Clock;
  readonly logger: Logger;
}

type Fields = Record<string, unknown>;

function isFields(value: unknown): value is Fields {
  return typeof value === "object" && value !== null;
}

function stringField(request: unknown, key: string): string {
  if (!isFields(request)) return "";
  const value = request[key];
  return typeof value === "string" ? value : "";
}

export class CallGuard {
  readonly #deps: CallGuardDeps;
  readonly #rates: RateLimiter;

  constructor(deps: CallGuardDeps) {
    this.#deps = deps;
    this.#rates = new RateLimiter(deps.clock);
  }

  /** Who sent `metadata`; UNAUTHENTICATED without a known bearer token. */
  authenticate(metadata: Metadata): Identity {
    const values = metadata.get("authorization");
    if (values.length === 0) {
      throw new UnauthenticatedError(
        "no credentials: this broker requires 'authorization: Bearer <token>' (leasectl --token)",
      );
    }
    const match = BEARER.exec(String(values[0]));
    const identity = match?.[1] === undefined ? undefined : this.#deps.tokens.identify(match[1]);
    if (identity === undefined) throw new UnauthenticatedError("the bearer token is not valid");
    return identity;
  }

  #ownLease(identity: Identity, id: string): void {
    if (id === "") return; // the handler says the id is required; nothing is revealed
    let tenant: string | undefined;
    try {
      tenant = this.#deps.leases.get(id).value.spec.tenant;
    } catch (error) {
      if (!(error instanceof NotFoundError)) throw error;
    }
    if (tenant !== identity.tenant) {
      // The same answer whether the lease is absent or another tenant's.
      throw new PermissionDeniedError(
        `lease ${id} does not exist or is not of tenant ${identity.tenant}`,
      );
    }
  }

  /**
   * Checks one call; may narrow the request (the caller's tenant filled in). Returns the caller.
   * Throws UnauthenticatedError, PermissionDeniedError or a rate-limit ResourceExhaustedError.
   */
  check(method: string, metadata: Metadata, request: unknown): Identity {
    const identity = this.authenticate(metadata);
    this.#authorize(identity, method, request);
    return identity;
  }

  #authorize(identity: Identity, method: string, request: unknown): void {
    const r = METHOD_RULES[method] ?? ADMIN_ONLY;
    const denied = (): never => {
      throw new PermissionDeniedError(`${method} is not allowed for role ${identity.role}`);
    };
    if (identity.role === "operator" && !r.operator) denied();
    if (identity.role === "tenant") {
      switch (r.tenant) {
        case "deny":
          denied();
          break;
        case "open":
          break;
        case "lease":
          this.#ownLease(identity, stringField(request, "id"));
          break;
        case "spec":
        case "query": {
          const target = r.tenant === "spec" && isFields(request) ? request.spec : request;
          if (!isFields(target)) break; // no spec: the handler says it is required
          const asked = stringField(target, "tenant");
          if (asked === "") target.tenant = identity.tenant;
          else if (asked !== identity.tenant) {
            throw new PermissionDeniedError(
              `tenant ${identity.tenant} may only ${r.tenant === "spec" ? "submit" : "see"} leases of its own tenant, not ${JSON.stringify(asked)}`,
            );
          }
          break;
        }
      }
    }
    if (r.write) {
      const rate = this.#deps.tokens.policy(identity.tenant).rate;
      if (rate !== undefined) this.#rates.take(identity.tenant, rate);
      this.#deps.logger.info(
        { method, caller: identity.name, tenant: identity.tenant, role: identity.role },
        "authorized write",
      );
    }
  }

  /**
   * A response as a tenant may see it: a preemption plan (ExplainPlacement, a dry-run submit)
   * names only the tenant's own victims, so other tenants' lease ids do not leak through it.
   */
  redact<V>(caller: Identity, value: V): V {
    const explanation = isFields(value) ? value.explanation : undefined;
    const preemption = isFields(explanation) ? explanation.preemption : undefined;
    if (!isFields(preemption) || !Array.isArray(preemption.victimLeaseIds)) return value;
    preemption.victimLeaseIds = preemption.victimLeaseIds.filter((id: unknown) => {
      if (typeof id !== "string") return false;
      try {
        return this.#deps.leases.get(id).value.spec.tenant === caller.tenant;
      } catch {
        return false;
      }
    });
    return value;
  }

  #refused(method: string, metadata: Metadata, error: unknown): Partial<ServiceError> {
    if (
      isLeaseBrokerError(error) &&
      (error.kind === "unauthenticated" || error.kind === "permission-denied")
    ) {
      this.#deps.logger.warn(
        { method, why: error.message, peer: metadata.get("user-agent")[0] },
        "call refused",
      );
    }
    return toServiceError(error);
  }

  /** `check` for a unary call: the caller, or undefined once the refusal is answered. */
  #checkUnary(
    name: string,
    call: ServerUnaryCall<unknown, unknown>,
    callback: sendUnaryData<unknown>,
  ): Identity | undefined {
    try {
      return this.check(name, call.metadata, call.request);
    } catch (error) {
      callback(this.#refused(name, call.metadata, error) as ServiceError);
      return undefined;
    }
  }

  /**
   * A batch method: the call is authenticated (and its role checked) once, then every item is
   * authorized as its own method. The handler sees the allowed items only; each refused one gets
   * its error in its place among the results.
   */
  #wrapBatch(
    name: string,
    batch: BatchMethod,
    inner: handleUnaryCall<unknown, unknown>,
  ): handleUnaryCall<unknown, unknown> {
    return (call, callback) => {
      const caller = this.#checkUnary(name, call, callback);
      if (caller === undefined) return;
      const request = call.request;
      const items = isFields(request) ? request[batch.requests] : undefined;
      if (!isFields(request) || !Array.isArray(items) || items.length > batch.maxItems) {
        inner(call, callback);
        return;
      }
      const refused = new Map<number, unknown>();
      const allowed: unknown[] = [];
      items.forEach((item: unknown, i) => {
        try {
          this.#authorize(caller, batch.item, item);
          allowed.push(item);
        } catch (error) {
          this.#refused(batch.item, call.metadata, error);
          refused.set(i, { error: toItemError(error) });
        }
      });
      request[batch.requests] = allowed;
      inner(call, (error, value, ...rest) => {
        const answered = isFields(value) ? value[batch.results] : undefined;
        if (error !== null || !isFields(value) || !Array.isArray(answered)) {
          callback(error, value, ...rest);
          return;
        }
        const results: unknown[] = [];
        let next = 0;
        for (let i = 0; i < items.length; i++) {
          const result = refused.has(i) ? refused.get(i) : answered[next++];
          results.push(caller.role === "tenant" ? this.#redactItem(caller, result) : result);
        }
        value[batch.results] = results;
        callback(error, value, ...rest);
      });
    };
  }

  /** A batch result as a tenant may see it: its answer redacted like a single call's. */
  #redactItem(caller: Identity, result: unknown): unknown {
    if (isFields(result) && isFields(result.response)) this.redact(caller, result.response);
    return result;
  }

  /** `handlers` with every method of `service` behind `check`. */
  wrap<T extends object>(service: ServiceDefinition, handlers: T): T {
    const out: Record<string, unknown> = {};
    for (const [name, handler] of Object.entries(handlers)) {
      const method = service[name];
      if (method === undefined || typeof handler !== "function") {
        out[name] = handler;
      } else if (method.responseStream) {
        const inner = handler as handleServerStreamingCall<unknown, unknown>;
        out[name] = (call: ServerWritableStream<unknown, unknown>) => {
          try {
            this.check(name, call.metadata, call.request);
          } catch (error) {
            call.emit("error", this.#refused(name, call.metadata, error));
            return;
          }
          inner(call);
        };
      } else if (BATCH_METHODS[name] !== undefined) {
        out[name] = this.#wrapBatch(
          name,
          BATCH_METHODS[name],
          handler as handleUnaryCall<unknown, unknown>,
        );
      } else {
        const inner = handler as handleUnaryCall<unknown, unknown>;
        out[name] = (call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<unknown>) => {
          const caller = this.#checkUnary(name, call, callback);
          if (caller === undefined) return;
          if (caller.role !== "tenant") {
            inner(call, callback);
            return;
          }
          inner(call, (error, value, ...rest) =>
            callback(error, this.redact(caller, value), ...rest),
          );
        };
      }
    }
    return out as T;
  }
}
