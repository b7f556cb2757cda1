export { autoscaleView, signallerAutoscaleSource } from "./autoscale-source.js";
export {
  type Amounts,
  type CapacityNow,
  ClusterView,
  type ForecastView,
  type HostRow,
  type LeaseBar,
  type LeaseList,
  RESOURCE_UNITS,
  type ResourceCapacity,
} from "./cluster-view.js";
export { EventStreams, Throttle } from "./live.js";
export { DashboardMetrics, type DependencyHealth, type ScrapeInput } from "./metrics.js";
export { migrationView, orchestratorMigrationSource } from "./migration-source.js";
export {
  type AutoscaleBody,
  type DashboardDeps,
  type DashboardOptions,
  DashboardServer,
  type MigrationsBody,
  type Snapshot,
} from "./server.js";
export {
  type AutoscaleDirection,
  type AutoscaleSignalView,
  type AutoscaleSource,
  MIGRATION_STATES,
  type MigrationSource,
  type MigrationStateName,
  type MigrationView,
} from "./sources.js";
