import { describe, expect, it } from "vitest";
import {
  durationFromMs,
  LEASE_BROKER_SERVICE_NAME,
  type LeaseSpecInput,
  loadLeaseBrokerPackageDefinition,
  protobufRoot,
} from "../../proto/index.js";
import {
  decodeLeaseEvent,
  encodeSubmitLeaseRequest,
  encodeSubmitLeasesRequest,
  leaseStates,
} from "./lean-client.js";

const spec = (name: string, cpuMillis: number): LeaseSpecInput => ({
  name,
  tenant: "bench",
  resources: { cpuMillis, memoryMib: 1024, diskGib: 0, gpus: 0 },
  immediate: { duration: durationFromMs(3_600_000) },
  driver: { image: "bench", params: { boot_ms: "10" } },
});

describe("the lean client's encoding", () => {
  it("frames encoded SubmitLeaseRequests into the bytes of the whole SubmitLeasesRequest", () => {
    const specs = [spec("vm-0", 1000), spec("vm-1", 2000), spec("vm-2", 62)];
    const method = loadLeaseBrokerPackageDefinition()[LEASE_BROKER_SERVICE_NAME] as Record<
      string,
      { requestSerialize: (value: object) => Buffer }
    >;
    const whole = method.SubmitLeases?.requestSerialize({
      requests: specs.map((s) => ({ spec: s })),
    });
    const framed = encodeSubmitLeasesRequest(specs.map(encodeSubmitLeaseRequest));
    expect(whole).toBeDefined();
    expect(Buffer.compare(framed, whole as Buffer)).toBe(0);
  });

  it("reads an event's lease id, state and time stamp", () => {
    const type = protobufRoot().lookupType("leasebroker.v1.LeaseEvent");
    const ms = 1_795_000_123_456;
    const bytes = type
      .encode(
        type.fromObject({
          lease: { id: "lease-1", state: "LEASE_STATE_ACTIVE" },
          time: { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1e6 },
        }),
      )
      .finish();
    expect(decodeLeaseEvent(Buffer.from(bytes))).toEqual({
      leaseId: "lease-1",
      state: leaseStates.LEASE_STATE_ACTIVE,
      timeMs: ms,
    });
  });
});
