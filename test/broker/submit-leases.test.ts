/**
 * SubmitLeases: many submissions in one call, each answered as SubmitLease would answer it, in
 * order; a bad item gets its own error and changes nothing for the others.
 */
import { status } from "@grpc/grpc-js";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { MAX_SUBMIT_BATCH } from "../../broker/api/limits.js";
import { DEFAULT_PLACEMENT_POLICY } from "../../placement/index.js";
import {
  FULL,
  HALF,
  HOUR,
  immediate,
  QUARTER,
  rpcError,
  startBroker,
  type TestBroker,
} from "./harness.js";

describe("SubmitLeases", () => {
  let tb: TestBroker;
  beforeEach(async () => {
    tb = await startBroker();
  });
  afterEach(async () => {
    await tb.stop();
  });

  it("admits the good items and answers a bad one with SubmitLease's error, in order", async () => {
    const watch = await tb.watchFromNow();
    const bad = immediate(QUARTER, HOUR);
    bad.resources = { cpuMillis: -5, memoryMib: 1024, diskGib: 0, gpus: 0 };
    const { results } = await tb.api.submitMany({
      requests: [
        { spec: immediate(QUARTER, HOUR, { name: "first" }) },
        { spec: bad },
        { spec: immediate(QUARTER, HOUR, { name: "third" }), requestId: "bad id!" },
        { spec: immediate(QUARTER, HOUR, { name: "fourth" }) },
      ],
    });
    expect(results.map((r) => r.result)).toEqual(["response", "error", "error", "response"]);
    const [first, second, third, fourth] = results;
    expect(first?.response?.lease?.state).toBe("LEASE_STATE_STARTING");
    expect(first?.response?.lease?.spec?.name).toBe("first");
    expect(first?.response?.explanation?.chosenHostId).toBe(first?.response?.lease?.hostId);
    expect(fourth?.response?.lease?.spec?.name).toBe("fourth");
    // The same status, message and field SubmitLease gives for the same request.
    const single = await rpcError(tb.api.submit({ spec: bad }));
    expect(second?.error).toMatchObject({
      code: status.INVALID_ARGUMENT,
      message: single.details,
      field: single.metadata.get("lb-field")[0],
    });
    expect(second?.error?.field).toMatch(/cpu_millis/);
    expect(third?.error?.code).toBe(status.INVALID_ARGUMENT);
    expect(third?.error?.field).toBe("request_id");

    // Exactly the two good leases exist, created in the order of the items.
    const all = await tb.api.listAll({});
    expect(all.map((l) => l.spec?.name).sort()).toEqual(["first", "fourth"]);
    await watch.waitFor((e) => e.lease?.spec?.name === "fourth", "fourth created");
    watch.close();
    const created = watch.events.filter((e) => e.type === "LEASE_EVENT_TYPE_CREATED");
    expect(created.map((e) => e.lease?.spec?.name)).toEqual(["first", "fourth"]);
  });

  it("answers no-fit with the explanation, and replays a repeated request id", async () => {
    const { results } = await tb.api.submitMany({
      requests: [
        { spec: immediate(FULL, HOUR), requestId: "r-1" },
        { spec: immediate(FULL, HOUR) },
        // Both hosts are now full.
        { spec: immediate(HALF, HOUR) },
        { spec: immediate(FULL, HOUR), requestId: "r-1" },
      ],
    });
    expect(results.map((r) => r.result)).toEqual(["response", "response", "error", "response"]);
    expect(results[2]?.error?.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(results[2]?.error?.explanation?.summary).not.toBe("");
    expect(results[3]?.response?.duplicate).toBe(true);
    expect(results[3]?.response?.lease?.id).toBe(results[0]?.response?.lease?.id);
    expect(await tb.api.listAll({})).toHaveLength(2);
  });

  it("dry-runs an item without persisting it", async () => {
    const { results } = await tb.api.submitMany({
      requests: [{ spec: immediate(HALF, HOUR), dryRun: true }],
    });
    expect(results[0]?.response?.lease?.id).toBe("");
    expect(await tb.api.listAll({})).toHaveLength(0);
  });

  it("answers a dry run among admitted items in its place, and counts each admission", async () => {
    const admissions: string[] = [];
    tb.broker.leases.observe({
      decision: () => {},
      admission: (outcome, reason) => admissions.push(`${outcome}/${reason}`),
    });
    const { results } = await tb.api.submitMany({
      requests: [
        { spec: immediate(QUARTER, HOUR, { name: "a" }) },
        { spec: immediate(QUARTER, HOUR, { name: "dry" }), dryRun: true },
        { spec: immediate({ memoryGib: 1000 }, HOUR, { name: "huge" }) },
        { spec: immediate(QUARTER, HOUR, { name: "b" }) },
      ],
    });
    expect(results.map((r) => r.result)).toEqual(["response", "response", "error", "response"]);
    expect(results.map((r) => r.response?.lease?.spec?.name ?? "")).toEqual(["a", "dry", "", "b"]);
    expect(results[1]?.response?.lease?.id).toBe("");
    expect(results[0]?.response?.lease?.id).not.toBe("");
    expect(results[3]?.response?.lease?.id).not.toBe("");
    expect(results[2]?.error?.code).toBe(status.INVALID_ARGUMENT);
    // The dry run is not an admission; the too-large item is rejected as invalid.
    expect(admissions).toEqual([
      "admitted/started",
      "rejected/invalid-argument",
      "admitted/started",
    ]);
    expect((await tb.api.listAll({})).map((l) => l.spec?.name).sort()).toEqual(["a", "b"]);
  });

  it("refuses more than the maximum items with INVALID_ARGUMENT, admitting none", async () => {
    const requests = Array.from({ length: MAX_SUBMIT_BATCH + 1 }, () => ({
      spec: immediate({ memoryGib: 0.01 }, HOUR),
    }));
    const error = await rpcError(tb.api.submitMany({ requests }));
    expect(error.code).toBe(status.INVALID_ARGUMENT);
    expect(error.metadata.get("lb-field")).toEqual(["requests"]);
    expect(await tb.api.listAll({})).toHaveLength(0);
    expect((await tb.api.submitMany({ requests: [] })).results).toEqual([]);
  });
});

describe("explanations under the cluster's policy", () => {
  it("weigh each score component as the broker's policy does, not the default policy", async () => {
    // fit 1 and fragmentation 3: normalised 0.25 / 0.75 (the default's 1 / 0.25 gives 0.8 / 0.2)
    const tb = await startBroker({
      policy: {
        ...DEFAULT_PLACEMENT_POLICY,
        weights: { ...DEFAULT_PLACEMENT_POLICY.weights, fit: 1, fragmentation: 3 },
      },
    });
    try {
      const weightsOf = (top: readonly { components: { scorer: string; weight: number }[] }[]) =>
        Object.fromEntries((top[0]?.components ?? []).map((c) => [c.scorer, c.weight]));
      const expected = { binpack: 0.25, fragmentation: 0.75 };
      const { results } = await tb.api.submitMany({
        requests: [{ spec: immediate(QUARTER, HOUR, { name: "weighed" }) }],
      });
      const item = results[0];
      expect(item?.result).toBe("response");
      expect(weightsOf(item?.response?.explanation?.top ?? [])).toEqual(expected);
      const submitted = await tb.api.submit({ spec: immediate(QUARTER, HOUR, { name: "one" }) });
      expect(weightsOf(submitted.explanation?.top ?? [])).toEqual(expected);
      const explained = await tb.api.explain({ spec: immediate(QUARTER, HOUR) });
      expect(weightsOf(explained.explanation?.top ?? [])).toEqual(expected);
    } finally {
      await tb.stop();
    }
  });
});
