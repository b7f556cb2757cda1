import { describe, expect, it } from "vitest";
import { ConfigError } from "../../core/index.js";
import { FileTokenSource, sha256Hex } from "./tokens-file.js";

const ALICE = "alice-token-0123456789";

describe("FileTokenSource", () => {
  const source = new FileTokenSource({
    defaults: { quota: { leases: 3 } },
    tenants: {
      "team-a": {
        quota: { cpu: "1.5", memory: "4Gi", disk: "1Ti", gpus: 2, leases: 10, max_duration: "2h" },
        rate: { writes_per_second: 5, burst: 10 },
      },
    },
    tokens: [
      { name: "alice", tenant: "team-a", role: "tenant", token: ALICE },
      { name: "ops", tenant: "ops", role: "operator", sha256: sha256Hex("ops-token-0123456789") },
    ],
  });

  it("maps clear and hashed tokens to identities, and unknown tokens to nothing", () => {
    expect(source.identify(ALICE)).toEqual({ name: "alice", tenant: "team-a", role: "tenant" });
    expect(source.identify("ops-token-0123456789")?.role).toBe("operator");
    expect(source.identify("alice-token-012345678")).toBeUndefined();
    expect(source.identify("")).toBeUndefined();
  });

  it("parses quotas in the CLI's units, and falls back to the defaults for unlisted tenants", () => {
    expect(source.policy("team-a")).toEqual({
      quota: {
        cpuMillis: 1500,
        memoryMib: 4096,
        diskGib: 1024,
        gpus: 2,
        leases: 10,
        maxDurationMs: 7_200_000,
      },
      rate: { perSecond: 5, burst: 10 },
    });
    expect(source.policy("nobody")).toEqual({ quota: { leases: 3 } });
  });

  it.each([
    [{ tokens: [] }, "tokens: expected a non-empty list"],
    [{ tokens: [{ tenant: "a", token: "short" }] }, "tokens[0].token: at least 16"],
    [{ tokens: [{ tenant: "A_B", token: ALICE }] }, "tokens[0].tenant"],
    [{ tokens: [{ tenant: "a", role: "root", token: ALICE }] }, "tokens[0].role: one of"],
    [{ tokens: [{ tenant: "a", token: ALICE, sha256: sha256Hex(ALICE) }] }, "exactly one of"],
    [{ tokens: [{ tenant: "a", sha256: "abc" }] }, "64 hex digits"],
    [
      {
        tokens: [
          { tenant: "a", token: ALICE },
          { tenant: "b", token: ALICE },
        ],
      },
      "twice",
    ],
    [{ tokens: [{ tenant: "a", token: ALICE, extra: 1 }] }, "tokens[0].extra: unknown key"],
    [{ tenants: { a: { quota: { cpu: "lots" } } }, tokens: [] }, "tenants.a.quota.cpu"],
    [{ tenants: { a: { quota: { max_duration: "soon" } } }, tokens: [] }, "max_duration"],
    [{ tenants: { a: { rate: { writes_per_second: 0 } } }, tokens: [] }, "writes_per_second"],
  ])("refuses %j naming the field", (document, message) => {
    expect(() => new FileTokenSource(document, "t.yaml")).toThrow(ConfigError);
    expect(() => new FileTokenSource(document, "t.yaml")).toThrow(message);
  });
});
