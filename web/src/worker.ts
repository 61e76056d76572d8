/**
 * The page's worker: runs the alignment on onnxruntime-web (WebAssembly, one thread, so the page needs no
 * cross-origin isolation) off the main thread, so the page stays responsive and can draw progress.
 * The runtime's files are served beside this script (ort/), never fetched from a CDN.
 */
import * as ort from 'onnxruntime-web/wasm';
import { isInputError } from '../../src/core.js';
import { runAlignment, type RunOptions } from './pipeline.js';
import type { FromWorker, ToWorker, FilePayload } from './protocol.js';

ort.env.wasm.numThreads = 1;
ort.env.wasm.proxy = false;
ort.env.wasm.wasmPaths = {
  mjs: new URL('./ort/ort-wasm-simd-threaded.mjs', self.location.href).href,
  wasm: new URL('./ort/ort-wasm-simd-threaded.wasm', self.location.href).href,
};
ort.env.logLevel = 'error';

const post = (m: FromWorker, transfer: Transferable[] = []): void => (self as unknown as Worker).postMessage(m, transfer);
const bytesOf = (f: FilePayload) => ({ name: f.name, bytes: new Uint8Array(f.buffer) });

/** Progress messages at most every 50 ms: the sweep reports every point, which is more than a bar can show. */
function throttledStage(): (stage: string, done: number, total: number) => void {
  let last = 0;
  let lastStage = '';
  return (stage, done, total) => {
    const now = performance.now();
    if (stage !== lastStage || done === total || now - last > 50) {
      last = now;
      lastStage = stage;
      post({ type: 'stage', stage, done, total });
    }
  };
}

self.onmessage = async (event: MessageEvent<ToWorker>) => {
  const msg = event.data;
  if (msg.type !== 'run') return;
  const started = performance.now();
  try {
    const d = msg.options.data;
    const options: RunOptions = { ...msg.options, data: d.kind === 'files' ? { kind: 'files', files: d.files.map(bytesOf) } : d };
    const r = await runAlignment(ort, { a: bytesOf(msg.a), b: bytesOf(msg.b) }, options, throttledStage());
    const aligned = r.aligned.slice().buffer;
    const merged = r.merged.slice().buffer;
    post({ type: 'done', json: r.json, html: r.html, aligned, merged, seconds: (performance.now() - started) / 1000 }, [aligned, merged]);
  } catch (e) {
    const input = isInputError(e);
    const message = e instanceof Error ? e.message : String(e);
    if (!input) console.error(e);
    post({ type: 'error', message, input });
  }
};
