import { describe, expect, it } from "vitest";
import type { AutoscaleSignalRecord, AutoscaleStatusView } from "../autoscale/index.js";
import { signallerAutoscaleSource } from "./autoscale-source.js";
import type { AutoscaleSignalView } from "./sources.js";

const ZERO = { cpuMillis: 0, memoryMib: 0, diskGib: 0, gpus: 0 };

describe("signallerAutoscaleSource", () => {
  it("shows the last signal and every new one as direction and host count", () => {
    let last: AutoscaleSignalRecord | undefined;
    const listeners = new Set<(s: AutoscaleSignalRecord) => void>();
    const source = signallerAutoscaleSource({
      status: () => ({ lastSignal: last }) as AutoscaleStatusView,
      onSignal: (l) => {
        listeners.add(l);
        return () => listeners.delete(l);
      },
    });
    expect(source.current()).toBeUndefined();
    const seen: AutoscaleSignalView[] = [];
    const off = source.subscribe((s) => seen.push(s));
    const scaleIn: AutoscaleSignalRecord = {
      time: 5,
      sequence: 1,
      epoch: 1,
      recommendation: {
        kind: "scale-in",
        candidateHostIds: ["h-1", "h-2"],
        moves: [],
        reason: "low",
        surplus: ZERO,
      },
    };
    last = scaleIn;
    for (const l of listeners) l(scaleIn);
    off();
    for (const l of listeners) l(scaleIn);
    expect(seen).toEqual([{ at: 5, direction: "down", hostsDelta: -2, reason: "low" }]);
    expect(source.current()).toEqual({ at: 5, direction: "down", hostsDelta: -2, reason: "low" });
  });
});
