import { Metadata } from "@grpc/grpc-js";
import { describe, expect, it } from "vitest";
import {
  NotFoundError,
  PermissionDeniedError,
  silentLogger,
  UnauthenticatedError,
  VirtualClock,
} from "../../core/index.js";
import { CallGuard } from "./guard.js";
import type { Identity, TokenSource } from "./identity.js";

const IDS: Record<string, Identity> = {
  "tok-a": { name: "a", tenant: "team-a", role: "tenant" },
  "tok-op": { name: "op", tenant: "ops", role: "operator" },
  "tok-admin": { name: "root", tenant: "ops", role: "admin" },
};
const LEASE_TENANT: Record<string, string> = { "l-a": "team-a", "l-b": "team-b" };

const tokens: TokenSource = {
  identify: (t) => IDS[t],
  policy: () => ({ quota: {} }),
};

function guard(): CallGuard {
  return new CallGuard({
    tokens,
    leases: {
      get: (id) => {
        const tenant = LEASE_TENANT[id];
        if (tenant === undefined) throw new NotFoundError("lease", id);
        return { value: { spec: { tenant } } };
      },
    },
    clock: new VirtualClock(0),
    logger: silentLogger(),
  });
}

function bearer(token: string): Metadata {
  const m = new Metadata();
  m.set("authorization", `Bearer ${token}`);
  return m;
}

describe("CallGuard", () => {
  it("needs a known bearer token", () => {
    expect(() => guard().check("ListHosts", new Metadata(), {})).toThrow(UnauthenticatedError);
    expect(() => guard().check("ListHosts", bearer("nope"), {})).toThrow(UnauthenticatedError);
    const basic = new Metadata();
    basic.set("authorization", "Basic dG9rLWE=");
    expect(() => guard().check("ListHosts", basic, {})).toThrow(UnauthenticatedError);
  });

  it("applies each role's rules; an unlisted method is admin-only", () => {
    const g = guard();
    expect(() => g.check("CordonHost", bearer("tok-a"), { id: "h" })).toThrow(
      PermissionDeniedError,
    );
    expect(g.check("CordonHost", bearer("tok-op"), { id: "h" }).role).toBe("operator");
    expect(() => g.check("CancelLease", bearer("tok-op"), { id: "l-a" })).toThrow(
      PermissionDeniedError,
    );
    expect(g.check("GetLease", bearer("tok-op"), { id: "l-b" }).role).toBe("operator");
    expect(() => g.check("SomeFutureRpc", bearer("tok-op"), {})).toThrow(PermissionDeniedError);
    expect(g.check("SomeFutureRpc", bearer("tok-admin"), {}).role).toBe("admin");
  });

  it("keeps a tenant to its own leases and fills in its tenant", () => {
    const g = guard();
    g.check("GetLease", bearer("tok-a"), { id: "l-a" });
    const foreign = () => g.check("GetLease", bearer("tok-a"), { id: "l-b" });
    const absent = () => g.check("GetLease", bearer("tok-a"), { id: "l-x" });
    expect(foreign).toThrow(PermissionDeniedError);
    expect(absent).toThrow(PermissionDeniedError);
    const list = { tenant: "" };
    g.check("ListLeases", bearer("tok-a"), list);
    expect(list.tenant).toBe("team-a");
    const submit = { spec: { tenant: "" } };
    g.check("SubmitLease", bearer("tok-a"), submit);
    expect(submit.spec.tenant).toBe("team-a");
    expect(() => g.check("SubmitLease", bearer("tok-a"), { spec: { tenant: "team-b" } })).toThrow(
      PermissionDeniedError,
    );
  });

  it("shows a tenant only its own victims in a preemption plan", () => {
    const g = guard();
    const response = { explanation: { preemption: { victimLeaseIds: ["l-a", "l-b", "l-x"] } } };
    g.redact(IDS["tok-a"] as Identity, response);
    expect(response.explanation.preemption.victimLeaseIds).toEqual(["l-a"]);
  });
});
