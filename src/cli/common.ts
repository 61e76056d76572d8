/** What every command shares: global flags, the engine, output helpers and the exit-code policy. */
import { InputError } from '../errors.js';
import { createProgress, type Progress } from './progress.js';
import { defaultMatmul } from '../engine/ort-matmul.js';
import type { MatmulEngine } from '../engine/matmul.js';

export const EXIT_OK = 0;
/** A check failed and the user asked to enforce checks. */
export const EXIT_CHECK_FAILED = 1;
/** Bad usage or bad input. */
export const EXIT_USAGE = 2;

export interface GlobalOptions {
  quiet?: boolean;
  debug?: boolean;
}

export interface Context {
  progress: Progress;
  color: boolean;
  engine: () => Promise<MatmulEngine>;
  out: (text: string) => void;
  /** Informational lines (not results): stderr, silenced by --quiet. */
  info: (text: string) => void;
  /** Warnings (something was skipped or left out, the user should know): stderr, even with --quiet. */
  warn: (text: string) => void;
}

export function makeContext(g: GlobalOptions): Context {
  const color = process.stdout.isTTY === true && !('NO_COLOR' in process.env) && process.env.TERM !== 'dumb';
  return {
    progress: createProgress({ quiet: g.quiet }),
    color,
    engine: defaultMatmul,
    out: (text) => process.stdout.write(text.endsWith('\n') ? text : `${text}\n`),
    info: (text) => {
      if (!g.quiet) process.stderr.write(`${text}\n`);
    },
    warn: (text) => {
      process.stderr.write(`rebasin: warning: ${text}\n`);
    },
  };
}

export function parseIntOption(name: string, min: number, max = Number.MAX_SAFE_INTEGER) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min || n > max) {
      throw new InputError(`${name} must be an integer from ${min} to ${max}, got '${value}'`);
    }
    return n;
  };
}

export function parseFloatOption(name: string, min: number, max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isFinite(n) || n < min || n > max) {
      throw new InputError(`${name} must be a number from ${min} to ${max}, got '${value}'`);
    }
    return n;
  };
}

export function parseList(name: string) {
  return (value: string): number[] =>
    value.split(',').map((s) => {
      const n = Number(s);
      if (!Number.isInteger(n) || n < 1) throw new InputError(`${name}: '${s}' is not a positive integer`);
      return n;
    });
}
