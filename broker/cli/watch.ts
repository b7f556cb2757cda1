/**
 * `watch`: stream lease events until Ctrl-C or the broker ends the stream. On a stream error it
 * reconnects from the last revision it printed (dropping events it already printed, so it is
 * exact whether the broker replays from or after that revision), with exponential backoff and a
 * bounded number of attempts in a row; it follows the leader when a follower names one.
 */
import { type ServiceError, status } from "@grpc/grpc-js";
import { stringify as toYaml } from "yaml";
import { formatDuration } from "../../core/index.js";
import {
  type LeaseEvent,
  LeaseEventType,
  type LeaseEventTypeInput,
  msFromTimestamp,
  type WatchLeasesRequestInput,
} from "../../proto/index.js";
import { type CommandContext, defineCommand } from "./command.js";
import type { BrokerCallError } from "./errors.js";
import { EXIT } from "./exit-codes.js";
import { sleep } from "./io.js";
import { parseEnumName } from "./quantities.js";
import { eventHeader, eventLine } from "./render.js";

/** Stream failures worth reconnecting after (the broker restarted, the network blipped). */
const RETRIABLE = new Set<status>([
  status.UNAVAILABLE,
  status.INTERNAL,
  status.UNKNOWN,
  status.ABORTED,
  status.CANCELLED,
  status.DEADLINE_EXCEEDED,
  // The broker ends the stream of a watcher that fell too far behind: resume from the last revision.
  status.RESOURCE_EXHAUSTED,
]);

/** grpc-js's message when no connection could be made at all. */
const NO_CONNECTION = /no connection established/i;

/** Leader hops in a row (a follower may name a leader that has just stepped down). */
const MAX_LEADER_FOLLOWS = 3;

export const BACKOFF_BASE_MS = 250;
export const BACKOFF_MAX_MS = 5000;

/** Delay before reconnect attempt `attempt` (1-based): 250ms, 500ms, 1s, … capped at 5s. */
export function backoffMs(attempt: number): number {
  return Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** Math.max(0, attempt - 1));
}

type StreamEnd =
  | { readonly kind: "ended" }
  | { readonly kind: "interrupted" }
  | { readonly kind: "failed"; readonly error: BrokerCallError };

function streamOnce(
  ctx: CommandContext,
  request: WatchLeasesRequestInput,
  onEvent: (event: LeaseEvent) => void,
  onConnected: () => void,
): Promise<StreamEnd> {
  return new Promise((resolve) => {
    const address = ctx.broker.address;
    const signal = ctx.signal;
    let settled = false;
    const settle = (end: StreamEnd): void => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener("abort", onAbort);
      resolve(end);
    };
    const call = ctx.broker.stream<LeaseEvent>((client, metadata, options) =>
      client.watchLeases(request, metadata, options),
    );
    function onAbort(): void {
      settle({ kind: "interrupted" });
      call.cancel();
    }
    call.on("metadata", onConnected);
    call.on("data", (event: LeaseEvent) => {
      if (!settled) onEvent(event);
    });
    call.on("error", (error: ServiceError) => {
      if (signal?.aborted === true) settle({ kind: "interrupted" });
      else settle({ kind: "failed", error: ctx.broker.streamError(error, "WatchLeases", address) });
    });
    call.on("end", () => settle({ kind: "ended" }));
    if (signal?.aborted === true) onAbort();
    else signal?.addEventListener("abort", onAbort, { once: true });
  });
}

const EVENT_TYPES = Object.values(LeaseEventType);

export const watchCommand = defineCommand({
  name: "watch",
  summary: "Stream lease events until Ctrl-C (or the broker ends it).",
  details: `Lines: time, revision, type, lease, state, host. -o json prints one LeaseEvent per line (NDJSON).
--from-revision N replays history from revision N (0: live events only); to see every change after
a list, watch from the list's revision + 1. A broken stream is resumed from the last revision
printed, with backoff (250ms doubling to 5s), at most --max-retries times in a row.`,
  options: {
    fromRevision: {
      type: "integer",
      description: "replay from this revision (0: live only)",
      min: 0,
    },
    tenant: { type: "string", description: "only this tenant's leases" },
    lease: { type: "string", description: "only this lease" },
    type: {
      type: "list",
      description: "only these event types, e.g. created,state_changed,extended",
    },
    maxRetries: {
      type: "integer",
      description: "reconnect attempts in a row before giving up",
      min: 0,
      max: 100,
      default: 5,
    },
  },
  arity: [0, 0],
  async run(ctx, { options: o }) {
    const types: LeaseEventTypeInput[] = o.type.map((t) =>
      parseEnumName(t, "--type", EVENT_TYPES, "LEASE_EVENT_TYPE_"),
    );
    const output = ctx.global.output;
    let fromRevision = o.fromRevision ?? 0;
    let lastRevision = 0;
    const printedAtLast = new Set<string>();
    let failures = 0;
    let leaderFollows = 0;
    let received = false;
    let headerPrinted = false;

    const onEvent = (event: LeaseEvent): void => {
      received = true;
      const key = `${event.type}/${event.lease?.id ?? ""}/${msFromTimestamp(event.time) ?? ""}`;
      if (event.revision < lastRevision) return;
      if (event.revision === lastRevision && printedAtLast.has(key)) return;
      if (event.revision > lastRevision) {
        lastRevision = event.revision;
        printedAtLast.clear();
      }
      printedAtLast.add(key);
      failures = 0;
      leaderFollows = 0;
      if (output === "json") ctx.out.out(JSON.stringify(event));
      else if (output === "yaml") ctx.io.stdout.write(`---\n${toYaml(event)}`);
      else {
        if (!headerPrinted) ctx.out.out(eventHeader());
        headerPrinted = true;
        ctx.out.out(eventLine(event));
      }
    };

    for (;;) {
      const request: WatchLeasesRequestInput = {
        fromRevision: lastRevision > 0 ? lastRevision : fromRevision,
        tenant: o.tenant ?? "",
        leaseId: o.lease ?? "",
        types,
      };
      const end = await streamOnce(ctx, request, onEvent, () => {
        received = true;
      });
      if (end.kind !== "failed") return EXIT.ok;
      const error = end.error;
      if (leaderFollows < MAX_LEADER_FOLLOWS && ctx.broker.followLeader(error)) {
        leaderFollows++;
        continue;
      }
      // Never connected at all: the broker is not there; say so now rather than after retries.
      const neverConnected = !received && NO_CONNECTION.test(error.details);
      if (!RETRIABLE.has(error.code) || failures >= o.maxRetries || neverConnected) {
        if (error.code === status.FAILED_PRECONDITION || error.code === status.OUT_OF_RANGE) {
          ctx.out.err(
            "note: that history is no longer kept: run 'leasectl list -o json' and watch from its revision + 1",
          );
        }
        throw error;
      }
      failures++;
      const delay = backoffMs(failures);
      fromRevision = lastRevision > 0 ? lastRevision : fromRevision;
      const why = ctx.global.verbose
        ? `${status[error.code]}: ${error.details}`
        : status[error.code];
      ctx.out.err(
        `watch: lost the stream from ${error.address} (${why}); reconnecting from revision ` +
          `${fromRevision} in ${formatDuration(delay)} (attempt ${failures} of ${o.maxRetries})`,
      );
      await sleep(delay, ctx.signal);
      if (ctx.signal?.aborted === true) return EXIT.ok;
    }
  },
});
