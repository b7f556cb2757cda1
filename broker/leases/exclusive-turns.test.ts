/**
 * The lease manager's mutations run one at a time; a backlog of them lets the event loop turn
 * once every 10 ms of the Clock's time (answers, commands and events go out meanwhile), and not
 * more often. On a VirtualClock: a setImmediate queued before a mutation shows whether the loop
 * turned before it ran.
 */
import { afterEach, describe, expect, it } from "vitest";
import { InProcessHub, seededRandom } from "../../bus/index.js";
import { silentLogger, VirtualClock } from "../../core/index.js";
import { Broker } from "../broker.js";
import { testLeaseSpec } from "./test-support.js";

const running: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const stop of running.splice(0).reverse()) await stop();
});

async function startBroker(clock: VirtualClock): Promise<Broker> {
  const hub = new InProcessHub({ clock });
  const broker = new Broker({
    clock,
    logger: silentLogger(),
    grpcAddress: "127.0.0.1:0",
    bus: hub.connect("broker"),
    epoch: 1,
    heartbeatIntervalMs: 1000,
    random: seededRandom(1),
  });
  await broker.start();
  running.push(() => broker.stop(100));
  return broker;
}

/** Submits `count` leases in this turn after queueing a setImmediate; the order things ran in. */
async function submitsAfterAnImmediate(broker: Broker, count: number): Promise<string[]> {
  const order: string[] = [];
  setImmediate(() => order.push("loop turned"));
  const settled = (k: number) => () => {
    order.push(`submit ${k}`);
  };
  await Promise.all(
    Array.from({ length: count }, (_, k) =>
      broker.leases.submit(testLeaseSpec(1)).then(settled(k), settled(k)),
    ),
  );
  await new Promise((resolve) => setImmediate(resolve));
  return order;
}

describe("lease manager mutations and the event loop", () => {
  it("let the loop turn before a mutation once 10 ms passed since it last did, not before", async () => {
    const clock = new VirtualClock(1_900_000_000_000);
    const broker = await startBroker(clock);
    await clock.advance(10);
    // 10 ms since the loop last turned for mutations: it turns first, then all three run.
    expect(await submitsAfterAnImmediate(broker, 3)).toEqual([
      "loop turned",
      "submit 0",
      "submit 1",
      "submit 2",
    ]);
    // Less than 10 ms since: they run in this turn, before the loop turns.
    await clock.advance(9);
    expect(await submitsAfterAnImmediate(broker, 2)).toEqual([
      "submit 0",
      "submit 1",
      "loop turned",
    ]);
  });
});
