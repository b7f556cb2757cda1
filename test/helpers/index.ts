export * from "./binaries.js";
export * from "./errors.js";
export * from "./etcd.js";
export * from "./nats.js";
export * from "./ports.js";
export * from "./process.js";
export { type RestartableServer, startRestartableServer } from "./server.js";
export * from "./temp.js";
export * from "./wait.js";
