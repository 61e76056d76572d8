/**
 * The CLI's function check before writing (align, merge): every permuted ONNX model must compute what the
 * model it came from computes, on a probe batch (measure/function-check.ts). A failure refuses the command
 * (InputError, exit 2) naming the output and the largest deviation; nothing is written. A check that cannot
 * run says so on stderr, with the reason.
 */
import { ort } from '../engine/ort-node.js';
import { InputError } from '../errors.js';
import { readOnnxFile } from '../io/onnx-file.js';
import { applyPermutation, type Perms } from '../permute.js';
import { createFunctionChecker, worstOutput, ProbeUnavailable, type OutputDeviation } from '../measure/function-check.js';
import type { ProbeBatch } from '../measure/runner.js';
import type { PermutationSpec } from '../permutation-spec/spec.js';
import type { Params } from '../tensor.js';
import type { Context } from './common.js';
import type { ModelFile } from './model-file.js';

export interface FunctionCheckRequest {
  /** The model the permuted params came from (its path). */
  readonly label: string;
  readonly reference: Params;
  readonly candidate: Params;
}

export interface FunctionCheckSummary {
  readonly status: 'passed' | 'skipped' | 'not applicable';
  readonly reason?: string;
  readonly probe?: string;
  /** Per checked model, the largest deviation over its outputs relative to the allowed one. */
  readonly checked?: { model: string; output: string; maxDeviation: number; allowed: number }[];
}

export interface FunctionCheckContext {
  readonly seed: number;
  /** Real examples for the probe, when the command has data (optional). */
  readonly examples?: ProbeBatch;
  /** What would have been written, for the refusal message. */
  readonly output: string;
  /** Where the spec came from, for the refusal message. */
  readonly specSource: string;
}

/**
 * A model's float initializers (as float32) up to which `align --low-memory` still runs the function check
 * (it loads B whole, and the aligned copy beside it): 128 MiB, about 32 M parameters.
 */
export const LOW_MEMORY_CHECK_LIMIT = 128 * 2 ** 20;

const fmt = (x: number): string => (x === Infinity ? 'inf' : x === 0 ? '0' : Math.abs(x) >= 1e-3 && Math.abs(x) < 1e4 ? x.toPrecision(3) : x.toExponential(2));

function describeFailure(d: OutputDeviation, tolerance: number): string {
  if (d.problem !== undefined) return `output '${d.output}': ${d.problem}`;
  if (d.allowed === 0) return `output '${d.output}' (${d.dtype}) differs in ${d.differing} of ${d.entries} entries`;
  return `output '${d.output}' deviates by up to ${fmt(d.maxDeviation)} (allowed ${fmt(d.allowed)} = ${tolerance} x max(1, max|output| ${fmt(d.scale)}))`;
}

/**
 * Checks that each request's candidate computes what its reference computes, on `model`'s graph (an ONNX
 * model; the requests' params are of its architecture). Throws an InputError at the first that does not.
 */
export async function assertSameFunction(ctx: Context, model: ModelFile, requests: readonly FunctionCheckRequest[], c: FunctionCheckContext): Promise<FunctionCheckSummary> {
  if (model.onnx === undefined) return { status: 'not applicable', reason: 'safetensors files carry no graph to run' };
  if (requests.length === 0) return { status: 'not applicable', reason: 'nothing was permuted' };
  const checker = await createFunctionChecker(ort, model.onnx, { seed: c.seed, examples: c.examples });
  if (checker instanceof ProbeUnavailable) {
    ctx.warn(`function check skipped: ${checker.reason}; ${c.output} is written without checking that it computes what its input computes`);
    return { status: 'skipped', reason: checker.reason };
  }
  const checked: { model: string; output: string; maxDeviation: number; allowed: number }[] = [];
  try {
    for (const r of requests) {
      const result = await checker.check(r.reference, r.candidate);
      if (result.status === 'skipped') {
        ctx.warn(`function check skipped: ${result.reason}; ${c.output} is written without checking that it computes what its input computes`);
        return { status: 'skipped', reason: result.reason };
      }
      const worst = worstOutput(result.outputs);
      if (result.status === 'failed' && worst !== undefined) {
        throw new InputError(
          `${r.label}: the aligned model does not compute what ${r.label} computes: ${describeFailure(worst, result.tolerance)} on a probe batch (${result.probe}); nothing was written to ${c.output}. The spec (${c.specSource}) does not fit this model's graph; check it with \`rebasin spec\``,
        );
      }
      if (worst !== undefined) checked.push({ model: r.label, output: worst.output, maxDeviation: worst.maxDeviation, allowed: worst.allowed });
    }
  } finally {
    await checker.dispose();
  }
  const largest = checked.reduce((m, x) => Math.max(m, x.maxDeviation), 0);
  ctx.info(`function check passed: the aligned model${requests.length > 1 ? 's compute' : ' computes'} what the input${requests.length > 1 ? 's compute' : ' computes'} (largest deviation ${fmt(largest)} on ${checker.probe})`);
  return { status: 'passed', probe: checker.probe, checked };
}

/**
 * `align --low-memory` on ONNX: the check loads B whole, so it runs only for models up to
 * LOW_MEMORY_CHECK_LIMIT and says it was skipped otherwise.
 */
export async function assertSameFunctionStreamed(
  ctx: Context,
  path: string,
  floatBytes: number,
  spec: PermutationSpec,
  perms: Perms,
  c: FunctionCheckContext,
): Promise<FunctionCheckSummary> {
  if (floatBytes > LOW_MEMORY_CHECK_LIMIT) {
    const reason = `B's weights take ${(floatBytes / 2 ** 20).toFixed(0)} MiB as float32, more than the ${LOW_MEMORY_CHECK_LIMIT / 2 ** 20} MiB --low-memory loads whole for the check`;
    ctx.warn(`function check skipped for memory: ${reason}; ${c.output} is written without checking that it computes what ${path} computes (run align without --low-memory to check)`);
    return { status: 'skipped', reason };
  }
  const { model, params, files } = readOnnxFile(path);
  const candidate = applyPermutation(spec, perms, params);
  return assertSameFunction(ctx, { path, format: 'onnx', params, files, onnx: model }, [{ label: path, reference: params, candidate }], c);
}
