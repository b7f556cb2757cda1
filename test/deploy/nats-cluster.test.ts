/**
 * deploy/nats/nats-{1,2,3}.conf, started for real on loopback (each compose host:port mapped to a
 * free 127.0.0.1 port, nothing else changed; accounts.conf included as is, passwords from
 * deploy/env/nats.env in the environment): the three servers route to each other, and an agent's
 * heartbeat published on one server reaches the broker subscribed on another.
 */
import { copyFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { connect, type NatsConnection } from "nats";
import { afterAll, describe, expect, it } from "vitest";
import {
  freePorts,
  type ManagedProcess,
  makeTempDir,
  NATS_SERVER,
  removeDir,
  requireBinary,
  spawnManaged,
  waitFor,
} from "../helpers/index.js";
import { DEPLOY, readCompose, readEnvFile, readText } from "./deploy-files.js";

const servers = [...readCompose().services.values()]
  .filter((s) => /^nats-\d+$/.test(s.name))
  .map((s) => s.name);
const natsEnv = readEnvFile(join(DEPLOY, "env", "nats.env"));

interface Ports {
  readonly client: number;
  readonly http: number;
  readonly route: number;
}

async function routeCount(httpPort: number): Promise<number> {
  const response = await fetch(`http://127.0.0.1:${httpPort}/routez`, {
    signal: AbortSignal.timeout(2_000),
  });
  const body = (await response.json()) as { num_routes?: number };
  return body.num_routes ?? 0;
}

describe("deploy/nats/ as a real three-server cluster", () => {
  const processes: ManagedProcess[] = [];
  const connections: NatsConnection[] = [];
  let dir: string | undefined;

  afterAll(async () => {
    await Promise.all(connections.map((c) => c.close()));
    await Promise.all(processes.map((p) => p.stop()));
    if (dir !== undefined) await removeDir(dir);
  });

  it("routes every server to the two others and carries agent traffic across them", async () => {
    const natsServer = requireBinary(NATS_SERVER);
    const free = await freePorts(servers.length * 3);
    const ports = new Map<string, Ports>(
      servers.map((name, i) => [
        name,
        { client: free[3 * i] ?? 0, http: free[3 * i + 1] ?? 0, route: free[3 * i + 2] ?? 0 },
      ]),
    );
    const workDir = await makeTempDir("deploy-nats-cluster");
    dir = workDir;
    copyFileSync(join(DEPLOY, "nats", "accounts.conf"), join(workDir, "accounts.conf"));
    for (const name of servers) {
      const own = ports.get(name);
      if (own === undefined) throw new Error(name);
      const text = readText(join(DEPLOY, "nats", `${name}.conf`))
        .replace("listen: 0.0.0.0:4222", `listen: 127.0.0.1:${own.client}`)
        .replace("http: 0.0.0.0:8222", `http: 127.0.0.1:${own.http}`)
        .replace("listen: 0.0.0.0:6222", `listen: 127.0.0.1:${own.route}`)
        .replace(
          /nats-route:\/\/(nats-\d+):6222/g,
          (_m, host: string) => `nats-route://127.0.0.1:${ports.get(host)?.route}`,
        );
      // Every address was replaced: nothing listens beyond loopback.
      expect(text).not.toMatch(/0\.0\.0\.0|nats-\d+:/);
      const file = join(workDir, `${name}.conf`);
      writeFileSync(file, text);
      processes.push(
        await spawnManaged(natsServer, ["-c", file], {
          name,
          env: natsEnv,
          logFile: join(workDir, `${name}.log`),
          stopGraceMs: 5_000,
        }),
      );
    }
    for (const name of servers) {
      await waitFor(async () => (await routeCount(ports.get(name)?.http ?? 0)) === 2, {
        what: `${name} routed to the two others`,
        timeoutMs: 20_000,
        detail: () => processes.map((p) => p.outputTail(10)).join("\n---\n"),
      });
    }

    const url = (name: string | undefined): string =>
      `nats://127.0.0.1:${ports.get(name ?? "")?.client}`;
    const broker = await connect({
      servers: url(servers[2]),
      user: "broker",
      pass: natsEnv.LB_NATS_BROKER_PASSWORD ?? "",
    });
    connections.push(broker);
    const seen: string[] = [];
    broker.subscribe("lb.v1.host.*.beat", { callback: (_e, m) => seen.push(m.subject) });
    await broker.flush();
    const agent = await connect({
      servers: url(servers[0]),
      user: "agent-1",
      pass: natsEnv.LB_NATS_AGENT_1_PASSWORD ?? "",
    });
    connections.push(agent);
    // Interest crosses routes asynchronously: publish until the first beat arrives.
    await waitFor(
      () => {
        agent.publish("lb.v1.host.agent-1.beat");
        return seen.length > 0;
      },
      { what: "agent-1's beat through the cluster", timeoutMs: 10_000, intervalMs: 100 },
    );
    expect(new Set(seen)).toEqual(new Set(["lb.v1.host.agent-1.beat"]));
  }, 60_000);
});
