import { describe, expect, it } from "vitest";
import { parseFlags, usage } from "./args.js";

const spec = {
  rate: { kind: "number", default: 0, help: "leases/s" },
  json: { kind: "boolean", default: false, help: "JSON" },
  out: { kind: "string", default: "", help: "a file" },
} as const;

describe("parseFlags", () => {
  it("keeps the defaults when no flag is given", () => {
    expect(parseFlags("t", spec, [])).toEqual({ rate: 0, json: false, out: "" });
  });

  it("reads numbers, booleans and strings, spaced or with =", () => {
    expect(parseFlags("t", spec, ["--rate", "2000", "--json", "--out=/tmp/x.json"])).toEqual({
      rate: 2000,
      json: true,
      out: "/tmp/x.json",
    });
    expect(parseFlags("t", spec, ["--out", "a b"]).out).toBe("a b");
  });

  it("names a string flag's value in the usage", () => {
    expect(usage("t", spec)).toContain("--out VALUE  a file (default none)");
    expect(usage("t", spec)).toContain("--rate N  leases/s (default 0)");
  });
});
