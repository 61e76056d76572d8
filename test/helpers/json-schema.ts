/**
 * A validator for the subset of JSON Schema (2020-12) that schema/*.json use: type, const, enum,
 * properties, required, additionalProperties, items, minItems, maxItems, minimum, maximum, anyOf, and
 * $ref to "#/$defs/x" or "other.json#/$defs/x" (files in the same folder). Annotations ($schema, $id,
 * title, description, $defs) are ignored; any other keyword throws, so a schema cannot quietly rely on
 * a keyword this validator does not check.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

type Schema = Record<string, unknown>;

const ANNOTATIONS = new Set(['$schema', '$id', 'title', 'description', '$defs']);
const KEYWORDS = new Set([
  'type', 'const', 'enum', 'properties', 'required', 'additionalProperties', 'items', 'minItems', 'maxItems',
  'minimum', 'maximum', 'anyOf', '$ref',
]);

function typeOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v;
}

function matchesType(v: unknown, t: string): boolean {
  const actual = typeOf(v);
  return actual === t || (t === 'number' && actual === 'integer');
}

/** Validates against the schema files of one folder; `errors` lists every failure as "path: why". */
export function schemaValidator(folder: string): (file: string, value: unknown) => string[] {
  const files = new Map<string, Schema>();
  const load = (file: string): Schema => {
    let s = files.get(file);
    if (s === undefined) {
      s = JSON.parse(readFileSync(join(folder, file), 'utf8')) as Schema;
      files.set(file, s);
    }
    return s;
  };
  const resolve = (ref: string, file: string): { schema: Schema; file: string } => {
    const [target, pointer = ''] = ref.split('#');
    const f = target === '' ? file : target;
    let node: unknown = load(f);
    for (const part of pointer.split('/').filter((p) => p !== '')) node = (node as Schema)[part];
    if (node === undefined || typeof node !== 'object') throw new Error(`${file}: $ref ${ref} resolves to nothing`);
    return { schema: node as Schema, file: f };
  };

  const check = (schema: Schema, v: unknown, path: string, file: string, errors: string[]): void => {
    for (const k of Object.keys(schema)) {
      if (!KEYWORDS.has(k) && !ANNOTATIONS.has(k)) throw new Error(`${file}: keyword '${k}' at ${path} is not supported by this validator`);
    }
    if (typeof schema.$ref === 'string') {
      const r = resolve(schema.$ref, file);
      check(r.schema, v, path, r.file, errors);
    }
    if (schema.type !== undefined) {
      const types = Array.isArray(schema.type) ? (schema.type as string[]) : [schema.type as string];
      if (!types.some((t) => matchesType(v, t))) {
        errors.push(`${path}: expected ${types.join(' or ')}, got ${typeOf(v)}`);
        return;
      }
    }
    if ('const' in schema && JSON.stringify(v) !== JSON.stringify(schema.const)) errors.push(`${path}: expected ${JSON.stringify(schema.const)}, got ${JSON.stringify(v)}`);
    if (Array.isArray(schema.enum) && !schema.enum.some((e) => JSON.stringify(e) === JSON.stringify(v))) {
      errors.push(`${path}: ${JSON.stringify(v)} is not one of ${JSON.stringify(schema.enum)}`);
    }
    if (typeof v === 'number') {
      if (typeof schema.minimum === 'number' && v < schema.minimum) errors.push(`${path}: ${v} < minimum ${schema.minimum}`);
      if (typeof schema.maximum === 'number' && v > schema.maximum) errors.push(`${path}: ${v} > maximum ${schema.maximum}`);
    }
    if (Array.isArray(v)) {
      if (typeof schema.minItems === 'number' && v.length < schema.minItems) errors.push(`${path}: ${v.length} items, fewer than ${schema.minItems}`);
      if (typeof schema.maxItems === 'number' && v.length > schema.maxItems) errors.push(`${path}: ${v.length} items, more than ${schema.maxItems}`);
      if (schema.items !== undefined) v.forEach((x, i) => check(schema.items as Schema, x, `${path}[${i}]`, file, errors));
    }
    if (typeOf(v) === 'object') {
      const o = v as Record<string, unknown>;
      const props = (schema.properties ?? {}) as Record<string, Schema>;
      for (const r of (schema.required ?? []) as string[]) if (!(r in o)) errors.push(`${path}: missing required '${r}'`);
      for (const [k, x] of Object.entries(o)) {
        if (k in props) check(props[k], x, `${path}.${k}`, file, errors);
        else if (schema.additionalProperties === false) errors.push(`${path}: unexpected property '${k}'`);
        else if (typeof schema.additionalProperties === 'object') check(schema.additionalProperties as Schema, x, `${path}.${k}`, file, errors);
      }
    }
    if (Array.isArray(schema.anyOf)) {
      const branches = (schema.anyOf as Schema[]).map((s) => {
        const e: string[] = [];
        check(s, v, path, file, e);
        return e;
      });
      if (!branches.some((e) => e.length === 0)) errors.push(`${path}: matches no anyOf branch (${branches.map((e) => e[0]).join('; ')})`);
    }
  };

  return (file, value) => {
    const errors: string[] = [];
    check(load(file), value, '$', file, errors);
    return errors;
  };
}
