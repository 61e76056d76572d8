/** Messages between the page and its worker. Bytes travel as transferred ArrayBuffers (no copies). */
import type { RunOptions } from './pipeline.js';

export interface FilePayload {
  name: string;
  buffer: ArrayBuffer;
}

export type ToWorker = {
  type: 'run';
  a: FilePayload;
  b: FilePayload;
  options: Omit<RunOptions, 'data'> & { data: { kind: 'files'; files: FilePayload[] } | { kind: 'synthetic'; count: number } };
};

export type FromWorker =
  | { type: 'stage'; stage: string; done: number; total: number }
  | { type: 'done'; json: unknown; html: string; aligned: ArrayBuffer; merged: ArrayBuffer; seconds: number }
  /** `input`: the user's files or choices are at fault (a readable one-line message), not the program. */
  | { type: 'error'; message: string; input: boolean };
