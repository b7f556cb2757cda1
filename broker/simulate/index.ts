export {
  type ClusterDescription,
  ClusterError,
  clusterHosts,
  describedHostCount,
  type HostShape,
  parseCluster,
  STANDARD_CLUSTER,
  shapeCounts,
  totalAllocatable,
  zoneLabel,
} from "./cluster.js";
export { runSimulate, SIMULATE_OPTIONS, SIMULATE_USAGE, type SimulateIo } from "./command.js";
export { type GenerateOptions, generateTrace, TRACE_MIXES, type TraceMix } from "./generate.js";
export { renderHtml } from "./html.js";
export {
  brokerOptionsFor,
  DEFAULT_SIM_POLICY,
  type EntryOutcome,
  leaseSpecOf,
  REBALANCE_SETTINGS,
  type RebalanceSetting,
  type RejectReason,
  type ReplayOptions,
  type ReplayResult,
  replay,
  SIM_EPOCH_MS,
  type SimEvent,
  type SimPolicy,
  simEventOf,
  type UsageDeltas,
} from "./replay.js";
export {
  buildReport,
  type Distribution,
  distribution,
  type KindFigures,
  type ReportInputs,
  type SimulationReport,
  utilisationSeries,
} from "./report.js";
export {
  type HostsNeeded,
  type SearchOptions,
  type SearchRun,
  searchHostsNeeded,
} from "./search.js";
export {
  detectFormat,
  formatTrace,
  parseTrace,
  TRACE_FIELDS,
  type TraceEntry,
  TraceError,
  type TraceFormat,
  type TraceGroup,
  type TraceWindow,
  WINDOW_KINDS,
  type WindowKind,
} from "./trace.js";
