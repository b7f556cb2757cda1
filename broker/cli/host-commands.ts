/**
 * Host commands: hosts, host, cordon, uncordon, capacity.
 */
import {
  type CapacityForecast,
  durationFromMs,
  type GetCapacityRequestInput,
  type Host,
  HostState,
  type ListHostsResponse,
  timestampFromMs,
} from "../../proto/index.js";
import { collectPages, defineCommand, emit } from "./command.js";
import { EXIT } from "./exit-codes.js";
import { shortEnum } from "./format.js";
import { PAGING_OPTIONS } from "./lease-commands.js";
import { parseEnumName, parsePositiveDuration, parseTime } from "./quantities.js";
import { capacityTable, hostDetail, hostTable } from "./render.js";

const HOST_STATES = Object.values(HostState);

export const hostsCommand = defineCommand({
  name: "hosts",
  summary: "List hosts: allocatable, allocated and free CPU and memory.",
  options: {
    state: { type: "list", description: "only these states: ready,cordoned,draining,suspect,down" },
    selector: {
      type: "list",
      repeat: "requirements",
      description: "only hosts whose labels match, e.g. 'zone=a' (repeatable)",
    },
    ...PAGING_OPTIONS,
  },
  arity: [0, 0],
  async run(ctx, { options: o }) {
    const states = o.state.map((s) => parseEnumName(s, "--state", HOST_STATES, "HOST_STATE_"));
    const { items, pages } = await collectPages(
      o.pageToken ?? "",
      o.all,
      (pageToken) =>
        ctx.broker.unary<ListHostsResponse>("ListHosts", (client, metadata, options, callback) =>
          client.listHosts(
            { states, selector: [...o.selector], pageSize: o.limit ?? 0, pageToken },
            metadata,
            options,
            callback,
          ),
        ),
      (page) => page.hosts,
    );
    const next = pages[pages.length - 1]?.nextPageToken ?? "";
    const revision = Math.min(...pages.map((p) => p.revision));
    const combined: ListHostsResponse = { hosts: items, nextPageToken: next, revision };
    emit(ctx, combined, () => (items.length === 0 ? ["No hosts found."] : hostTable(items)));
    if (next !== "" && ctx.global.output === "table") {
      ctx.out.err(`(more hosts: add --all, or --page-token ${next})`);
    }
    return EXIT.ok;
  },
});

export const hostCommand = defineCommand({
  name: "host",
  summary: "Show one host.",
  args: "<host-id>",
  options: {},
  arity: [1, 1],
  async run(ctx, { positionals }) {
    const id = positionals[0] ?? "";
    const host = await ctx.broker.unary<Host>("GetHost", (client, metadata, options, callback) =>
      client.getHost({ id }, metadata, options, callback),
    );
    emit(ctx, host, () => hostDetail(host, ctx.now()));
    return EXIT.ok;
  },
});

function hostLine(host: Host): string {
  return `Host ${host.id}: ${shortEnum(host.state, "HOST_STATE_")}${host.cordoned && host.state !== "HOST_STATE_CORDONED" ? " (cordoned)" : ""}`;
}

export const cordonCommand = defineCommand({
  name: "cordon",
  summary: "Stop placing new leases on a host (running ones stay).",
  args: "<host-id>",
  options: { reason: { type: "string", description: "why (recorded on the host)" } },
  arity: [1, 1],
  async run(ctx, { options: o, positionals }) {
    const id = positionals[0] ?? "";
    const host = await ctx.broker.unary<Host>("CordonHost", (client, metadata, options, callback) =>
      client.cordonHost({ id, reason: o.reason ?? "" }, metadata, options, callback),
    );
    emit(ctx, host, () => [hostLine(host)]);
    return EXIT.ok;
  },
});

export const uncordonCommand = defineCommand({
  name: "uncordon",
  summary: "Undo cordon (and end a drain).",
  args: "<host-id>",
  options: {},
  arity: [1, 1],
  async run(ctx, { positionals }) {
    const id = positionals[0] ?? "";
    const host = await ctx.broker.unary<Host>(
      "UncordonHost",
      (client, metadata, options, callback) =>
        client.uncordonHost({ id }, metadata, options, callback),
    );
    emit(ctx, host, () => [hostLine(host)]);
    return EXIT.ok;
  },
});

export const capacityCommand = defineCommand({
  name: "capacity",
  summary: "Forecast allocatable, allocated and free capacity per bucket.",
  details: "Counts schedulable (READY) hosts; allocated is the peak within each bucket.",
  options: {
    start: {
      type: "string",
      description: "first bucket's start: RFC 3339, now or +1h (default: now)",
    },
    bucket: { type: "string", description: "bucket width, 1s..30d (default 1h)" },
    buckets: {
      type: "integer",
      description: "number of buckets, 1..1000 (default 24)",
      min: 1,
      max: 1000,
    },
    selector: {
      type: "list",
      repeat: "requirements",
      description: "only hosts whose labels match, e.g. 'zone=a' (repeatable)",
    },
  },
  arity: [0, 0],
  async run(ctx, { options: o }) {
    const request: GetCapacityRequestInput = { selector: [...o.selector] };
    if (o.start !== undefined)
      request.start = timestampFromMs(parseTime(o.start, "--start", ctx.now()));
    if (o.bucket !== undefined) {
      request.bucketWidth = durationFromMs(parsePositiveDuration(o.bucket, "--bucket"));
    }
    if (o.buckets !== undefined) request.bucketCount = o.buckets;
    const forecast = await ctx.broker.unary<CapacityForecast>(
      "GetCapacity",
      (client, metadata, options, callback) =>
        client.getCapacity(request, metadata, options, callback),
    );
    emit(ctx, forecast, () => capacityTable(forecast));
    return EXIT.ok;
  },
});
