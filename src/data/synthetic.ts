/**
 * The built-in synthetic task: three Gaussian clusters in 2-D, one per class (the task of the Pascal
 * PermutationAlign example this project grew from). Pure and seeded, so it runs anywhere and the
 * same seed always gives the same data.
 */
import { InputError } from '../errors.js';
import { createRng, shuffledRange } from '../random.js';
import { makeDataset, type Dataset } from './dataset.js';

export interface ThreeClustersOptions {
  count: number;
  seed: number;
  /** Radius of the circle the centres sit on. Default 2. */
  radius?: number;
  /** Standard deviation of each (isotropic) cluster. Default 1. */
  std?: number;
}

export const THREE_CLUSTERS_RADIUS = 2;
/**
 * With centres 120° apart on a circle of radius 2, std 1 puts each decision boundary ~1.7 std from
 * its centres: the Bayes-optimal (nearest-centre) accuracy is about 93%, so a small MLP can learn
 * the task well but not perfectly, and two nets trained from different seeds genuinely differ.
 */
export const THREE_CLUSTERS_STD = 1;

/** The class centres: angles 90°, 210°, 330° on the circle. */
export function threeClusterCentres(radius = THREE_CLUSTERS_RADIUS): [number, number][] {
  return [0, 1, 2].map((k) => {
    const a = Math.PI / 2 + (2 * Math.PI * k) / 3;
    return [radius * Math.cos(a), radius * Math.sin(a)];
  });
}

/**
 * `count` points, classes as balanced as `count` allows (the first `count % 3` classes get one
 * extra), in a seeded random order.
 */
export function threeClusters(opts: ThreeClustersOptions): Dataset {
  const { count, seed } = opts;
  const radius = opts.radius ?? THREE_CLUSTERS_RADIUS;
  const std = opts.std ?? THREE_CLUSTERS_STD;
  if (!Number.isInteger(count) || count < 1) throw new InputError(`synthetic: count must be a positive integer, got ${count}`);
  if (!(std >= 0) || !(radius >= 0)) throw new InputError(`synthetic: radius and std must be non-negative`);
  const rng = createRng(seed);
  const centres = threeClusterCentres(radius);
  // Classes in blocks first (exact balance), then one seeded shuffle decides the order.
  const order = shuffledRange(count, rng);
  const inputs = new Float32Array(2 * count);
  const labels = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    const cls = classOfBlockIndex(order[i], count);
    const [cx, cy] = centres[cls];
    labels[i] = cls;
    inputs[2 * i] = cx + std * rng.normal();
    inputs[2 * i + 1] = cy + std * rng.normal();
  }
  return makeDataset({
    inputs,
    inputShape: [2],
    labels,
    numClasses: 3,
    name: `synthetic three clusters (count ${count}, seed ${seed})`,
    preprocessing: `none: raw 2-D points, 3 Gaussian clusters (centres on a circle of radius ${radius}, std ${std})`,
  });
}

/** Class of position j when `count` items are laid out as class 0's block, then 1's, then 2's. */
function classOfBlockIndex(j: number, count: number): number {
  const base = Math.floor(count / 3);
  const extra = count % 3;
  const size0 = base + (extra > 0 ? 1 : 0);
  const size1 = base + (extra > 1 ? 1 : 0);
  if (j < size0) return 0;
  if (j < size0 + size1) return 1;
  return 2;
}
