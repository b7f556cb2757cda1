/**
 * The Bus port (agent traffic between the broker and host agents) and its two implementations,
 * the subject scheme, safe decoding of untrusted payloads, and retries with backoff. Protocol:
 * docs/agent-protocol.md.
 */

export { deriveSeed, type RandomSource, seededRandom } from "../core/index.js";
export {
  type Bus,
  type BusMessage,
  type BusStatus,
  type BusStatusEvent,
  DEFAULT_MAX_PAYLOAD,
  type MessageHandler,
  type PublishOptions,
  type RequestOptions,
  type SubscribeOptions,
  type Subscription,
} from "./bus.js";
export {
  DROP_REASONS,
  DropCounters,
  type DropEvent,
  type DropReason,
  type DropSource,
  decodeOrDrop,
  dropReasonOf,
  recordDrop,
} from "./decode-or-drop.js";
export {
  BusClosedError,
  BusTimeoutError,
  BusTransportError,
  InvalidSubjectError,
  NoRespondersError,
  PayloadTooLargeError,
} from "./errors.js";
export { InProcessBus, InProcessHub, type InProcessHubOptions } from "./in-process-bus.js";
export { NatsBus, type NatsBusOptions } from "./nats-bus.js";
export {
  backoffDelay,
  isTransientBusError,
  RetriesExhaustedError,
  type RetryInfo,
  type RetryOptions,
  withRetries,
} from "./retry.js";
export { checkPublishSubject, checkSubscribeSubject, subjectMatches } from "./subject-match.js";
export {
  AUTOSCALE_SUBJECT,
  allHostsSubject,
  HOST_ID_GRAMMAR,
  HOST_ID_TOKEN,
  HOST_SUBJECT_KINDS,
  HOST_SUBJECT_PREFIX,
  type HostSubjectKind,
  hostSubject,
  isValidHostId,
  type ParsedHostSubject,
  parseHostSubject,
  SUBJECT_PREFIX,
  validateHostId,
} from "./subjects.js";
