/**
 * A reference autoscaler: a webhook receiver for leasebroker's autoscale signals that adds hosts on
 * ScaleOut and releases them after ScaleIn. How hosts are started and stopped is a `HostLauncher`
 * (main.ts starts `leasebroker-agent` processes with the sim driver; the tests start in-process
 * agents). Self-contained on purpose (node: modules only): copy it and replace the launcher with
 * your cloud's or provisioning system's API.
 *
 * What a receiver must do, and this one does:
 * - verify `X-Leasebroker-Signature` (HMAC-SHA256 of `<timestamp>.<body>` with the shared secret)
 *   and refuse a timestamp older than the tolerance (replays);
 * - act on the latest signal only (highest epoch, then sequence): retries and old signals are
 *   acknowledged and ignored;
 * - answer quickly (202) and act afterwards: the broker times a request out and retries it;
 * - on ScaleIn, release only hosts it started itself, and only those the broker lists (they are
 *   already drained and cordoned).
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface Capacity {
  readonly cpuMillis: number;
  readonly memoryMib: number;
  readonly diskGib: number;
  readonly gpus: number;
}

/** One entry of a ScaleOut's `hosts`. */
export interface ShapeRequest {
  readonly shape: string;
  /** What a host of the shape announces. */
  readonly capacity: Capacity;
  readonly labels: Readonly<Record<string, string>>;
  readonly count: number;
}

export interface HostLauncher {
  start(hostId: string, shape: ShapeRequest): Promise<void>;
  stop(hostId: string): Promise<void>;
}

export interface AutoscalerOptions {
  readonly secret: string;
  readonly launcher: HostLauncher;
  /** New hosts are `<prefix>-1`, `<prefix>-2`, … Default "auto". */
  readonly hostPrefix?: string;
  /** The receiver's clock, epoch ms (signature timestamps are checked against it). */
  readonly now?: () => number;
  /** Largest age of a signature timestamp. Default 5 min. */
  readonly toleranceMs?: number;
  readonly log?: (line: string) => void;
}

interface SignalBody {
  readonly epoch: number;
  readonly sequence: number;
  readonly kind: string;
  readonly scaleOut?: { readonly hosts: readonly ShapeRequest[] };
  readonly scaleIn?: { readonly candidateHostIds: readonly string[] };
}

const MAX_BODY = 1024 * 1024;

export function verify(
  secret: string,
  body: string,
  timestamp: string | undefined,
  signature: string | undefined,
  nowMs: number,
  toleranceMs: number,
): boolean {
  if (timestamp === undefined || signature === undefined || !/^\d{1,15}$/.test(timestamp)) {
    return false;
  }
  if (Math.abs(nowMs - Number(timestamp) * 1000) > toleranceMs) return false;
  const mac = createHmac("sha256", secret).update(`${timestamp}.${body}`).digest("hex");
  const expected = Buffer.from(`sha256=${mac}`);
  const given = Buffer.from(signature);
  return expected.length === given.length && timingSafeEqual(expected, given);
}

function isSignal(value: unknown): value is SignalBody {
  if (typeof value !== "object" || value === null) return false;
  const v = value as Record<string, unknown>;
  return (
    typeof v.epoch === "number" && typeof v.sequence === "number" && typeof v.kind === "string"
  );
}

export class ReferenceAutoscaler {
  /** Hosts this autoscaler started and has not released. */
  readonly owned = new Set<string>();
  readonly counts = { accepted: 0, refused: 0, stale: 0 };
  readonly #o: AutoscalerOptions;
  readonly #server: Server;
  #latest: { epoch: number; sequence: number } = { epoch: -1, sequence: -1 };
  #next = 1;
  #work: Promise<void> = Promise.resolve();

  constructor(options: AutoscalerOptions) {
    this.#o = options;
    this.#server = createServer((req, res) => {
      this.#handle(req, res).catch((error: unknown) => {
        this.#log(`request failed: ${String(error)}`);
        if (!res.headersSent) res.writeHead(500).end();
      });
    });
  }

  /** Listens on `host:port` (0: a free port); resolves with the webhook URL. */
  async listen(port = 0, host = "127.0.0.1"): Promise<string> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once("error", reject);
      this.#server.listen(port, host, () => resolve());
    });
    const address = this.#server.address() as AddressInfo;
    return `http://${host}:${address.port}/autoscale`;
  }

  /** Resolves once every action taken so far has finished. */
  settled(): Promise<void> {
    return this.#work;
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
    this.#server.closeAllConnections();
    await this.#work;
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method !== "POST") {
      res.writeHead(405).end();
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req) {
      size += (chunk as Buffer).length;
      if (size > MAX_BODY) {
        res.writeHead(413).end();
        return;
      }
      chunks.push(chunk as Buffer);
    }
    const body = Buffer.concat(chunks).toString("utf8");
    const header = (name: string): string | undefined => {
      const v = req.headers[name];
      return Array.isArray(v) ? v[0] : v;
    };
    const ok = verify(
      this.#o.secret,
      body,
      header("x-leasebroker-timestamp"),
      header("x-leasebroker-signature"),
      (this.#o.now ?? Date.now)(),
      this.#o.toleranceMs ?? 5 * 60_000,
    );
    if (!ok) {
      this.counts.refused++;
      res.writeHead(401).end("bad signature");
      return;
    }
    let signal: unknown;
    try {
      signal = JSON.parse(body);
    } catch {
      signal = undefined;
    }
    if (!isSignal(signal)) {
      res.writeHead(400).end("not a signal");
      return;
    }
    const latest = this.#latest;
    if (
      signal.epoch < latest.epoch ||
      (signal.epoch === latest.epoch && signal.sequence <= latest.sequence)
    ) {
      this.counts.stale++;
      res.writeHead(200).end("stale");
      return;
    }
    this.#latest = { epoch: signal.epoch, sequence: signal.sequence };
    this.counts.accepted++;
    res.writeHead(202).end();
    this.#work = this.#work.then(() => this.#act(signal));
  }

  async #act(signal: SignalBody): Promise<void> {
    if (signal.kind === "scale-out" && signal.scaleOut !== undefined) {
      for (const shape of signal.scaleOut.hosts) {
        for (let i = 0; i < shape.count; i++) {
          const hostId = `${this.#o.hostPrefix ?? "auto"}-${this.#next++}`;
          this.#log(`starting ${hostId} (${shape.shape})`);
          await this.#o.launcher.start(hostId, shape);
          this.owned.add(hostId);
        }
      }
    } else if (signal.kind === "scale-in" && signal.scaleIn !== undefined) {
      for (const hostId of signal.scaleIn.candidateHostIds) {
        if (!this.owned.has(hostId)) continue;
        this.#log(`releasing ${hostId}`);
        await this.#o.launcher.stop(hostId);
        this.owned.delete(hostId);
      }
    }
  }

  #log(line: string): void {
    this.#o.log?.(line);
  }
}
