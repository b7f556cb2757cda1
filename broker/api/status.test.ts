import { status } from "@grpc/grpc-js";
import { describe, expect, it } from "vitest";
import {
  ConflictError,
  InvalidArgumentError,
  NotFoundError,
  NotLeaderError,
  ResourceExhaustedError,
} from "../../core/index.js";
import {
  EXPLANATION_METADATA_KEY,
  explanationCodec,
  FIELD_METADATA_KEY,
  LEADER_METADATA_KEY,
  toServiceError,
} from "./status.js";

describe("toServiceError", () => {
  it("maps each kind to its status with the details users need", () => {
    const invalid = toServiceError(
      new InvalidArgumentError("spec.resources.cpu_millis", "must be > 0"),
    );
    expect(invalid.code).toBe(status.INVALID_ARGUMENT);
    expect(invalid.details).toBe("spec.resources.cpu_millis: must be > 0");
    expect(invalid.metadata?.get(FIELD_METADATA_KEY)).toEqual(["spec.resources.cpu_millis"]);

    expect(toServiceError(new NotFoundError("lease", "x")).code).toBe(status.NOT_FOUND);
    expect(toServiceError(new ConflictError("changed")).code).toBe(status.ABORTED);

    const follower = toServiceError(new NotLeaderError("127.0.0.1:50052"));
    expect(follower.code).toBe(status.UNAVAILABLE);
    expect(follower.metadata?.get(LEADER_METADATA_KEY)).toEqual(["127.0.0.1:50052"]);

    const noFit = toServiceError(
      new ResourceExhaustedError("no host fits", {
        mode: "exhaustive",
        hostsConsidered: 3,
        hostsEvaluated: 3,
        filters: [{ name: "resources", removed: 3 }],
        summary: "memory binds",
      }),
    );
    expect(noFit.code).toBe(status.RESOURCE_EXHAUSTED);
    // Binary trailing metadata: the PlacementExplanation, protobuf-encoded (broker.proto).
    const bytes = noFit.metadata?.get(EXPLANATION_METADATA_KEY)[0];
    expect(Buffer.isBuffer(bytes)).toBe(true);
    const decoded = explanationCodec.decode(bytes as Buffer);
    expect(decoded.summary).toBe("memory binds");
    expect(decoded.hostsConsidered).toBe(3);
    expect(decoded.filters.map((f) => [f.filter, f.hostsRemoved])).toEqual([["resources", 3]]);
  });

  it("answers INTERNAL for anything untyped", () => {
    const e = toServiceError(new TypeError("x is undefined"));
    expect(e.code).toBe(status.INTERNAL);
    expect(e.details).toContain("x is undefined");
  });
});
