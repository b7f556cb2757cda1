/**
 * A small QMP client over a unix socket: QEMU's JSON-lines protocol. On connect QEMU sends a
 * greeting; `qmp_capabilities` leaves negotiation mode; then each `execute` carries an id that
 * its answer echoes, and asynchronous events (`{"event": ...}`) arrive in between.
 *
 * Its timeouts are real time on purpose (not the Clock): they bound waits on a real process's
 * socket, which a virtual clock cannot speed up.
 */
import { createConnection, type Socket } from "node:net";
import { UnavailableError } from "../../../core/index.js";
import { DriverFailedError } from "../../driver.js";

/** The socket is gone (QEMU exited) or never answered. */
export class QmpDisconnectedError extends UnavailableError {}

/** QEMU answered a command with `{"error": {"class", "desc"}}`. */
export class QmpCommandError extends DriverFailedError {
  constructor(
    readonly command: string,
    readonly errorClass: string,
    readonly desc: string,
  ) {
    super(`QMP ${command}: ${desc} (${errorClass})`);
  }
}

export interface QmpEvent {
  readonly event: string;
  readonly data: Readonly<Record<string, unknown>>;
}

type Pending = {
  readonly command: string;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: Error) => void;
};

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export class QmpClient {
  readonly #socket: Socket;
  readonly #pending = new Map<number, Pending>();
  readonly #eventListeners = new Set<(event: QmpEvent) => void>();
  readonly #closeListeners = new Set<() => void>();
  #buffer = "";
  #nextId = 1;
  #closed = false;

  private constructor(socket: Socket) {
    this.#socket = socket;
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => this.#onData(chunk));
    socket.on("error", () => this.#onClose());
    socket.on("close", () => this.#onClose());
  }

  /** Connects, reads the greeting and negotiates capabilities; rejects within `timeoutMs`. */
  static async connect(path: string, timeoutMs = 5000): Promise<QmpClient> {
    const socket = await new Promise<Socket>((resolve, reject) => {
      const s = createConnection({ path });
      const timer = setTimeout(() => {
        s.destroy();
        reject(new QmpDisconnectedError(`QMP ${path}: no connection within ${timeoutMs} ms`));
      }, timeoutMs);
      s.once("connect", () => {
        clearTimeout(timer);
        resolve(s);
      });
      s.once("error", (error) => {
        clearTimeout(timer);
        reject(new QmpDisconnectedError(`QMP ${path}: ${error.message}`, { cause: error }));
      });
    });
    const client = new QmpClient(socket);
    try {
      await client.#greeting(timeoutMs);
      await client.execute("qmp_capabilities", undefined, timeoutMs);
    } catch (error) {
      client.close();
      throw error;
    }
    return client;
  }

  get closed(): boolean {
    return this.#closed;
  }

  onEvent(listener: (event: QmpEvent) => void): () => void {
    this.#eventListeners.add(listener);
    return () => this.#eventListeners.delete(listener);
  }

  /** Called once when the connection ends (QEMU quit or crashed, or `close()`). */
  onClose(listener: () => void): () => void {
    if (this.#closed) {
      listener();
      return () => {};
    }
    this.#closeListeners.add(listener);
    return () => this.#closeListeners.delete(listener);
  }

  /** Runs one command; resolves with its `return` value. */
  execute(
    command: string,
    args?: Readonly<Record<string, unknown>>,
    timeoutMs = 10_000,
  ): Promise<unknown> {
    if (this.#closed) {
      return Promise.reject(new QmpDisconnectedError(`QMP ${command}: the connection is closed`));
    }
    const id = this.#nextId++;
    const answer = this.#answer(id, command, timeoutMs);
    const message =
      args === undefined ? { execute: command, id } : { execute: command, arguments: args, id };
    this.#socket.write(`${JSON.stringify(message)}\n`);
    return answer;
  }

  close(): void {
    this.#socket.destroy();
    this.#onClose();
  }

  // The greeting is the first line: a pending entry with id 0 (ids of commands start at 1).
  #greeting(timeoutMs: number): Promise<unknown> {
    return this.#answer(0, "greeting", timeoutMs);
  }

  /** Resolves with the answer to `id`, or rejects after `timeoutMs`. */
  #answer(id: number, command: string, timeoutMs: number): Promise<unknown> {
    return new Promise<unknown>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new QmpDisconnectedError(`QMP ${command}: no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#pending.set(id, {
        command,
        resolve: (value) => {
          clearTimeout(timer);
          resolve(value);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      });
    });
  }

  #onData(chunk: string): void {
    this.#buffer += chunk;
    for (;;) {
      const newline = this.#buffer.indexOf("\n");
      if (newline < 0) break;
      const line = this.#buffer.slice(0, newline).trim();
      this.#buffer = this.#buffer.slice(newline + 1);
      if (line !== "") this.#onLine(line);
    }
  }

  #onLine(line: string): void {
    let message: unknown;
    try {
      message = JSON.parse(line);
    } catch {
      return; // Not ours to judge: QEMU only writes JSON here.
    }
    if (!isRecord(message)) return;
    if ("QMP" in message) {
      const greeting = this.#pending.get(0);
      this.#pending.delete(0);
      greeting?.resolve(message.QMP);
      return;
    }
    if (typeof message.event === "string") {
      const event: QmpEvent = {
        event: message.event,
        data: isRecord(message.data) ? message.data : {},
      };
      for (const listener of [...this.#eventListeners]) listener(event);
      return;
    }
    if (typeof message.id !== "number") return;
    const pending = this.#pending.get(message.id);
    if (pending === undefined) return;
    this.#pending.delete(message.id);
    if (isRecord(message.error)) {
      pending.reject(
        new QmpCommandError(
          pending.command,
          String(message.error.class ?? "GenericError"),
          String(message.error.desc ?? "unknown error"),
        ),
      );
      return;
    }
    pending.resolve(message.return);
  }

  #onClose(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const [id, pending] of this.#pending) {
      this.#pending.delete(id);
      pending.reject(new QmpDisconnectedError(`QMP ${pending.command}: the connection closed`));
    }
    for (const listener of [...this.#closeListeners]) listener();
    this.#closeListeners.clear();
    this.#eventListeners.clear();
  }
}
