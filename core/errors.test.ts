import { describe, expect, it } from "vitest";
import {
  ConflictError,
  InvalidArgumentError,
  isLeaseBrokerError,
  NotFoundError,
  NotLeaderError,
  ResourceExhaustedError,
} from "./errors.js";

describe("errors", () => {
  it("carry their kind, fields, name and cause", () => {
    const cause = new Error("root");
    const e = new InvalidArgumentError("spec.resources.cpu_millis", "must be > 0", { cause });
    expect(e.kind).toBe("invalid-argument");
    expect(e.field).toBe("spec.resources.cpu_millis");
    expect(e.message).toBe("spec.resources.cpu_millis: must be > 0");
    expect(e.name).toBe("InvalidArgumentError");
    expect(e.cause).toBe(cause);
    expect(isLeaseBrokerError(e)).toBe(true);
    expect(isLeaseBrokerError(new Error("x"))).toBe(false);
  });

  it("say what is missing and where the leader is", () => {
    expect(new NotFoundError("lease", "l-1").message).toBe('lease "l-1" not found');
    expect(new NotLeaderError("127.0.0.1:50052").leaderAddress).toBe("127.0.0.1:50052");
    expect(new NotLeaderError(undefined).message).toMatch(/no leader is known/);
    expect(new ConflictError("lease l-1 changed").kind).toBe("conflict");
    const detail = { summary: "no host has 64 GiB free" };
    expect(new ResourceExhaustedError("no fit", detail).detail).toBe(detail);
  });
});
