/**
 * The page: collects the two models and the optional data (dropped or chosen), checks each file as it
 * arrives so a bad one gets a readable message at once, hands the run to the worker, draws its progress,
 * and shows the report (the HTML report of src/report/html.ts in a script-less frame) with the downloads.
 */
import { InputError, isInputError, type AlignmentReport } from '../../src/core.js';
// The CLI's number format (an internal), so the page prints figures as the terminal report does.
import { formatNumber } from '../../src/measure/checks.js';
import { loadModel, loadData, DEFAULTS, type NamedBytes } from './pipeline.js';
import type { FromWorker, ToWorker } from './protocol.js';

type Slot = 'a' | 'b' | 'data';

interface Picked {
  files: NamedBytes[];
  summary: string;
}

const state: Record<Slot, Picked | null> = { a: null, b: null, data: null };
let worker: Worker | null = null;
let running = false;
const downloadUrls: string[] = [];

const $ = <T extends HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (el === null) throw new Error(`page is missing #${id}`);
  return el as T;
};

// ----------------------------------------------------------------------------------------------------
// Errors: every failure ends in one readable line on the page, never a blank page.

function showError(message: string, detail?: string): void {
  const box = $('error');
  box.replaceChildren();
  const strong = document.createElement('strong');
  strong.textContent = 'Cannot continue: ';
  box.append(strong, document.createTextNode(message));
  if (detail) {
    const p = document.createElement('p');
    p.className = 'detail';
    p.textContent = detail;
    box.append(p);
  }
  box.hidden = false;
}

function clearError(): void {
  $('error').hidden = true;
}

function messageOf(e: unknown): string {
  if (isInputError(e)) return e.message;
  return `unexpected error: ${e instanceof Error ? e.message : String(e)}`;
}

window.addEventListener('error', (e) => showError(messageOf(e.error ?? e.message)));
window.addEventListener('unhandledrejection', (e) => showError(messageOf(e.reason)));

// ----------------------------------------------------------------------------------------------------
// Files in

async function readFiles(list: FileList | File[]): Promise<NamedBytes[]> {
  return Promise.all([...list].map(async (f) => ({ name: f.name, bytes: new Uint8Array(await f.arrayBuffer()) })));
}

function describeModel(file: NamedBytes): string {
  const m = loadModel(file);
  let count = 0;
  for (const t of Object.values(m.params)) count += t.data.length;
  const input = m.onnx.graph.inputs.find((v) => !(v.name in m.onnx.initializers));
  const shape = input?.shape ? ` · input [${input.shape.map((d) => d ?? '?').join(', ')}]` : '';
  return `${m.onnx.initializerNames.length} tensors, ${count.toLocaleString('en')} weights${shape}`;
}

function describeData(files: NamedBytes[]): string {
  const ds = loadData({ kind: 'files', files }, { seed: 0 });
  return `${ds.name} — ${ds.count.toLocaleString('en')} examples of [${ds.inputShape.join(', ')}], ${ds.numClasses} classes`;
}

function setStatus(slot: Slot, text: string, kind: 'ok' | 'bad' | ''): void {
  const el = $(`status-${slot}`);
  el.textContent = text;
  el.className = `drop-status ${kind}`;
  $(`drop-${slot}`).classList.toggle('filled', kind === 'ok');
  $(`drop-${slot}`).classList.toggle('invalid', kind === 'bad');
}

async function accept(slot: Slot, list: FileList | File[]): Promise<void> {
  clearError();
  if (list.length === 0) return;
  state[slot] = null;
  try {
    const files = await readFiles(list);
    if (slot !== 'data' && files.length !== 1) {
      throw new InputError(`drop one model file for model ${slot.toUpperCase()}, not ${files.length}`);
    }
    const summary = slot === 'data' ? describeData(files) : describeModel(files[0]);
    state[slot] = { files, summary };
    setStatus(slot, slot === 'data' ? summary : `${files[0].name} — ${summary}`, 'ok');
  } catch (e) {
    const msg = messageOf(e);
    setStatus(slot, msg, 'bad');
    showError(msg);
  }
  refresh();
}

function refresh(): void {
  $<HTMLButtonElement>('run').disabled = running || state.a === null || state.b === null;
  $('synthetic-field').hidden = state.data !== null;
}

for (const slot of ['a', 'b', 'data'] as const) {
  const zone = $(`drop-${slot}`);
  const input = $<HTMLInputElement>(`file-${slot === 'data' ? 'data' : slot}`);
  input.addEventListener('change', () => {
    if (input.files) void accept(slot, input.files);
    input.value = '';
  });
  zone.addEventListener('dragover', (e) => {
    e.preventDefault();
    zone.classList.add('over');
  });
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  zone.addEventListener('drop', (e) => {
    e.preventDefault();
    zone.classList.remove('over');
    const files = e.dataTransfer?.files;
    if (files && files.length > 0) void accept(slot, files);
  });
}
// A file dropped beside the zones must not make the browser navigate away to it.
window.addEventListener('dragover', (e) => e.preventDefault());
window.addEventListener('drop', (e) => e.preventDefault());

$('load-example').addEventListener('click', async () => {
  clearError();
  try {
    const get = async (name: string): Promise<File> => {
      const r = await fetch(`examples/${name}`);
      if (!r.ok) throw new Error(`examples/${name}: ${r.status} ${r.statusText}`);
      return new File([await r.blob()], name);
    };
    const [a, b, images, labels] = await Promise.all(
      ['mlp_a.onnx', 'mlp_b.onnx', 'fmnist_test256-images-idx3-ubyte.gz', 'fmnist_test256-labels-idx1-ubyte.gz'].map(get),
    );
    await accept('a', [a]);
    await accept('b', [b]);
    await accept('data', [images, labels]);
  } catch (e) {
    showError(`the example files could not be loaded (${e instanceof Error ? e.message : String(e)})`);
  }
});

// ----------------------------------------------------------------------------------------------------
// Running

function intField(id: string, min: number, fallback: number | undefined): number | undefined {
  const el = $<HTMLInputElement>(id);
  const raw = el.value.trim();
  if (raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) throw new Error(`${el.closest('label')?.firstChild?.textContent?.trim() ?? id} must be an integer of at least ${min}, got '${raw}'`);
  return n;
}

function startWorker(): Worker {
  const w = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
  w.addEventListener('error', (e) => {
    e.preventDefault();
    finish();
    showError(`the computation stopped: ${e.message || 'the worker could not start'}`);
    w.terminate();
    if (worker === w) worker = null;
  });
  return w;
}

function finish(): void {
  running = false;
  refresh();
  document.body.dataset.state = document.body.dataset.state === 'done' ? 'done' : 'idle';
}

$('options').addEventListener('submit', (e) => {
  e.preventDefault();
  if (running || !state.a || !state.b) return;
  clearError();
  let msg: ToWorker;
  try {
    const seed = intField('seed', 0, DEFAULTS.seed)!;
    const points = intField('points', 1, DEFAULTS.points)!;
    const probe = intField('probe', 1, DEFAULTS.probe)!;
    const limit = intField('limit', 1, undefined);
    const count = intField('synthetic', 1, DEFAULTS.syntheticCount)!;
    const method = $<HTMLSelectElement>('method').value as ToWorker['options']['method'];
    // Copies go to the worker (transferred there), so the page keeps its own bytes for another run.
    const payload = (f: NamedBytes) => ({ name: f.name, buffer: f.bytes.slice().buffer });
    msg = {
      type: 'run',
      a: payload(state.a.files[0]),
      b: payload(state.b.files[0]),
      options: {
        method,
        seed,
        points,
        probe,
        ...(limit !== undefined ? { limit } : {}),
        data: state.data ? { kind: 'files', files: state.data.files.map(payload) } : { kind: 'synthetic', count },
      },
    };
  } catch (err) {
    showError(err instanceof Error ? err.message : String(err));
    return;
  }
  running = true;
  document.body.dataset.state = 'running';
  refresh();
  $('result').hidden = true;
  $('progress-card').hidden = false;
  setProgress('starting', 0, 1);
  worker ??= startWorker();
  const w = worker;
  w.onmessage = (ev: MessageEvent<FromWorker>) => {
    const m = ev.data;
    if (m.type === 'stage') setProgress(m.stage, m.done, m.total);
    else if (m.type === 'error') {
      running = false;
      document.body.dataset.state = 'error';
      refresh();
      showError(m.input ? m.message : `unexpected error: ${m.message}`);
    } else {
      running = false;
      setProgress(`done in ${m.seconds.toFixed(1)} s`, 1, 1);
      showResult(m);
      document.body.dataset.state = 'done';
      refresh();
    }
  };
  const transfer = [msg.a.buffer, msg.b.buffer, ...(msg.options.data.kind === 'files' ? msg.options.data.files.map((f) => f.buffer) : [])];
  w.postMessage(msg, transfer);
});

function setProgress(stage: string, done: number, total: number): void {
  $('stage').textContent = stage;
  $('stage-count').textContent = total > 1 ? `${done} / ${total}` : '';
  const bar = $<HTMLProgressElement>('progress');
  bar.max = Math.max(1, total);
  bar.value = done;
}

// ----------------------------------------------------------------------------------------------------
// The result

function showResult(m: Extract<FromWorker, { type: 'done' }>): void {
  const json = m.json as { data: { name: string; count: number; preprocessing: string }; report: AlignmentReport & { perms: Record<string, number[]> } };
  const r = json.report;
  $('result-json').textContent = JSON.stringify(json);

  const summary = $('summary');
  summary.replaceChildren(
    fact('verdict', r.verdict, `verdict verdict-${r.verdict.replace(/\s+/g, '-')}`),
    fact('loss barrier', `${formatNumber(r.naive.barrier.loss)} → ${formatNumber(r.aligned.barrier.loss)}`, 'barrier'),
    fact('reduction', r.reduction === null ? 'n/a' : `${(100 * r.reduction).toFixed(1)}%`, 'reduction'),
    fact('checks', r.checks.map((c) => `${c.name}: ${c.status}`).join(' · '), 'checks'),
    fact('data', `${json.data.name}, ${json.data.count} examples`, 'data'),
  );

  for (const u of downloadUrls.splice(0)) URL.revokeObjectURL(u);
  const a = state.a!.files[0].name.replace(/\.onnx$/i, '');
  const b = state.b!.files[0].name.replace(/\.onnx$/i, '');
  const links = [
    link(new Blob([m.aligned], { type: 'application/octet-stream' }), `${b}.aligned.onnx`, 'aligned model B (.onnx)', 'aligned'),
    link(new Blob([m.merged], { type: 'application/octet-stream' }), `${a}+${b}.merged.onnx`, 'merged model, α = 0.5 (.onnx)', 'merged'),
    link(new Blob([JSON.stringify(json, null, 2)], { type: 'application/json' }), `${b}-to-${a}.report.json`, 'report (.json)', 'json'),
    link(new Blob([m.html], { type: 'text/html' }), `${b}-to-${a}.report.html`, 'report (.html)', 'html'),
  ];
  $('downloads').replaceChildren(...links);

  const frame = $<HTMLIFrameElement>('report-frame');
  frame.onload = () => {
    const doc = frame.contentDocument;
    if (doc) frame.style.height = `${doc.documentElement.scrollHeight + 4}px`;
  };
  frame.srcdoc = m.html;
  $('result').hidden = false;
}

function fact(label: string, value: string, cls: string): HTMLElement {
  const div = document.createElement('div');
  div.className = `fact ${cls}`;
  div.dataset.fact = label;
  const dt = document.createElement('span');
  dt.className = 'label';
  dt.textContent = label;
  const dd = document.createElement('span');
  dd.className = 'value';
  dd.textContent = value;
  div.append(dt, dd);
  return div;
}

function link(blob: Blob, filename: string, text: string, kind: string): HTMLAnchorElement {
  const url = URL.createObjectURL(blob);
  downloadUrls.push(url);
  const el = document.createElement('a');
  el.href = url;
  el.download = filename;
  el.textContent = `⬇ ${text}`;
  el.className = 'download';
  el.dataset.download = kind;
  return el;
}

refresh();
document.body.dataset.state = 'idle';
