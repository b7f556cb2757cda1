import { describe, expect, it } from "vitest";
import {
  BinaryInstallError,
  type BinarySpec,
  type BinarySystem,
  ETCD,
  MissingBinaryError,
  NATS_SERVER,
  NO_INSTALL_ENV,
  requireBinaries,
  requireBinary,
} from "../helpers/index.js";

/** A pretend machine: a set of executable files, root or not, and a recording apt-get. */
class FakeSystem implements BinarySystem {
  readonly files: Set<string>;
  readonly aptCalls: string[] = [];
  readonly lines: string[] = [];
  /** What `apt-get install` puts on disk, by package. */
  readonly packageFiles: Record<string, string> = {
    "etcd-server": "/usr/bin/etcd",
    "nats-server": "/usr/sbin/nats-server",
  };
  installFails = false;

  constructor(
    files: readonly string[],
    readonly env: Record<string, string | undefined> = { PATH: "/usr/local/bin:/usr/bin:/bin" },
    readonly root = false,
  ) {
    this.files = new Set(files);
  }

  isExecutable(path: string): boolean {
    return this.files.has(path);
  }

  isRoot(): boolean {
    return this.root;
  }

  aptGet(aptGetPath: string, args: readonly string[]): void {
    this.aptCalls.push(`${aptGetPath} ${args.join(" ")}`);
    if (this.installFails) throw new BinaryInstallError(args.slice(2), "apt-get exited 100");
    if (args[0] === "install") {
      for (const pkg of args.slice(2)) {
        const file = this.packageFiles[pkg];
        if (file !== undefined) this.files.add(file);
      }
    }
  }

  log(line: string): void {
    this.lines.push(line);
  }
}

function missingError(run: () => unknown): MissingBinaryError {
  try {
    run();
  } catch (error) {
    if (error instanceof MissingBinaryError) return error;
    throw error;
  }
  throw new Error("expected a MissingBinaryError, got none");
}

describe("requireBinary: finding", () => {
  it("takes the first match on PATH", () => {
    const system = new FakeSystem(["/opt/b/etcd", "/usr/bin/etcd"], { PATH: "/opt/a:/opt/b" });
    expect(requireBinary(ETCD, system)).toBe("/opt/b/etcd");
    expect(system.aptCalls).toEqual([]);
  });

  it("also looks in /usr/sbin when PATH lacks it (Debian's nats-server)", () => {
    const system = new FakeSystem(["/usr/sbin/nats-server"], { PATH: "/usr/bin:/bin" });
    expect(requireBinary(NATS_SERVER, system)).toBe("/usr/sbin/nats-server");
  });

  it("prefers an existing env override to PATH", () => {
    const system = new FakeSystem(["/usr/bin/etcd", "/opt/etcd-3.5/etcd"], {
      PATH: "/usr/bin",
      ETCD_BIN: "/opt/etcd-3.5/etcd",
    });
    expect(requireBinary(ETCD, system)).toBe("/opt/etcd-3.5/etcd");
  });

  it("returns paths in the order asked", () => {
    const system = new FakeSystem(["/usr/bin/etcd", "/usr/sbin/nats-server"]);
    expect(requireBinaries([NATS_SERVER, ETCD], system)).toEqual([
      "/usr/sbin/nats-server",
      "/usr/bin/etcd",
    ]);
  });
});

describe("requireBinary: an explicit override that does not exist is an error", () => {
  it("names the variable and the path, and installs nothing even as root", () => {
    const system = new FakeSystem(
      ["/usr/bin/apt-get", "/usr/bin/etcd"],
      { PATH: "/usr/bin", ETCD_BIN: "/nonexistent" },
      true,
    );
    const error = missingError(() => requireBinary(ETCD, system));
    expect(error.message).toContain("ETCD_BIN=/nonexistent");
    expect(error.binaries).toEqual(["etcd"]);
    expect(system.aptCalls).toEqual([]);
  });

  it("rejects a relative override", () => {
    const system = new FakeSystem(["etcd"], { PATH: "/usr/bin", ETCD_BIN: "etcd" });
    expect(missingError(() => requireBinary(ETCD, system)).message).toContain("absolute path");
  });
});

describe("requireBinary: missing binaries", () => {
  it("when not root: throws at once, naming every package to install", () => {
    const system = new FakeSystem(["/usr/bin/apt-get"], { PATH: "/usr/bin" }, false);
    const error = missingError(() => requireBinaries([ETCD, NATS_SERVER], system));
    expect(error.binaries).toEqual(["etcd", "nats-server"]);
    expect(error.message).toContain("apt-get install -y etcd-server nats-server");
    expect(error.message).toContain("not running as root");
    expect(error.message).toContain("ETCD_BIN / NATS_SERVER_BIN");
    expect(system.aptCalls).toEqual([]);
  });

  it("as root without apt-get: throws, saying why it did not install", () => {
    const system = new FakeSystem([], { PATH: "/usr/bin" }, true);
    const error = missingError(() => requireBinary(ETCD, system));
    expect(error.message).toContain("apt-get install -y etcd-server");
    expect(error.message).toContain("apt-get was not found");
  });

  it(`as root with ${NO_INSTALL_ENV} set: throws instead of installing`, () => {
    const system = new FakeSystem(
      ["/usr/bin/apt-get"],
      { PATH: "/usr/bin", [NO_INSTALL_ENV]: "1" },
      true,
    );
    expect(missingError(() => requireBinary(ETCD, system)).message).toContain(NO_INSTALL_ENV);
    expect(system.aptCalls).toEqual([]);
  });

  it("as root with apt-get: updates once, installs all missing packages in one go", () => {
    const system = new FakeSystem(["/usr/bin/apt-get"], { PATH: "/usr/bin" }, true);
    expect(requireBinaries([ETCD, NATS_SERVER], system)).toEqual([
      "/usr/bin/etcd",
      "/usr/sbin/nats-server",
    ]);
    expect(system.aptCalls).toEqual([
      "/usr/bin/apt-get update",
      "/usr/bin/apt-get install -y etcd-server nats-server",
    ]);
    expect(system.lines.join("\n")).toContain("install -y etcd-server nats-server");

    // A later miss on the same machine installs without a second `apt-get update`.
    const qemu: BinarySpec = {
      name: "qemu-system-x86_64",
      envVar: "QEMU_BIN",
      debPackage: "qemu-system-x86",
    };
    system.packageFiles["qemu-system-x86"] = "/usr/bin/qemu-system-x86_64";
    expect(requireBinary(qemu, system)).toBe("/usr/bin/qemu-system-x86_64");
    expect(system.aptCalls).toEqual([
      "/usr/bin/apt-get update",
      "/usr/bin/apt-get install -y etcd-server nats-server",
      "/usr/bin/apt-get install -y qemu-system-x86",
    ]);
  });

  it("only installs what is missing", () => {
    const system = new FakeSystem(
      ["/usr/bin/apt-get", "/usr/bin/etcd"],
      { PATH: "/usr/bin" },
      true,
    );
    requireBinaries([ETCD, NATS_SERVER], system);
    expect(system.aptCalls.at(-1)).toBe("/usr/bin/apt-get install -y nats-server");
  });

  it("fails when the package installed but the binary is still not there", () => {
    const system = new FakeSystem(["/usr/bin/apt-get"], { PATH: "/usr/bin" }, true);
    system.packageFiles["etcd-server"] = "/usr/lib/etcd/etcd";
    const error = missingError(() => requireBinary(ETCD, system));
    expect(error.message).toContain("installed etcd-server but etcd is still not found");
  });

  it("passes on an apt-get failure as a BinaryInstallError", () => {
    const system = new FakeSystem(["/usr/bin/apt-get"], { PATH: "/usr/bin" }, true);
    system.installFails = true;
    expect(() => requireBinary(ETCD, system)).toThrow(BinaryInstallError);
  });

  it("cannot install a binary without a known package", () => {
    const system = new FakeSystem(["/usr/bin/apt-get"], { PATH: "/usr/bin" }, true);
    const error = missingError(() => requireBinary({ name: "frobnicate" }, system));
    expect(error.message).toContain("no Debian package is known for frobnicate");
    expect(system.aptCalls).toEqual([]);
  });
});

describe("requireBinary on this machine", () => {
  it("finds real etcd and nats-server executables", () => {
    const [etcd, nats] = requireBinaries([ETCD, NATS_SERVER]);
    expect(etcd).toMatch(/\/etcd$/);
    expect(nats).toMatch(/\/nats-server$/);
  });
});
