import { type ServiceError, status } from "@grpc/grpc-js";
import { describe, expect, it } from "vitest";
import { NotLeaderError } from "../../core/index.js";
import { FOLLOWER_METHODS, gateHandlers, type RequestGate } from "./gate.js";

/** A follower's gate: lease reads pass, the rest is refused naming the leader. */
const follower: RequestGate = {
  check(method) {
    if (!FOLLOWER_METHODS.has(method)) throw new NotLeaderError("10.0.0.1:50051");
  },
};

describe("gateHandlers", () => {
  it("runs what the gate allows and answers the rest UNAVAILABLE with the leader's address", () => {
    const ran: string[] = [];
    const handlers = gateHandlers(
      {
        GetLease: (_call: unknown, callback: (e: unknown, v?: unknown) => void) => {
          ran.push("GetLease");
          callback(null, {});
        },
        SubmitLease: (_call: unknown, callback: (e: unknown, v?: unknown) => void) => {
          ran.push("SubmitLease");
          callback(null, {});
        },
        SubmitLeases: (_call: unknown, callback: (e: unknown, v?: unknown) => void) => {
          ran.push("SubmitLeases");
          callback(null, {});
        },
      },
      follower,
    );
    const answers: unknown[] = [];
    handlers.GetLease({}, (e) => answers.push(e));
    handlers.SubmitLease({}, (e) => answers.push(e));
    handlers.SubmitLeases({}, (e) => answers.push(e));
    expect(ran).toEqual(["GetLease"]);
    expect(answers[0]).toBeNull();
    for (const refusal of answers.slice(1) as ServiceError[]) {
      expect(refusal.code).toBe(status.UNAVAILABLE);
      expect(refusal.metadata.get("lb-leader")).toEqual(["10.0.0.1:50051"]);
    }
  });

  it("ends a refused stream with the status", () => {
    const errors: unknown[] = [];
    const call = { emit: (_event: "error", error: unknown) => errors.push(error) > 0 };
    const handlers = gateHandlers({ WatchHosts: (_call: typeof call) => {} }, follower);
    handlers.WatchHosts(call);
    expect((errors[0] as ServiceError).code).toBe(status.UNAVAILABLE);
  });
});
