/** The worker side of assignment-thread.ts: solves what it is sent with solveAssignment, in order. */
import { parentPort } from 'node:worker_threads';
import { solveAssignment, type WarmStart } from './lap.js';
import { createRng } from '../random.js';

interface Request {
  readonly id: number;
  readonly cost: Float64Array;
  readonly n: number;
  readonly warmStart?: WarmStart;
}

const port = parentPort;
if (port === null) throw new Error('assignment-worker.js runs as a worker thread');

// Compile the solver's hot loops before the first real problem arrives (V8 compiles per thread).
const rng = createRng(1);
for (let round = 0; round < 6; round++) {
  const n = 96;
  const c = Float64Array.from({ length: n * n }, () => rng.normal());
  const first = solveAssignment(c, n, n, { maximize: true });
  const changed = c.map((x) => x + 0.1 * rng.normal());
  solveAssignment(changed, n, n, { maximize: true, warmStart: first });
}

port.on('message', (req: Request) => {
  try {
    const result = solveAssignment(req.cost, req.n, req.n, { maximize: true, warmStart: req.warmStart });
    port.postMessage({ id: req.id, result }, [
      result.rowToCol.buffer,
      result.colToRow.buffer,
      result.rowPotential.buffer,
      result.colPotential.buffer,
    ] as ArrayBuffer[]);
  } catch (e) {
    port.postMessage({ id: req.id, error: e instanceof Error ? e.message : String(e) });
  }
});
