/**
 * Datasets from arrays already in memory: parsed IDX arrays, .npy/.npz arrays, and what a file is from
 * its first bytes. Pure (no file system), so the browser page and the core entry use the same builders
 * as the file loaders in load.ts.
 */
import { InputError } from '../errors.js';
import { assertInputsFit, limitDataset, makeDataset, toLabel, type Dataset } from './dataset.js';
import { isGzip, isIdx, type IdxArray } from './idx.js';
import { isNpy, isZip, npyToFloat32, npyToLabels, type NpyArray } from './npy.js';

export interface IdxLoadOptions {
  /** Multiplier for the raw values; default 1/255 for uint8 images, 1 otherwise. */
  scale?: number;
  /** true (default): each example becomes a flat vector, e.g. [784]; false: [1, H, W] (channel first). */
  flatten?: boolean;
  /** Keep only the first `limit` examples (the file is still parsed whole; only these are converted). */
  limit?: number;
  /** Force the number of classes (default: largest label + 1). */
  numClasses?: number;
  name?: string;
}

/** Builds a Dataset from already-parsed IDX arrays (browser-friendly counterpart of loadIdxPair). */
export function idxToDataset(images: IdxArray, labelsArr: IdxArray, opts: IdxLoadOptions, imagesWhat = 'images', labelsWhat = 'labels'): Dataset {
  if (images.shape.length < 2) {
    throw new InputError(`${imagesWhat}: images must have at least 2 dimensions [N, ...], got [${images.shape.join(', ')}]`);
  }
  if (labelsArr.shape.length !== 1) {
    throw new InputError(`${labelsWhat}: labels must be 1-D [N], got [${labelsArr.shape.join(', ')}]`);
  }
  const n = images.shape[0];
  if (labelsArr.shape[0] !== n) {
    throw new InputError(`${imagesWhat} has ${n} images but ${labelsWhat} has ${labelsArr.shape[0]} labels`);
  }
  const count = opts.limit === undefined ? n : Math.max(0, Math.min(n, Math.floor(opts.limit)));
  const example = images.shape.slice(1);
  const size = example.reduce((a, b) => a * b, 1);
  assertInputsFit(count, size, imagesWhat);
  const isBytes = images.dtype === 'u8';
  const scale = opts.scale ?? (isBytes ? 1 / 255 : 1);
  const inputs = new Float32Array(count * size);
  const src = images.data;
  for (let i = 0; i < inputs.length; i++) inputs[i] = src[i] * scale;
  const labels = new Int32Array(count);
  for (let i = 0; i < count; i++) labels[i] = toLabel(labelsArr.data[i], i, labelsWhat);
  const flatten = opts.flatten ?? true;
  // [N, H, W] images become [1, H, W] (one channel) when not flattened; [N, C, H, W] stay as they are.
  const inputShape = flatten ? [size] : example.length === 2 ? [1, ...example] : example;
  const what = isBytes ? 'pixels' : 'values';
  const scaled = scale === 1 ? `${what} as stored` : scale === 1 / 255 ? `${what} / 255` : `${what} × ${scale}`;
  const shaped = flatten ? `flattened to ${size}` : `shaped [${inputShape.join(', ')}]`;
  return makeDataset({
    inputs,
    inputShape,
    labels,
    numClasses: opts.numClasses,
    name: opts.name ?? 'IDX dataset',
    preprocessing: `${scaled}, ${shaped}`,
  });
}

export interface ArrayLoadOptions {
  inputsKey?: string;
  labelsKey?: string;
  /** Multiplier for the inputs; default 1/255 when they are uint8, else 1. */
  scale?: number;
  /** Keep the per-example shape of the array (false, default: as stored) or flatten it (true). */
  flatten?: boolean;
  limit?: number;
  numClasses?: number;
  name?: string;
}

/** Builds a Dataset from an inputs array [N, ...] and a labels array [N] (or [N, C] one-hot). */
export function arraysToDataset(x: NpyArray, y: NpyArray, opts: ArrayLoadOptions, xWhat: string, yWhat: string): Dataset {
  if (x.shape.length < 1) throw new InputError(`${xWhat}: inputs must have shape (N, ...), got a scalar`);
  const n = x.shape[0];
  if (y.shape.length < 1 || y.shape[0] !== n) {
    throw new InputError(`${xWhat} has ${n} examples but ${yWhat} has shape (${y.shape.join(', ')})`);
  }
  const example = x.shape.length === 1 ? [1] : x.shape.slice(1);
  const size = example.reduce((a, b) => a * b, 1);
  assertInputsFit(opts.limit === undefined ? n : Math.min(n, opts.limit), size, xWhat);
  const { labels, note } = npyToLabels(y, yWhat);
  const isBytes = x.dtype === '|u1';
  const scale = opts.scale ?? (isBytes ? 1 / 255 : 1);
  let inputs = npyToFloat32(x);
  if (scale !== 1) {
    const scaled = new Float32Array(inputs.length);
    for (let i = 0; i < inputs.length; i++) scaled[i] = inputs[i] * scale;
    inputs = scaled;
  } else if (inputs === x.data) {
    inputs = inputs.slice(); // never alias the parsed array's buffer into a dataset the caller may edit
  }
  const inputShape = opts.flatten ? [size] : example;
  const parts = [
    scale === 1 ? `${x.dtype} values as stored` : scale === 1 / 255 ? `${x.dtype} values / 255` : `${x.dtype} values × ${scale}`,
  ];
  if (opts.flatten && example.length > 1) parts.push(`flattened to ${size}`);
  if (note) parts.push(note);
  const ds = makeDataset({ inputs, inputShape, labels, numClasses: opts.numClasses, name: opts.name ?? xWhat, preprocessing: parts.join(', ') });
  return limitDataset(ds, opts.limit);
}

export type FileKind = 'gzip' | 'idx' | 'npy' | 'zip' | 'unknown';

/** What a file is, from its first bytes. */
export function sniffBytes(bytes: Uint8Array): FileKind {
  if (isGzip(bytes)) return 'gzip';
  if (isNpy(bytes)) return 'npy';
  if (isZip(bytes)) return 'zip';
  if (isIdx(bytes)) return 'idx';
  return 'unknown';
}
