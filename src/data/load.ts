/**
 * Loading datasets from files (Node only: this is the one module of src/data that touches the
 * file system). Files are recognised by their content — gzip, IDX, .npy and zip magic — not only
 * by their extension.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { InputError } from '../errors.js';
import { assertInputsFit, limitDataset, makeDataset, reshapeInputs, toLabel, type Dataset } from './dataset.js';
import { MAX_ARRAY_BYTES } from './limits.js';
import { readRegularFile, readRegularHead } from '../io/regular-file.js';
import { isGzip, isIdx, parseIdx, type IdxArray } from './idx.js';
import { isNpy, isZip, npyToFloat32, npyToLabels, npzKeys, parseNpy, parseNpz, type NpyArray } from './npy.js';
import { threeClusters } from './synthetic.js';

export const FASHION_MNIST_ROOT = '/usr/share/datasets/fashion-mnist';
export const FASHION_MNIST_CLASSES = [
  'T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot',
];
export const SYNTHETIC_DEFAULT_COUNT = 3000;

export type Split = 'train' | 'test';

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

/**
 * A dataset file's bytes: a regular file only (a FIFO, a folder or a link to /dev/zero is refused, see
 * regular-file.ts), of at most MAX_ARRAY_BYTES plus room for a header.
 */
function readBytes(path: string, what: string): Uint8Array {
  return readRegularFile(path, `${what} ${path}`, MAX_ARRAY_BYTES + MAX_HEADER_SLACK, 'the most one dataset array may hold');
}

// .npy headers may take up to 64 KiB; IDX ones 36 bytes.
const MAX_HEADER_SLACK = 1 << 17;

/** Reads an images IDX file and a labels IDX file into a Dataset. */
export function loadIdxPair(imagesPath: string, labelsPath: string, opts: IdxLoadOptions = {}): Dataset {
  const images = parseIdx(readBytes(imagesPath, 'images file'), imagesPath);
  const labelsArr = parseIdx(readBytes(labelsPath, 'labels file'), labelsPath);
  return idxToDataset(images, labelsArr, { ...opts, name: opts.name ?? `${basename(imagesPath)} + ${basename(labelsPath)}` }, imagesPath, labelsPath);
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

/** The file names a folder may use for one split, in order of preference (gzipped or not). */
function idxCandidates(split: Split, kind: 'images' | 'labels'): string[] {
  const prefix = split === 'train' ? 'train' : 't10k';
  const dim = kind === 'images' ? 'idx3' : 'idx1';
  const stems = [`${prefix}-${kind}-${dim}-ubyte`, `${prefix}-${kind}.${dim}-ubyte`, `${prefix}-${kind}-${dim}`];
  if (split === 'test') stems.push(`test-${kind}-${dim}-ubyte`);
  return stems.flatMap((s) => [`${s}.gz`, s]);
}

/** Finds the images and labels files of one split in a folder using the standard MNIST names. */
export function findIdxPair(folder: string, split: Split): { images: string; labels: string } | null {
  const pick = (kind: 'images' | 'labels'): string | null => {
    for (const name of idxCandidates(split, kind)) {
      const p = join(folder, name);
      if (existsSync(p)) return p;
    }
    return null;
  };
  const images = pick('images');
  const labels = pick('labels');
  return images !== null && labels !== null ? { images, labels } : null;
}

/**
 * Paths of Fashion-MNIST's `split` under `root` — by default where Debian's dataset-fashion-mnist
 * package installs it (train-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz, ...).
 */
export function findFashionMnist(split: Split, root = FASHION_MNIST_ROOT): { images: string; labels: string } {
  const found = existsSync(root) ? findIdxPair(root, split) : null;
  if (found !== null) return found;
  const names = `${idxCandidates(split, 'images')[0]} and ${idxCandidates(split, 'labels')[0]}`;
  const hint = root === FASHION_MNIST_ROOT || !existsSync(root)
    ? `install it with 'apt-get install dataset-fashion-mnist' (files go to ${FASHION_MNIST_ROOT}) or give a folder holding them`
    : `put the standard MNIST-format files there (.gz or not)`;
  throw new InputError(`Fashion-MNIST ${split} split not found in ${root} (looked for ${names}); ${hint}`);
}

export function loadFashionMnist(split: Split, opts: IdxLoadOptions & { root?: string } = {}): Dataset {
  const { images, labels } = findFashionMnist(split, opts.root);
  return loadIdxPair(images, labels, { numClasses: 10, ...opts, name: opts.name ?? `fashion-mnist ${split}` });
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

const INPUT_KEYS = ['x', 'inputs', 'X', 'images'];
const LABEL_KEYS = ['y', 'labels', 'Y'];

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

/** A dataset from a .npz archive holding inputs and labels arrays (keys 'x'/'y' or common alternatives). */
export function loadNpzDataset(path: string, opts: ArrayLoadOptions = {}): Dataset {
  const bytes = readBytes(path, '.npz file');
  const keys = npzKeys(bytes, path);
  const choose = (given: string | undefined, fallbacks: string[], role: string): string => {
    const options = given !== undefined ? [given] : fallbacks;
    const k = options.find((o) => keys.includes(o));
    if (k === undefined) {
      throw new InputError(`${path}: no ${role} array (looked for ${options.map((o) => `'${o}'`).join(', ')}; it has ${keys.map((o) => `'${o}'`).join(', ') || 'none'})`);
    }
    return k;
  };
  const xKey = choose(opts.inputsKey, INPUT_KEYS, 'inputs');
  const yKey = choose(opts.labelsKey, LABEL_KEYS, 'labels');
  const arrays = parseNpz(bytes, path, [xKey, yKey]);
  return arraysToDataset(arrays.get(xKey)!, arrays.get(yKey)!, { ...opts, name: opts.name ?? basename(path) }, `${path}['${xKey}']`, `${path}['${yKey}']`);
}

/** A dataset from two .npy files: inputs [N, ...] and labels [N]. */
export function loadNpyPair(inputsPath: string, labelsPath: string, opts: ArrayLoadOptions = {}): Dataset {
  const x = parseNpy(readBytes(inputsPath, 'inputs file'), inputsPath);
  const y = parseNpy(readBytes(labelsPath, 'labels file'), labelsPath);
  return arraysToDataset(x, y, { ...opts, name: opts.name ?? `${basename(inputsPath)} + ${basename(labelsPath)}` }, inputsPath, labelsPath);
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

export interface LoadDatasetOptions {
  /** For 'fashion-mnist' and IDX folders without a ':split' suffix. Default 'test'. */
  split?: Split;
  /** Flatten images to vectors (default true). */
  flatten?: boolean;
  /** Reshape every example to this shape afterwards, e.g. [1, 28, 28]. */
  shape?: number[];
  limit?: number;
  /** Seed for 'synthetic' (default 0). */
  seed?: number;
  /** Folder to look for Fashion-MNIST in (default the Debian package's). */
  root?: string;
  scale?: number;
  inputsKey?: string;
  labelsKey?: string;
}

const SPEC_HELP =
  "expected 'fashion-mnist[:train|:test]', 'synthetic[:N]', a folder of IDX files[:train|:test], a .npz file, " +
  "'inputs.npy,labels.npy' or 'images-idx,labels-idx'";

/**
 * A dataset from a short spec:
 * - `fashion-mnist`, `fashion-mnist:train`, `fashion-mnist:test` (default split: opts.split ?? 'test');
 * - `synthetic`, `synthetic:N` — the three-cluster task (N points, default 3000, seed opts.seed ?? 0);
 * - a folder holding MNIST-named IDX files, optionally `folder:train`;
 * - a .npz file; `x.npy,y.npy`; `images,labels` as two IDX files (recognised by content).
 */
export function loadDataset(spec: string, opts: LoadDatasetOptions = {}): Dataset {
  const ds = loadUnshaped(spec.trim(), opts);
  return opts.shape ? reshapeInputs(ds, opts.shape) : ds;
}

// The named datasets of a dataset spec (the rest are paths).
const FASHION_MNIST_SPEC = /^fashion-?mnist(?::(\w+))?$/i;
const SYNTHETIC_SPEC = /^synthetic(?::(.*))?$/i;

/**
 * The files loading `spec` may read (the named files, every file of a folder, Fashion-MNIST's folder;
 * none for the synthetic task), so callers can keep outputs off them. Follows loadDataset's grammar.
 */
export function datasetFiles(spec: string, opts: { root?: string } = {}): string[] {
  const s = spec.trim();
  if (SYNTHETIC_SPEC.test(s)) return [];
  const paths = FASHION_MNIST_SPEC.test(s) ? [opts.root ?? FASHION_MNIST_ROOT] : s.split(',').map((p) => p.trim());
  return paths.flatMap((p) => {
    const path = !existsSync(p) && /^(.*):(train|test)$/.test(p) ? p.replace(/:(train|test)$/, '') : p;
    if (!existsSync(path)) return [path];
    return statSync(path).isDirectory() ? readdirSync(path).map((f) => join(path, f)) : [path];
  });
}

function loadUnshaped(spec: string, opts: LoadDatasetOptions): Dataset {
  if (spec === '') throw new InputError(`empty dataset spec; ${SPEC_HELP}`);
  const idxOpts: IdxLoadOptions = { flatten: opts.flatten, limit: opts.limit, scale: opts.scale };

  const fm = FASHION_MNIST_SPEC.exec(spec);
  if (fm) {
    const split = parseSplit(fm[1] ?? opts.split ?? 'test', spec);
    return loadFashionMnist(split, { ...idxOpts, root: opts.root });
  }

  const syn = SYNTHETIC_SPEC.exec(spec);
  if (syn) {
    const count = syn[1] === undefined ? SYNTHETIC_DEFAULT_COUNT : Number(syn[1]);
    if (!Number.isInteger(count) || count < 1) throw new InputError(`dataset '${spec}': N in 'synthetic:N' must be a positive integer`);
    const ds = threeClusters({ count, seed: opts.seed ?? 0 });
    return limitDataset(ds, opts.limit);
  }

  if (spec.includes(',')) {
    const parts = spec.split(',').map((s) => s.trim());
    if (parts.length !== 2 || parts.some((p) => p === '')) throw new InputError(`dataset '${spec}': a pair must be 'inputs,labels'; ${SPEC_HELP}`);
    const [a, b] = parts;
    const kinds = [sniffFile(a), sniffFile(b)];
    if (kinds.every((k) => k === 'npy')) return loadNpyPair(a, b, arrayOpts(opts));
    if (kinds.every((k) => k === 'idx' || k === 'gzip')) return loadIdxPair(a, b, idxOpts);
    throw new InputError(`dataset '${spec}': expected two .npy files or two IDX files, got ${kinds[0]} and ${kinds[1]}`);
  }

  // A path, optionally with a ':train' / ':test' suffix for IDX folders.
  let path = spec;
  let split = opts.split;
  const suffix = /^(.*):(train|test)$/.exec(spec);
  if (!existsSync(spec) && suffix && existsSync(suffix[1])) {
    path = suffix[1];
    split = suffix[2] as Split;
  }
  if (!existsSync(path)) throw new InputError(`dataset '${spec}': no such file or folder; ${SPEC_HELP}`);
  if (statSync(path).isDirectory()) {
    const s = split ?? 'test';
    const pair = findIdxPair(path, s);
    if (pair === null) {
      throw new InputError(
        `dataset folder ${path}: no ${s} split found (looked for ${idxCandidates(s, 'images')[0]} and ${idxCandidates(s, 'labels')[0]}, .gz or not)`,
      );
    }
    return loadIdxPair(pair.images, pair.labels, { ...idxOpts, name: `${basename(path)} ${s}` });
  }
  const kind = sniffFile(path);
  if (kind === 'zip') return loadNpzDataset(path, arrayOpts(opts));
  if (kind === 'npy') throw new InputError(`dataset '${spec}': a single .npy file has no labels; give 'inputs.npy,labels.npy'`);
  if (kind === 'idx' || kind === 'gzip') throw new InputError(`dataset '${spec}': a single IDX file has no labels; give 'images,labels' or the folder holding both`);
  throw new InputError(`dataset '${spec}': unrecognised file (not gzip, IDX, .npy or .npz); ${SPEC_HELP}`);
}

function arrayOpts(opts: LoadDatasetOptions): ArrayLoadOptions {
  return { inputsKey: opts.inputsKey, labelsKey: opts.labelsKey, scale: opts.scale, flatten: opts.flatten, limit: opts.limit };
}

function parseSplit(s: string, spec: string): Split {
  const v = s.toLowerCase();
  if (v === 'train' || v === 'test') return v;
  throw new InputError(`dataset '${spec}': split must be 'train' or 'test', got '${s}'`);
}

function sniffFile(path: string): FileKind {
  if (!existsSync(path)) throw new InputError(`dataset file ${path}: no such file`);
  // Eight bytes are enough for every magic we know; reading the whole file here would double the I/O.
  return sniffBytes(readRegularHead(path, 8, `dataset file ${path}`));
}
