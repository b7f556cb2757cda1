/**
 * What leasectl needs from its process, passed in so that tests run the CLI in-process: two
 * writable streams, the environment, a clock and an abort signal (Ctrl-C).
 */

/** Anything with `write(string)`: process.stdout, or a test's collector. */
export interface TextSink {
  write(chunk: string): unknown;
}

export interface CliIo {
  readonly stdout: TextSink;
  readonly stderr: TextSink;
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Epoch milliseconds now; default Date.now. Used for relative times (`+30m`, "in 5m"). */
  readonly now?: () => number;
  /** Aborted on Ctrl-C: a watch ends cleanly, a pending call is cancelled. */
  readonly signal?: AbortSignal;
}

/** Line-oriented writers over the two sinks. */
export class Output {
  readonly #io: CliIo;
  constructor(io: CliIo) {
    this.#io = io;
  }
  /** Writes lines (each gets a newline) to stdout. */
  out(...lines: readonly string[]): void {
    for (const line of lines) this.#io.stdout.write(`${line}\n`);
  }
  /** Writes lines to stderr. */
  err(...lines: readonly string[]): void {
    for (const line of lines) this.#io.stderr.write(`${line}\n`);
  }
}

/** Resolves after `ms`, or at once when `signal` aborts. */
export function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted === true) {
      resolve();
      return;
    }
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}
