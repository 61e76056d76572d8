/**
 * What the CLI will write to, checked before any work (the writers check again: io/atomic.ts):
 * - never an input of the command (a model, its external data, the spec, the dataset), even with --force;
 * - never one file named by two outputs, also when they are spelled differently (`od/r.json` and
 *   `odl/r.json` with odl a link to od): compared by the real path of the parent folder, and by inode;
 * - never an empty path, a folder, a device node, a FIFO or a socket (only regular files are replaced);
 * - JSON, HTML and permutation files never over a file that looks like a model or a dataset (by its
 *   extension, or by the first bytes of an existing file) unless --force is given;
 * and an option whose value is optional (`report --json [file]`) never takes a model file given after it as
 * its value, so `report --json A B C` cannot write JSON over model A.
 */
import { closeSync, constants as fsConstants, fstatSync, openSync, readSync, realpathSync, statSync } from 'node:fs';
import { basename, dirname, extname, join, resolve } from 'node:path';
import type { Command, Option } from 'commander';
import { InputError } from '../errors.js';
import { assertNotInput } from '../io/atomic.js';

/** Extensions of model, weight and array files: JSON/HTML/perms output is not written over them without --force. */
export const MODEL_EXTENSIONS: ReadonlySet<string> = new Set([
  '.onnx', '.ort', '.safetensors', '.pt', '.pth', '.ckpt', '.bin', '.data', '.gguf', '.h5', '.pb', '.tflite', '.npz', '.npy',
]);

/** Signatures of model and data files, by their first bytes (what a report never starts with). */
function sniffModelBytes(head: Uint8Array): string | null {
  const n = head.length;
  if (n >= 9 && head[8] === 0x7b && head[5] === 0 && head[6] === 0 && head[7] === 0) return 'a safetensors file';
  // ModelProto field 1 (ir_version, a small varint) comes first in every ONNX writer's output.
  if (n >= 2 && head[0] === 0x08 && head[1] >= 1 && head[1] <= 20) return 'an ONNX model';
  if (n >= 4 && head[0] === 0x50 && head[1] === 0x4b && head[2] === 0x03 && head[3] === 0x04) return 'a zip archive (PyTorch checkpoint or .npz)';
  if (n >= 6 && head[0] === 0x93 && String.fromCharCode(...head.subarray(1, 6)) === 'NUMPY') return 'a NumPy array';
  if (n >= 2 && head[0] === 0x80 && head[1] >= 2 && head[1] <= 5) return 'a pickle (PyTorch checkpoint)';
  if (n >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'a gzip file (an IDX dataset?)';
  if (n >= 4 && head[0] === 0x89 && String.fromCharCode(...head.subarray(1, 4)) === 'HDF') return 'an HDF5 file';
  if (n >= 4 && String.fromCharCode(...head.subarray(0, 4)) === 'GGUF') return 'a GGUF model';
  return null;
}

/** The first bytes of `path` if it is an existing regular file (never blocks on a FIFO), else null. */
function headOf(path: string, bytes: number): Uint8Array | null {
  let fd: number;
  try {
    fd = openSync(path, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
  } catch {
    return null;
  }
  try {
    if (!fstatSync(fd).isFile()) return null;
    const head = new Uint8Array(bytes);
    const n = readSync(fd, head, 0, bytes, 0);
    return head.subarray(0, n);
  } catch {
    return null;
  } finally {
    closeSync(fd);
  }
}

/**
 * Why `path` looks like a model or data file — its extension, or (if it exists) its first bytes — or null
 * when it does not.
 */
export function looksLikeModelFile(path: string): string | null {
  const ext = extname(path).toLowerCase();
  if (MODEL_EXTENSIONS.has(ext)) return `its extension is ${ext}`;
  const head = headOf(path, 16);
  const kind = head === null ? null : sniffModelBytes(head);
  return kind === null ? null : `it is ${kind}`;
}

export type OutputKind = 'model' | 'text';

export interface OutputRequest {
  readonly path: string;
  /** The option that named it, for messages ('-o', '--json', ...). */
  readonly option: string;
  /** 'text': JSON, HTML or permutations, which must not land on a model-looking file without --force. */
  readonly kind: OutputKind;
}

/** Where a write to `path` lands: the real path of the file, or of its folder plus its name when it is new. */
function landingPath(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    // New (or a dangling link, which writeFileAtomic replaces): the folder decides.
  }
  const folder = dirname(resolve(path));
  let realFolder: string;
  try {
    realFolder = realpathSync(folder);
  } catch {
    throw new InputError(`cannot write ${path}: the folder ${folder} does not exist`);
  }
  return join(realFolder, basename(path));
}

function statOrNull(path: string) {
  try {
    return statSync(path, { bigint: true });
  } catch {
    return null;
  }
}

/** The checks of one output on its own: a path, a regular file or none, not an input. */
function assertOutputPath(o: OutputRequest, inputs: readonly string[]): void {
  if (o.path === '') throw new InputError(`${o.option}: the output path is empty`);
  const st = statOrNull(o.path);
  if (st !== null && st.isDirectory()) throw new InputError(`${o.option} ${o.path}: is a directory; name a file`);
  if (st !== null && !st.isFile()) {
    throw new InputError(`${o.option} ${o.path}: is not a regular file (a device, FIFO or socket); rebasin writes only regular files`);
  }
  assertNotInput(o.path, inputs);
}

/** Text outputs (JSON, HTML, permutations) never go over a model or data file without --force. */
function assertNotModelLike(o: OutputRequest): void {
  if (o.kind !== 'text') return;
  const why = looksLikeModelFile(o.path);
  if (why !== null) {
    throw new InputError(`${o.option} ${o.path}: looks like a model or data file (${why}); not overwritten — choose another name, or give --force`);
  }
}

/**
 * Refuse, before any work, outputs that would destroy something: see the header. `force` (--force) allows
 * text outputs over model-looking files and nothing else.
 */
export function assertOutputs(requests: readonly (OutputRequest | undefined)[], inputs: readonly string[], options: { force?: boolean } = {}): void {
  const given = requests.filter((o): o is OutputRequest => o !== undefined);
  const seen: { o: OutputRequest; landing: string; id: string | null }[] = [];
  for (const o of given) {
    assertOutputPath(o, inputs);
    const landing = landingPath(o.path);
    const st = statOrNull(o.path);
    const id = st === null ? null : `${st.dev}:${st.ino}`;
    const twin = seen.find((s) => s.landing === landing || (id !== null && s.id === id));
    if (twin !== undefined) {
      const how = twin.o.path === o.path ? '' : ` (${twin.o.option} ${twin.o.path} and ${o.option} ${o.path} are one file)`;
      throw new InputError(`${o.path} is given as two outputs${how}; choose different paths`);
    }
    seen.push({ o, landing, id });
  }
  if (options.force !== true) given.forEach(assertNotModelLike);
}

/**
 * An option with an optional value (`--json [file]`) takes the next word as its value only when `accepts`
 * says so; otherwise it is parsed as given without one. Commander takes any next word that does not start
 * with '-', so `report --json A B C` would make model A the JSON file: here a bare option whose next word
 * is refused is moved to the end of the options (before any `--`), where it takes no value.
 */
export function guardOptionalValues(cmd: Command, accepts: (word: string) => boolean): Command {
  const parse = cmd.parseOptions.bind(cmd);
  const refused: string[] = [];
  cmd.parseOptions = (args: string[]) =>
    parse(
      keepPositionals(cmd.options, args, (word, option) => {
        const ok = accepts(word);
        if (!ok) refused.push(`${option.long ?? option.flags} takes no model or data file such as '${word}' as its value; write ${option.long ?? option.flags}=FILE to name one`);
        return ok;
      }),
    );
  // When the word left alone makes a usage error ("too many arguments"), say why it was not the value.
  cmd.configureOutput({
    outputError: (text, write) =>
      write(refused.length === 0 ? text : `${text}(${refused[0]})\n`),
  });
  return cmd;
}

/** The rewrite guardOptionalValues applies to a command's arguments (exported for tests). */
export function keepPositionals(options: readonly Option[], args: readonly string[], accepts: (word: string, option: Option) => boolean): string[] {
  const find = (arg: string) => options.find((o) => o.long === arg || o.short === arg);
  const out = [...args];
  const moved: string[] = [];
  let i = 0;
  while (i < out.length && out[i] !== '--') {
    const option = find(out[i]);
    if (option?.required) {
      i += 2; // its value, whatever it is
    } else if (option?.optional && i + 1 < out.length && !isOptionLike(out[i + 1])) {
      if (accepts(out[i + 1], option)) i += 2;
      else moved.push(...out.splice(i, 1));
    } else {
      i += 1;
    }
  }
  out.splice(i, 0, ...moved);
  return out;
}

/** What commander reads as an option rather than a value (see its maybeOption). */
function isOptionLike(word: string): boolean {
  return word.length > 1 && word.startsWith('-');
}

/** The value rule of rebasin's optional-value options: any word but a model or data file. */
export function acceptsOutputValue(word: string): boolean {
  return looksLikeModelFile(word) === null;
}
