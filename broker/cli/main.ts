#!/usr/bin/env node
/**
 * The leasectl bin. Ctrl-C ends a watch cleanly (exit 0) and cancels a pending call (exit 130); a
 * second Ctrl-C exits at once. A closed pipe on stdout ends it quietly.
 */
import { runCli } from "./cli.js";

const controller = new AbortController();
process.on("SIGINT", () => {
  if (controller.signal.aborted) process.exit(130);
  controller.abort();
});

// Output piped into a reader that stopped (`leasectl watch | head`): stop quietly.
for (const stream of [process.stdout, process.stderr]) {
  stream.on("error", (error: NodeJS.ErrnoException) => {
    if (error.code !== "EPIPE") throw error;
    controller.abort();
    process.exit(process.exitCode ?? 0);
  });
}

const code = await runCli(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
  signal: controller.signal,
});
process.exitCode = code;
