/** Lease specs for tests (here and in test/): the smallest valid spec, with what a test varies. */
import type { Resources } from "../../placement/index.js";
import type { Lease, LeaseSpec, OnHostFailure, WindowSpec } from "./model.js";

export interface TestSpecOptions {
  readonly name?: string;
  readonly tenant?: string;
  /** Replaces the defaults' fields it names (the memory is `memoryGib`'s unless given here). */
  readonly resources?: Partial<Resources>;
  readonly window?: WindowSpec;
  readonly onHostFailure?: OnHostFailure;
  readonly allowQueue?: boolean;
  readonly liveMigratable?: boolean;
}

/** 1 CPU, `memoryGib` GiB, 1 GiB disk; immediate for an hour unless a window is given. */
export function testLeaseSpec(memoryGib: number, options: TestSpecOptions = {}): LeaseSpec {
  return {
    name: options.name ?? "vm",
    tenant: options.tenant ?? "t",
    labels: {},
    resources: {
      cpuMillis: 1000,
      memoryMib: memoryGib * 1024,
      diskGib: 1,
      gpus: 0,
      ...options.resources,
    },
    window: options.window ?? { kind: "immediate", durationMs: 3_600_000 },
    priority: 0,
    preemptible: false,
    constraints: [],
    migration: {
      liveMigratable: options.liveMigratable ?? false,
      maxDowntimeMs: 0,
      allowSuspend: false,
      allowAutoConverge: false,
      allowPostCopy: false,
    },
    onHostFailure: options.onHostFailure ?? "fail",
    allowQueue: options.allowQueue ?? false,
    driver: { image: "", params: {} },
  };
}

/** A PENDING lease (in the queue since `createdAt`) with `spec`. */
export function testPendingLease(id: string, spec: LeaseSpec, createdAt: number): Lease {
  return {
    id,
    spec,
    state: "PENDING",
    hostId: "",
    start: 0,
    end: 0,
    requestId: "",
    createdAt,
    updatedAt: createdAt,
    statusMessage: "",
    history: [],
    warned: false,
    lastEvent: "CREATED",
  };
}
