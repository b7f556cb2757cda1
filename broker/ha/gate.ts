/**
 * Which gRPC calls a broker answers in its current role. The leader answers everything; a
 * follower answers lease reads from its warm cache (GetLease, ListLeases, WatchLeases) and
 * refuses the rest with UNAVAILABLE naming the leader (`lb-leader`), so that clients follow it:
 * writes must go through the one broker that admits and places, and host reads (hosts,
 * capacity, placement previews) need the agents, which talk to the leader only.
 */
import type { ServiceError } from "@grpc/grpc-js";
import { toServiceError } from "../api/status.js";

/** Throws (a NotLeaderError or UnavailableError) when this broker must not answer `method`. */
export interface RequestGate {
  check(method: string): void;
}

/** The LeaseBroker methods a follower serves. */
export const FOLLOWER_METHODS: ReadonlySet<string> = new Set([
  "GetLease",
  "ListLeases",
  "WatchLeases",
]);

type Handler = (
  call: { emit(event: "error", error: Partial<ServiceError>): boolean },
  callback?: (error: Partial<ServiceError>) => void,
) => void;

/**
 * The same handlers, each first asking the gate. A unary handler (two parameters) answers a
 * refusal through its callback; a stream handler ends its stream with it.
 */
export function gateHandlers<H extends object>(handlers: H, gate: RequestGate): H {
  const gated: Record<string, unknown> = {};
  for (const [method, value] of Object.entries(handlers)) {
    if (typeof value !== "function") {
      gated[method] = value;
      continue;
    }
    const handler = value as Handler;
    const unary = handler.length >= 2;
    gated[method] = (...args: Parameters<Handler>) => {
      try {
        gate.check(method);
      } catch (error) {
        const status = toServiceError(error);
        const [call, callback] = args;
        if (unary && callback !== undefined) callback(status);
        else call.emit("error", status);
        return;
      }
      handler(...args);
    };
  }
  return gated as H;
}
