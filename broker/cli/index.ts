/**
 * leasectl, the command-line client of the lease broker. `runCli` runs it in-process (the bin is
 * main.ts); the parsing and formatting pieces are exported for reuse and tests.
 */
export { type CliOptionSpec, GLOBAL_OPTIONS, type GlobalOptions } from "./args.js";
export { type CapturedRun, type CaptureOptions, runCliCaptured } from "./capture.js";
export { COMMANDS, generalHelp, runCli } from "./cli.js";
export {
  BrokerConnection,
  type ConnectionOptions,
  channelCredentials,
  type TransportSecurity,
} from "./client.js";
export {
  BrokerCallError,
  decodeExplanation,
  EXPLANATION_JSON_METADATA_KEY,
  EXPLANATION_METADATA_KEY,
  explanationFromMetadata,
  FIELD_METADATA_KEY,
  LEADER_METADATA_KEY,
  renderFailure,
} from "./errors.js";
export { EXIT, EXIT_CODES_HELP, type ExitCode, exitCodeForStatus } from "./exit-codes.js";
export type { CliIo, TextSink } from "./io.js";
export {
  parseCount,
  parseCpuMillis,
  parseDiskGib,
  parseDurationText,
  parseMemoryMib,
  parseTime,
  splitRequirements,
} from "./quantities.js";
export { buildLeaseSpec, mergeDrafts, type SpecDraft } from "./spec-draft.js";
export { readSpecFile, specFileFromDocument } from "./spec-file.js";
