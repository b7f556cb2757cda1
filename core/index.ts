export {
  type AdvanceOptions,
  type Clock,
  RealClock,
  type SettleMode,
  type Timer,
  VirtualClock,
} from "./clock.js";
export {
  ConfigError,
  EXIT_CONFIG,
  formatDuration,
  type OptionSpec,
  type OptionSpecs,
  optionsHelp,
  type ParsedOptions,
  type ParseResult,
  parseDuration,
  parseOptions,
} from "./config.js";
export { type Due, DueHeap } from "./due-heap.js";
export {
  AlreadyExistsError,
  ConflictError,
  DeadlineExceededError,
  type ErrorKind,
  errorMessage,
  FailedPreconditionError,
  InternalError,
  InvalidArgumentError,
  isLeaseBrokerError,
  LeaseBrokerError,
  type LeaseBrokerErrorOptions,
  NotFoundError,
  NotLeaderError,
  PermissionDeniedError,
  ResourceExhaustedError,
  UnauthenticatedError,
  UnavailableError,
} from "./errors.js";
export { deepFreeze } from "./freeze.js";
export { Listeners } from "./listeners.js";
export {
  createLogger,
  isLogLevel,
  LOG_LEVELS,
  type Logger,
  type LoggerOptions,
  type LogLevel,
  silentLogger,
} from "./log.js";
export { MinHeap } from "./min-heap.js";
export { deriveSeed, type RandomSource, seededRandom } from "./random.js";
