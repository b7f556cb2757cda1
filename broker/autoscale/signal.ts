/**
 * A published signal and its two wire forms: protobuf `AutoscaleSignal` (NATS `lb.v1.autoscale`,
 * GetAutoscaleStatus) and JSON (webhooks; docs/api.md shows it).
 */
import { ZERO_RESOURCES } from "../../placement/index.js";
import {
  type AutoscaleSignalInput,
  type AutoscaleStatusInput,
  createCodec,
  type HostShapeCountInput,
  timestampFromMs,
} from "../../proto/index.js";
import { resourcesToProto } from "../api/convert.js";
import type { Recommendation } from "./evaluate.js";
import { shapeAllocatable } from "./shapes.js";
import type { AutoscaleStatusView } from "./signaller.js";

export interface AutoscaleSignalRecord {
  readonly recommendation: Recommendation;
  /** When it was computed (epoch ms). */
  readonly time: number;
  /** 1, 2, … within one broker epoch. */
  readonly sequence: number;
  readonly epoch: number;
}

export const autoscaleSignalCodec = createCodec("leasebroker.v1.AutoscaleSignal");

export function signalToProto(s: AutoscaleSignalRecord): AutoscaleSignalInput {
  const head = { time: timestampFromMs(s.time), sequence: s.sequence, epoch: s.epoch };
  const r = s.recommendation;
  switch (r.kind) {
    case "scale-out":
      return {
        ...head,
        signal: "scaleOut",
        scaleOut: {
          hosts: r.hosts.map(
            (h): HostShapeCountInput => ({
              shape: h.shape.name,
              resources: resourcesToProto(shapeAllocatable(h.shape)),
              labels: { ...h.shape.labels },
              count: h.count,
            }),
          ),
          reason: r.reason,
          demand: resourcesToProto(r.demand),
          deadline: r.deadline === undefined ? null : timestampFromMs(r.deadline),
          leaseIds: [...r.leaseIds],
        },
      };
    case "scale-in":
      return {
        ...head,
        signal: "scaleIn",
        scaleIn: {
          candidateHostIds: [...r.candidateHostIds],
          moves: r.moves.map((m) => ({
            leaseId: m.leaseId,
            fromHostId: m.fromHostId,
            toHostId: m.toHostId,
            reason: "MIGRATION_REASON_CONSOLIDATE",
          })),
          reason: r.reason,
          surplus: resourcesToProto(r.surplus),
        },
      };
    case "steady":
      return { ...head, signal: "steady", steady: { reason: r.reason } };
  }
}

/** The webhook body: plain JSON, times as RFC 3339 strings, resources as the broker counts them. */
export function signalToJson(s: AutoscaleSignalRecord): Record<string, unknown> {
  const head = {
    epoch: s.epoch,
    sequence: s.sequence,
    time: new Date(s.time).toISOString(),
    kind: s.recommendation.kind,
  };
  const r = s.recommendation;
  switch (r.kind) {
    case "scale-out":
      return {
        ...head,
        scaleOut: {
          hosts: r.hosts.map((h) => ({
            shape: h.shape.name,
            capacity: h.shape.capacity,
            allocatable: shapeAllocatable(h.shape),
            labels: h.shape.labels,
            count: h.count,
          })),
          reason: r.reason,
          demand: r.demand,
          deadline: r.deadline === undefined ? null : new Date(r.deadline).toISOString(),
          leaseIds: r.leaseIds,
        },
      };
    case "scale-in":
      return {
        ...head,
        scaleIn: {
          candidateHostIds: r.candidateHostIds,
          moves: r.moves.map((m) => ({
            leaseId: m.leaseId,
            fromHostId: m.fromHostId,
            toHostId: m.toHostId,
          })),
          reason: r.reason,
          surplus: r.surplus,
        },
      };
    case "steady":
      return { ...head, steady: { reason: r.reason } };
  }
}

/** What GetAutoscaleStatus answers. */
export function statusToProto(view: AutoscaleStatusView): AutoscaleStatusInput {
  const e = view.evaluation;
  return {
    enabled: view.enabled,
    lastSignal: view.lastSignal === undefined ? null : signalToProto(view.lastSignal),
    pendingDemand: resourcesToProto(e?.unmetDemand ?? ZERO_RESOURCES),
    pendingLeases: e?.unmetLeaseIds.length ?? 0,
    allocatable: resourcesToProto(e?.allocatable ?? ZERO_RESOURCES),
    allocated: resourcesToProto(e?.allocated ?? ZERO_RESOURCES),
    readyHosts: e?.readyHosts ?? 0,
    idleHostIds: [...view.idleHostIds],
  };
}
