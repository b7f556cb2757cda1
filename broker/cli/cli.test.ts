import { describe, expect, it } from "vitest";
import { runCliCaptured as run } from "./capture.js";
import { COMMANDS } from "./cli.js";

describe("help and dispatch", () => {
  it("leasectl help lists every command, the global flags and the exit codes", async () => {
    const r = await run(["help"]);
    expect(r.code).toBe(0);
    for (const name of COMMANDS.keys()) expect(r.stdout).toMatch(new RegExp(`^  ${name} `, "m"));
    expect(r.stdout).toContain("--server <string>");
    expect(r.stdout).toContain("env LEASEBROKER_SERVER");
    expect(r.stdout).toMatch(/^\s+4 {2}no host can take the lease/m);
    expect(r.stdout).toMatch(/^\s+7 {2}cannot reach the broker/m);
    expect((await run(["--help"])).stdout).toBe(r.stdout);
  });

  it("<command> --help and help <command> print the command's usage and flags", async () => {
    const a = await run(["submit", "--help"]);
    expect(a.code).toBe(0);
    expect(a.stdout).toMatch(/^Usage: leasectl submit \[flags\]/);
    expect(a.stdout).toContain("--max-downtime <string>");
    expect(a.stdout).toContain("--request-id <string>");
    expect((await run(["help", "submit"])).stdout).toBe(a.stdout);
    expect((await run(["get", "-h"])).stdout).toMatch(/^Usage: leasectl get <lease-id> \[flags\]/);
  });

  it("no command, an unknown command or an unknown help topic is a usage error", async () => {
    const none = await run([]);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain("error: no command given");
    const typo = await run(["submti"]);
    expect(typo.code).toBe(2);
    expect(typo.stderr).toContain('error: unknown command "submti" (did you mean submit?)');
    expect((await run(["help", "nope"])).code).toBe(2);
  });

  it("takes global flags before the command too", async () => {
    const r = await run(["--server", "nohost", "get", "x"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("--server: expected host:port");
    const env = await run(["get", "x"], { env: { LEASEBROKER_SERVER: "bad" } });
    expect(env.code).toBe(2);
    expect(env.stderr).toContain("LEASEBROKER_SERVER: expected host:port");
  });

  it("checks the number of arguments", async () => {
    const r = await run(["cancel", "a", "b"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('cancel takes 1 argument (<lease-id>); got "a" "b"');
  });
});
