/**
 * The lease manager's mutations run one at a time; a backlog of them lets the event loop turn
 * once every 10 ms of the Clock's time (answers, commands and events go out meanwhile), and not
 * more often; the first mutation after a pause does not wait. On a VirtualClock: a setImmediate
 * queued before a mutation shows whether the loop turned before it ran.
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

/** A VirtualClock that mutations can also move on synchronously, as if they took time. */
class SteppingClock extends VirtualClock {
  offsetMs = 0;

  override now(): number {
    return super.now() + this.offsetMs;
  }
}

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

/**
 * Submits `count` leases in this turn after queueing a setImmediate; the order things ran in.
 * `afterEach` runs as each submit settles, before the next mutation starts.
 */
async function submitsAfterAnImmediate(
  broker: Broker,
  count: number,
  afterEach: () => void = () => {},
): Promise<string[]> {
  const order: string[] = [];
  setImmediate(() => order.push("loop turned"));
  const settled = (k: number) => () => {
    order.push(`submit ${k}`);
    afterEach();
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
  it("do not let the loop turn before the first mutation after a pause, however long", async () => {
    const clock = new VirtualClock(1_900_000_000_000);
    const broker = await startBroker(clock);
    await clock.advance(10_000);
    expect(await submitsAfterAnImmediate(broker, 3)).toEqual([
      "submit 0",
      "submit 1",
      "submit 2",
      "loop turned",
    ]);
  });

  it("let the loop turn once mutations ran back to back for 10 ms, then run the rest", async () => {
    const clock = new SteppingClock(1_900_000_000_000);
    const broker = await startBroker(clock);
    await clock.advance(10_000);
    // Each submit takes 4 ms of the Clock's time: the fourth starts 12 ms into the run.
    const order = await submitsAfterAnImmediate(broker, 5, () => {
      clock.offsetMs += 4;
    });
    expect(order).toEqual([
      "submit 0",
      "submit 1",
      "submit 2",
      "loop turned",
      "submit 3",
      "submit 4",
    ]);
  });
});
