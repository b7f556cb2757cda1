import { existsSync } from "node:fs";
import { Etcd3 } from "etcd3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type EtcdHandle, isProcessAlive, ProcessStartError, startEtcd } from "../helpers/index.js";

describe("a real etcd", () => {
  let etcd: EtcdHandle;
  let client: Etcd3;

  beforeAll(async () => {
    etcd = await startEtcd();
    client = new Etcd3({ hosts: etcd.clientUrl });
  });

  afterAll(async () => {
    client?.close();
    await etcd?.stop();
  });

  it("listens on loopback", () => {
    expect(etcd.clientUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(etcd.endpoint).toBe(`127.0.0.1:${etcd.clientPort}`);
    expect(etcd.peerPort).not.toBe(etcd.clientPort);
  });

  it("puts and gets a key", async () => {
    await client.put("smoke/a").value("1");
    expect(await client.get("smoke/a").string()).toBe("1");
    expect(await client.get("smoke/missing").string()).toBeNull();
  });

  it("deletes a key", async () => {
    await client.put("smoke/b").value("2");
    const deleted = await client.delete().key("smoke/b");
    expect(deleted.deleted).toBe("1");
    expect(await client.get("smoke/b").string()).toBeNull();
  });

  it("runs a transaction's branch by its compare", async () => {
    await client.put("smoke/c").value("v1");
    const first = await client
      .if("smoke/c", "Value", "==", "v1")
      .then(client.put("smoke/c").value("v2"))
      .else(client.put("smoke/c-else").value("x"))
      .commit();
    expect(first.succeeded).toBe(true);
    expect(await client.get("smoke/c").string()).toBe("v2");

    // The same compare no longer holds: the else branch runs and smoke/c is untouched.
    const second = await client
      .if("smoke/c", "Value", "==", "v1")
      .then(client.put("smoke/c").value("v3"))
      .else(client.put("smoke/c-else").value("x"))
      .commit();
    expect(second.succeeded).toBe(false);
    expect(await client.get("smoke/c").string()).toBe("v2");
    expect(await client.get("smoke/c-else").string()).toBe("x");
  });

  it("keeps its data across a crash and restart on the same ports", async () => {
    await client.put("smoke/durable").value("kept");
    const { pid, clientUrl } = etcd;
    await etcd.kill();
    expect(etcd.running).toBe(false);

    await etcd.restart();
    expect(etcd.running).toBe(true);
    expect(etcd.pid).not.toBe(pid);
    expect(etcd.clientUrl).toBe(clientUrl);

    // A fresh client: the old one's connection went down with the server.
    client.close();
    client = new Etcd3({ hosts: etcd.clientUrl });
    expect(await client.get("smoke/durable").string()).toBe("kept");
  });
});

describe("etcd handle", () => {
  it("stop() ends the process, removes the data dir, and can be called twice", async () => {
    const etcd = await startEtcd();
    expect(existsSync(etcd.logFile)).toBe(true);
    const { pid } = etcd;
    expect(isProcessAlive(pid)).toBe(true);

    await Promise.all([etcd.stop(), etcd.stop()]);
    await etcd.stop();
    expect(isProcessAlive(pid)).toBe(false);
    expect(existsSync(etcd.dataDir)).toBe(false);
    await expect(etcd.restart()).rejects.toThrow(/after stop/);
  });

  it("a failed start reports etcd's own complaint", async () => {
    const error = await startEtcd({ extraArgs: ["--no-such-flag"] }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ProcessStartError);
    expect(String(error)).toMatch(/exited before it was ready/);
    expect(String(error)).toContain("no-such-flag");
  });
});
