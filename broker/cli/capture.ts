/**
 * Runs leasectl in-process and captures what it prints (for tests, here and in test/).
 */

import { runCli } from "./cli.js";
import type { CliIo } from "./io.js";

export interface CapturedRun {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export interface CaptureOptions {
  readonly env?: Readonly<Record<string, string | undefined>>;
  readonly now?: number;
  readonly signal?: AbortSignal;
  /** Called with each chunk written to stdout (e.g. to stop a watch after some events). */
  readonly onStdout?: (chunk: string, all: string) => void;
}

/** `runCli` with string sinks: the exit code and everything written to stdout and stderr. */
export async function runCliCaptured(
  argv: readonly string[],
  options: CaptureOptions = {},
): Promise<CapturedRun> {
  let stdout = "";
  let stderr = "";
  const io: CliIo = {
    stdout: {
      write(chunk: string) {
        stdout += chunk;
        options.onStdout?.(chunk, stdout);
        return true;
      },
    },
    stderr: {
      write(chunk: string) {
        stderr += chunk;
        return true;
      },
    },
    env: options.env ?? {},
    ...(options.now === undefined ? {} : { now: () => options.now ?? 0 }),
    ...(options.signal === undefined ? {} : { signal: options.signal }),
  };
  const code = await runCli(argv, io);
  return { code, stdout, stderr };
}
