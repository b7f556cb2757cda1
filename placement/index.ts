/**
 * The placement engine's public API. Pure: no I/O, no clock (time is an argument, epoch ms),
 * deterministic. See docs/benchmarks.md for how the indexed search stays exact and fast.
 */

export {
  ClusterIndex,
  type ClusterIndexOptions,
  type ForecastBucket,
  type HoldView,
  type HostView,
} from "./cluster-index.js";
export {
  CapacityExceededError,
  DuplicateHoldError,
  DuplicateHostError,
  InvalidPlacementArgumentError,
  InvalidSelectorError,
  PlacementError,
  type PlacementErrorKind,
  UnknownHoldError,
  UnknownHostError,
} from "./errors.js";
export { explainText, formatWindow } from "./explain.js";
export {
  eligibilityCheck,
  findEarliestSlot,
  type GroupDecision,
  type PlaceOptions,
  place,
  placeFirstFit,
  placeGroup,
} from "./place.js";
export {
  DEFAULT_COMMON_SIZES,
  DEFAULT_PLACEMENT_POLICY,
  DEFAULT_RESOURCE_WEIGHTS,
  type PlacementPolicy,
  type ResourceWeights,
  type ScorerWeights,
  validatePolicy,
} from "./policy.js";
export { type PreemptionCost, type PreemptionPlan, planPreemption } from "./preemption.js";
export { createRng, type Rng } from "./random.js";
export {
  type AllocationRatios,
  add,
  allocatable,
  CORE_RESOURCES,
  type CoreResourceName,
  clampNonNegative,
  DEFAULT_ALLOCATION_RATIOS,
  equals,
  extendedNames,
  fits,
  formatResources,
  get,
  isZero,
  max,
  min,
  type ResourceName,
  type Resources,
  resourceNames,
  resources,
  scale,
  sub,
  validateResources,
  ZERO_RESOURCES,
  zero,
} from "./resources.js";
export {
  formatRequirement,
  type Labels,
  labelKeyProblem,
  labelValueProblem,
  matches,
  matchesOne,
  parseSelector,
  parseSelectors,
  type Requirement,
  type RequirementOp,
  validateLabels,
} from "./selector.js";
export {
  CapacityTimeline,
  type TimelineSegment,
  type TimelineViolation,
  validateWindow,
} from "./timeline.js";
export type {
  BindingResource,
  FilterCount,
  FitPolicy,
  GroupSpec,
  HoldMeta,
  HostSpec,
  HostState,
  LeaseShape,
  PlacementDecision,
  PlacementExplanation,
  PlacementRequest,
  ScoreBreakdown,
  ScoredHost,
  SlotRequest,
  TimeWindow,
} from "./types.js";
export { HOST_STATES } from "./types.js";
