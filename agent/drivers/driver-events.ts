/**
 * The event fan-out every driver needs: listeners, the two event shapes, and a listener that
 * throws never stopping the others (it is logged).
 */
import { errorMessage, type Logger } from "../../core/index.js";
import type {
  DriverEvent,
  DriverEventListener,
  ExitInfo,
  MigrationPhase,
  TransferStats,
  WorkloadState,
} from "../driver.js";

export interface MigrationEventExtra {
  readonly error?: string | undefined;
  readonly downtimeMs?: number | undefined;
  readonly totalTimeMs?: number | undefined;
}

export class DriverEvents {
  readonly #listeners = new Set<DriverEventListener>();
  readonly #log: Logger;
  #closed = false;

  constructor(log: Logger) {
    this.#log = log;
  }

  on(listener: DriverEventListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  workload(
    leaseId: string,
    migrationId: string,
    state: WorkloadState,
    message: string,
    exit?: ExitInfo,
  ): void {
    this.#emit({ type: "workload", leaseId, state, message, exit, migrationId });
  }

  migration(
    leaseId: string,
    migrationId: string,
    phase: MigrationPhase,
    stats: TransferStats,
    extra: MigrationEventExtra,
  ): void {
    this.#emit({
      type: "migration",
      migrationId,
      leaseId,
      phase,
      stats,
      downtimeMs: extra.downtimeMs,
      totalTimeMs: extra.totalTimeMs,
      error: extra.error ?? "",
      postCopyUsed: false,
    });
  }

  /** No more events; listeners are dropped. */
  close(): void {
    this.#closed = true;
    this.#listeners.clear();
  }

  #emit(event: DriverEvent): void {
    if (this.#closed) return;
    for (const listener of [...this.#listeners]) {
      try {
        listener(event);
      } catch (error) {
        this.#log.error({ err: error }, `driver event listener failed: ${errorMessage(error)}`);
      }
    }
  }
}
