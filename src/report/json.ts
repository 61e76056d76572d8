/**
 * The one envelope of every command's --json output: `"format": "rebasin-<command>"` and `"version"` first,
 * then the command's fields. Each format has a JSON Schema in schema/<command>.json (tested against real
 * CLI output in test/report-json-schema.test.ts). Conventions across formats: fractions in JSON (accuracy,
 * churn, reduction: 0.5 = 50%; text prints percent), churn as a list of {name, size, churn} in the spec's
 * order, `points` the number of points of a sweep (25 for α = 0, 1/24, ..., 1).
 * The version changes when a field is removed or changes meaning; added fields keep it.
 */
export const JSON_VERSION = 1;

export type JsonCommand = 'align' | 'merge' | 'barrier' | 'report' | 'demo';

export function jsonDocument<T extends object>(command: JsonCommand, body: T): { format: string; version: number } & T {
  return { format: `rebasin-${command}`, version: JSON_VERSION, ...body };
}
