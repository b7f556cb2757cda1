/**
 * Webhook delivery against real HTTP on loopback: the signature verifies at the reference
 * autoscaler and a tampered body, a wrong secret or an old timestamp does not; with the receiver
 * down, attempts are retried with backoff on the Clock, then dead-lettered (a JSON lines file),
 * while the broker keeps admitting leases and evaluating.
 */
import { readFile } from "node:fs/promises";
import { createServer } from "node:net";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import {
  CAPACITY_SETTLE_MS,
  DELIVERY_HEADER,
  SIGNATURE_HEADER,
  signBody,
  TIMESTAMP_HEADER,
  verifySignature,
} from "../../broker/autoscale/index.js";
import { ReferenceAutoscaler } from "../../deploy/examples/autoscaler/autoscaler.js";
import { makeTempDir, removeDir, waitFor } from "../helpers/index.js";
import {
  type AutoscaleCluster,
  autoscaleCluster,
  HOUR,
  SECOND,
  SECRET,
  SMALL_HOST,
  spec,
  T0,
} from "./cluster.js";

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  const port = typeof address === "object" && address !== null ? address.port : 0;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe("webhook signatures", () => {
  it("verify at the reference autoscaler; a tampered body, another secret or an old timestamp do not", async () => {
    const now = T0;
    const autoscaler = new ReferenceAutoscaler({
      secret: SECRET,
      launcher: { start: async () => {}, stop: async () => {} },
      now: () => now,
    });
    const url = await autoscaler.listen();
    cleanups.push(() => autoscaler.close());
    const body = JSON.stringify({ epoch: 1, sequence: 1, kind: "steady", steady: { reason: "" } });
    const ts = Math.floor(now / 1000);
    const post = async (b: string, headers: Record<string, string>): Promise<number> =>
      (await fetch(url, { method: "POST", body: b, headers })).status;

    const signed = {
      [TIMESTAMP_HEADER]: String(ts),
      [SIGNATURE_HEADER]: signBody(SECRET, ts, body),
    };
    expect(verifySignature(SECRET, String(ts), body, signed[SIGNATURE_HEADER], now)).toBe(true);
    expect(await post(body, signed)).toBe(202);

    const tampered = body.replace('"steady"', '"scale-in"');
    expect(verifySignature(SECRET, String(ts), tampered, signed[SIGNATURE_HEADER], now)).toBe(
      false,
    );
    expect(await post(tampered, signed)).toBe(401);

    const other = { ...signed, [SIGNATURE_HEADER]: signBody("another-secret-0123", ts, body) };
    expect(await post(body, other)).toBe(401);

    const old = ts - 3600;
    const replay = {
      [TIMESTAMP_HEADER]: String(old),
      [SIGNATURE_HEADER]: signBody(SECRET, old, body),
    };
    expect(verifySignature(SECRET, String(old), body, replay[SIGNATURE_HEADER], now)).toBe(false);
    expect(await post(body, replay)).toBe(401);
    expect(await post(body, {})).toBe(401);
    expect(autoscaler.counts).toEqual({ accepted: 1, refused: 4, stale: 0 });
  });
});

describe("a webhook receiver that is down", () => {
  it("gets retries with backoff, then a dead letter; the broker keeps working", async () => {
    const dir = await makeTempDir("autoscale-dlq");
    cleanups.push(() => removeDir(dir));
    const deadLetterPath = join(dir, "dead-letters.jsonl");
    const url = `http://127.0.0.1:${await closedPort()}/autoscale`;
    const c: AutoscaleCluster = await autoscaleCluster({
      intervalMs: 30 * SECOND,
      webhooks: { urls: [url], secret: SECRET, maxAttempts: 3, backoffMs: SECOND, deadLetterPath },
    });
    cleanups.push(() => c.stop());
    const webhooks = c.broker.autoscale?.webhooks;
    if (webhooks === undefined) throw new Error("no webhooks");
    // The first evaluation (at start) said "steady": attempt 1 fails at once, then retries wait
    // 1 s and 2 s on the Clock.
    await waitFor(() => webhooks.stats.retries === 1, { what: "the first failure" });
    await c.clock.advance(SECOND, { settle: "microtasks" });
    await waitFor(() => webhooks.stats.retries === 2, { what: "the second failure" });
    await c.clock.advance(SECOND, { settle: "microtasks" });
    expect(webhooks.stats.deadLetters).toBe(0); // 2 s backoff: not yet
    await c.clock.advance(SECOND, { settle: "microtasks" });
    await waitFor(() => webhooks.stats.deadLetters === 1, { what: "the dead letter" });
    expect(webhooks.stats).toEqual({ delivered: 0, retries: 2, deadLetters: 1 });

    // Demand that needs a host: a ScaleOut, undeliverable too.
    await c.launcher.start("sim-01", SMALL_HOST);
    // The evaluation the joining host brings: steady (nothing waits yet), so no new signal.
    await c.clock.advance(CAPACITY_SETTLE_MS + SECOND);
    expect(c.broker.autoscale?.status().evaluation?.readyHosts).toBe(1);
    expect(webhooks.stats.retries).toBe(2);
    await c.submit(spec(12, { kind: "immediate", durationMs: HOUR }));
    await c.submit(spec(12, { kind: "immediate", durationMs: HOUR }, true)); // waits
    await c.clock.advanceTo(T0 + 30 * SECOND); // the next evaluation, and not a retry further
    expect(c.broker.autoscale?.status().lastSignal?.recommendation.kind).toBe("scale-out");
    await waitFor(() => webhooks.stats.retries >= 3, { what: "the ScaleOut's first failure" });
    // The broker is not held up: leases are admitted while the delivery waits to retry.
    expect(webhooks.backlog).toBe(1);
    const admitted = await c.submit(spec(1, { kind: "immediate", durationMs: HOUR }));
    expect(admitted.state).toBe("STARTING");
    for (let i = 0; i < 10 && webhooks.stats.deadLetters < 2; i++) {
      await c.clock.advance(SECOND);
      await waitFor(() => webhooks.stats.deadLetters === 2 || webhooks.stats.retries > 3 + i, {
        what: "an attempt",
        timeoutMs: 2000,
      }).catch(() => undefined);
    }
    await waitFor(() => webhooks.stats.deadLetters === 2, { what: "the second dead letter" });
    expect(webhooks.stats.retries).toBe(4); // 2 per signal: 3 attempts each
    expect(webhooks.stats.delivered).toBe(0);
    await waitFor(
      async () =>
        (await readFile(deadLetterPath, "utf8").catch(() => "")).trim().split("\n").length === 2,
      { what: "the dead-letter file" },
    );
    const lines = (await readFile(deadLetterPath, "utf8")).trim().split("\n");
    const letter = JSON.parse(lines[1] as string) as Record<string, unknown>;
    expect(letter).toMatchObject({ url, epoch: 3, sequence: 2, attempts: 3 });
    expect(JSON.parse(letter.body as string)).toMatchObject({ kind: "scale-out", sequence: 2 });
    expect(DELIVERY_HEADER).toBe("x-leasebroker-delivery");

    // Evaluation goes on meanwhile: the status is fresh.
    await c.clock.advance(30 * SECOND);
    const evaluation = c.broker.autoscale?.status().evaluation;
    expect(evaluation?.now).toBe(T0 + 60 * SECOND);
    expect(evaluation?.unmetLeaseIds).toHaveLength(1);
  });
});
