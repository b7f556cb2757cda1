/**
 * Finding the external programs the integration tests run (etcd, nats-server, chromium,
 * qemu-system-x86_64), and installing them from Debian when they are missing and we are allowed to.
 *
 * Order: an explicit environment override (`ETCD_BIN=/path`) wins, and if it names no executable
 * file that is an error (a typo must not be "fixed" by installing something else); then PATH, plus
 * /usr/local/bin, /usr/bin, /usr/sbin, /bin, /sbin (Debian puts nats-server in /usr/sbin, which
 * is not on a normal user's PATH). When still missing: as root with apt-get, and unless
 * LEASEBROKER_TEST_NO_INSTALL is set, `apt-get update` (once) and `apt-get install -y <packages>`;
 * otherwise a MissingBinaryError that says which packages to install. Never a silent skip.
 */
import { spawnSync } from "node:child_process";
import { accessSync, constants, statSync } from "node:fs";
import { delimiter, isAbsolute, join } from "node:path";
import { BinaryInstallError, MissingBinaryError } from "./errors.js";

export interface BinarySpec {
  /** The executable's file name, looked up on PATH. */
  readonly name: string;
  /** An environment variable that, when set, is the binary's path (and then must exist). */
  readonly envVar?: string;
  /** The Debian package that provides it. */
  readonly debPackage?: string;
  /** The arguments that print its version (default `--version`). */
  readonly versionArgs?: readonly string[];
}

export const ETCD: BinarySpec = { name: "etcd", envVar: "ETCD_BIN", debPackage: "etcd-server" };
export const NATS_SERVER: BinarySpec = {
  name: "nats-server",
  envVar: "NATS_SERVER_BIN",
  debPackage: "nats-server",
};
/** etcd's CLI: the deploy tests run the backup and restore that docs/operations.md gives. */
export const ETCDCTL: BinarySpec = {
  name: "etcdctl",
  envVar: "ETCDCTL_BIN",
  debPackage: "etcd-client",
  versionArgs: ["version"],
};
/** Debian's chromium, driven by playwright-core in the dashboard's browser test. */
export const CHROMIUM: BinarySpec = {
  name: "chromium",
  envVar: "CHROMIUM_BIN",
  debPackage: "chromium",
};
/** QEMU for the qemu driver's tests (test/qemu) and `npm run bench:qemu`; runs under TCG. */
export const QEMU: BinarySpec = {
  name: "qemu-system-x86_64",
  envVar: "QEMU_BIN",
  debPackage: "qemu-system-x86",
};
/** The binaries every integration test run needs (global setup checks them up front). */
export const INTEGRATION_BINARIES: readonly BinarySpec[] = [
  ETCD,
  ETCDCTL,
  NATS_SERVER,
  CHROMIUM,
  QEMU,
];

/** Directories searched after PATH. */
export const EXTRA_DIRS: readonly string[] = [
  "/usr/local/bin",
  "/usr/bin",
  "/usr/sbin",
  "/bin",
  "/sbin",
];

/** Set (to anything but "" or "0") to forbid automatic installation even as root. */
export const NO_INSTALL_ENV = "LEASEBROKER_TEST_NO_INSTALL";

/** Everything `requireBinary` needs from the machine; injectable so tests never run apt-get. */
export interface BinarySystem {
  readonly env: Readonly<Record<string, string | undefined>>;
  /** True when `path` is a regular file we may execute. */
  isExecutable(path: string): boolean;
  isRoot(): boolean;
  /** Runs `<aptGetPath> <args>` noninteractively and synchronously; throws BinaryInstallError. */
  aptGet(aptGetPath: string, args: readonly string[]): void;
  /** Progress lines (what is being installed and how). */
  log(line: string): void;
}

const APT_TIMEOUT_MS = 15 * 60_000;

function defaultIsExecutable(path: string): boolean {
  try {
    if (!statSync(path).isFile()) return false;
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function defaultAptGet(aptGetPath: string, args: readonly string[]): void {
  const command = `${aptGetPath} ${args.join(" ")}`;
  const result = spawnSync(aptGetPath, [...args], {
    env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
    stdio: ["ignore", "inherit", "inherit"],
    timeout: APT_TIMEOUT_MS,
  });
  if (result.error !== undefined) {
    throw new BinaryInstallError(args.slice(2), `${command} failed: ${result.error.message}`, {
      cause: result.error,
    });
  }
  if (result.status !== 0) {
    const how =
      result.signal !== null ? `was killed by ${result.signal}` : `exited ${result.status}`;
    throw new BinaryInstallError(args.slice(2), `${command} ${how}`);
  }
}

export const defaultBinarySystem: BinarySystem = {
  env: process.env,
  isExecutable: defaultIsExecutable,
  isRoot: () => process.getuid?.() === 0,
  aptGet: defaultAptGet,
  log: (line) => {
    process.stderr.write(`[test-helpers] ${line}\n`);
  },
};

/** Systems that already ran `apt-get update` (once per process, per system). */
const aptUpdated = new WeakSet<BinarySystem>();
/** Resolved paths for the default system: a lookup is done once per process. */
const resolvedCache = new Map<string, string>();

function searchDirs(system: BinarySystem): string[] {
  const fromPath = (system.env.PATH ?? "").split(delimiter).filter((dir) => isAbsolute(dir));
  return [...new Set([...fromPath, ...EXTRA_DIRS])];
}

/** The first executable called `name` on PATH or in EXTRA_DIRS, or undefined. Ignores env overrides. */
export function lookupExecutable(
  name: string,
  system: BinarySystem = defaultBinarySystem,
): string | undefined {
  for (const dir of searchDirs(system)) {
    const candidate = join(dir, name);
    if (system.isExecutable(candidate)) return candidate;
  }
  return undefined;
}

function overrideOf(spec: BinarySpec, system: BinarySystem): string | undefined {
  if (spec.envVar === undefined) return undefined;
  const value = system.env[spec.envVar];
  return value === undefined || value === "" ? undefined : value;
}

function installCommand(packages: readonly string[]): string {
  return `apt-get install -y ${packages.join(" ")}`;
}

function installBlocker(system: BinarySystem, aptGetPath: string | undefined): string | undefined {
  const noInstall = system.env[NO_INSTALL_ENV];
  if (noInstall !== undefined && noInstall !== "" && noInstall !== "0") {
    return `${NO_INSTALL_ENV} is set`;
  }
  if (!system.isRoot()) return "not running as root";
  if (aptGetPath === undefined) return "apt-get was not found";
  return undefined;
}

/**
 * Paths of all `specs`, in order. Installs every missing one with a single apt-get install when
 * allowed; otherwise throws one MissingBinaryError naming all missing binaries and their packages.
 */
export function requireBinaries<const T extends readonly BinarySpec[]>(
  specs: T,
  system: BinarySystem = defaultBinarySystem,
): { -readonly [K in keyof T]: string } {
  const useCache = system === defaultBinarySystem;
  const found = new Map<BinarySpec, string>();
  const missing: BinarySpec[] = [];

  for (const spec of specs) {
    const override = overrideOf(spec, system);
    if (override !== undefined) {
      // An explicit override is taken literally: if it is wrong, say so; never install instead.
      if (!isAbsolute(override) || !system.isExecutable(override)) {
        throw new MissingBinaryError(
          [spec.name],
          `${spec.envVar}=${override}: no executable file at that ${isAbsolute(override) ? "path" : "(relative) path; give an absolute path"}. ` +
            `Point ${spec.envVar} at the ${spec.name} binary, or unset it to look on PATH.`,
        );
      }
      found.set(spec, override);
      continue;
    }
    const cached = useCache ? resolvedCache.get(spec.name) : undefined;
    const path = cached ?? lookupExecutable(spec.name, system);
    if (path === undefined) missing.push(spec);
    else found.set(spec, path);
  }

  if (missing.length > 0) {
    const names = missing.map((spec) => spec.name);
    const packages = [
      ...new Set(
        missing.flatMap((spec) => (spec.debPackage === undefined ? [] : [spec.debPackage])),
      ),
    ];
    const unpackaged = missing.filter((spec) => spec.debPackage === undefined).map((s) => s.name);
    const overrides = missing.flatMap((spec) => (spec.envVar === undefined ? [] : [spec.envVar]));
    const where = `looked on PATH and in ${EXTRA_DIRS.join(", ")}`;
    const aptGetPath = lookupExecutable("apt-get", system);
    const blocker =
      unpackaged.length > 0
        ? `no Debian package is known for ${unpackaged.join(", ")}`
        : installBlocker(system, aptGetPath);

    if (blocker !== undefined || aptGetPath === undefined) {
      const install = packages.length > 0 ? ` Install: ${installCommand(packages)}.` : "";
      const orSet = overrides.length > 0 ? ` Or set ${overrides.join(" / ")} to the binary.` : "";
      throw new MissingBinaryError(
        names,
        `${names.join(", ")} not found (${where}).${install}${orSet} ` +
          `(Not installing automatically: ${blocker ?? "apt-get was not found"}.)`,
      );
    }

    system.log(`${names.join(", ")} not found (${where}); installing ${packages.join(" ")}`);
    if (!aptUpdated.has(system)) {
      system.log(`running: ${aptGetPath} update`);
      system.aptGet(aptGetPath, ["update"]);
      aptUpdated.add(system);
    }
    system.log(
      `running: DEBIAN_FRONTEND=noninteractive ${aptGetPath} install -y ${packages.join(" ")}`,
    );
    system.aptGet(aptGetPath, ["install", "-y", ...packages]);

    for (const spec of missing) {
      const path = lookupExecutable(spec.name, system);
      if (path === undefined) {
        throw new MissingBinaryError(
          [spec.name],
          `installed ${spec.debPackage ?? "?"} but ${spec.name} is still not found (${where}).`,
        );
      }
      system.log(`${spec.name}: ${path}`);
      found.set(spec, path);
    }
  }

  return specs.map((spec) => {
    const path = found.get(spec);
    if (path === undefined) throw new Error(`internal: ${spec.name} unresolved`);
    if (useCache && overrideOf(spec, system) === undefined) resolvedCache.set(spec.name, path);
    return path;
  }) as { -readonly [K in keyof T]: string };
}

/** The path of one binary (see `requireBinaries`). */
export function requireBinary(
  spec: BinarySpec,
  system: BinarySystem = defaultBinarySystem,
): string {
  const [path] = requireBinaries([spec], system);
  return path;
}

/** The first line a binary prints for `--version` (or the given args); for logs, not for logic. */
export function binaryVersion(path: string, args: readonly string[] = ["--version"]): string {
  const result = spawnSync(path, [...args], { encoding: "utf8", timeout: 10_000 });
  const text = `${result.stdout ?? ""}${result.stderr ?? ""}`.trim();
  return text.split("\n")[0] ?? "";
}
