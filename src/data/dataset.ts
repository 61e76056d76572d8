/**
 * The Dataset type (plain data, no hidden state) and the pure operations on it: views, batches,
 * reshapes. Nothing here touches files, so it runs in a browser as well as in Node.
 */
import { InputError } from '../errors.js';
import { MAX_INPUT_VALUES } from './limits.js';

/**
 * `count` labelled examples. Example i occupies `inputs[i*size .. (i+1)*size)` where
 * `size = product(inputShape)`; its class is `labels[i]` in `[0, numClasses)`.
 */
export interface Dataset {
  readonly inputs: Float32Array;
  /** Shape of ONE example, e.g. [784], [1, 28, 28] or [2]. */
  readonly inputShape: number[];
  readonly count: number;
  readonly labels: Int32Array;
  readonly numClasses: number;
  readonly name: string;
  /** Human-readable description of how the raw values became `inputs`, e.g. "pixels / 255, flattened to 784". */
  readonly preprocessing: string;
}

export interface Batch {
  /** Index of the batch's first example in the dataset. */
  readonly start: number;
  readonly count: number;
  /** A view into the dataset's inputs (not a copy): count × product(inputShape) values. */
  readonly inputs: Float32Array;
  /** A view into the dataset's labels. */
  readonly labels: Int32Array;
}

export function exampleSize(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/**
 * Builds a Dataset after checking that its parts agree, so every later consumer can trust
 * `inputs.length === count * size` and `0 <= label < numClasses`.
 */
export function makeDataset(parts: {
  inputs: Float32Array;
  inputShape: readonly number[];
  labels: Int32Array;
  numClasses?: number;
  name: string;
  preprocessing: string;
}): Dataset {
  const { inputs, labels, name } = parts;
  const inputShape = [...parts.inputShape];
  for (const d of inputShape) {
    if (!Number.isInteger(d) || d <= 0) {
      throw new InputError(`dataset ${name}: example shape [${inputShape.join(', ')}] has a non-positive or non-integer dimension`);
    }
  }
  const size = exampleSize(inputShape);
  const count = labels.length;
  if (inputs.length !== count * size) {
    throw new InputError(
      `dataset ${name}: ${count} labels need ${count} × ${size} = ${count * size} input values, got ${inputs.length}`,
    );
  }
  let max = -1;
  for (let i = 0; i < count; i++) {
    const y = labels[i];
    if (y < 0) throw new InputError(`dataset ${name}: label ${i} is ${y}; labels must be class indices >= 0`);
    if (y > max) max = y;
  }
  const numClasses = parts.numClasses ?? max + 1;
  if (max >= numClasses) {
    throw new InputError(`dataset ${name}: label ${max} is out of range for ${numClasses} classes`);
  }
  return { inputs, inputShape, count, labels, numClasses, name, preprocessing: parts.preprocessing };
}

/** The largest label an Int32Array holds exactly. */
const MAX_LABEL = 2 ** 31 - 1;

/**
 * A class label from a stored value: an integer in [0, 2^31), else an InputError naming `what` and the
 * example (a float 4294967296 would otherwise wrap to 0 in the Int32Array, a 2.5 be cut to 2).
 */
export function toLabel(v: number | bigint, index: number, what: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > MAX_LABEL) {
    throw new InputError(`${what}: example ${index} has label ${String(v)}; labels must be integers from 0 to ${MAX_LABEL}`);
  }
  return n;
}

/** Refuses, before allocating, a dataset of more input values than limits.ts allows. */
export function assertInputsFit(count: number, size: number, what: string): void {
  if (count * size > MAX_INPUT_VALUES) {
    throw new InputError(
      `${what}: ${count} examples of ${size} values are ${count * size} values, over the limit of ${MAX_INPUT_VALUES}; take fewer with --limit`,
    );
  }
}

/** Examples `start .. start+count-1` as views into `ds` (no copy). */
export function sliceDataset(ds: Dataset, start: number, count: number): Dataset {
  if (!Number.isInteger(start) || !Number.isInteger(count) || start < 0 || count < 0 || start + count > ds.count) {
    throw new InputError(`dataset ${ds.name}: cannot take ${count} examples from index ${start}; it has ${ds.count}`);
  }
  const size = exampleSize(ds.inputShape);
  return {
    ...ds,
    inputShape: [...ds.inputShape],
    inputs: ds.inputs.subarray(start * size, (start + count) * size),
    labels: ds.labels.subarray(start, start + count),
    count,
  };
}

/** The first `limit` examples (all of them when limit is undefined or larger than the dataset). */
export function limitDataset(ds: Dataset, limit: number | undefined): Dataset {
  if (limit === undefined || limit >= ds.count) return ds;
  if (!Number.isInteger(limit) || limit < 0) throw new InputError(`dataset limit must be a non-negative integer, got ${limit}`);
  return sliceDataset(ds, 0, limit);
}

/**
 * Consecutive batches of `batchSize` examples (the last may be shorter), as views into the
 * dataset, so iterating an epoch allocates nothing per batch.
 */
export function* batches(ds: Dataset, batchSize: number): Generator<Batch> {
  if (!Number.isInteger(batchSize) || batchSize <= 0) {
    throw new InputError(`batch size must be a positive integer, got ${batchSize}`);
  }
  const size = exampleSize(ds.inputShape);
  for (let start = 0; start < ds.count; start += batchSize) {
    const count = Math.min(batchSize, ds.count - start);
    yield {
      start,
      count,
      inputs: ds.inputs.subarray(start * size, (start + count) * size),
      labels: ds.labels.subarray(start, start + count),
    };
  }
}

/** The same data seen with another per-example shape, e.g. [784] -> [1, 28, 28]; no copy. */
export function reshapeInputs(ds: Dataset, shape: readonly number[]): Dataset {
  const from = exampleSize(ds.inputShape);
  const valid = shape.length > 0 && shape.every((d) => Number.isInteger(d) && d > 0);
  if (!valid || exampleSize(shape) !== from) {
    throw new InputError(
      `dataset ${ds.name}: cannot reshape examples of shape [${ds.inputShape.join(', ')}] (${from} values) to [${shape.join(', ')}]`,
    );
  }
  const note = sameDims(shape, ds.inputShape) ? '' : `, reshaped to [${shape.join(', ')}]`;
  return { ...ds, inputShape: [...shape], preprocessing: ds.preprocessing + note };
}

/** A copy of `ds` with its examples in the order given by `order` (e.g. a seeded shuffle). */
export function reorderDataset(ds: Dataset, order: Int32Array): Dataset {
  if (order.length !== ds.count) {
    throw new InputError(`dataset ${ds.name}: an order of length ${order.length} for ${ds.count} examples`);
  }
  const size = exampleSize(ds.inputShape);
  const inputs = new Float32Array(ds.inputs.length);
  const labels = new Int32Array(ds.count);
  for (let i = 0; i < order.length; i++) {
    const j = order[i];
    if (j < 0 || j >= ds.count) throw new InputError(`dataset ${ds.name}: order index ${j} out of range`);
    inputs.set(ds.inputs.subarray(j * size, (j + 1) * size), i * size);
    labels[i] = ds.labels[j];
  }
  return { ...ds, inputShape: [...ds.inputShape], inputs, labels };
}

/** Number of examples of each class. */
export function classCounts(ds: Dataset): Int32Array {
  const counts = new Int32Array(ds.numClasses);
  for (let i = 0; i < ds.count; i++) counts[ds.labels[i]]++;
  return counts;
}

function sameDims(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}
