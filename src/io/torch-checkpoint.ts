/**
 * PyTorch checkpoints (.pt / .pth written by torch.save since PyTorch 1.6) read as a state dict, in the same
 * form as a safetensors file (pure: bytes in, no file access). The zip container is torch-zip.ts, the
 * restricted pickle reader torch-pickle.ts; nothing in the file is executed.
 *
 * Accepted: a state dict (a dict of str -> tensor, as model.state_dict() gives), or a checkpoint dict that
 * holds one under one of STATE_DICT_KEYS (e.g. {"epoch": 3, "state_dict": {...}, "optimizer": {...}}),
 * with tensors of the dtypes in STORAGE_DTYPES. Tensors that are not one contiguous run of their storage
 * (transposed or sliced views) are copied into row-major order, up to the file's own size in all.
 * Refused with one line: the legacy (pre-1.6) format, TorchScript archives, big-endian files, any global
 * beyond ALLOWED_GLOBALS (whole pickled modules, numpy arrays, argparse namespaces, ...).
 */
import { InputError } from '../errors.js';
import type { SafetensorsFile, StoredTensor } from './safetensors.js';
import { looksLikeZip, storedEntryBytes, zipEntries, type ZipEntry } from './torch-zip.js';
import { contiguousBytes, isContiguous, PyDict, TorchTensor, tensorNumel, unpickle, type PyValue } from './torch-pickle.js';

/** data.pkl of a real state dict is kilobytes (about 150 bytes per tensor); this is far above. */
export const MAX_PICKLE_BYTES = 64 << 20;

/** Where training checkpoints usually keep the model's state dict, tried in this order. */
export const STATE_DICT_KEYS: readonly string[] = ['state_dict', 'model_state_dict', 'model', 'module', 'net'];

export interface TorchCheckpoint {
  /** The state dict's tensors in its order, as a safetensors file would hold them (views of the input where possible). */
  readonly file: SafetensorsFile;
  /** The checkpoint key the state dict was found under, or null when the file is the state dict itself. */
  readonly wrapper: string | null;
}

/** True when `head` (a file's first bytes) starts a zip archive: how a torch.save file begins. */
export function looksLikeTorchZip(head: Uint8Array): boolean {
  return looksLikeZip(head);
}

function q(name: string): string {
  const s = JSON.stringify(name);
  return s.length <= 80 ? s : `${s.slice(0, 77)}..."`;
}

function isStateDict(v: PyValue | undefined): v is PyDict {
  if (!(v instanceof PyDict) || v.entries.size === 0) return false;
  for (const x of v.entries.values()) if (!(x instanceof TorchTensor)) return false;
  return true;
}

function describe(v: PyValue): string {
  if (!(v instanceof PyDict)) return 'no dict';
  const keys = [...v.entries.keys()].slice(0, 6).map((k) => (typeof k === 'string' ? q(k) : String(k)));
  return `a dict with keys ${keys.join(', ')}${v.entries.size > 6 ? ', ...' : ''}`;
}

/** The state dict in `root`, and the key it was under. */
function findStateDict(root: PyValue, label: string): { dict: PyDict; wrapper: string | null } {
  if (isStateDict(root)) return { dict: root, wrapper: null };
  if (root instanceof PyDict) {
    for (const key of STATE_DICT_KEYS) {
      const inner = root.entries.get(key);
      if (isStateDict(inner)) return { dict: inner, wrapper: key };
    }
    for (const [k, v] of root.entries) {
      if (!(v instanceof TorchTensor) && [...root.entries.values()].some((x) => x instanceof TorchTensor)) {
        throw new InputError(`${label}: entry ${typeof k === 'string' ? q(k) : k} is not a tensor; a state dict maps names to tensors only`);
      }
    }
  }
  throw new InputError(
    `${label}: holds ${describe(root)}; expected a state dict (names -> tensors) or a checkpoint dict with one under ${STATE_DICT_KEYS.map((k) => `'${k}'`).join(', ')}`,
  );
}

/** The pickle's archive folder: the one `<archive>/data.pkl` entry. */
function archivePrefix(entries: readonly ZipEntry[], label: string): string {
  // TorchScript archives have a data.pkl too (of script objects), beside their code and constants.
  if (entries.some((e) => /^[^/]+\/(constants\.pkl|code\/)/.test(e.name))) {
    throw new InputError(`${label}: a TorchScript archive (torch.jit.save), not a state dict; save model.state_dict() with torch.save`);
  }
  const pkls = entries.filter((e) => /^[^/]+\/data\.pkl$/.test(e.name));
  if (pkls.length === 1) return pkls[0].name.slice(0, -'data.pkl'.length);
  if (pkls.length > 1) throw new InputError(`${label}: the zip holds ${pkls.length} <archive>/data.pkl entries; a torch.save file has one`);
  throw new InputError(`${label}: a zip archive without <archive>/data.pkl: not a PyTorch checkpoint`);
}

/** Reads a torch.save checkpoint held in `bytes`; `label` (usually the path) names it in errors. */
export function parseTorchCheckpoint(bytes: Uint8Array, label = 'file'): TorchCheckpoint {
  if (!looksLikeZip(bytes.subarray(0, 4))) {
    if (bytes.length >= 2 && bytes[0] === 0x80 && bytes[1] <= 5) {
      throw new InputError(`${label}: a bare pickle (PyTorch's legacy format, before 1.6 or with _use_new_zipfile_serialization=False); load it and torch.save it again with a current PyTorch`);
    }
    throw new InputError(`${label}: not a PyTorch checkpoint (a torch.save file is a zip archive)`);
  }
  const entries = zipEntries(bytes, label);
  const prefix = archivePrefix(entries, label);
  const byName = new Map(entries.map((e) => [e.name, e]));
  const order = byName.get(`${prefix}byteorder`);
  if (order !== undefined) {
    const text = new TextDecoder().decode(storedEntryBytes(bytes, order, label));
    if (text !== 'little') throw new InputError(`${label}: byte order ${q(text.slice(0, 20))}; only little-endian checkpoints are read`);
  }
  const pklEntry = byName.get(`${prefix}data.pkl`) as ZipEntry;
  if (pklEntry.size > MAX_PICKLE_BYTES) throw new InputError(`${label}: data.pkl is ${pklEntry.size} bytes, over the limit of ${MAX_PICKLE_BYTES}`);
  const pkl = storedEntryBytes(bytes, pklEntry, label);
  const root = unpickle(
    pkl,
    (key) => {
      const e = byName.get(`${prefix}data/${key}`);
      return e === undefined ? undefined : storedEntryBytes(bytes, e, label);
    },
    label,
  );
  const { dict, wrapper } = findStateDict(root, label);
  const tensors: Record<string, StoredTensor> = Object.create(null);
  const names: string[] = [];
  // Copies of non-contiguous views are bounded by the file's size: strides that repeat elements (a stride
  // of 0) could otherwise describe a huge tensor over a tiny storage.
  let budget = bytes.length;
  for (const [key, t] of dict.entries) {
    if (typeof key !== 'string') throw new InputError(`${label}: state dict key ${key} is an int; tensor names are strs`);
    const tensor = t as TorchTensor;
    if (!isContiguous(tensor)) {
      const need = tensorNumel(tensor) * tensor.storage.itemsize;
      if (need > budget) {
        throw new InputError(`${label}: tensor ${q(key)} is a strided view of ${need} bytes that repeats elements of its storage beyond what the file holds; save it with .contiguous()`);
      }
      budget -= need;
    }
    tensors[key] = { dtype: tensor.storage.dtype, shape: [...tensor.shape], bytes: contiguousBytes(tensor) };
    names.push(key);
  }
  return { file: { tensors, metadata: { format: 'pt' }, order: names }, wrapper };
}
