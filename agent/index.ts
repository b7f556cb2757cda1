/**
 * The host agent: the Agent (hello, heartbeats, commands, events over the Bus), the Driver port,
 * the sim and qemu drivers, capacity detection and configuration. The bin is main.ts
 * (`leasebroker-agent`); the protocol is docs/agent-protocol.md.
 */
export {
  Agent,
  type AgentOptions,
  type AgentState,
  type AgentStats,
  AgentStoppedError,
  type AllocationRatios,
  HelloRejectedError,
} from "./agent.js";
export { detectCpus, detectDiskGib, detectMemoryGib, type MachineCapacity } from "./capacity.js";
export {
  type CommandOutcome,
  checkCommand,
  type ExecuteContext,
  executeCommand,
  outcomeOfError,
  resourceVector,
} from "./commands.js";
export {
  type AgentConfig,
  type AgentOptionSpecs,
  agentOptionSpecs,
  MACHINE,
  type MachineProbe,
  type ParsedAgentOptions,
  resolveAgentConfig,
  sanitizeHostId,
} from "./config.js";
export {
  type Driver,
  DriverBusyError,
  type DriverEvent,
  type DriverEventListener,
  DriverFailedError,
  type ExitInfo,
  type IncomingEndpoint,
  type IncomingSpec,
  InvalidWorkloadError,
  type MigrateOutSpec,
  type MigrationPhase,
  type ResourceVector,
  type StopOptions,
  type SuspendImage,
  TERMINAL_STATES,
  type TransferStats,
  UnsupportedOperationError,
  type WorkloadInfo,
  WorkloadNotFoundError,
  type WorkloadSpec,
  type WorkloadState,
  WorkloadStateError,
  ZERO_RESOURCES,
} from "./driver.js";
export {
  kvmUsable,
  type QemuAccel,
  QemuDriver,
  type QemuDriverOptions,
  qemuVmDir,
} from "./drivers/qemu/qemu-driver.js";
export {
  QmpClient,
  QmpCommandError,
  QmpDisconnectedError,
  type QmpEvent,
} from "./drivers/qemu/qmp-client.js";
export { SimDriver, type SimDriverOptions, SimNetwork } from "./drivers/sim-driver.js";
export { IdempotencyCache, type IdempotencyCacheOptions } from "./idempotency-cache.js";
export { type TimerSource, TimerWheel } from "./timer-wheel.js";
export { AGENT_VERSION } from "./version.js";
