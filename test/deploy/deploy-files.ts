/**
 * Readers for the files under deploy/: the compose file, environment files, systemd units, the
 * NATS configuration and the Dockerfile. Each reader is strict about the subset it understands and
 * throws on anything else, so that a file the test cannot read fails it instead of passing vacuously.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";

export const ROOT = fileURLToPath(new URL("../../", import.meta.url));
export const DEPLOY = join(ROOT, "deploy");

export function readText(path: string): string {
  return readFileSync(path, "utf8");
}

/**
 * An environment file as both docker compose and systemd read it, restricted to their common
 * subset: `NAME=value` lines, `#` comments, blank lines, no quotes, no expansion.
 */
export function readEnvFile(path: string): Record<string, string> {
  const out: Record<string, string> = {};
  readText(path)
    .split("\n")
    .forEach((line, index) => {
      const text = line.trim();
      if (text === "" || text.startsWith("#")) return;
      const match = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(text);
      if (match === null) throw new Error(`${path}:${index + 1}: not NAME=value: ${line}`);
      const [, name = "", value = ""] = match;
      if (/["'$`\\]/.test(value)) {
        throw new Error(
          `${path}:${index + 1}: quotes, $ and \\ mean different things to systemd and compose`,
        );
      }
      if (name in out) throw new Error(`${path}:${index + 1}: ${name} is set twice`);
      out[name] = value;
    });
  return out;
}

export interface ComposeService {
  readonly name: string;
  readonly image: string | undefined;
  readonly build: unknown;
  readonly command: readonly string[];
  readonly envFiles: readonly string[];
  readonly environment: Readonly<Record<string, string>>;
  readonly dependsOn: readonly string[];
  readonly ports: readonly string[];
  readonly volumes: readonly string[];
}

function record(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new Error(`${what}: expected a mapping`);
  }
  return value as Record<string, unknown>;
}

function strings(value: unknown, what: string): string[] {
  if (value === undefined) return [];
  if (typeof value === "string") return [value];
  if (!Array.isArray(value) || !value.every((v) => typeof v === "string")) {
    throw new Error(`${what}: expected a list of strings (write commands in exec form)`);
  }
  return value;
}

/** deploy/compose.yaml's services, with YAML merge keys applied and env_file paths absolute. */
export function readCompose(path = join(DEPLOY, "compose.yaml")): {
  services: Map<string, ComposeService>;
  volumes: readonly string[];
} {
  const doc = record(parse(readText(path), { merge: true }), path);
  const services = new Map<string, ComposeService>();
  for (const [name, raw] of Object.entries(record(doc.services, "services"))) {
    const s = record(raw, name);
    if (typeof s.command === "string") throw new Error(`${name}: write command as a list`);
    const environment: Record<string, string> = {};
    for (const [key, value] of Object.entries(record(s.environment ?? {}, `${name}.environment`))) {
      if (typeof value !== "string") {
        throw new Error(`${name}.environment.${key}: quote it (compose wants strings)`);
      }
      environment[key] = value;
    }
    const dependsOn = Array.isArray(s.depends_on)
      ? strings(s.depends_on, `${name}.depends_on`)
      : Object.keys(record(s.depends_on ?? {}, `${name}.depends_on`));
    services.set(name, {
      name,
      image: typeof s.image === "string" ? s.image : undefined,
      build: s.build,
      command: strings(s.command, `${name}.command`),
      envFiles: strings(s.env_file, `${name}.env_file`).map((file) => join(DEPLOY, file)),
      environment,
      dependsOn,
      ports: strings(s.ports, `${name}.ports`),
      volumes: strings(s.volumes, `${name}.volumes`),
    });
  }
  return { services, volumes: Object.keys(record(doc.volumes ?? {}, "volumes")) };
}

/** What a container's process sees: its env files in order, then `environment` (compose's order). */
export function serviceEnv(service: ComposeService): Record<string, string> {
  return Object.assign({}, ...service.envFiles.map(readEnvFile), service.environment);
}

/** `--name=value` (or `--name value`) of an etcd command line. */
export function flagValue(args: readonly string[], name: string): string | undefined {
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] ?? "";
    if (arg.startsWith(`--${name}=`)) return arg.slice(name.length + 3);
    if (arg === `--${name}`) return args[i + 1];
  }
  return undefined;
}

/** A systemd unit's keys, per section (a repeated key keeps every value). */
export function readUnit(path: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>();
  let current: Map<string, string[]> | undefined;
  readText(path)
    .split("\n")
    .forEach((line, index) => {
      const text = line.trim();
      if (text === "" || text.startsWith("#") || text.startsWith(";")) return;
      const section = /^\[([A-Za-z]+)\]$/.exec(text);
      if (section !== null) {
        current = new Map();
        sections.set(section[1] ?? "", current);
        return;
      }
      const match = /^([A-Za-z]+)=(.*)$/.exec(text);
      if (match === null || current === undefined) {
        throw new Error(`${path}:${index + 1}: not Key=value in a section: ${line}`);
      }
      const [, key = "", value = ""] = match;
      current.set(key, [...(current.get(key) ?? []), value]);
    });
  return sections;
}

/** The one value of `key` in `[section]`; throws when it is missing or repeated. */
export function unitValue(
  unit: Map<string, Map<string, string[]>>,
  section: string,
  key: string,
): string {
  const values = unit.get(section)?.get(key) ?? [];
  if (values.length !== 1)
    throw new Error(`[${section}] ${key}: expected one value, found ${values.length}`);
  return values[0] ?? "";
}

/** A NATS config's `routes: [ ... ]` URLs and a few scalars, by pattern (enough for our files). */
export function readNatsConf(path: string): {
  serverName: string | undefined;
  clusterName: string | undefined;
  clusterListen: string | undefined;
  listen: string | undefined;
  routes: string[];
  includes: string[];
} {
  const text = readText(path)
    .split("\n")
    .filter((line) => !line.trim().startsWith("#"))
    .join("\n");
  const cluster = /cluster\s*\{([\s\S]*?)\n\}/.exec(text)?.[1] ?? "";
  const outside = text.replace(/cluster\s*\{[\s\S]*?\n\}/, "");
  const scalar = (body: string, key: string): string | undefined =>
    new RegExp(`^\\s*${key}\\s*[:=]\\s*(\\S+)`, "m").exec(body)?.[1];
  const routesBody = /routes\s*[:=]\s*\[([\s\S]*?)\]/.exec(cluster)?.[1] ?? "";
  return {
    serverName: scalar(outside, "server_name"),
    listen: scalar(outside, "listen"),
    clusterName: scalar(cluster, "name"),
    clusterListen: scalar(cluster, "listen"),
    routes: routesBody
      .split(/[\s,]+/)
      .map((r) => r.trim())
      .filter((r) => r !== ""),
    includes: [...outside.matchAll(/^\s*include\s+(\S+)/gm)].map((m) => m[1] ?? ""),
  };
}

/**
 * deploy/nats/accounts.conf with the passwords of deploy/env/nats.env written in, for a test
 * nats-server (the cluster files around it name hosts that exist only inside compose).
 */
export function accountsConfWithPasswords(): string {
  let config = readText(join(DEPLOY, "nats", "accounts.conf"));
  for (const [name, value] of Object.entries(readEnvFile(join(DEPLOY, "env", "nats.env")))) {
    config = config.replaceAll(`$${name}`, JSON.stringify(value));
  }
  return config;
}
