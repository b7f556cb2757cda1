/**
 * compose.yaml's etcd members, started for real on loopback (each host:port of the compose network
 * mapped to a free 127.0.0.1 port, each data dir to a temp dir), form one three-member cluster; and
 * the backup and restore of docs/operations.md, run with the flags that page gives, bring back
 * what the snapshot holds and nothing written after it.
 */
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  ETCD,
  ETCDCTL,
  etcdEnv,
  freePorts,
  isHealthy,
  type ManagedProcess,
  makeTempDir,
  removeDir,
  requireBinary,
  spawnManaged,
  waitFor,
} from "../helpers/index.js";
import { flagValue, ROOT, readCompose, readText } from "./deploy-files.js";

const etcds = [...readCompose().services.values()].filter((s) => /^etcd-\d+$/.test(s.name));

/** `etcdctl snapshot restore ...` as docs/operations.md writes it (continuation lines joined). */
function documentedRestore(): string[] {
  const doc = readText(join(ROOT, "docs", "operations.md")).replace(/\\\n\s*/g, " ");
  const line = doc.split("\n").find((l) => l.trimStart().startsWith("etcdctl snapshot restore"));
  if (line === undefined) throw new Error("docs/operations.md has no etcdctl snapshot restore");
  return line.trim().split(/\s+/).slice(1);
}

describe("deploy/ etcd on real etcd processes", () => {
  const etcd = requireBinary(ETCD);
  const etcdctl = requireBinary(ETCDCTL);
  const running: ManagedProcess[] = [];
  const dirs: string[] = [];
  const client = new Map<string, number>();
  const peer = new Map<string, number>();

  afterAll(async () => {
    await Promise.all(running.map((p) => p.stop()));
    await Promise.all(dirs.map((d) => removeDir(d)));
  });

  /** A compose host:port (or a 0.0.0.0 listener of `member`) as its loopback stand-in. */
  const onLoopback = (text: string, member: string): string =>
    text
      .replaceAll("0.0.0.0:2379", `127.0.0.1:${client.get(member)}`)
      .replaceAll("0.0.0.0:2380", `127.0.0.1:${peer.get(member)}`)
      .replace(
        /(etcd-\d+):(2379|2380)/g,
        (_m, host: string, port: string) =>
          `127.0.0.1:${(port === "2379" ? client : peer).get(host)}`,
      );
  const clientUrl = (member: string): string => `http://127.0.0.1:${client.get(member)}`;

  const ctl = (...args: string[]): string => {
    const result = spawnSync(etcdctl, args, {
      encoding: "utf8",
      timeout: 20_000,
      env: { PATH: process.env.PATH ?? "", ...etcdEnv(undefined) },
    });
    if (result.status !== 0) {
      throw new Error(`etcdctl ${args.join(" ")}: ${result.status}\n${result.stderr}`);
    }
    return result.stdout;
  };
  const endpoints = (): string => etcds.map((s) => clientUrl(s.name)).join(",");

  /** Starts every member with its compose flags, `--data-dir` set to `dataDirs`; waits until healthy. */
  async function startCluster(dataDirs: ReadonlyMap<string, string>): Promise<ManagedProcess[]> {
    const members = await Promise.all(
      etcds.map((s) => {
        const dataDir = dataDirs.get(s.name) ?? "";
        const args = s.command
          .slice(1)
          .map((arg) =>
            arg.startsWith("--data-dir=") ? `--data-dir=${dataDir}` : onLoopback(arg, s.name),
          );
        // All three at once: a member is healthy only once a quorum has elected a leader.
        return spawnManaged(etcd, args, {
          name: s.name,
          env: etcdEnv(undefined),
          logFile: `${dataDir}.log`,
          stopGraceMs: 5_000,
        });
      }),
    );
    running.push(...members);
    for (const s of etcds) {
      await waitFor(() => isHealthy(clientUrl(s.name)), {
        what: `${s.name} healthy`,
        timeoutMs: 30_000,
        detail: () => members.map((m) => m.outputTail(10)).join("\n---\n"),
      });
    }
    return members;
  }

  it("forms one cluster from the compose flags, and restores it from a snapshot as documented", async () => {
    const ports = await freePorts(etcds.length * 2);
    etcds.forEach((s, i) => {
      client.set(s.name, ports[2 * i] ?? 0);
      peer.set(s.name, ports[2 * i + 1] ?? 0);
    });
    const root = await makeTempDir("deploy-etcd");
    dirs.push(root);
    const first = new Map(etcds.map((s) => [s.name, join(root, `${s.name}-data`)]));
    const members = await startCluster(first);

    const list = JSON.parse(ctl(`--endpoints=${endpoints()}`, "member", "list", "-w", "json")) as {
      members: { name: string; peerURLs: string[] }[];
    };
    expect(list.members.map((m) => m.name).sort()).toEqual(etcds.map((s) => s.name).sort());
    for (const m of list.members) {
      expect(m.peerURLs).toEqual([`http://127.0.0.1:${peer.get(m.name)}`]);
    }

    // Written through one member, read through another: one cluster, not three.
    ctl(`--endpoints=${clientUrl("etcd-1")}`, "put", "/leasebroker/leases/before", "kept");
    expect(
      ctl(`--endpoints=${clientUrl("etcd-3")}`, "get", "/leasebroker/leases/before"),
    ).toContain("kept");

    // Backup (docs: etcdctl --endpoints=... snapshot save <file>), then a write it does not hold.
    const snapshot = join(root, "snap.db");
    ctl(`--endpoints=${clientUrl("etcd-1")}`, "snapshot", "save", snapshot);
    expect(ctl("snapshot", "status", snapshot, "-w", "json")).toMatch(/"totalKey":\s*[1-9]/);
    ctl(`--endpoints=${clientUrl("etcd-1")}`, "put", "/leasebroker/leases/after", "lost");

    await Promise.all(members.map((m) => m.stop()));

    // Restore each member with the documented command, its own name and peer URL, a new data dir.
    const documented = documentedRestore();
    expect(documented.filter((t) => t.startsWith("--")).sort()).toEqual([
      "--data-dir",
      "--initial-advertise-peer-urls",
      "--initial-cluster",
      "--initial-cluster-token",
      "--name",
    ]);
    const restored = new Map(etcds.map((s) => [s.name, join(root, `${s.name}-restored`)]));
    for (const s of etcds) {
      const args = documented.map((token, i) => {
        const flag = documented[i - 1];
        if (flag === "restore") return snapshot;
        if (flag === "--name") return s.name;
        if (flag === "--initial-advertise-peer-urls")
          return onLoopback(`http://${s.name}:2380`, s.name);
        if (flag === "--initial-cluster") return onLoopback(token, s.name);
        if (flag === "--data-dir") return restored.get(s.name) ?? "";
        return token;
      });
      expect(flagValue(args, "initial-cluster")).toBe(
        onLoopback(flagValue(etcds[0]?.command ?? [], "initial-cluster") ?? "", s.name),
      );
      ctl(...args);
    }
    await startCluster(restored);
    expect(
      ctl(`--endpoints=${clientUrl("etcd-2")}`, "get", "/leasebroker/leases/before"),
    ).toContain("kept");
    expect(ctl(`--endpoints=${clientUrl("etcd-2")}`, "get", "/leasebroker/leases/after")).toBe("");
  }, 180_000);
});
