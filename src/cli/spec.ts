/**
 * `rebasin spec MODEL`: print the permutation spec rebasin derives (a table, or the JSON to save and edit),
 * and, for a spec derived from an ONNX graph, the channel spaces it leaves fixed and why, and the nodes it
 * did not understand.
 */
import { Command } from 'commander';
import { specToJson } from '../permutation-spec/json.js';
import { formatSpecTable, groupRefs } from '../permutation-spec/table.js';
import type { OnnxFixedAxes, OnnxUnsupportedNode } from '../permutation-spec/onnx-graph.js';
import { writeFileAtomic } from '../io/atomic.js';
import { readModels } from './model-file.js';
import { fixedByUnsupported, resolveSpec, type ResolvedSpec } from './resolve.js';
import { makeContext, type GlobalOptions } from './common.js';
import { assertOutputs } from './outputs.js';
import { STRICT_HELP } from './matching.js';

/** The notes of a derived spec as JSON-able items: fixed spaces as "tensor:axis" lists, unsupported nodes. */
export function specNotes(spec: ResolvedSpec): Record<string, readonly unknown[]> | undefined {
  if (spec.fixed === undefined && spec.unsupported === undefined) return undefined;
  return {
    fixed: (spec.fixed ?? []).map((f) => ({ axes: f.axes.map((a) => `${a.tensor}:${a.axis}`), reason: f.reason })),
    unsupported: (spec.unsupported ?? []).map((u) => ({ node: u.node, op: u.opType, why: u.why, followOn: u.followOn })),
  };
}

/**
 * Unsupported nodes in graph order, each follow-on node (one that only reads what an earlier unsupported
 * node made opaque) indented under the last node that was not one.
 */
function unsupportedLines(list: readonly OnnxUnsupportedNode[]): string[] {
  let under = false;
  return list.map((u) => {
    const line = `${u.node} ${u.why}`;
    if (u.followOn && under) return `      ${line} (follows from the node above)`;
    under ||= !u.followOn;
    return `  ${line}`;
  });
}

function fixedLines(fixed: readonly OnnxFixedAxes[]): string[] {
  const rows = fixed.map((f) => ({ axes: groupRefs(f.axes).join(', '), reason: f.reason }));
  const width = Math.min(40, Math.max(0, ...rows.map((r) => r.axes.length)));
  return rows.map((r) => `  ${r.axes.padEnd(width)}  ${r.reason}`);
}

/** The text after the permutation table: fixed channel spaces and unsupported nodes (ONNX-derived specs). */
export function formatSpecNotes(spec: ResolvedSpec): string {
  const out: string[] = [];
  const fixed = spec.fixed ?? [];
  const unsupported = spec.unsupported ?? [];
  if (fixed.length > 0) {
    out.push(`fixed channel spaces (never permuted): ${fixed.length}`);
    out.push(...fixedLines(fixed));
  }
  if (unsupported.length > 0) {
    const n = fixedByUnsupported(spec).length;
    out.push(
      `unsupported nodes: ${unsupported.length} (a partial spec: the ${n} channel space${n === 1 ? '' : 's'} they touch ${n === 1 ? 'is' : 'are'} left fixed; --strict refuses the model instead)`,
    );
    out.push(...unsupportedLines(unsupported));
  }
  return out.length === 0 ? '' : `${out.join('\n')}\n`;
}

export function specCommand(globals: () => GlobalOptions): Command {
  return new Command('spec')
    .description('show the permutation spec of a model: which axis of which tensor each permutation acts on, and (ONNX) what is left fixed and why')
    .argument('<model>', 'a model (.onnx or .safetensors)')
    .option('--spec <s>', 'auto | mlp | resnet | vgg | transformer:H (H attention heads) | a spec JSON file (to check it against the model) | an ONNX export of the same network (to map its spec onto a state dict)', 'auto')
    .option('--strict', STRICT_HELP)
    .option('--json', 'print the spec as JSON (the format --spec FILE reads; "notes" lists what was left fixed and is ignored when read)')
    .option('-o, --output <file>', 'write the spec JSON to a file')
    .option('--force', 'write -o even over a file that looks like a model or data file (never over an input)')
    .action((path: string, flags: { spec: string; json?: boolean; output?: string; strict?: boolean; force?: boolean }) => {
      const g = globals();
      const ctx = makeContext(g);
      const models = readModels([path]);
      const resolved = resolveSpec(flags.spec, models, { strict: flags.strict });
      const { spec, source, files } = resolved;
      if (flags.output !== undefined) assertOutputs([{ path: flags.output, option: '-o', kind: 'text' }], [...models[0].files, ...files], { force: flags.force });
      const json = specToJson(spec, { kind: source, description: `derived by rebasin from ${path}`, notes: specNotes(resolved) });
      if (flags.output) writeFileAtomic(flags.output, new TextEncoder().encode(json), { inputs: [...models[0].files, ...files] });
      if (flags.json) ctx.out(json);
      else ctx.out(`${path}: spec from ${source}\n${formatSpecTable(spec, models[0].params)}${formatSpecNotes(resolved)}`);
    });
}
