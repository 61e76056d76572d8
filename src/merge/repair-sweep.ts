/**
 * The interpolation curve with REPAIR: at every interior α the interpolated net is renormalised before it is
 * evaluated. The endpoints are evaluated as they are (their statistics already equal the targets, so repair
 * would only round them), and their statistics are measured once for the whole sweep.
 */
import type { Params } from '../tensor.js';
import { sweep, type CurvePoint, type Evaluation } from '../measure/barrier.js';
import { measureEndpoints, repairMerged, type LayerStats, type RepairLayer, type RepairMode, type RepairResult, type StatsFn } from './repair.js';

/** One repair of an interpolated net (the default is repairMerged over `layers`). */
export type RepairFn = (r: { merged: Params; endpoints: readonly Params[]; alpha: number; mode?: RepairMode; endpointStats: readonly LayerStats[] }) => Promise<RepairResult>;

export interface RepairedSweepOptions {
  a: Params;
  /** B, already aligned to A (or not, to repair the naive path). */
  b: Params;
  points: number;
  evaluate: (params: Params, alpha: number) => Promise<Evaluation>;
  stats: StatsFn;
  layers: readonly RepairLayer[];
  mode?: RepairMode;
  /** How to repair one interpolated net; default repairMerged over `layers` with `stats`. */
  repair?: RepairFn;
  onPoint?: (done: number, total: number) => void;
}

export async function repairedSweep(o: RepairedSweepOptions): Promise<CurvePoint[]> {
  const endpointStats = await measureEndpoints(o.stats, [o.a, o.b]);
  const repair: RepairFn = o.repair ?? ((r) => repairMerged({ ...r, stats: o.stats, layers: o.layers }));
  return sweep(
    o.a,
    o.b,
    o.points,
    async (params, alpha) => {
      if (alpha === 0 || alpha === 1) return o.evaluate(params, alpha);
      const repaired = await repair({ merged: params, endpoints: [o.a, o.b], alpha, mode: o.mode, endpointStats });
      return o.evaluate(repaired.params, alpha);
    },
    o.onPoint,
  );
}
