/**
 * Writing output files safely: the whole file appears at once or not at all (a temp file in the
 * same folder, then a rename, which is atomic on one file system), and an output path that names one
 * of the command's own inputs is refused before anything is written — `rebasin merge a b -o a` must
 * not destroy `a` halfway through reading it. Only regular files are written: an existing device node,
 * FIFO or socket at the path is refused rather than replaced. Temp files alive at any moment are
 * tracked, so a program that is interrupted can remove them (cleanUpTempFilesOnSignals).
 */
import { closeSync, fchmodSync, fsyncSync, openSync, realpathSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
import type { BigIntStats } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { constants as osConstants } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { InputError } from '../errors.js';

/** Files written but not yet renamed into place (or not yet referenced by their model): removed on signals. */
const liveTempFiles = new Set<string>();
let removeOnSignals = false;
let signalHandlersInstalled = false;

/**
 * Note a file that must not outlive an interruption (a temp file before its rename). The first one
 * installs the signal handlers when cleanUpTempFilesOnSignals was called.
 */
export function trackTempFile(path: string): void {
  if (removeOnSignals && !signalHandlersInstalled) installSignalHandlers();
  liveTempFiles.add(path);
}

/** The file was renamed into place, committed or removed: nothing to clean up any more. */
export function untrackTempFile(path: string): void {
  liveTempFiles.delete(path);
  // A signal that came during the (synchronous) write is only handled when the event loop polls again;
  // Node's signal handles do not keep a loop alive, so without one more turn a program that has nothing
  // left to do would exit 0 and the signal be lost.
  if (signalHandlersInstalled) setImmediate(() => {});
}

/** The temp files alive now (for tests and diagnostics). */
export function trackedTempFiles(): string[] {
  return [...liveTempFiles];
}

/** Remove every tracked temp file (best effort: one already gone is fine). */
export function removeTrackedTempFiles(): void {
  for (const path of liveTempFiles) {
    try {
      unlinkSync(path);
    } catch {
      // Already renamed or removed.
    }
  }
  liveTempFiles.clear();
}

const CLEANUP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/**
 * For programs (the CLI), not for the library: on SIGINT, SIGTERM or SIGHUP remove the tracked temp files
 * and exit with 128 + the signal's number (130, 143, 129). The handlers are installed lazily, when the
 * first temp file is created, because a JavaScript signal handler only runs when the event loop is free:
 * installed for the whole run, it would make Ctrl-C wait for the end of a long synchronous computation.
 * Once installed, a signal that arrives during a (synchronous) write takes effect when the write has
 * finished, so an interrupted run leaves either the complete output or none, and no temp file.
 */
export function cleanUpTempFilesOnSignals(): void {
  removeOnSignals = true;
}

function installSignalHandlers(): void {
  signalHandlersInstalled = true;
  for (const signal of CLEANUP_SIGNALS) {
    process.on(signal, () => {
      removeTrackedTempFiles();
      process.exit(128 + osConstants.signals[signal]);
    });
  }
}

function statOrNull(path: string): BigIntStats | null {
  try {
    return statSync(path, { bigint: true });
  } catch {
    return null;
  }
}

/**
 * Throw an InputError when `out` is (or resolves, through links, to) the same file as one of
 * `inputs`. Compared by device and inode, so symlinks, hard links, `./a` vs `a` and case-insensitive
 * file systems are all caught; paths that do not exist cannot be clobbered and are skipped.
 */
export function assertNotInput(out: string, inputs: readonly string[]): void {
  const outStat = statOrNull(out);
  for (const input of inputs) {
    let same = resolve(out) === resolve(input);
    if (!same && outStat !== null) {
      const inStat = statOrNull(input);
      same = inStat !== null && inStat.dev === outStat.dev && inStat.ino === outStat.ino;
    }
    if (same) {
      throw new InputError(`output ${out} is the input file ${input}; choose a different output path`);
    }
  }
}

export interface WriteAtomicOptions {
  /** Input files of the command: writing onto any of them is refused (see assertNotInput). */
  readonly inputs?: readonly string[];
}

function describeFsError(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  return err.code !== undefined ? `${err.code}: ${err.message}` : String(e);
}

/**
 * Write `data` (one buffer, or chunks written in order — so a large file need not be concatenated
 * in memory first) to `path` atomically. If `path` is a symlink, the file it points to is replaced;
 * an existing file keeps its permission bits. Fails with an InputError naming the path when the
 * folder is missing or not writable, or when the disk is full; the temp file is removed on failure.
 */
export function writeFileAtomic(
  path: string,
  data: Uint8Array | Iterable<Uint8Array>,
  options: WriteAtomicOptions = {},
): void {
  if (path === '') throw new InputError('cannot write to an empty path');
  if (options.inputs !== undefined) assertNotInput(path, options.inputs);
  let target = resolve(path);
  try {
    target = realpathSync(path);
  } catch {
    // Missing (or a dangling link): write a new file at the given path.
  }
  const existing = statOrNull(target);
  if (existing?.isDirectory()) throw new InputError(`cannot write ${path}: it is a directory`);
  // Replacing a device node or FIFO with a regular file is never what was meant (as root: /dev/null).
  if (existing !== null && !existing.isFile()) throw new InputError(`cannot write ${path}: it is not a regular file (a device, FIFO or socket)`);
  const mode = existing !== null ? Number(existing.mode & 0o7777n) : 0o666;
  const tmp = join(dirname(target), `.${basename(target)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  const chunks: Iterable<Uint8Array> = data instanceof Uint8Array ? [data] : data;
  let fd: number | null = null;
  trackTempFile(tmp);
  try {
    fd = openSync(tmp, 'wx', mode);
    // open() applies the umask; an existing file's own bits are what the user expects to keep.
    if (existing !== null) fchmodSync(fd, mode);
    for (const chunk of chunks) {
      let done = 0;
      while (done < chunk.length) done += writeSync(fd, chunk, done, chunk.length - done);
    }
    fsyncSync(fd);
    closeSync(fd);
    fd = null;
    renameSync(tmp, target);
    untrackTempFile(tmp);
  } catch (e) {
    if (fd !== null) {
      try {
        closeSync(fd);
      } catch {
        // Already failing; the original error is the one worth reporting.
      }
    }
    try {
      unlinkSync(tmp);
    } catch {
      // Never created, or already gone.
    }
    untrackTempFile(tmp);
    if ((e as NodeJS.ErrnoException).code !== undefined) {
      throw new InputError(`cannot write ${path}: ${describeFsError(e)}`);
    }
    throw e;
  }
}
