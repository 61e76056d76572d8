/**
 * The permutation-spec JSON format.
 *
 * Canonical form (written by `specToJson`):
 *
 *   {
 *     "format": "rebasin-spec",
 *     "version": 1,
 *     "kind": "mlp",                      (optional, informational)
 *     "description": "...",               (optional, informational)
 *     "axes": {
 *       "layer0.weight": ["P_0", null],   one entry per axis of the tensor, in order:
 *       "layer0.bias": ["P_0"],           the permutation acting on it, or null
 *       "layer1.weight": [null, "P_0"]
 *     },
 *     "heads": {                          (version 2, optional: attention heads)
 *       "blocks.0.attn": {"count": 4, "perms": ["blocks.0.qk", "blocks.0.v"]}
 *     },
 *     "segments": {                       (version 2, optional: fused tensors cut into parts)
 *       "blocks.0.qkv.weight": {"axis": 0, "parts": ["blocks.0.qkv.weight#q", "blocks.0.qkv.weight#k", "blocks.0.qkv.weight#v"]}
 *     },
 *     "notes": {...}                      (optional, informational: ignored when read)
 *   }
 *
 * `heads` makes the listed permutations head-structured (permutation-spec/heads.ts): each acts on `count` heads of
 * equal size, keeps every head's units together, and all of a group move the heads alike. Files without
 * it are written as version 1.
 *
 * `segments` cuts a stored tensor's axis into consecutive parts (equal, or of the lengths in "sizes"), each
 * listed in `axes` as a tensor of its own (permutation-spec/segments.ts): the fused q|k|v projection of attention,
 * whose q, k and v rows carry different permutations. The source tensor itself is not in `axes`.
 *
 * `notes` is what `rebasin spec MODEL --json` says about a spec derived from an ONNX graph: the channel
 * spaces left fixed and why (`fixed`), and the nodes the derivation did not understand (`unsupported`).
 * Reading ignores it (what is permuted is `axes` alone), so the file stays valid after editing `axes`.
 *
 * Tensors the spec does not list are never permuted. A permutation may appear at most once per tensor;
 * every axis it touches must have the same length (checked against the params when they are loaded).
 *
 * Also accepted on input: a bare axes object (`{"layer0.weight": ["P_0", null], ...}`) and the reference
 * code's names, `{"axes_to_perm": {...}, "perm_to_axes": {...}}` (`perm_to_axes`, when present, must
 * agree: perm name → list of [tensor, axis] pairs).
 */
import { InputError } from '../errors.js';
import { specFromAxes, type HeadGroup, type PermutationSpec, type Segmentation } from './spec.js';

export const SPEC_FORMAT = 'rebasin-spec';
/** Version 1: axes only. Version 2 adds "heads" (head-structured permutations) and "segments"; v1 files read as before. */
export const SPEC_VERSION = 2;

export interface SpecJsonOptions {
  kind?: string;
  description?: string;
  /** Informational notes written after `axes` (one item per line); ignored when read. */
  notes?: Record<string, readonly unknown[]>;
}

/** The canonical JSON text of a spec: one tensor per line, so diffs and reviews stay readable. */
export function specToJson(spec: PermutationSpec, options: SpecJsonOptions = {}): string {
  // Specs without head groups are written as version 1, which older builds read too.
  const version = spec.heads === undefined && spec.segments === undefined ? 1 : SPEC_VERSION;
  const head: string[] = [`  "format": ${JSON.stringify(SPEC_FORMAT)}`, `  "version": ${version}`];
  if (options.kind !== undefined) head.push(`  "kind": ${JSON.stringify(options.kind)}`);
  if (options.description !== undefined) head.push(`  "description": ${JSON.stringify(options.description)}`);
  const rows = Object.entries(spec.axesToPerm).map(
    ([tensor, perms]) => `    ${JSON.stringify(tensor)}: [${perms.map((p) => JSON.stringify(p)).join(', ')}]`,
  );
  const axes = rows.length === 0 ? '  "axes": {}' : `  "axes": {\n${rows.join(',\n')}\n  }`;
  const parts = [...head, axes];
  if (spec.heads !== undefined) {
    const groups = Object.entries(spec.heads).map(([g, { count, perms }]) => `    ${JSON.stringify(g)}: {"count": ${count}, "perms": ${JSON.stringify(perms)}}`);
    parts.push(`  "heads": {\n${groups.join(',\n')}\n  }`);
  }
  if (spec.segments !== undefined) {
    const list = (xs: readonly unknown[]): string => `[${xs.map((x) => JSON.stringify(x)).join(', ')}]`;
    const rows = Object.entries(spec.segments).map(([t, seg]) => {
      const sizes = seg.sizes === undefined ? '' : `, "sizes": ${list(seg.sizes)}`;
      return `    ${JSON.stringify(t)}: {"axis": ${seg.axis}, "parts": ${list(seg.parts)}${sizes}}`;
    });
    parts.push(`  "segments": {\n${rows.join(',\n')}\n  }`);
  }
  if (options.notes !== undefined) {
    const groups = Object.entries(options.notes).map(([k, items]) =>
      items.length === 0 ? `    ${JSON.stringify(k)}: []` : `    ${JSON.stringify(k)}: [\n${items.map((x) => `      ${JSON.stringify(x)}`).join(',\n')}\n    ]`,
    );
    parts.push(groups.length === 0 ? '  "notes": {}' : `  "notes": {\n${groups.join(',\n')}\n  }`);
  }
  return `{\n${parts.join(',\n')}\n}\n`;
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return 'an object';
  const s = JSON.stringify(v);
  return `${typeof v} ${s.length > 40 ? s.slice(0, 37) + '...' : s}`;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Check the axes table's types here, so every message can name the file (`label`), tensor and axis. */
function axesFrom(value: unknown, label: string, where: string): Record<string, (string | null)[]> {
  if (!isObject(value)) throw new InputError(`${label}: ${where} must be an object of tensor name → axes, got ${describe(value)}`);
  const entries = Object.entries(value);
  if (entries.length === 0) throw new InputError(`${label}: ${where} lists no tensors`);
  const axes: Record<string, (string | null)[]> = Object.create(null);
  for (const [tensor, perms] of entries) {
    if (!Array.isArray(perms)) {
      throw new InputError(`${label}: tensor '${tensor}' must map to an array (one permutation name or null per axis), got ${describe(perms)}`);
    }
    axes[tensor] = perms.map((p, axis) => {
      if (p === null || (typeof p === 'string' && p.length > 0)) return p;
      throw new InputError(`${label}: tensor '${tensor}' axis ${axis}: expected a permutation name or null, got ${describe(p)}`);
    });
  }
  return axes;
}

function checkPermToAxes(value: unknown, spec: PermutationSpec, label: string): void {
  if (!isObject(value)) throw new InputError(`${label}: perm_to_axes must be an object, got ${describe(value)}`);
  for (const [perm, refs] of Object.entries(value)) {
    if (!Array.isArray(refs)) throw new InputError(`${label}: perm_to_axes['${perm}'] must be an array of [tensor, axis] pairs`);
    for (const ref of refs) {
      // [tensor, axis] as in the reference code, or {tensor, axis} as in PermutationSpec.permToAxes.
      const [tensor, axis] = Array.isArray(ref) ? ref : isObject(ref) ? [ref.tensor, ref.axis] : [];
      const ok = typeof tensor === 'string' && Number.isInteger(axis);
      if (!ok || spec.axesToPerm[tensor]?.[axis as number] !== perm) {
        throw new InputError(`${label}: perm_to_axes['${perm}'] lists ${JSON.stringify(ref)}, which axes_to_perm does not give to '${perm}'`);
      }
    }
    if (refs.length !== (spec.permToAxes[perm]?.length ?? 0)) {
      throw new InputError(`${label}: perm_to_axes['${perm}'] lists ${refs.length} axes but axes_to_perm gives it ${spec.permToAxes[perm]?.length ?? 0}`);
    }
  }
  for (const perm of Object.keys(spec.permToAxes)) {
    if (!Object.hasOwn(value, perm)) throw new InputError(`${label}: permutation '${perm}' is in axes_to_perm but not in perm_to_axes`);
  }
}

/** "heads": {group: {"count": H, "perms": [names]}}, types checked here so messages name the file. */
function headsFrom(value: unknown, label: string): Record<string, HeadGroup> {
  if (!isObject(value)) throw new InputError(`${label}: "heads" must be an object of group name → {"count", "perms"}, got ${describe(value)}`);
  const out: Record<string, HeadGroup> = Object.create(null);
  for (const [group, g] of Object.entries(value)) {
    if (!isObject(g)) throw new InputError(`${label}: head group '${group}' must be an object {"count": heads, "perms": [...]}, got ${describe(g)}`);
    const extra = Object.keys(g).filter((k) => k !== 'count' && k !== 'perms');
    if (extra.length > 0) throw new InputError(`${label}: head group '${group}': unknown key(s) ${extra.map((k) => `"${k}"`).join(', ')}`);
    if (!Number.isSafeInteger(g.count) || (g.count as number) < 1) {
      throw new InputError(`${label}: head group '${group}': "count" must be a positive integer, got ${describe(g.count)}`);
    }
    if (!Array.isArray(g.perms) || g.perms.some((p) => typeof p !== 'string')) {
      throw new InputError(`${label}: head group '${group}': "perms" must be an array of permutation names, got ${describe(g.perms)}`);
    }
    out[group] = { count: g.count as number, perms: g.perms as string[] };
  }
  return out;
}

/** "segments": {tensor: {"axis": n, "parts": [names], "sizes"?: [lengths]}}, types checked here so messages name the file. */
function segmentsFrom(value: unknown, label: string): Record<string, Segmentation> {
  if (!isObject(value)) throw new InputError(`${label}: "segments" must be an object of tensor name → {"axis", "parts"}, got ${describe(value)}`);
  const out: Record<string, Segmentation> = Object.create(null);
  for (const [tensor, seg] of Object.entries(value)) {
    if (!isObject(seg)) throw new InputError(`${label}: segments of '${tensor}' must be an object {"axis": n, "parts": [...]}, got ${describe(seg)}`);
    const extra = Object.keys(seg).filter((k) => k !== 'axis' && k !== 'parts' && k !== 'sizes');
    if (extra.length > 0) throw new InputError(`${label}: segments of '${tensor}': unknown key(s) ${extra.map((k) => `"${k}"`).join(', ')}`);
    if (!Array.isArray(seg.parts) || seg.parts.some((p) => typeof p !== 'string')) {
      throw new InputError(`${label}: segments of '${tensor}': "parts" must be an array of tensor names, got ${describe(seg.parts)}`);
    }
    if ('sizes' in seg && !Array.isArray(seg.sizes)) throw new InputError(`${label}: segments of '${tensor}': "sizes" must be an array, got ${describe(seg.sizes)}`);
    out[tensor] = { axis: seg.axis as number, parts: seg.parts as string[], ...('sizes' in seg ? { sizes: seg.sizes as number[] } : {}) };
  }
  return out;
}

function build(axes: Record<string, (string | null)[]>, label: string, heads?: Record<string, HeadGroup>, segments?: Record<string, Segmentation>): PermutationSpec {
  try {
    return specFromAxes(axes, heads, segments);
  } catch (e) {
    if (e instanceof InputError) throw new InputError(e.message.replace(/^spec:/, `${label}:`));
    throw e;
  }
}

/** A spec from already-parsed JSON (any of the accepted forms). */
export function specFromJsonValue(value: unknown, label = 'spec'): PermutationSpec {
  if (!isObject(value)) throw new InputError(`${label}: a permutation spec must be a JSON object, got ${describe(value)}`);
  if ('format' in value) {
    if (value.format !== SPEC_FORMAT) {
      throw new InputError(`${label}: "format" is ${describe(value.format)}, expected ${JSON.stringify(SPEC_FORMAT)}`);
    }
    if (value.version !== 1 && value.version !== SPEC_VERSION) {
      throw new InputError(`${label}: unsupported ${SPEC_FORMAT} version ${describe(value.version)} (this build reads versions 1 to ${SPEC_VERSION})`);
    }
    const keys = ['format', 'version', 'kind', 'description', 'axes', 'notes', ...(value.version >= 2 ? ['heads', 'segments'] : [])];
    const extra = Object.keys(value).filter((k) => !keys.includes(k));
    if (extra.length > 0) throw new InputError(`${label}: unknown key(s) ${extra.map((k) => `"${k}"`).join(', ')} in a ${SPEC_FORMAT} file`);
    for (const k of ['kind', 'description'] as const) {
      if (k in value && typeof value[k] !== 'string') throw new InputError(`${label}: "${k}" must be a string, got ${describe(value[k])}`);
    }
    // Informational (what `rebasin spec --json` says about a derived spec); never read for permuting.
    if ('notes' in value && !isObject(value.notes)) throw new InputError(`${label}: "notes" must be an object, got ${describe(value.notes)}`);
    if (!('axes' in value)) throw new InputError(`${label}: ${SPEC_FORMAT} file has no "axes"`);
    const heads = 'heads' in value ? headsFrom(value.heads, label) : undefined;
    return build(axesFrom(value.axes, label, '"axes"'), label, heads, 'segments' in value ? segmentsFrom(value.segments, label) : undefined);
  }
  // {"axes": {...}} without the header: the canonical body. (A bare axes object maps names to arrays, so
  // a tensor called "axes" cannot be mistaken for it.)
  if (Object.keys(value).length === 1 && isObject(value.axes)) return build(axesFrom(value.axes, label, '"axes"'), label);
  for (const key of ['axes_to_perm', 'axesToPerm'] as const) {
    if (key in value) {
      const extra = Object.keys(value).filter((k) => ![key, 'perm_to_axes', 'permToAxes'].includes(k));
      if (extra.length > 0) throw new InputError(`${label}: unknown key(s) ${extra.map((k) => `"${k}"`).join(', ')} beside "${key}"`);
      const spec = build(axesFrom(value[key], label, `"${key}"`), label);
      const inverse = value.perm_to_axes ?? value.permToAxes;
      if (inverse !== undefined) checkPermToAxes(inverse, spec, label);
      return spec;
    }
  }
  return build(axesFrom(value, label, 'the spec'), label);
}

/** Parse spec JSON text; `label` (e.g. the file name) starts every error message. */
export function specFromJson(text: string, label = 'spec'): PermutationSpec {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new InputError(`${label}: not valid JSON (${(e as Error).message})`);
  }
  return specFromJsonValue(value, label);
}
