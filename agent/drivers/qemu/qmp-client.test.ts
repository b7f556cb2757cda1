/**
 * The QMP client against a scripted unix-socket peer that speaks QMP's framing: greeting,
 * capabilities negotiation, answers matched by id (in any order), errors, events, and a peer that
 * goes away with commands in flight.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { QmpClient, QmpCommandError, QmpDisconnectedError, type QmpEvent } from "./qmp-client.js";

type Handler = (socket: Socket, command: { execute: string; id: number }) => void;

const cleanups: Array<() => void> = [];

afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

async function fakeQemu(handler: Handler): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), "lb-qmp-"));
  const path = join(dir, "qmp.sock");
  const sockets: Socket[] = [];
  const server: Server = createServer((socket) => {
    sockets.push(socket);
    socket.setEncoding("utf8");
    socket.write(
      `${JSON.stringify({ QMP: { version: { qemu: { major: 7 } }, capabilities: [] } })}\n`,
    );
    let buffer = "";
    socket.on("data", (chunk: string) => {
      buffer += chunk;
      for (;;) {
        const newline = buffer.indexOf("\n");
        if (newline < 0) break;
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + 1);
        const command = JSON.parse(line) as { execute: string; id: number };
        if (command.execute === "qmp_capabilities") {
          socket.write(`${JSON.stringify({ return: {}, id: command.id })}\n`);
        } else {
          handler(socket, command);
        }
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  cleanups.push(() => {
    for (const socket of sockets) socket.destroy();
    server.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return path;
}

describe("QmpClient", () => {
  it("negotiates, matches answers to commands by id and delivers events", async () => {
    const held: Array<{ socket: Socket; id: number }> = [];
    const path = await fakeQemu((socket, command) => {
      if (command.execute === "query-status") {
        // Answered only after the next command, to prove matching is by id, not by order.
        held.push({ socket, id: command.id });
        return;
      }
      socket.write(`${JSON.stringify({ event: "STOP", data: {}, timestamp: {} })}\n`);
      socket.write(`${JSON.stringify({ return: { status: "completed" }, id: command.id })}\n`);
      for (const h of held.splice(0)) {
        h.socket.write(`${JSON.stringify({ return: { status: "running" }, id: h.id })}\n`);
      }
    });
    const client = await QmpClient.connect(path, 2000);
    cleanups.push(() => client.close());
    const events: QmpEvent[] = [];
    client.onEvent((e) => events.push(e));
    const status = client.execute("query-status");
    const migrate = client.execute("query-migrate");
    expect(await migrate).toEqual({ status: "completed" });
    expect(await status).toEqual({ status: "running" });
    expect(events).toEqual([{ event: "STOP", data: {} }]);
  });

  it("turns an error answer into QmpCommandError with QEMU's class and description", async () => {
    const path = await fakeQemu((socket, command) => {
      socket.write(
        `${JSON.stringify({ error: { class: "GenericError", desc: "no such thing" }, id: command.id })}\n`,
      );
    });
    const client = await QmpClient.connect(path, 2000);
    cleanups.push(() => client.close());
    const error = await client.execute("migrate").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(QmpCommandError);
    expect(error).toMatchObject({
      command: "migrate",
      errorClass: "GenericError",
      desc: "no such thing",
    });
  });

  it("rejects commands in flight when the peer goes away, and says so once", async () => {
    const path = await fakeQemu((socket) => socket.destroy());
    const client = await QmpClient.connect(path, 2000);
    let closes = 0;
    client.onClose(() => {
      closes += 1;
    });
    await expect(client.execute("quit")).rejects.toBeInstanceOf(QmpDisconnectedError);
    expect(client.closed).toBe(true);
    await expect(client.execute("query-status")).rejects.toBeInstanceOf(QmpDisconnectedError);
    client.close();
    expect(closes).toBe(1);
  });

  it("fails to connect to a socket nobody serves", async () => {
    const dir = mkdtempSync(join(tmpdir(), "lb-qmp-"));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    await expect(QmpClient.connect(join(dir, "none.sock"), 500)).rejects.toBeInstanceOf(
      QmpDisconnectedError,
    );
  });
});
