/**
 * The subject scheme of agent traffic (docs/agent-protocol.md):
 *
 *   lb.v1.host.<hostId>.hello   agent -> broker, request/reply (Hello -> HelloReply)
 *   lb.v1.host.<hostId>.beat    agent -> broker (Heartbeat; reply subject for "hello again")
 *   lb.v1.host.<hostId>.cmd     broker -> agent, request/reply (Command -> CommandReply)
 *   lb.v1.host.<hostId>.event   agent -> broker (AgentEvent)
 *   lb.v1.autoscale             broker -> autoscalers
 *
 * The host id is one subject token, so that NATS permissions can pin an agent to
 * `lb.v1.host.<its id>.>` and a broker can subscribe to `lb.v1.host.*.beat`.
 */
import { InvalidArgumentError } from "../core/index.js";

export const SUBJECT_PREFIX = "lb.v1";
export const HOST_SUBJECT_PREFIX = `${SUBJECT_PREFIX}.host`;
export const AUTOSCALE_SUBJECT = `${SUBJECT_PREFIX}.autoscale`;

export const HOST_SUBJECT_KINDS = ["hello", "beat", "cmd", "event"] as const;
export type HostSubjectKind = (typeof HOST_SUBJECT_KINDS)[number];

/**
 * What the bus accepts as a host id: a safe NATS token (no `.`, no wildcards, no whitespace), at
 * most 64 characters. Looser than the contract's host-id grammar (`HOST_ID_GRAMMAR`) on purpose:
 * the bus only has to keep subjects well-formed; the broker checks the contract on Hello.
 */
export const HOST_ID_TOKEN = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * The contract's host-id grammar (proto Host.id): 1..63 characters of [a-z0-9-], starting and
 * ending alphanumeric. What an agent should register with, since the broker refuses others.
 */
export const HOST_ID_GRAMMAR = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/** Whether `hostId` is a safe subject token. */
export function isValidHostId(hostId: string): boolean {
  return typeof hostId === "string" && HOST_ID_TOKEN.test(hostId);
}

/** Returns `hostId`, or throws InvalidArgumentError (field `host_id`) if it is not a safe token. */
export function validateHostId(hostId: string): string {
  if (!isValidHostId(hostId)) {
    throw new InvalidArgumentError(
      "host_id",
      `must be 1-64 characters of [A-Za-z0-9_-] (a NATS subject token), got ${JSON.stringify(hostId)}`,
    );
  }
  return hostId;
}

/** The subject of `kind` traffic of one host. Throws InvalidArgumentError for a bad host id. */
export function hostSubject(hostId: string, kind: HostSubjectKind): string {
  return `${HOST_SUBJECT_PREFIX}.${validateHostId(hostId)}.${kind}`;
}

/** The subscription subject for `kind` traffic of every host (`lb.v1.host.*.<kind>`). */
export function allHostsSubject(kind: HostSubjectKind): string {
  return `${HOST_SUBJECT_PREFIX}.*.${kind}`;
}

export interface ParsedHostSubject {
  readonly hostId: string;
  readonly kind: HostSubjectKind;
}

/** Splits `lb.v1.host.<hostId>.<kind>`; undefined for any other subject. */
export function parseHostSubject(subject: string): ParsedHostSubject | undefined {
  const prefix = `${HOST_SUBJECT_PREFIX}.`;
  if (!subject.startsWith(prefix)) return undefined;
  const rest = subject.slice(prefix.length).split(".");
  if (rest.length !== 2) return undefined;
  const [hostId, kind] = rest as [string, string];
  if (!isValidHostId(hostId)) return undefined;
  if (!(HOST_SUBJECT_KINDS as readonly string[]).includes(kind)) return undefined;
  return { hostId, kind: kind as HostSubjectKind };
}
