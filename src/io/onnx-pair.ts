/**
 * Writing an ONNX model whose weights live in an external data file, with one commit point: the rename of
 * the `.onnx` file. The data goes to a file name that does not exist yet (`<model>.data` when free, else
 * `<model>.<random>.data`) and the new model refers to it, so until the model file is renamed into place
 * the old model still pairs with its old data, and afterwards the new model with its new data. Writing the
 * data over the old data file (two renames) would pair the old model with the new weights after a crash
 * between them, and the model would compute something else without any error.
 */
import { closeSync, constants as fsConstants, fstatSync, lstatSync, openSync, readSync, realpathSync, unlinkSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import { parseOnnx } from './onnx.js';
import { assertNotInput, trackTempFile, untrackTempFile, writeFileAtomic } from './atomic.js';

export interface WriteOnnxPairOptions {
  /** The command's input files: never written, and never removed as an old data file. */
  readonly inputs?: readonly string[];
  /**
   * Called after the data file is complete and before the model file is renamed into place: the moment
   * a crash would have paired the wrong files before. For tests, which simulate a failure there.
   */
  readonly beforeCommit?: (dataPath: string) => void;
}

/** The data file names this writer gives the model `modelName`: `<model>.data` and `<model>.<12 hex>.data`. */
export function isOwnDataName(modelName: string, name: string): boolean {
  if (name === `${modelName}.data`) return true;
  const middle = name.startsWith(`${modelName}.`) && name.endsWith('.data') ? name.slice(modelName.length + 1, -'.data'.length) : '';
  return /^[0-9a-f]{12}$/.test(middle);
}

function exists(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

/** A data file name beside `path` that no file has yet. */
function freshDataName(path: string): string {
  const dir = dirname(path);
  const name = basename(path);
  if (!exists(join(dir, `${name}.data`))) return `${name}.data`;
  for (;;) {
    const candidate = `${name}.${randomBytes(6).toString('hex')}.data`;
    if (!exists(join(dir, candidate))) return candidate;
  }
}

/** Model files with external data hold only the graph; a bigger file is not read for its data names. */
const OLD_MODEL_READ_LIMIT = 64 << 20;

/**
 * The external data files the model now at `path` uses that this writer made for it (isOwnDataName), to be
 * removed once the new model is in place. Anything unreadable or unexpected there gives none: leaving an
 * old data file behind is harmless, removing one another model needs is not.
 */
function oldOwnDataFiles(path: string): string[] {
  let bytes: Uint8Array;
  try {
    // Non-blocking: a FIFO at the output path must not hang the write (the check below then skips it).
    const fd = openSync(path, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
    try {
      const st = fstatSync(fd);
      if (!st.isFile() || st.size > OLD_MODEL_READ_LIMIT) return [];
      bytes = new Uint8Array(st.size);
      let done = 0;
      while (done < bytes.length) {
        const n = readSync(fd, bytes, done, bytes.length - done, done);
        if (n === 0) return [];
        done += n;
      }
    } finally {
      closeSync(fd);
    }
  } catch {
    return [];
  }
  let locations: string[];
  try {
    const model = parseOnnx(bytes, path);
    locations = Object.values(model.initializers).flatMap((i) => (i.external !== null ? [i.external.location] : []));
  } catch {
    return [];
  }
  const name = basename(path);
  return [...new Set(locations)].filter((l) => isOwnDataName(name, l)).map((l) => join(dirname(path), l));
}

/**
 * Write an ONNX model and its external data file: the data under a fresh name, then the model (built by
 * `modelFor(dataName)`, which must refer to that name) renamed into place as the single commit point,
 * then the old model's own data file removed. On failure before the commit the new data file is removed
 * and the old pair is untouched. Returns the files written: [model, data].
 */
export function writeOnnxPair(
  path: string,
  data: Iterable<Uint8Array>,
  modelFor: (dataName: string) => Uint8Array,
  options: WriteOnnxPairOptions = {},
): string[] {
  const inputs = options.inputs ?? [];
  assertNotInput(path, inputs);
  // A model reached through a link is written where the link points (writeFileAtomic): its data goes there too.
  let target = path;
  try {
    if (lstatSync(path).isSymbolicLink()) target = realpathSync(path);
  } catch {
    // A new file (or a dangling link, which is replaced).
  }
  const dataName = freshDataName(target);
  const dataPath = join(dirname(target), dataName);
  const modelBytes = modelFor(dataName);
  const old = oldOwnDataFiles(target).filter((f) => basename(f) !== dataName);
  // Until the model refers to it, the new data file is as disposable as a temp file.
  trackTempFile(dataPath);
  try {
    writeFileAtomic(dataPath, data, { inputs });
    options.beforeCommit?.(dataPath);
    writeFileAtomic(path, modelBytes, { inputs });
  } catch (e) {
    try {
      unlinkSync(dataPath);
    } catch {
      // Never written.
    }
    untrackTempFile(dataPath);
    throw e;
  }
  untrackTempFile(dataPath);
  for (const f of old) {
    try {
      assertNotInput(f, inputs);
      unlinkSync(f);
    } catch {
      // An input, or already gone: leave it.
    }
  }
  return [path, dataPath];
}
