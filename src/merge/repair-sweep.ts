/**
 * The interpolation curve with REPAIR: at every interior α the interpolated net is renormalised before it is
 * evaluated. The endpoints are evaluated as they are (their statistics already equal the targets, so repair
 * would only round them), and their statistics are measured once for the whole sweep.
 */
import type { Params } from '../tensor.js';
import { interpolate, alphaGrid, type CurvePoint, type Evaluation } from '../measure/barrier.js';
import { measureEndpoints, repairMerged, type RepairLayer, type RepairMode, type StatsFn } from './repair.js';

export interface RepairedSweepOptions {
  a: Params;
  /** B, already aligned to A (or not, to repair the naive path). */
  b: Params;
  points: number;
  evaluate: (params: Params, alpha: number) => Promise<Evaluation>;
  stats: StatsFn;
  layers: readonly RepairLayer[];
  mode?: RepairMode;
  onPoint?: (done: number, total: number) => void;
}

export async function repairedSweep(o: RepairedSweepOptions): Promise<CurvePoint[]> {
  const endpointStats = await measureEndpoints(o.stats, [o.a, o.b]);
  const grid = alphaGrid(o.points);
  const curve: CurvePoint[] = [];
  for (let i = 0; i < grid.length; i++) {
    const alpha = grid[i];
    let params: Params;
    if (alpha === 0) params = o.a;
    else if (alpha === 1) params = o.b;
    else {
      const merged = interpolate(o.a, o.b, alpha);
      params = (await repairMerged({ merged, endpoints: [o.a, o.b], alpha, stats: o.stats, layers: o.layers, mode: o.mode, endpointStats })).params;
    }
    const e = await o.evaluate(params, alpha);
    curve.push({ alpha, loss: e.loss, accuracy: e.accuracy });
    o.onPoint?.(i + 1, grid.length);
  }
  return curve;
}
