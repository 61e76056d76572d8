/**
 * Datasets from dropped files, recognised by content as the CLI's `--data` recognises them (src/data/load.ts):
 * an images + labels pair of IDX files (gzipped or not), a .npz archive, or an inputs + labels pair of .npy
 * files; or the built-in three-cluster task. A pair may be dropped in either order: the labels are the 1-D one.
 */
import {
  InputError,
  limitDataset,
  isGzip,
  isIdx,
  parseIdx,
  isNpy,
  isZip,
  npzKeys,
  parseNpy,
  parseNpz,
  threeClusters,
  arraysToDataset,
  idxToDataset,
  type Dataset,
  type IdxArray,
  type NpyArray,
} from '../../src/core.js';

export interface NamedBytes {
  name: string;
  bytes: Uint8Array;
}

type Kind = 'idx' | 'npy' | 'npz' | 'unknown';

function kindOf(f: NamedBytes): Kind {
  if (isGzip(f.bytes) || isIdx(f.bytes)) return 'idx';
  if (isNpy(f.bytes)) return 'npy';
  if (isZip(f.bytes)) return 'npz';
  return 'unknown';
}

const HELP = 'drop the images and labels IDX files together, a .npz file, or an inputs .npy and a labels .npy together';

// The keys loadNpzDataset looks for, in its order of preference.
const INPUT_KEYS = ['x', 'inputs', 'X', 'images'];
const LABEL_KEYS = ['y', 'labels', 'Y'];

export function datasetFromFiles(files: readonly NamedBytes[], options: { limit?: number } = {}): Dataset {
  if (files.length === 0) throw new InputError(`no data files; ${HELP}`);
  if (files.length > 2) throw new InputError(`${files.length} data files dropped (${files.map((f) => f.name).join(', ')}); ${HELP}`);
  const kinds = files.map(kindOf);
  const unknown = files.find((_, i) => kinds[i] === 'unknown');
  if (unknown) throw new InputError(`${unknown.name}: not a dataset file (not gzip, IDX, .npy or .npz); ${HELP}`);

  if (files.length === 1) {
    const [f] = files;
    if (kinds[0] === 'npz') return npzDataset(f, options.limit);
    if (kinds[0] === 'idx') throw new InputError(`${f.name}: a single IDX file has no labels; drop the images and the labels file together`);
    throw new InputError(`${f.name}: a single .npy file has no labels; drop the inputs and the labels .npy together`);
  }
  if (kinds[0] !== kinds[1] || kinds[0] === 'npz') {
    throw new InputError(`the data files are ${kinds[0]} (${files[0].name}) and ${kinds[1]} (${files[1].name}); ${HELP}`);
  }
  if (kinds[0] === 'idx') {
    const arrays = files.map((f) => parseIdx(f.bytes, f.name));
    const [images, labels] = pairOrder(files, arrays);
    return idxToDataset(arrays[images], arrays[labels], { limit: options.limit, name: `${files[images].name} + ${files[labels].name}` }, files[images].name, files[labels].name);
  }
  const arrays = files.map((f) => parseNpy(f.bytes, f.name));
  const [x, y] = pairOrder(files, arrays);
  return arraysToDataset(arrays[x], arrays[y], { limit: options.limit, name: `${files[x].name} + ${files[y].name}` }, files[x].name, files[y].name);
}

/** Indices [inputs, labels] of a pair: the labels are the one with one dimension (or the one named like labels). */
function pairOrder(files: readonly NamedBytes[], arrays: readonly (IdxArray | NpyArray)[]): [number, number] {
  const flat = arrays.map((a) => a.shape.length === 1);
  if (flat[0] !== flat[1]) return flat[0] ? [1, 0] : [0, 1];
  const labelled = files.map((f) => /label|(^|[^a-z])y([^a-z]|$)/i.test(f.name));
  if (labelled[0] !== labelled[1]) return labelled[0] ? [1, 0] : [0, 1];
  return [0, 1];
}

function npzDataset(f: NamedBytes, limit: number | undefined): Dataset {
  const keys = npzKeys(f.bytes, f.name);
  const choose = (options: string[], role: string): string => {
    const k = options.find((o) => keys.includes(o));
    if (k === undefined) {
      throw new InputError(`${f.name}: no ${role} array (looked for ${options.map((o) => `'${o}'`).join(', ')}; it has ${keys.map((o) => `'${o}'`).join(', ') || 'none'})`);
    }
    return k;
  };
  const xKey = choose(INPUT_KEYS, 'inputs');
  const yKey = choose(LABEL_KEYS, 'labels');
  const arrays = parseNpz(f.bytes, f.name, [xKey, yKey]);
  return arraysToDataset(arrays.get(xKey)!, arrays.get(yKey)!, { limit, name: f.name }, `${f.name}['${xKey}']`, `${f.name}['${yKey}']`);
}

/** The three-cluster task as `--data synthetic:N` makes it: N points from the run's seed. */
export function syntheticDataset(count: number, options: { limit?: number; seed: number }): Dataset {
  if (!Number.isInteger(count) || count < 1) throw new InputError(`the number of synthetic points must be a positive integer, got ${count}`);
  return limitDataset(threeClusters({ count, seed: options.seed }), options.limit);
}
