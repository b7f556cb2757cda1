import { type Logger, pino } from "pino";

export type { Logger } from "pino";

export type LogLevel = "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent";

export const LOG_LEVELS: readonly LogLevel[] = [
  "fatal",
  "error",
  "warn",
  "info",
  "debug",
  "trace",
  "silent",
];

export function isLogLevel(value: string): value is LogLevel {
  return (LOG_LEVELS as readonly string[]).includes(value);
}

export interface LoggerOptions {
  /** Default `info`. */
  level?: LogLevel;
  /** The component, e.g. `broker` or `agent`; every line carries it. */
  name?: string;
  /** Extra fields on every line (a host id, a broker id). */
  base?: Record<string, unknown>;
}

/** JSON lines on stdout, one object per event (pino). */
export function createLogger(options: LoggerOptions = {}): Logger {
  return pino({
    level: options.level ?? "info",
    ...(options.name === undefined ? {} : { name: options.name }),
    base: { pid: process.pid, ...options.base },
    timestamp: pino.stdTimeFunctions.isoTime,
  });
}

/** A logger that writes nothing: the default in tests and benchmarks. */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}
