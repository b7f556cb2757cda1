/**
 * A gRPC client built at run time from .proto files alone (@grpc/proto-loader + @grpc/grpc-js),
 * with no generated code and nothing of the project: what any third-party client has. Messages
 * are plain objects; `pick` reads a field path out of one without trusting its shape.
 */
import {
  type CallOptions,
  Client,
  type ClientDuplexStream,
  type ClientReadableStream,
  credentials,
  Metadata,
  type ServiceError,
} from "@grpc/grpc-js";
import type {
  AnyDefinition,
  MethodDefinition,
  PackageDefinition,
  ServiceDefinition,
} from "@grpc/proto-loader";

function isServiceDefinition(definition: AnyDefinition): definition is ServiceDefinition {
  return !("format" in definition);
}

/** The service `name` (fully qualified) of a loaded package definition. */
export function serviceDefinition(definition: PackageDefinition, name: string): ServiceDefinition {
  const found = definition[name];
  if (found === undefined || !isServiceDefinition(found)) {
    throw new Error(`${name} is not a service of the loaded .proto files`);
  }
  return found;
}

export class DynamicClient {
  readonly #client: Client;
  readonly #service: ServiceDefinition;

  constructor(address: string, service: ServiceDefinition) {
    this.#client = new Client(address, credentials.createInsecure());
    this.#service = service;
  }

  #method(name: string): MethodDefinition<object, object> {
    const method = this.#service[name];
    if (method === undefined) throw new Error(`no method ${name}`);
    return method;
  }

  unary(name: string, request: object, options: CallOptions = {}): Promise<object> {
    const m = this.#method(name);
    return new Promise<object>((resolve, reject) => {
      this.#client.makeUnaryRequest(
        m.path,
        m.requestSerialize,
        m.responseDeserialize,
        request,
        new Metadata(),
        options,
        (error, response) => {
          if (error !== null) reject(error);
          else if (response === undefined) reject(new Error("empty response"));
          else resolve(response);
        },
      );
    });
  }

  serverStream(name: string, request: object): ClientReadableStream<object> {
    const m = this.#method(name);
    return this.#client.makeServerStreamRequest(
      m.path,
      m.requestSerialize,
      m.responseDeserialize,
      request,
    );
  }

  bidiStream(name: string): ClientDuplexStream<object, object> {
    const m = this.#method(name);
    return this.#client.makeBidiStreamRequest(m.path, m.requestSerialize, m.responseDeserialize);
  }

  close(): void {
    this.#client.close();
  }
}

/** The value at `path` inside `value` (objects and arrays), or undefined. */
export function pick(value: unknown, ...path: (string | number)[]): unknown {
  let current: unknown = value;
  for (const step of path) {
    if (typeof current !== "object" || current === null) return undefined;
    current = (current as Record<string | number, unknown>)[step];
  }
  return current;
}

/** `pick`, for a value that must be a string. */
export function pickString(value: unknown, ...path: (string | number)[]): string {
  const found = pick(value, ...path);
  if (typeof found !== "string") {
    throw new Error(`${path.join(".")} is not a string: ${JSON.stringify(found)}`);
  }
  return found;
}

/** `pick`, for a value that must be an array. */
export function pickArray(value: unknown, ...path: (string | number)[]): unknown[] {
  const found = pick(value, ...path);
  if (!Array.isArray(found)) {
    throw new Error(`${path.join(".")} is not an array: ${JSON.stringify(found)}`);
  }
  return found;
}

function isServiceError(error: unknown): error is ServiceError {
  return (
    error instanceof Error &&
    "code" in error &&
    typeof error.code === "number" &&
    "metadata" in error &&
    error.metadata instanceof Metadata
  );
}

/** Awaits a call that must fail, and returns its error. */
export async function failure(call: Promise<unknown>): Promise<ServiceError> {
  let result: unknown;
  try {
    result = await call;
  } catch (error) {
    if (!isServiceError(error)) throw error;
    return error;
  }
  throw new Error(`expected the call to fail, it returned ${JSON.stringify(result)}`);
}

/** Collects the messages of a stream until `done` says enough, or the stream ends. */
export function collect(
  stream: ClientReadableStream<object> | ClientDuplexStream<object, object>,
  done: (messages: readonly object[]) => boolean,
): Promise<object[]> {
  return new Promise<object[]>((resolve, reject) => {
    const messages: object[] = [];
    stream.on("data", (message: object) => {
      messages.push(message);
      if (done(messages)) resolve(messages);
    });
    stream.on("error", (error: Error) => reject(error));
    stream.on("end", () =>
      done(messages) ? resolve(messages) : reject(new Error("the stream ended early")),
    );
  });
}
