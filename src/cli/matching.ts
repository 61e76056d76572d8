/** The matching step shared by align, merge and report: weight/cosine matching or activation matching. */
import { Option, type Command } from 'commander';
import { parseIntOption, type Context } from './common.js';
import { matchPerms, type AlignMethod } from '../pipeline/alignment-report.js';
import type { ProbeBatch } from '../measure/runner.js';
import { sliceDataset } from '../data/dataset.js';
import type { ModelFile } from './model-file.js';
import { resolveData, resolveRunner, type ResolvedSpec } from './resolve.js';

/** The flags of withMatchingOptions, plus the probe data that activation matching needs. */
export interface MatchFlags {
  method: string;
  spec: string;
  seed: number;
  maxIter: number;
  data?: string;
  probe: number;
  scale?: number;
  /** --strict: refuse a graph the spec derivation does not fully understand (no partial spec). */
  strict?: boolean;
}

export interface MatchOutcome {
  perms: Record<string, Int32Array>;
  iterations?: number;
  objectiveBefore?: number;
  objectiveAfter?: number;
  /** Weight matching: where the kept descent started (match/sorted-start.ts). */
  start?: 'identity' | 'sorted';
}

export const METHODS = ['weight', 'cosine', 'activation'] as const;

/** --strict, on every command that resolves a spec. */
export const STRICT_HELP =
  "with --spec auto on ONNX: refuse a graph with an op the spec derivation does not understand, instead of leaving the channel spaces it touches unpermuted (a partial spec)";

/** The options every command that aligns shares: --method, --spec, --seed, --max-iter. */
export function withMatchingOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--method <m>', 'how to align B to A').choices(METHODS).default('weight'))
    .option(
      '--spec <s>',
      'auto (from the ONNX graph, or from state-dict names) | mlp (a chain of 2-D <name>.weight (torch) or .kernel (flax) with optional .bias, in natural name order) | resnet (PyTorch names: conv1/bn1 stem, layerK.B.convN/bnN blocks, shortcut.0/1 or downsample.0/1, head linear or fc) | vgg (features.N convs with optional BatchNorm, classifier.M linears) | transformer:H (timm/HF ViT, HF BERT, GPT-2, nn.TransformerEncoderLayer state dicts with H attention heads) | a spec JSON file (as `rebasin spec --json` writes) | an ONNX export of the same network, for .safetensors/.pt state dicts no built-in spec fits (tensors placed by name, then shape, then values; BatchNorm folded by the exporter follows its conv; ambiguity is refused)',
      'auto',
    )
    .option('--seed <n>', 'seed of the matching order, of the random permutation in the invariance check, and of --data synthetic', parseIntOption('--seed', 0), 0)
    .option('--max-iter <n>', 'maximum passes of weight matching', parseIntOption('--max-iter', 1, 100000), 100)
    .option('--strict', STRICT_HELP);
}

export async function alignmentPerms(ctx: Context, a: ModelFile, b: ModelFile, spec: ResolvedSpec, flags: MatchFlags, probe?: ProbeBatch): Promise<MatchOutcome> {
  const engine = await ctx.engine();
  const runner = flags.method === 'activation' ? await resolveRunner(b, spec, engine) : undefined;
  try {
    let probeBatch = probe;
    if (runner && !probeBatch) {
      const data = resolveData(flags.data, { seed: flags.seed, scale: flags.scale, model: b });
      const probeSet = sliceDataset(data, 0, Math.min(flags.probe, data.count));
      probeBatch = { inputs: probeSet.inputs, count: probeSet.count };
    }
    const { perms, matching } = await matchPerms({
      method: flags.method as AlignMethod,
      a: a.params,
      b: b.params,
      spec: spec.spec,
      seed: flags.seed,
      maxIter: flags.maxIter,
      engine,
      runner,
      probe: probeBatch,
      onProgress: (e) => ctx.progress.update(`weight matching, pass ${e.pass + 1}: ${e.perm}`, e.step + 1, e.stepsPerPass),
    });
    ctx.progress.done();
    return { perms, ...matching };
  } finally {
    await runner?.dispose?.();
  }
}
