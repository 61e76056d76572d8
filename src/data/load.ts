/**
 * Loading datasets from files (Node only: this is the one module of src/data that touches the
 * file system). Files are recognised by their content — gzip, IDX, .npy and zip magic — not only
 * by their extension. The builders from arrays in memory live in from-arrays.ts (pure, browser-safe).
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { InputError } from '../errors.js';
import { limitDataset, reshapeInputs, type Dataset } from './dataset.js';
import { MAX_ARRAY_BYTES } from './limits.js';
import { readRegularFile, readRegularHead } from '../io/regular-file.js';
import { parseIdx } from './idx.js';
import { npzKeys, parseNpy, parseNpz } from './npy.js';
import { threeClusters } from './synthetic.js';
import { arraysToDataset, idxToDataset, sniffBytes, type ArrayLoadOptions, type FileKind, type IdxLoadOptions } from './from-arrays.js';

export { arraysToDataset, idxToDataset, sniffBytes, type ArrayLoadOptions, type FileKind, type IdxLoadOptions } from './from-arrays.js';

export const FASHION_MNIST_ROOT = '/usr/share/datasets/fashion-mnist';
export const FASHION_MNIST_CLASSES = [
  'T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot',
];
export const SYNTHETIC_DEFAULT_COUNT = 3000;

export type Split = 'train' | 'test';

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

const INPUT_KEYS = ['x', 'inputs', 'X', 'images'];
const LABEL_KEYS = ['y', 'labels', 'Y'];

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
