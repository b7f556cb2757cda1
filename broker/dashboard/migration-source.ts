/**
 * The orchestrator as the dashboard reads it: migrations in flight from the orchestrator, and every
 * change from the store's watch on `migrations/` (each step of a migration is one store write).
 */
import type { MigrationOrchestrator } from "../migrations/index.js";
import type { Migration } from "../migrations/model.js";
import type { BrokerStore } from "../store/index.js";
import type { MigrationSource, MigrationView } from "./sources.js";

export function migrationView(m: Migration): MigrationView {
  const p = m.progress;
  const total = p === undefined ? 0 : p.bytesTransferred + p.bytesRemaining;
  const progress =
    m.state === "COMPLETED" ? 1 : p === undefined || total === 0 ? 0 : p.bytesTransferred / total;
  const ended = m.endedAt > 0 && m.startedAt > 0;
  return {
    id: m.id,
    leaseId: m.leaseId,
    sourceHostId: m.fromHostId,
    targetHostId: m.toHostId,
    state: m.state,
    progress,
    reason: m.reason.toLowerCase().replace("_", "-"),
    startedAt: m.startedAt > 0 ? m.startedAt : m.createdAt,
    ...(ended ? { durationMs: m.endedAt - m.startedAt } : {}),
    ...(m.downtimeMs === undefined ? {} : { downtimeMs: m.downtimeMs }),
  };
}

export function orchestratorMigrationSource(
  orchestrator: Pick<MigrationOrchestrator, "unfinished">,
  store: BrokerStore,
): MigrationSource {
  return {
    migrations: () => orchestrator.unfinished().map(migrationView),
    subscribe(listener) {
      const watch = store.watch({ collections: ["migrations"] }, (event) => {
        if (event.collection === "migrations" && event.type === "put") {
          listener(migrationView(event.value));
        }
      });
      return () => watch.close();
    },
  };
}
