/** The autoscaling hook: capacity signals for autoscalers (see docs/api.md, "Autoscaling"). */
export {
  type Evaluation,
  type EvaluationInput,
  evaluate,
  type HostShapeCount,
  type Recommendation,
  type Utilisation,
  utilisationOf,
} from "./evaluate.js";
export {
  type OrchestratorDrainerDeps,
  orchestratorDrainer,
  plannersConsolidation,
} from "./migration-ports.js";
export { type PackingResult, packOntoNewHosts } from "./packing.js";
export type {
  ConsolidationPlan,
  ConsolidationPlanner,
  DrainOutcome,
  HostDrainer,
} from "./ports.js";
export {
  derivedShapeName,
  deriveShapes,
  type HostShape,
  parseHostShape,
  shapeAllocatable,
} from "./shapes.js";
export {
  type AutoscaleSignalRecord,
  autoscaleSignalCodec,
  signalToJson,
  signalToProto,
  statusToProto,
} from "./signal.js";
export {
  type AutoscaleDeps,
  type AutoscaleOptions,
  type AutoscaleSettings,
  AutoscaleSignaller,
  type AutoscaleStatusView,
  CAPACITY_SETTLE_MS,
  DEFAULT_AUTOSCALE_SETTINGS,
} from "./signaller.js";
export {
  DELIVERY_HEADER,
  type DeadLetter,
  SIGNATURE_HEADER,
  signBody,
  TIMESTAMP_HEADER,
  verifySignature,
  WebhookDelivery,
  type WebhookOptions,
  type WebhookStats,
} from "./webhook.js";
