/**
 * The runtime stage of deploy/Dockerfile, laid out in a temp dir instead of an image: what its
 * `COPY --from=build` lines copy (from this checkout's build; node_modules linked, not copied) and
 * the bins its `ln -s` lines link. The broker started through the linked bin serves (it loads the
 * .proto files from where the image puts them), and the agent's bin answers --help.
 */
import { spawnSync } from "node:child_process";
import { cpSync, mkdirSync, symlinkSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { buildAgent } from "../agent/agent-process.js";
import { BrokerApi } from "../broker/harness.js";
import {
  freePort,
  type ManagedProcess,
  makeTempDir,
  removeDir,
  spawnManaged,
  waitFor,
} from "../helpers/index.js";
import { DEPLOY, ROOT, readText } from "./deploy-files.js";

const IMAGE_ROOT = "/opt/leasebroker";

describe("deploy/Dockerfile's runtime layout", () => {
  let dir: string | undefined;
  let broker: ManagedProcess | undefined;
  let api: BrokerApi | undefined;

  afterAll(async () => {
    api?.close();
    await broker?.stop();
    if (dir !== undefined) await removeDir(dir);
  });

  it("runs the broker and the agent from the bins it links", async () => {
    buildAgent();
    const dockerfile = readText(join(DEPLOY, "Dockerfile"));
    const runtime = dockerfile.slice(dockerfile.lastIndexOf("\nFROM "));
    expect(runtime).toContain(`WORKDIR ${IMAGE_ROOT}`);
    const root = await makeTempDir("deploy-image");
    dir = root;
    const app = join(root, "opt");
    const copies = [...runtime.matchAll(/^COPY --from=build \/src\/(\S+) (\S+)$/gm)];
    expect(copies.map((m) => m[1])).toEqual([
      "package.json",
      "node_modules/",
      "dist/",
      "proto/leasebroker/",
    ]);
    for (const [, from = "", to = ""] of copies) {
      // Docker's rule: a file copied to a path ending in "/" keeps its name inside that folder.
      const target =
        to.endsWith("/") && !from.endsWith("/") ? join(app, to, basename(from)) : join(app, to);
      mkdirSync(dirname(target), { recursive: true });
      if (from === "node_modules/")
        symlinkSync(join(ROOT, "node_modules"), target.replace(/\/$/, ""));
      else cpSync(join(ROOT, from), target, { recursive: true });
    }
    const bins = join(root, "bin");
    mkdirSync(bins);
    const links = [...runtime.matchAll(/ln -s (\S+) \/usr\/local\/bin\/(\S+)/g)];
    expect(links.map((m) => m[2]).sort()).toEqual(["leasebroker", "leasebroker-agent", "leasectl"]);
    for (const [, target = "", bin = ""] of links) {
      symlinkSync(target.replace(IMAGE_ROOT, app), join(bins, bin));
    }
    const env = { PATH: `${bins}:${dirname(process.execPath)}:/usr/bin:/bin` };

    const help = spawnSync(join(bins, "leasebroker-agent"), ["--help"], {
      encoding: "utf8",
      timeout: 20_000,
      env,
    });
    expect(help.status, help.stderr).toBe(0);
    expect(help.stdout).toContain("--host-id");

    const address = `127.0.0.1:${await freePort()}`;
    broker = await spawnManaged(
      join(bins, "leasebroker"),
      ["--grpc-address", address, "--http-address", "127.0.0.1:0", "--sim-hosts", "2"],
      {
        name: "image-broker",
        inheritEnv: false,
        env,
        cwd: root,
        logFile: join(root, "broker.log"),
        readyWhen: /"msg":"broker serving"/,
        readyTimeoutMs: 20_000,
      },
    );
    api = new BrokerApi(address);
    const client = api;
    // The simulated hosts register over the in-process bus: protobuf codecs from the copied .proto files.
    await waitFor(async () => (await client.listHosts({})).hosts.length === 2, {
      what: "two simulated hosts registered",
      timeoutMs: 15_000,
      detail: () => broker?.outputTail(20) ?? "",
    });
  }, 120_000);
});
