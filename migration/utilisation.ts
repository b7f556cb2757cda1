/** Host utilisation as the planners weigh it: per resource, and one weighted figure. */

import {
  CORE_RESOURCES,
  DEFAULT_RESOURCE_WEIGHTS,
  get,
  type HostView,
  type Resources,
  type ResourceWeights,
} from "../placement/index.js";

/**
 * Σ w_k · usage_k / allocatable_k over the core resources the host has, divided by Σ w_k over
 * them: 0 for an empty host, 1 for a full one.
 */
export function weightedUtilisation(
  host: HostView,
  usage: Resources,
  weights: ResourceWeights = DEFAULT_RESOURCE_WEIGHTS,
): number {
  let sum = 0;
  let total = 0;
  for (const k of CORE_RESOURCES) {
    const a = get(host.allocatable, k);
    if (!(a > 0)) continue;
    sum += (weights[k] * get(usage, k)) / a;
    total += weights[k];
  }
  return total > 0 ? sum / total : 0;
}
