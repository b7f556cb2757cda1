/**
 * Live updates for the page: Server-Sent Events, coalesced. Any number of changes (lease events,
 * host state changes, migrations, signals) between two pushes cost one push: a `Throttle` runs its
 * job at most once per interval, on the Clock, so tests drive it with a VirtualClock.
 */
import type { ServerResponse } from "node:http";
import type { Clock, Timer } from "../../core/index.js";

/** Runs `job` after a `poke`, at most once per `intervalMs`; pokes in between coalesce. */
export class Throttle {
  readonly #clock: Clock;
  readonly #intervalMs: number;
  readonly #job: () => void;
  #timer: Timer | undefined;
  #last = Number.NEGATIVE_INFINITY;
  #stopped = false;

  constructor(clock: Clock, intervalMs: number, job: () => void) {
    this.#clock = clock;
    this.#intervalMs = intervalMs;
    this.#job = job;
  }

  poke(): void {
    if (this.#stopped || this.#timer !== undefined) return;
    const delay = Math.max(0, this.#last + this.#intervalMs - this.#clock.now());
    this.#timer = this.#clock.setTimer(delay, () => {
      this.#timer = undefined;
      this.#last = this.#clock.now();
      this.#job();
    });
  }

  stop(): void {
    this.#stopped = true;
    this.#timer?.cancel();
    this.#timer = undefined;
  }
}

/** A client that fell this far behind (bytes queued in its socket) is dropped: it can reconnect. */
const MAX_BUFFERED = 8 * 1024 * 1024;

/** The open event streams; each event is serialised once for every client. */
export class EventStreams {
  readonly #clients = new Set<ServerResponse>();

  get size(): number {
    return this.#clients.size;
  }

  /** Turns `res` into an event stream; `first` are the events it gets before any broadcast. */
  open(res: ServerResponse, first: readonly { event: string; data: unknown }[]): void {
    res.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache, no-transform",
      connection: "keep-alive",
      // Proxies (nginx) must not buffer the stream.
      "x-accel-buffering": "no",
    });
    // The browser reconnects after 2 s when the stream drops.
    res.write("retry: 2000\n\n");
    for (const e of first) res.write(frame(e.event, e.data));
    this.#clients.add(res);
    res.on("close", () => this.#clients.delete(res));
  }

  broadcast(event: string, data: unknown): void {
    if (this.#clients.size === 0) return;
    const text = frame(event, data);
    for (const res of this.#clients) {
      if (res.writableLength > MAX_BUFFERED) {
        this.#clients.delete(res);
        res.destroy();
        continue;
      }
      res.write(text);
    }
  }

  /** A comment line: keeps idle connections open through proxies. */
  ping(): void {
    for (const res of this.#clients) res.write(": ping\n\n");
  }

  closeAll(): void {
    for (const res of this.#clients) res.end();
    this.#clients.clear();
  }
}

export function frame(event: string, data: unknown): string {
  // JSON has no raw newlines, so one `data:` line carries it.
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}
