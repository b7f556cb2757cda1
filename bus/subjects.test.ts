import { describe, expect, it } from "vitest";
import { InvalidArgumentError } from "../core/index.js";
import { subjectMatches } from "./subject-match.js";
import {
  AUTOSCALE_SUBJECT,
  allHostsSubject,
  HOST_ID_GRAMMAR,
  hostSubject,
  isValidHostId,
  parseHostSubject,
  validateHostId,
} from "./subjects.js";

describe("subjects", () => {
  it("follow lb.v1.host.<hostId>.<kind>", () => {
    expect(hostSubject("h-1", "hello")).toBe("lb.v1.host.h-1.hello");
    expect(hostSubject("h-1", "beat")).toBe("lb.v1.host.h-1.beat");
    expect(hostSubject("h-1", "cmd")).toBe("lb.v1.host.h-1.cmd");
    expect(hostSubject("h-1", "event")).toBe("lb.v1.host.h-1.event");
    expect(AUTOSCALE_SUBJECT).toBe("lb.v1.autoscale");
    expect(allHostsSubject("beat")).toBe("lb.v1.host.*.beat");
    expect(subjectMatches(allHostsSubject("beat"), hostSubject("h-1", "beat"))).toBe(true);
    expect(subjectMatches(allHostsSubject("beat"), hostSubject("h-1", "event"))).toBe(false);
  });

  it("accept only host ids that are safe NATS tokens", () => {
    for (const ok of ["a", "Host_1", "node-07", "x".repeat(64)])
      expect(isValidHostId(ok)).toBe(true);
    for (const bad of ["", "a.b", "a*", ">", "a b", "x".repeat(65), "é", "a\n"]) {
      expect(isValidHostId(bad)).toBe(false);
      expect(() => hostSubject(bad, "cmd")).toThrow(InvalidArgumentError);
    }
    expect(() => validateHostId("a.b")).toThrow(/host_id/);
  });

  it("know the contract's stricter host-id grammar", () => {
    expect(HOST_ID_GRAMMAR.test("node-07")).toBe(true);
    for (const bad of ["Node", "a_b", "-a", "a-", "x".repeat(64)]) {
      expect(HOST_ID_GRAMMAR.test(bad)).toBe(false);
    }
  });

  it("parse host subjects and nothing else", () => {
    expect(parseHostSubject("lb.v1.host.h1.cmd")).toEqual({ hostId: "h1", kind: "cmd" });
    for (const other of [
      "lb.v1.host.h1",
      "lb.v1.host.h1.cmd.x",
      "lb.v1.host.h1.nope",
      "lb.v1.autoscale",
      "lb.v2.host.h1.cmd",
    ]) {
      expect(parseHostSubject(other)).toBeUndefined();
    }
  });
});
