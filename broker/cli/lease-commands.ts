/**
 * Lease commands: submit, explain, get, list, cancel, extend, suspend, resume.
 */
import { status } from "@grpc/grpc-js";
import { ConfigError } from "../../core/index.js";
import {
  durationFromMs,
  type ExplainPlacementResponse,
  type ExtendLeaseRequestInput,
  type Lease,
  type LeaseSpecInput,
  LeaseState,
  type ListLeasesResponse,
  type SubmitLeaseResponse,
  timestampFromMs,
  WindowKind,
} from "../../proto/index.js";
import type { CliOptionSpecs } from "./args.js";
import type { UnaryInvoke } from "./client.js";
import { type CommandContext, collectPages, defineCommand, emit } from "./command.js";
import { BrokerCallError } from "./errors.js";
import { EXIT } from "./exit-codes.js";
import { localTime, relativeTime, shortEnum, tsMs } from "./format.js";
import { parseEnumName, parsePositiveDuration, parseTime } from "./quantities.js";
import { explainResult, leaseDetail, leaseTable, submitSummary } from "./render.js";
import {
  absoluteTimeFlags,
  leaseSpecFromFlags,
  newRequestId,
  REQUEST_ID_OPTION,
  SPEC_OPTIONS,
} from "./spec-flags.js";

const SPEC_DETAILS = `Window: --duration alone starts now; --start T --duration D reserves [T, T+D);
--earliest A --latest B --duration D starts any time in [A, B] (flexible, queued).
With -f, the file holds a LeaseSpec (YAML or JSON, proto JSON mapping: camelCase or snake_case
keys, durations "3600s" or "1h", times RFC 3339); flags override the file's fields (maps such as
labels are merged by key; lists such as constraints are replaced).

Example:
  leasectl submit --tenant acme --name web-1 --cpu 2 --memory 4Gi --duration 2h \\
    --label app=web --constraint 'zone in (a,b)' --live-migratable --max-downtime 300ms`;

async function explain(ctx: CommandContext, spec: LeaseSpecInput): Promise<number> {
  const response = await ctx.broker.unary<ExplainPlacementResponse>(
    "ExplainPlacement",
    (client, metadata, options, callback) =>
      client.explainPlacement({ spec }, metadata, options, callback),
  );
  emit(ctx, response, () => explainResult(response));
  return response.fits ? EXIT.ok : EXIT.noFit;
}

export const submitCommand = defineCommand({
  name: "submit",
  summary: "Submit a lease (flags for every spec field, or -f file).",
  details: `${SPEC_DETAILS}

Retries are safe: the request id (generated unless --request-id is given) is printed; submitting
again with the same id and spec returns the same lease. --dry-run only explains the placement.`,
  options: {
    ...SPEC_OPTIONS,
    ...REQUEST_ID_OPTION,
    dryRun: { type: "boolean", description: "only explain where it would go (ExplainPlacement)" },
  },
  arity: [0, 0],
  async run(ctx, { options: o, given }) {
    const now = ctx.now();
    const { spec, fileRequestId } = leaseSpecFromFlags(o, given, now);
    if (o.dryRun) return explain(ctx, spec);
    const requestId = o.requestId ?? fileRequestId ?? newRequestId();
    let response: SubmitLeaseResponse;
    try {
      response = await ctx.broker.unary<SubmitLeaseResponse>(
        "SubmitLease",
        (client, metadata, options, callback) =>
          client.submitLease({ spec, requestId }, metadata, options, callback),
      );
    } catch (error) {
      // The request may have reached the broker (not when no connection was ever made).
      if (
        error instanceof BrokerCallError &&
        (error.code === status.DEADLINE_EXCEEDED ||
          (error.code === status.UNAVAILABLE && !/no connection established/i.test(error.details)))
      ) {
        const retry = ["--request-id", requestId, ...absoluteTimeFlags(o, now)].join(" ");
        ctx.out.err(
          `note: the broker may have admitted the lease; retry with ${retry} to get the same lease, not a second one`,
        );
      }
      if (error instanceof BrokerCallError && error.code === status.ALREADY_EXISTS) {
        const relative = absoluteTimeFlags(o, now);
        if (relative.length > 0) {
          ctx.out.err(
            "  (a relative time resolves anew on every run: to retry, give the first attempt's absolute times, or use a new --request-id)",
          );
        }
      }
      throw error;
    }
    emit(ctx, response, () => submitSummary(response, requestId, now));
    return EXIT.ok;
  },
});

export const explainCommand = defineCommand({
  name: "explain",
  summary: "Where would a lease go now, and why? Changes nothing.",
  details: `Prints the host and window it would get, or why it fits nowhere: hosts considered, hosts
removed by each filter, the binding resource and when it runs out. Exit 0 if it fits, 4 if not.

${SPEC_DETAILS}`,
  options: SPEC_OPTIONS,
  arity: [0, 0],
  async run(ctx, { options: o, given }) {
    const { spec } = leaseSpecFromFlags(o, given, ctx.now());
    return explain(ctx, spec);
  },
});

export const getCommand = defineCommand({
  name: "get",
  summary: "Show one lease.",
  args: "<lease-id>",
  options: {},
  arity: [1, 1],
  async run(ctx, { positionals }) {
    const id = positionals[0] ?? "";
    const lease = await ctx.broker.unary<Lease>("GetLease", (client, metadata, options, callback) =>
      client.getLease({ id }, metadata, options, callback),
    );
    emit(ctx, lease, () => leaseDetail(lease, ctx.now()));
    return EXIT.ok;
  },
});

const LEASE_STATES = Object.values(LeaseState);
const WINDOW_KINDS = Object.values(WindowKind);

export const PAGING_OPTIONS = {
  limit: {
    type: "integer",
    description: "results per page (the broker's default: 100)",
    min: 1,
    max: 1000,
  },
  all: { type: "boolean", description: "follow page tokens to the end" },
  pageToken: { type: "string", description: "continue from a previous page's next page token" },
} as const satisfies CliOptionSpecs;

export const listCommand = defineCommand({
  name: "list",
  summary: "List leases, one page (or --all pages).",
  details:
    "States: pending, reserved, starting, active, migrating, suspended, ending, ended, cancelled,\nrejected, failed, preempted. With -o json and --all: one ListLeasesResponse holding every lease,\nwith the revision of the first page (watch from revision + 1 to see every later change).",
  options: {
    tenant: { type: "string", description: "only this tenant's leases" },
    state: { type: "list", description: "only these states, e.g. active,reserved" },
    host: { type: "string", description: "only leases on (or planned on) this host" },
    kind: { type: "list", description: "only these window kinds: immediate,reserved,flexible" },
    selector: {
      type: "list",
      repeat: "requirements",
      description: "only leases whose labels match, e.g. 'app=web' (repeatable)",
    },
    ...PAGING_OPTIONS,
  },
  arity: [0, 0],
  async run(ctx, { options: o }) {
    const states = o.state.map((s) => parseEnumName(s, "--state", LEASE_STATES, "LEASE_STATE_"));
    const windowKinds = o.kind.map((k) => parseEnumName(k, "--kind", WINDOW_KINDS, "WINDOW_KIND_"));
    const { items, pages } = await collectPages(
      o.pageToken ?? "",
      o.all,
      (pageToken) =>
        ctx.broker.unary<ListLeasesResponse>("ListLeases", (client, metadata, options, callback) =>
          client.listLeases(
            {
              tenant: o.tenant ?? "",
              states,
              hostId: o.host ?? "",
              pageSize: o.limit ?? 0,
              pageToken,
              windowKinds,
              selector: [...o.selector],
            },
            metadata,
            options,
            callback,
          ),
        ),
      (page) => page.leases,
    );
    const last = pages[pages.length - 1];
    const next = last?.nextPageToken ?? "";
    const revision = Math.min(...pages.map((p) => p.revision));
    const combined: ListLeasesResponse = { leases: items, nextPageToken: next, revision };
    emit(ctx, combined, () =>
      items.length === 0 ? ["No leases found."] : leaseTable(items, ctx.now()),
    );
    if (next !== "" && ctx.global.output === "table") {
      ctx.out.err(`(more leases: add --all, or --page-token ${next})`);
    }
    return EXIT.ok;
  },
});

const EXPECTED_REVISION = {
  expectedRevision: {
    type: "integer",
    description: "fail (exit 6) unless the lease's revision is this",
    min: 1,
  },
} as const satisfies CliOptionSpecs;

function leaseLine(lease: Lease, now: number): string {
  const end = tsMs(lease.end);
  return `Lease ${lease.id}: ${shortEnum(lease.state, "LEASE_STATE_")}${lease.hostId === "" ? "" : ` on ${lease.hostId}`}${end === undefined ? "" : `, ends ${localTime(end)} (${relativeTime(end, now)})`}`;
}

/** Runs an RPC that answers with the changed lease, and prints the lease's line. */
async function changeLease(
  ctx: CommandContext,
  method: string,
  invoke: UnaryInvoke<Lease>,
): Promise<number> {
  const lease = await ctx.broker.unary<Lease>(method, invoke);
  emit(ctx, lease, () => [leaseLine(lease, ctx.now())]);
  return EXIT.ok;
}

export const cancelCommand = defineCommand({
  name: "cancel",
  summary: "Cancel a lease (a running one is stopped gracefully).",
  args: "<lease-id>",
  options: {
    reason: { type: "string", description: "why (recorded in the lease's status message)" },
    ...EXPECTED_REVISION,
  },
  arity: [1, 1],
  async run(ctx, { options: o, positionals }) {
    const id = positionals[0] ?? "";
    return changeLease(ctx, "CancelLease", (client, metadata, options, callback) =>
      client.cancelLease(
        { id, reason: o.reason ?? "", expectedRevision: o.expectedRevision ?? 0 },
        metadata,
        options,
        callback,
      ),
    );
  },
});

export const extendCommand = defineCommand({
  name: "extend",
  summary: "Move a lease's end later (if its host's timeline allows it).",
  args: "<lease-id>",
  details: "Give exactly one of --to (the new end) or --by (how much later).",
  options: {
    to: { type: "string", description: "the new end: RFC 3339 or +2h (relative to now)" },
    by: { type: "string", description: "how much later the end moves, e.g. 30m" },
    ...EXPECTED_REVISION,
  },
  arity: [1, 1],
  async run(ctx, { options: o, positionals }) {
    const id = positionals[0] ?? "";
    if ((o.to === undefined) === (o.by === undefined)) {
      throw new ConfigError("give exactly one of --to <time> or --by <duration>");
    }
    const request: ExtendLeaseRequestInput = { id, expectedRevision: o.expectedRevision ?? 0 };
    if (o.to !== undefined) request.newEnd = timestampFromMs(parseTime(o.to, "--to", ctx.now()));
    if (o.by !== undefined) request.extra = durationFromMs(parsePositiveDuration(o.by, "--by"));
    return changeLease(ctx, "ExtendLease", (client, metadata, options, callback) =>
      client.extendLease(request, metadata, options, callback),
    );
  },
});

export const suspendCommand = defineCommand({
  name: "suspend",
  summary: "Suspend an ACTIVE lease's workload to disk.",
  args: "<lease-id>",
  options: { reason: { type: "string", description: "why" }, ...EXPECTED_REVISION },
  arity: [1, 1],
  async run(ctx, { options: o, positionals }) {
    const id = positionals[0] ?? "";
    return changeLease(ctx, "SuspendLease", (client, metadata, options, callback) =>
      client.suspendLease(
        { id, reason: o.reason ?? "", expectedRevision: o.expectedRevision ?? 0 },
        metadata,
        options,
        callback,
      ),
    );
  },
});

export const resumeCommand = defineCommand({
  name: "resume",
  summary: "Resume a SUSPENDED lease.",
  args: "<lease-id>",
  options: EXPECTED_REVISION,
  arity: [1, 1],
  async run(ctx, { options: o, positionals }) {
    const id = positionals[0] ?? "";
    return changeLease(ctx, "ResumeLease", (client, metadata, options, callback) =>
      client.resumeLease(
        { id, expectedRevision: o.expectedRevision ?? 0 },
        metadata,
        options,
        callback,
      ),
    );
  },
});
