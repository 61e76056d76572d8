/**
 * Linear assignments on a worker thread (Node), so weight matching can solve one step's assignment while
 * the main thread builds and solves the next, independent step (weight-matching.ts, `assignmentThread`).
 *
 * Cost matrices cross without a copy: they live in SharedArrayBuffers (`allocate`), which the worker reads
 * in place; the small results come back transferred. The worker runs the same solveAssignment, so the
 * answers are bit for bit those of a solve on the main thread.
 */
import { Worker } from 'node:worker_threads';
import type { AssignmentResult, WarmStart } from './lap.js';
import type { AssignmentThread } from './weight-matching.js';

interface Reply {
  readonly id: number;
  readonly error?: string;
  readonly result?: AssignmentResult;
}

export interface ClosableAssignmentThread extends AssignmentThread {
  /** Stops the worker; pending solves are rejected. */
  close(): Promise<void>;
}

/** Starts the worker (it compiles its solver on a few small problems while the caller gets on). */
export function createAssignmentThread(): ClosableAssignmentThread {
  const worker = new Worker(new URL('./assignment-worker.js', import.meta.url));
  // The worker must not keep the process alive between solves; a pending solve refs it (below).
  worker.unref();
  const pending = new Map<number, { resolve: (r: AssignmentResult) => void; reject: (e: Error) => void }>();
  let nextId = 0;
  let failure: Error | null = null;
  const failAll = (e: Error) => {
    failure = e;
    for (const p of pending.values()) p.reject(e);
    pending.clear();
  };
  worker.on('message', (reply: Reply) => {
    const p = pending.get(reply.id);
    if (p === undefined) return;
    pending.delete(reply.id);
    if (pending.size === 0) worker.unref();
    if (reply.error !== undefined) p.reject(new Error(`assignment thread: ${reply.error}`));
    else p.resolve(reply.result!);
  });
  worker.on('error', (e) => failAll(e instanceof Error ? e : new Error(String(e))));
  worker.on('exit', (code) => failAll(new Error(`assignment thread exited (code ${code})`)));
  return {
    allocate(length) {
      return new Float64Array(new SharedArrayBuffer(length * Float64Array.BYTES_PER_ELEMENT));
    },
    solve(cost: Float64Array, n: number, warmStart: WarmStart | undefined): Promise<AssignmentResult> {
      if (failure !== null) return Promise.reject(failure);
      const id = nextId++;
      return new Promise((resolve, reject) => {
        pending.set(id, { resolve, reject });
        worker.ref();
        worker.postMessage({ id, cost, n, warmStart });
      });
    },
    async close() {
      failAll(new Error('assignment thread closed'));
      await worker.terminate();
    },
  };
}
