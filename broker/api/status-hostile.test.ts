import { status } from "@grpc/grpc-js";
import { describe, expect, it } from "vitest";
import { InvalidArgumentError, NotFoundError } from "../../core/index.js";
import { FIELD_METADATA_KEY, MAX_DETAILS, toServiceError } from "./status.js";

describe("toServiceError with hostile input quoted in errors", () => {
  it("bounds a message that quotes a huge id", () => {
    const e = toServiceError(new NotFoundError("lease", "x".repeat(300_000)));
    expect(e.code).toBe(status.NOT_FOUND);
    expect(e.details.length).toBeLessThan(MAX_DETAILS + 100);
    expect(e.details).toMatch(/characters\)$/);
  });

  it("escapes a field path that quotes a non-ASCII label key instead of throwing", () => {
    const e = toServiceError(new InvalidArgumentError('spec.labels["é\u0000"]', "bad key"));
    expect(e.code).toBe(status.INVALID_ARGUMENT);
    expect(e.metadata?.get(FIELD_METADATA_KEY)).toEqual(['spec.labels["\\u00e9\\u0000"]']);
  });
});
