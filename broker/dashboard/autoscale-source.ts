/** The autoscaling hook as the dashboard reads it: its last signal, and every new one. */
import type { AutoscaleSignaller, AutoscaleSignalRecord } from "../autoscale/index.js";
import type { AutoscaleSignalView, AutoscaleSource } from "./sources.js";

export function autoscaleView(s: AutoscaleSignalRecord): AutoscaleSignalView {
  const r = s.recommendation;
  switch (r.kind) {
    case "scale-out":
      return {
        at: s.time,
        direction: "up",
        hostsDelta: r.hosts.reduce((sum, h) => sum + h.count, 0),
        reason: r.reason,
      };
    case "scale-in":
      return {
        at: s.time,
        direction: "down",
        hostsDelta: -r.candidateHostIds.length,
        reason: r.reason,
      };
    case "steady":
      return { at: s.time, direction: "none", hostsDelta: 0, reason: r.reason };
  }
}

export function signallerAutoscaleSource(
  signaller: Pick<AutoscaleSignaller, "status" | "onSignal">,
): AutoscaleSource {
  return {
    current() {
      const last = signaller.status().lastSignal;
      return last === undefined ? undefined : autoscaleView(last);
    },
    subscribe: (listener) => signaller.onSignal((s) => listener(autoscaleView(s))),
  };
}
