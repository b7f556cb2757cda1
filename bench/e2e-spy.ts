/**
 * bench:e2e's NATS spy (`--spy`): a process of its own, subscribed to every host's start commands
 * and events, noting when nats-server delivered each lease's start command and its RUNNING event
 * (epoch ms, this machine's clock). Against the broker's and the agent host's own stamps this
 * splits the two NATS hops: broker → NATS → agent, and agent → NATS → broker. Diagnostic only: it
 * adds a second delivery of those messages to nats-server's work, and its own scheduling delay
 * to what it notes. Prints `E2E-SPY-READY` once subscribed; `stats <file>` on stdin writes the
 * times to <file> and prints `E2E-SPY-STATS`.
 *
 *   node dist/bench/e2e-spy.js nats://127.0.0.1:4222
 */
import { writeFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { createInterface } from "node:readline";
import { HOST_SUBJECT_PREFIX, NatsBus } from "../bus/index.js";
import { errorMessage } from "../core/index.js";
import { agentCodecs } from "../proto/index.js";

async function main(): Promise<void> {
  const url = process.argv[2];
  if (url === undefined || url === "") {
    process.stderr.write("e2e-spy: the NATS URL is required\n");
    process.exit(2);
  }
  const bus = await NatsBus.connect({ servers: url, name: "e2e-spy" });
  const command = new Map<string, number>();
  const running = new Map<string, number>();
  const now = (): number => performance.timeOrigin + performance.now();
  bus.subscribe(`${HOST_SUBJECT_PREFIX}.*.cmd`, (message) => {
    const at = now();
    const leaseId = agentCodecs.command.decode(message.data).start?.leaseId;
    if (leaseId !== undefined && !command.has(leaseId)) command.set(leaseId, at);
  });
  bus.subscribe(`${HOST_SUBJECT_PREFIX}.*.event`, (message) => {
    const at = now();
    const workload = agentCodecs.agentEvent.decode(message.data).workload;
    if (workload?.state === "WORKLOAD_STATE_RUNNING" && !running.has(workload.leaseId))
      running.set(workload.leaseId, at);
  });
  await bus.flush();
  createInterface({ input: process.stdin }).on("line", (line) => {
    const [verb, file] = line.trim().split(" ");
    if (verb !== "stats" || file === undefined) return;
    writeFileSync(
      file,
      JSON.stringify({
        command: Object.fromEntries(command),
        running: Object.fromEntries(running),
      }),
    );
    process.stdout.write("E2E-SPY-STATS\n");
  });
  process.stdin.on("end", () => {
    void bus.close().finally(() => process.exit(0));
  });
  process.stdout.write("E2E-SPY-READY\n");
}

main().catch((error: unknown) => {
  process.stderr.write(`e2e-spy: ${errorMessage(error)}\n`);
  process.exit(1);
});
