export { type ElectionOptions, LeaderElection, type Term } from "./election.js";
export { type EtcdClusterOptions, etcdCluster } from "./etcd-cluster.js";
export { FOLLOWER_METHODS, gateHandlers, type RequestGate } from "./gate.js";
export {
  HighAvailability,
  type HighAvailabilityOptions,
  type LeaderDuty,
} from "./high-availability.js";
export { observeCommits } from "./observed-store.js";
