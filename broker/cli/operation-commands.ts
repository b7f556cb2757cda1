/**
 * Migration and cluster operations: drain, migrate, migrations, migration, abort-migration,
 * rebalance, autoscale. A broker without one of them answers UNIMPLEMENTED; leasectl then says
 * "the broker does not support … yet" (exit 8).
 */
import {
  type AutoscaleStatus,
  type DrainHostRequestInput,
  type DrainHostResponse,
  type ListMigrationsResponse,
  type Migration,
  MigrationState,
  type RebalanceResponse,
  timestampFromMs,
} from "../../proto/index.js";
import { collectPages, defineCommand, emit } from "./command.js";
import { EXIT } from "./exit-codes.js";
import { PAGING_OPTIONS } from "./lease-commands.js";
import { parseEnumName, parseTime } from "./quantities.js";
import {
  autoscaleResult,
  drainResult,
  migrationDetail,
  migrationTable,
  rebalanceResult,
} from "./render.js";

export const drainCommand = defineCommand({
  name: "drain",
  summary: "Cordon a host and move its leases away by a deadline.",
  args: "<host-id>",
  options: {
    deadline: { type: "string", description: "when the host must be empty: RFC 3339 or +1h" },
    reason: { type: "string", description: "why" },
    dryRun: { type: "boolean", description: "only plan: print the moves, change nothing" },
  },
  arity: [1, 1],
  async run(ctx, { options: o, positionals }) {
    const request: DrainHostRequestInput = {
      id: positionals[0] ?? "",
      reason: o.reason ?? "",
      dryRun: o.dryRun,
    };
    if (o.deadline !== undefined) {
      request.deadline = timestampFromMs(parseTime(o.deadline, "--deadline", ctx.now()));
    }
    const response = await ctx.broker.unary<DrainHostResponse>(
      "DrainHost",
      (client, metadata, options, callback) =>
        client.drainHost(request, metadata, options, callback),
    );
    emit(ctx, response, () => drainResult(response));
    return EXIT.ok;
  },
});

export const migrateCommand = defineCommand({
  name: "migrate",
  summary: "Live-migrate one lease (ACTIVE and live-migratable).",
  args: "<lease-id>",
  options: {
    to: { type: "string", description: "destination host (default: the placer picks)" },
    expectedRevision: {
      type: "integer",
      description: "fail unless the lease's revision is this",
      min: 1,
    },
  },
  arity: [1, 1],
  async run(ctx, { options: o, positionals }) {
    const migration = await ctx.broker.unary<Migration>(
      "MigrateLease",
      (client, metadata, options, callback) =>
        client.migrateLease(
          {
            leaseId: positionals[0] ?? "",
            targetHostId: o.to ?? "",
            expectedRevision: o.expectedRevision ?? 0,
          },
          metadata,
          options,
          callback,
        ),
    );
    emit(ctx, migration, () => migrationDetail(migration, ctx.now()));
    return EXIT.ok;
  },
});

const MIGRATION_STATES = Object.values(MigrationState);

export const migrationsCommand = defineCommand({
  name: "migrations",
  summary: "List migrations, newest first.",
  options: {
    lease: { type: "string", description: "only this lease's migrations" },
    host: { type: "string", description: "only migrations from or to this host" },
    state: { type: "list", description: "only these states, e.g. transferring,completed" },
    ...PAGING_OPTIONS,
  },
  arity: [0, 0],
  async run(ctx, { options: o }) {
    const states = o.state.map((s) =>
      parseEnumName(s, "--state", MIGRATION_STATES, "MIGRATION_STATE_"),
    );
    const { items, pages } = await collectPages(
      o.pageToken ?? "",
      o.all,
      (pageToken) =>
        ctx.broker.unary<ListMigrationsResponse>(
          "ListMigrations",
          (client, metadata, options, callback) =>
            client.listMigrations(
              {
                leaseId: o.lease ?? "",
                hostId: o.host ?? "",
                states,
                pageSize: o.limit ?? 0,
                pageToken,
              },
              metadata,
              options,
              callback,
            ),
        ),
      (page) => page.migrations,
    );
    const next = pages[pages.length - 1]?.nextPageToken ?? "";
    const combined: ListMigrationsResponse = { migrations: items, nextPageToken: next };
    emit(ctx, combined, () =>
      items.length === 0 ? ["No migrations found."] : migrationTable(items, ctx.now()),
    );
    if (next !== "" && ctx.global.output === "table") {
      ctx.out.err(`(more migrations: add --all, or --page-token ${next})`);
    }
    return EXIT.ok;
  },
});

export const migrationCommand = defineCommand({
  name: "migration",
  summary: "Show one migration.",
  args: "<migration-id>",
  options: {},
  arity: [1, 1],
  async run(ctx, { positionals }) {
    const migration = await ctx.broker.unary<Migration>(
      "GetMigration",
      (client, metadata, options, callback) =>
        client.getMigration({ id: positionals[0] ?? "" }, metadata, options, callback),
    );
    emit(ctx, migration, () => migrationDetail(migration, ctx.now()));
    return EXIT.ok;
  },
});

export const abortMigrationCommand = defineCommand({
  name: "abort-migration",
  summary: "Abort a migration; the workload stays on the source.",
  args: "<migration-id>",
  options: { reason: { type: "string", description: "why" } },
  arity: [1, 1],
  async run(ctx, { options: o, positionals }) {
    const migration = await ctx.broker.unary<Migration>(
      "AbortMigration",
      (client, metadata, options, callback) =>
        client.abortMigration(
          { id: positionals[0] ?? "", reason: o.reason ?? "" },
          metadata,
          options,
          callback,
        ),
    );
    emit(ctx, migration, () => migrationDetail(migration, ctx.now()));
    return EXIT.ok;
  },
});

export const rebalanceCommand = defineCommand({
  name: "rebalance",
  summary: "Plan (and unless --dry-run, start) moves that even out load.",
  options: {
    dryRun: { type: "boolean", description: "only plan: print the moves" },
    level: {
      type: "integer",
      description: "aggressiveness 1..5 (default: the cluster's)",
      min: 1,
      max: 5,
    },
    maxMoves: { type: "integer", description: "at most this many moves", min: 1, max: 1000 },
  },
  arity: [0, 0],
  async run(ctx, { options: o }) {
    const response = await ctx.broker.unary<RebalanceResponse>(
      "Rebalance",
      (client, metadata, options, callback) =>
        client.rebalance(
          { dryRun: o.dryRun, level: o.level ?? 0, maxMoves: o.maxMoves ?? 0 },
          metadata,
          options,
          callback,
        ),
    );
    emit(ctx, response, () => rebalanceResult(response));
    return EXIT.ok;
  },
});

export const autoscaleCommand = defineCommand({
  name: "autoscale",
  summary: "Show what the autoscale signaller sees, its last signal and why.",
  options: {},
  arity: [0, 0],
  async run(ctx) {
    const response = await ctx.broker.unary<AutoscaleStatus>(
      "GetAutoscaleStatus",
      (client, metadata, options, callback) =>
        client.getAutoscaleStatus({}, metadata, options, callback),
    );
    emit(ctx, response, () => autoscaleResult(response, ctx.now()));
    return EXIT.ok;
  },
});
