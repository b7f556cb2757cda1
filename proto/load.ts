/**
 * Where the .proto files are and how they are loaded. @grpc/proto-loader (the gRPC API) and the
 * protobufjs codec (agent messages, stored values) use the same files and the same conversion
 * options, and scripts/gen-proto.mjs generates the types with the same options: the generated
 * `__Output` types describe what both produce at run time.
 */
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import type { LeaseBrokerGrpcType } from "./gen/aliases.js";

/** The .proto files of the contract, relative to PROTO_ROOT (the import paths they use). */
export const PROTO_FILES: readonly string[] = Object.freeze([
  "leasebroker/v1/agent.proto",
  "leasebroker/v1/autoscale.proto",
  "leasebroker/v1/broker.proto",
  "leasebroker/v1/capacity.proto",
  "leasebroker/v1/host.proto",
  "leasebroker/v1/lease.proto",
  "leasebroker/v1/migration.proto",
  "leasebroker/v1/placement.proto",
  "leasebroker/v1/resources.proto",
  "leasebroker/v1/store.proto",
]);

/** The protobuf package of the contract. */
export const PROTO_PACKAGE = "leasebroker.v1";
/** Full name of the gRPC service (for health checks and reflection). */
export const LEASE_BROKER_SERVICE_NAME = "leasebroker.v1.LeaseBroker";

function findProtoRoot(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  // Source layout: proto/load.ts beside proto/leasebroker/. Built layout: dist/proto/load.js, with
  // the .proto files still in the repository's proto/ (two levels up, then proto/).
  const candidates = [here, path.resolve(here, "..", "..", "proto")];
  for (const dir of candidates) {
    if (fs.existsSync(path.join(dir, "leasebroker", "v1", "broker.proto"))) return dir;
  }
  throw new Error(
    `leasebroker .proto files not found (looked for leasebroker/v1/broker.proto in ${candidates.join(", ")})`,
  );
}

/** Absolute path of the directory the .proto imports are relative to (the include directory). */
export const PROTO_ROOT: string = findProtoRoot();

/** Absolute paths of PROTO_FILES. */
export function protoFilePaths(): string[] {
  return PROTO_FILES.map((file) => path.join(PROTO_ROOT, file));
}

/**
 * How messages become JavaScript objects (protobufjs `IConversionOptions`): 64-bit integers as
 * numbers (all ours stay below 2^53), enums as their string names, defaults for absent fields
 * (absent messages are null, repeated fields [], maps {}), and a property naming the set member of
 * each oneof. Field names are lowerCamelCase (keepCase false).
 */
export const CONVERSION_OPTIONS = Object.freeze({
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
});

/**
 * @grpc/proto-loader options. The google.protobuf well-known types (timestamp, duration) are
 * bundled with protobufjs, so PROTO_ROOT is the only include directory.
 */
export const LOADER_OPTIONS: protoLoader.Options = Object.freeze({
  keepCase: false,
  ...CONVERSION_OPTIONS,
  includeDirs: [PROTO_ROOT],
});

let packageDefinition: protoLoader.PackageDefinition | undefined;

/**
 * The PackageDefinition of all the .proto files (loaded once, then cached). It feeds
 * grpc.loadPackageDefinition, @grpc/reflection and grpc-health-check.
 */
export function loadLeaseBrokerPackageDefinition(): protoLoader.PackageDefinition {
  packageDefinition ??= protoLoader.loadSync(protoFilePaths(), LOADER_OPTIONS);
  return packageDefinition;
}

/**
 * The grpc-js package object, typed: `loadLeaseBrokerPackage().leasebroker.v1.LeaseBroker` is the
 * client constructor, and its `.service` the service definition for `server.addService`.
 */
export function loadLeaseBrokerPackage(): LeaseBrokerGrpcType {
  // The generated ProtoGrpcType describes exactly this object; grpc-js only knows it as GrpcObject.
  return grpc.loadPackageDefinition(
    loadLeaseBrokerPackageDefinition(),
  ) as unknown as LeaseBrokerGrpcType;
}
