/**
 * Permutations read back from a file (`align --perms-in`): what `align --perms` writes (a JSON object of
 * permutation name → array of unit indices) or the `perms` field of `report --json`. Checked against the
 * spec before use, since applying them skips matching: every permutation of the spec and no other, each of
 * its axis's length, each a true permutation, and head groups kept whole (heads.ts).
 *
 * Browser-safe: no Node modules.
 */
import { InputError } from '../errors.js';
import { shortText } from '../names.js';
import { checkHeadPerms } from './heads.js';
import type { PermutationSpec } from './spec.js';

export function permsFromJson(text: string, label: string, spec: PermutationSpec, sizes: Readonly<Record<string, number>>): Record<string, Int32Array> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new InputError(`${label}: not JSON (${(e as Error).message})`);
  }
  const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  // `report --json` wraps the report: {format, version, data, report: {perms, ...}}.
  if (isObject(value) && isObject(value.report) && Object.hasOwn(value.report, 'perms') && isObject(value.report.perms)) value = value.report.perms;
  else if (isObject(value) && Object.hasOwn(value, 'perms') && isObject(value.perms)) value = value.perms;
  if (!isObject(value)) throw new InputError(`${label}: expected an object of permutation name -> array of indices (as align --perms writes)`);
  const extra = Object.keys(value).filter((p) => !Object.hasOwn(sizes, p));
  if (extra.length > 0) {
    throw new InputError(`${label}: permutation${extra.length === 1 ? '' : 's'} ${extra.slice(0, 4).map((p) => `'${shortText(p)}'`).join(', ')}${extra.length > 4 ? ', ...' : ''} not in the spec (${Object.keys(sizes).length} permutations); was the file written for these models and spec?`);
  }
  const out: Record<string, Int32Array> = Object.create(null);
  for (const [p, n] of Object.entries(sizes)) {
    if (!Object.hasOwn(value, p)) throw new InputError(`${label}: no permutation '${shortText(p)}' (${n} units), which the spec has`);
    const list = value[p];
    if (!Array.isArray(list) || list.length !== n) {
      throw new InputError(`${label}: '${shortText(p)}' must be an array of ${n} unit indices${Array.isArray(list) ? `, got ${list.length}` : ''}`);
    }
    const seen = new Uint8Array(n);
    const sigma = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      const v = list[i];
      if (!Number.isInteger(v) || v < 0 || v >= n) throw new InputError(`${label}: '${shortText(p)}'[${i}] is ${JSON.stringify(v)}, not a unit index from 0 to ${n - 1}`);
      if (seen[v] === 1) throw new InputError(`${label}: '${shortText(p)}' is not a permutation: unit ${v} appears twice`);
      seen[v] = 1;
      sigma[i] = v;
    }
    out[p] = sigma;
  }
  checkHeadPerms(spec, out, label);
  return out;
}
