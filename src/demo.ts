/**
 * The demo: the second seed's experiment, end to end, with nothing to download. Two small MLPs
 * (2 -> 12 -> 12 -> 3, ReLU) are trained from different seeds on the synthetic 3-cluster task, then
 * three alignment reports run: weight matching, activation matching, and align-to-self.
 * With Fashion-MNIST installed, the same runs at paper scale (784 -> W -> W -> W -> 10).
 */
import type { MatmulEngine } from './engine/matmul.js';
import { threeClusters } from './data/synthetic.js';
import { sliceDataset, type Dataset } from './data/dataset.js';
import { trainMlp } from './train/mlp-trainer.js';
import { mlpSpec } from './permutation-spec/mlp.js';
import { mlpRunner } from './model/mlp-runner.js';
import { alignmentReport, type AlignmentReport } from './pipeline/alignment-report.js';
import type { Params } from './tensor.js';

export interface DemoOptions {
  seed: number;
  engine: MatmulEngine;
  /** Loaded train and test sets (default: the synthetic task). */
  data?: { train: Dataset; test: Dataset };
  /** Hidden widths; default [12, 12]. */
  hidden?: number[];
  epochs?: number;
  points?: number;
  onProgress?: (what: string, done: number, total: number) => void;
}

export interface DemoResult {
  /** Names of the data the nets were trained and measured on. */
  dataset: { train: string; test: string };
  widths: number[];
  a: { params: Params; trainLoss: number };
  b: { params: Params; trainLoss: number };
  reports: AlignmentReport[];
}

export async function runDemo(o: DemoOptions): Promise<DemoResult> {
  const seed = o.seed;
  const data = o.data ?? {
    train: threeClusters({ count: 1500, seed: seed * 7919 + 1 }),
    test: threeClusters({ count: 1500, seed: seed * 7919 + 2 }),
  };
  const hidden = o.hidden ?? [12, 12];
  const epochs = o.epochs ?? 20;
  const features = data.train.inputs.length / data.train.count;
  const progress = o.onProgress ?? (() => {});
  const train = {
    inputs: data.train.inputs,
    labels: data.train.labels,
    count: data.train.count,
    features,
    numClasses: data.train.numClasses,
  };
  const names = [...hidden.map((_, i) => `fc${i + 1}`), `fc${hidden.length + 1}`];
  const trained = [];
  for (const [k, s] of [seed * 2 + 1, seed * 2 + 2].entries()) {
    const label = k === 0 ? 'training A' : 'training B';
    trained.push(
      await trainMlp(train, {
        hidden,
        epochs,
        seed: s,
        names,
        engine: o.engine,
        learningRate: features > 100 ? 1e-3 : 1e-2,
        batchSize: features > 100 ? 128 : 32,
        onEpoch: (e) => progress(label, e.epoch + 1, e.epochs),
      }),
    );
  }
  const [A, B] = trained;
  // Hidden layer i's units are named after the layer that produces them (fc1, fc2, ...).
  const spec = mlpSpec(hidden.length, { names, permName: (i) => names[i] });
  const runner = mlpRunner(A.arch, o.engine, { hiddenPerms: names.slice(0, hidden.length) });
  const test = { inputs: data.test.inputs, labels: data.test.labels, count: data.test.count };
  const probeSet = sliceDataset(data.test, 0, Math.min(512, data.test.count));
  const probe = { inputs: probeSet.inputs, count: probeSet.count };
  const common = { spec, runner, data: test, probe, seed, engine: o.engine, points: o.points ?? 24 };

  const runs = [
    { title: 'RUN 1 - weight matching', method: 'weight' as const, b: B.params },
    { title: 'RUN 2 - activation matching', method: 'activation' as const, b: B.params },
    { title: 'CHECK - align-to-self (B := A)', method: 'weight' as const, b: A.params },
  ];
  const reports: AlignmentReport[] = [];
  for (const run of runs) {
    reports.push(
      await alignmentReport({
        ...common,
        a: A.params,
        b: run.b,
        method: run.method,
        title: run.title,
        onStage: (stage, done, total) => progress(`${run.title}: ${stage}`, done, total),
      }),
    );
  }
  return {
    dataset: { train: data.train.name, test: data.test.name },
    widths: [features, ...hidden, data.train.numClasses],
    a: { params: A.params, trainLoss: A.losses[A.losses.length - 1] },
    b: { params: B.params, trainLoss: B.losses[B.losses.length - 1] },
    reports,
  };
}
