import type { Long } from "@grpc/proto-loader";
import fc from "fast-check";
import protobuf from "protobufjs";
import { describe, expect, it } from "vitest";
import {
  type AgentEvent,
  agentCodecs,
  type Command,
  type CommandReply,
  createCodec,
  DEFAULT_MAX_BYTES,
  type Heartbeat,
  type Hello,
  type HelloReply,
  type MessageCodec,
  type MigrationProgress,
  ProtoDecodeError,
  ProtoEncodeError,
  protobufRoot,
  type Resources,
  type WorkloadEvent,
} from "./index.js";

// The "long" class protobufjs uses at run time, typed as @grpc/proto-loader's Long (the input type).
const LongClass = protobuf.util.Long as unknown as typeof Long;

// Fixtures are typed as the output shapes: the compiler makes sure every field is present, so a
// round trip that returns an equal object proves every field survives. Values are non-defaults.

const resources: Resources = {
  cpuMillis: 4000,
  memoryMib: 8192,
  diskGib: 100,
  gpus: 1,
  extended: { "example.com/fpga": 2, "example.com/nic-vf": 8 },
};
const ts = (seconds: number, nanos = 0) => ({ seconds, nanos });
const dur = (seconds: number, nanos = 0) => ({ seconds, nanos });
const driver = {
  image: "templates/ubuntu-24.04.qcow2",
  params: { machine: "q35", dirty_rate_bytes_per_s: "1048576" },
};

const hello: Hello = {
  hostId: "host-a1",
  capacity: resources,
  ratios: { cpu: 4, memory: 1.5, disk: 1, gpu: 1, extended: { "example.com/fpga": 1.25 } },
  reserved: { cpuMillis: 500, memoryMib: 1024, diskGib: 10, gpus: 0, extended: {} },
  labels: { zone: "z1", "example.com/rack": "r7" },
  driver: "qemu",
  agentVersion: "0.1.0",
  bootId: "boot-6f1c",
  workloads: [
    {
      leaseId: "lse_1",
      state: "WORKLOAD_STATE_RUNNING",
      resources,
      memoryUsedMib: 6000,
      startTime: ts(1_700_000_000, 5),
      endTime: ts(1_700_003_600),
      migrationId: "mig_9",
      details: { pid: "4242", qmp_socket: "/run/lb/lse_1.qmp" },
    },
    {
      leaseId: "lse_2",
      state: "WORKLOAD_STATE_SUSPENDED",
      resources: null,
      memoryUsedMib: 0,
      startTime: null,
      endTime: ts(1_800_000_000),
      migrationId: "",
      details: {},
    },
  ],
  address: "10.0.0.7",
  time: ts(1_700_000_100, 999_999_999),
  seenEpoch: 3,
};

const helloReply: HelloReply = {
  accepted: true,
  brokerEpoch: 4,
  heartbeatInterval: dur(2, 500_000_000),
  hostTtl: dur(15),
  message: "welcome",
  brokerTime: ts(1_700_000_101, 1),
};

const heartbeat: Heartbeat = {
  hostId: "host-a1",
  sequence: 2 ** 53 - 1,
  time: ts(1_700_000_102),
  usage: {
    cpuMillis: 1234,
    memoryMib: 5000,
    diskGib: 40,
    gpus: 1,
    extended: { "example.com/fpga": 1 },
  },
  leaseIds: ["lse_1", "lse_2"],
  bootId: "boot-6f1c",
  seenEpoch: 4,
};

const commandBase = {
  idempotencyKey: "cmd-000123",
  epoch: 4,
  hostId: "host-a1",
  deadline: ts(1_700_000_200),
} as const;

const commands: Record<NonNullable<Command["kind"]>, Command> = {
  start: {
    ...commandBase,
    kind: "start",
    start: { leaseId: "lse_1", resources, driver, endTime: ts(1_700_003_600), name: "web-1" },
  },
  stop: {
    ...commandBase,
    kind: "stop",
    stop: { leaseId: "lse_1", grace: dur(30), force: true, reason: "lease ended" },
  },
  prepareIncoming: {
    ...commandBase,
    kind: "prepareIncoming",
    prepareIncoming: {
      migrationId: "mig_9",
      leaseId: "lse_1",
      resources,
      driver,
      endTime: ts(1_700_003_600),
      postCopy: true,
    },
  },
  migrateOut: {
    ...commandBase,
    kind: "migrateOut",
    migrateOut: {
      migrationId: "mig_9",
      leaseId: "lse_1",
      destinationHostId: "host-b2",
      destinationAddress: "10.0.0.8",
      destinationPort: 49152,
      bandwidthLimitBytesPerS: 1_250_000_000,
      downtimeLimit: dur(0, 300_000_000),
      autoConverge: true,
      postCopy: true,
    },
  },
  abortMigration: {
    ...commandBase,
    kind: "abortMigration",
    abortMigration: { migrationId: "mig_9", leaseId: "lse_1", reason: "operator" },
  },
  suspend: { ...commandBase, kind: "suspend", suspend: { leaseId: "lse_1" } },
  resume: {
    ...commandBase,
    kind: "resume",
    resume: {
      leaseId: "lse_1",
      from: {
        address: "10.0.0.7",
        port: 40001,
        token: "a".repeat(64),
        sizeBytes: 123_456_789,
        sha256: "b".repeat(64),
      },
      workload: { leaseId: "lse_1", resources, driver, endTime: ts(1_700_003_600), name: "web-1" },
    },
  },
  exportSuspended: {
    ...commandBase,
    kind: "exportSuspended",
    exportSuspended: { leaseId: "lse_1" },
  },
};

const commandReply: CommandReply = {
  idempotencyKey: "cmd-000123",
  ok: false,
  error: "COMMAND_ERROR_STALE_EPOCH",
  errorMessage: "epoch 3 < 4",
  duplicate: true,
  incomingAddress: "10.0.0.8",
  incomingPort: 49152,
  suspendImage: null,
  seenEpoch: 4,
};

const workloadEvent: WorkloadEvent = {
  leaseId: "lse_1",
  state: "WORKLOAD_STATE_FAILED",
  message: "qemu exited",
  exit: { exitCode: -1, signal: "SIGKILL", forced: true, guestInitiated: false },
  migrationId: "mig_9",
};

const migrationProgress: MigrationProgress = {
  migrationId: "mig_9",
  leaseId: "lse_1",
  phase: "MIGRATION_STATE_COMPLETED",
  progress: {
    bytesTransferred: 9_000_000_000,
    bytesRemaining: 0,
    rounds: 5,
    dirtyRateBytesPerS: 50_000_000,
    bandwidthBytesPerS: 1_000_000_000,
    expectedDowntime: dur(0, 120_000_000),
    time: ts(1_700_000_300),
  },
  downtime: dur(0, 95_000_000),
  totalTime: dur(12, 345_000_000),
  error: "",
  postCopyUsed: true,
};

const agentEvents: Record<NonNullable<AgentEvent["kind"]>, AgentEvent> = {
  workload: {
    hostId: "host-a1",
    sequence: 17,
    time: ts(1_700_000_301),
    bootId: "boot-6f1c",
    kind: "workload",
    workload: workloadEvent,
  },
  migrationProgress: {
    hostId: "host-a1",
    sequence: 18,
    time: ts(1_700_000_302),
    bootId: "boot-6f1c",
    kind: "migrationProgress",
    migrationProgress,
  },
};

// Every codec with a fully populated example of each branch.
const examples: [string, MessageCodec<never, unknown>, unknown][] = [
  ["hello", agentCodecs.hello, hello],
  ["helloReply", agentCodecs.helloReply, helloReply],
  ["heartbeat", agentCodecs.heartbeat, heartbeat],
  ...Object.entries(commands).map(
    ([kind, command]): [string, MessageCodec<never, unknown>, unknown] => [
      `command.${kind}`,
      agentCodecs.command,
      command,
    ],
  ),
  ["commandReply", agentCodecs.commandReply, commandReply],
  ...Object.entries(agentEvents).map(
    ([kind, event]): [string, MessageCodec<never, unknown>, unknown] => [
      `agentEvent.${kind}`,
      agentCodecs.agentEvent,
      event,
    ],
  ),
];

function roundTrip<I, O>(codec: MessageCodec<I, O>, value: I): O {
  return codec.decode(codec.encode(value));
}

/** Runs fn and returns what it threw (or "no error"). */
function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  return "no error";
}

describe("agent codecs: round trips", () => {
  it("covers every member of the Command and AgentEvent oneofs", () => {
    const root = protobufRoot();
    expect(Object.keys(commands).sort()).toEqual(
      root.lookupType("leasebroker.v1.Command").oneofs.kind?.oneof.slice().sort(),
    );
    expect(Object.keys(agentEvents).sort()).toEqual(
      root.lookupType("leasebroker.v1.AgentEvent").oneofs.kind?.oneof.slice().sort(),
    );
  });

  it.each(examples)("%s survives encode -> decode unchanged", (_name, codec, value) => {
    const bytes = (codec as MessageCodec<unknown, unknown>).encode(value);
    expect(bytes).toBeInstanceOf(Uint8Array);
    expect(bytes.length).toBeGreaterThan(10);
    expect(codec.decode(bytes)).toEqual(value);
  });

  it("typed round trips narrow on the oneof name", () => {
    const decoded = roundTrip(agentCodecs.command, commands.migrateOut);
    expect(decoded.kind).toBe("migrateOut");
    expect(decoded.migrateOut?.destinationPort).toBe(49152);
    expect(decoded.start).toBeUndefined();
    const event = roundTrip(agentCodecs.agentEvent, agentEvents.workload);
    expect(event.kind === "workload" && event.workload?.exit?.signal).toBe("SIGKILL");
  });

  it("fills defaults for absent fields, like @grpc/proto-loader", () => {
    expect(roundTrip(agentCodecs.heartbeat, { hostId: "h1" })).toEqual({
      hostId: "h1",
      sequence: 0,
      time: null,
      usage: null,
      leaseIds: [],
      bootId: "",
      seenEpoch: 0,
    });
    const command = roundTrip(agentCodecs.command, { idempotencyKey: "k" });
    expect(command.kind).toBeUndefined();
    expect(command.deadline).toBeNull();
  });

  it("accepts the permissive input forms: enum numbers, 64-bit strings and Longs, undefined fields", () => {
    const decoded = roundTrip(agentCodecs.hello, {
      hostId: "h1",
      seenEpoch: "12345678901",
      workloads: [
        {
          leaseId: "l",
          state: 2,
          memoryUsedMib: LongClass.fromNumber(77, true),
        },
      ],
      address: undefined,
    });
    expect(decoded.seenEpoch).toBe(12_345_678_901);
    expect(decoded.workloads[0]?.state).toBe("WORKLOAD_STATE_RUNNING");
    expect(decoded.workloads[0]?.memoryUsedMib).toBe(77);
    expect(decoded.address).toBe("");
  });

  it("is the same wire format as another protobuf encoder (protobufjs static encode)", () => {
    const type = protobufRoot().lookupType("leasebroker.v1.Heartbeat");
    const bytes = type
      .encode(type.fromObject({ hostId: "h1", sequence: 9, leaseIds: ["a"] }))
      .finish();
    expect(agentCodecs.heartbeat.decode(bytes)).toMatchObject({
      hostId: "h1",
      sequence: 9,
      leaseIds: ["a"],
    });
    expect(
      Buffer.from(agentCodecs.heartbeat.encode({ hostId: "h1", sequence: 9, leaseIds: ["a"] })),
    ).toEqual(Buffer.from(bytes));
  });

  it("createCodec works for any message (e.g. stored leases)", () => {
    const codec = createCodec("leasebroker.v1.Lease");
    const lease = codec.decode(
      codec.encode({
        id: "lse_1",
        state: "LEASE_STATE_PENDING",
        spec: {
          tenant: "acme",
          flexible: { latestStart: { seconds: 1_700_000_000 }, duration: { seconds: 60 } },
        },
      }),
    );
    expect(lease.spec?.window).toBe("flexible");
    expect(lease.spec?.flexible?.earliestStart).toBeNull();
    expect(lease.state).toBe("LEASE_STATE_PENDING");
  });
});

describe("agent codecs: encode rejects invalid objects with ProtoEncodeError", () => {
  const cases: [string, () => unknown, RegExp][] = [
    [
      "unknown field",
      () => agentCodecs.heartbeat.encode({ hostId: "h", nope: 1 } as never),
      /nope: unknown field/,
    ],
    [
      "wrong scalar type",
      () => agentCodecs.heartbeat.encode({ hostId: 7 } as never),
      /hostId: string expected/,
    ],
    ["negative uint64", () => agentCodecs.heartbeat.encode({ sequence: -1 }), /sequence: unsigned/],
    ["int64 beyond 2^53", () => agentCodecs.heartbeat.encode({ sequence: 2 ** 60 }), /2\^53/],
    ["non-integer int64", () => agentCodecs.heartbeat.encode({ sequence: 1.5 }), /sequence/],
    [
      "uint32 out of range",
      () => agentCodecs.commandReply.encode({ incomingPort: 2 ** 32 }),
      /incomingPort: unsigned 32-bit/,
    ],
    [
      "unknown enum name",
      () => agentCodecs.commandReply.encode({ error: "COMMAND_ERROR_NOPE" as never }),
      /error: CommandError value expected/,
    ],
    [
      "unknown enum number",
      () => agentCodecs.commandReply.encode({ error: 99 as never }),
      /error: CommandError value expected/,
    ],
    [
      "two oneof members",
      () => agentCodecs.command.encode({ start: { leaseId: "a" }, stop: { leaseId: "b" } }),
      /kind: more than one member set \(start, stop\)/,
    ],
    [
      "oneof name disagrees",
      () => agentCodecs.command.encode({ kind: "stop", start: { leaseId: "a" } }),
      /kind: names stop, but start is set/,
    ],
    [
      "nested field path",
      () => agentCodecs.command.encode({ start: { resources: { cpuMillis: "x" as never } } }),
      /start\.resources\.cpuMillis/,
    ],
    [
      "map value type",
      () => agentCodecs.hello.encode({ labels: { zone: 1 as never } }),
      /labels\["zone"\]: string expected/,
    ],
    [
      "repeated not an array",
      () => agentCodecs.heartbeat.encode({ leaseIds: "a" as never }),
      /leaseIds: array expected/,
    ],
    [
      "null repeated element",
      () => agentCodecs.heartbeat.encode({ leaseIds: [null as never] }),
      /leaseIds\[0\]/,
    ],
    [
      "timestamp nanos out of range",
      () => agentCodecs.heartbeat.encode({ time: { seconds: 1, nanos: 1e9 } }),
      /time: timestamp nanos/,
    ],
    [
      "timestamp before year 1",
      () => agentCodecs.heartbeat.encode({ time: { seconds: -7e10 } }),
      /time: timestamp seconds/,
    ],
    [
      "duration signs differ",
      () => agentCodecs.helloReply.encode({ hostTtl: { seconds: 1, nanos: -1 } }),
      /hostTtl: duration seconds and nanos/,
    ],
    [
      "not an object",
      () => agentCodecs.heartbeat.encode("h1" as never),
      /object expected, got string/,
    ],
    [
      "too large",
      () =>
        createCodec("leasebroker.v1.Heartbeat", { maxBytes: 16 }).encode({
          hostId: "x".repeat(32),
        }),
      /too large/,
    ],
  ];

  it.each(cases)("%s", (_name, fn, message) => {
    const error = thrown(fn);
    expect(error).toBeInstanceOf(ProtoEncodeError);
    expect((error as Error).message).toMatch(message);
  });
});

describe("agent codecs: decode of bad bytes throws only ProtoDecodeError", () => {
  const codecs = Object.entries(agentCodecs) as [string, MessageCodec<never, unknown>][];

  it("every proper prefix of a message either decodes or throws ProtoDecodeError, and cuts inside a field throw", () => {
    for (const [, codec, value] of examples) {
      const bytes = (codec as MessageCodec<unknown, unknown>).encode(value);
      let failures = 0;
      for (let n = 0; n < bytes.length; n++) {
        const error = thrown(() => codec.decode(bytes.subarray(0, n)));
        if (error !== "no error") {
          expect(error).toBeInstanceOf(ProtoDecodeError);
          failures++;
        }
      }
      expect(failures).toBeGreaterThan(0);
    }
    // A cut in the middle of the first string field ("host-a1"): length prefix 7, 3 bytes present.
    const error = thrown(() =>
      agentCodecs.heartbeat.decode(agentCodecs.heartbeat.encode(heartbeat).subarray(0, 5)),
    );
    expect(error).toBeInstanceOf(ProtoDecodeError);
    expect((error as ProtoDecodeError).cause).toBeInstanceOf(Error);
    expect((error as ProtoDecodeError).typeName).toBe("leasebroker.v1.Heartbeat");
  });

  it("random bytes either decode or throw ProtoDecodeError, for every agent codec", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...codecs),
        fc.uint8Array({ maxLength: 300 }),
        ([, codec], bytes) => {
          const error = thrown(() => codec.decode(bytes));
          return error === "no error" || error instanceof ProtoDecodeError;
        },
      ),
      { numRuns: 3000 },
    );
  });

  it("random mutations of valid messages either decode or throw ProtoDecodeError", () => {
    const encoded = examples.map(([, codec, value]) => ({
      codec,
      bytes: (codec as MessageCodec<unknown, unknown>).encode(value),
    }));
    fc.assert(
      fc.property(
        fc.constantFrom(...encoded),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), {
          minLength: 1,
          maxLength: 4,
        }),
        ({ codec, bytes }, edits) => {
          const copy = Uint8Array.from(bytes);
          for (const [index, byte] of edits) copy[index % copy.length] = byte;
          const error = thrown(() => codec.decode(copy));
          return error === "no error" || error instanceof ProtoDecodeError;
        },
      ),
      { numRuns: 3000 },
    );
  });

  it("rejects messages over maxBytes before decoding", () => {
    const big = new Uint8Array(DEFAULT_MAX_BYTES + 1);
    const error = thrown(() => agentCodecs.heartbeat.decode(big));
    expect(error).toBeInstanceOf(ProtoDecodeError);
    expect((error as Error).message).toMatch(/message too large/);
    const small = createCodec("leasebroker.v1.Heartbeat", { maxBytes: 8 });
    expect(thrown(() => small.decode(agentCodecs.heartbeat.encode(heartbeat)))).toBeInstanceOf(
      ProtoDecodeError,
    );
  });

  it("rejects non-bytes input", () => {
    expect(thrown(() => agentCodecs.hello.decode("abc" as never))).toBeInstanceOf(ProtoDecodeError);
    expect(thrown(() => agentCodecs.hello.decode(null as never))).toBeInstanceOf(ProtoDecodeError);
  });

  it("rejects 64-bit values beyond 2^53 and two members of one oneof", () => {
    const Heartbeat = protobufRoot().lookupType("leasebroker.v1.Heartbeat");
    const huge = Heartbeat.encode(Heartbeat.fromObject({ sequence: "18014398509481984" })).finish();
    expect((thrown(() => agentCodecs.heartbeat.decode(huge)) as Error).message).toMatch(
      /sequence: 64-bit value beyond 2\^53/,
    );

    const writer = protobuf.Writer.create();
    writer
      .uint32((5 << 3) | 2)
      .fork()
      .uint32((1 << 3) | 2)
      .string("a")
      .ldelim(); // start
    writer
      .uint32((6 << 3) | 2)
      .fork()
      .uint32((1 << 3) | 2)
      .string("b")
      .ldelim(); // stop
    const error = thrown(() => agentCodecs.command.decode(writer.finish()));
    expect(error).toBeInstanceOf(ProtoDecodeError);
    expect((error as Error).message).toMatch(/kind: more than one member/);
  });

  it("decodes an enum number it does not know (a newer peer) as UNSPECIFIED", () => {
    const WorkloadEvent = protobufRoot().lookupType("leasebroker.v1.WorkloadEvent");
    const AgentEvent = protobufRoot().lookupType("leasebroker.v1.AgentEvent");
    const bytes = AgentEvent.encode(
      AgentEvent.create({
        hostId: "h",
        workload: WorkloadEvent.create({ leaseId: "l", state: 99 }),
      }),
    ).finish();
    const decoded = agentCodecs.agentEvent.decode(bytes);
    expect(decoded.workload?.state).toBe("WORKLOAD_STATE_UNSPECIFIED");
    expect(decoded.workload?.leaseId).toBe("l");
  });

  it("rejects Timestamps out of range", () => {
    const Heartbeat = protobufRoot().lookupType("leasebroker.v1.Heartbeat");
    const bytes = Heartbeat.encode(
      Heartbeat.fromObject({ time: { seconds: 1, nanos: 2_000_000_000 } }),
    ).finish();
    expect((thrown(() => agentCodecs.heartbeat.decode(bytes)) as Error).message).toMatch(
      /time: timestamp nanos/,
    );
  });
});
