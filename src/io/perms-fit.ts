/**
 * The check the streaming writers (onnx-stream.ts, safetensors-stream.ts) make before writing anything:
 * from the file's float tensor shapes alone (no data is read), the spec must fit the file and every
 * permutation must be given, with the length of the axes it acts on.
 */
import { InputError } from '../errors.js';
import type { Tensor } from '../tensor.js';
import type { PermutationSpec } from '../permutation-spec/spec.js';
import { permSizes, validateSpec } from '../permutation-spec/spec.js';
import type { Perms } from '../permute.js';

/** Throws an InputError naming `label` when `spec` or `perms` do not fit tensors of these shapes. */
export function assertPermsFitShapes(spec: PermutationSpec, perms: Perms, floatShapes: Readonly<Record<string, readonly number[]>>, label: string): void {
  const stubs: Record<string, Tensor> = Object.create(null);
  const empty = new Float32Array(0);
  for (const [name, shape] of Object.entries(floatShapes)) stubs[name] = { shape, data: empty };
  validateSpec(spec, { label, params: stubs });
  const sizes = permSizes(spec, stubs);
  for (const p of Object.keys(spec.permToAxes)) {
    const perm = perms[p];
    const n = sizes[p];
    if (perm === undefined) throw new InputError(`no permutation '${p}' given for ${label}`);
    if (perm.length !== n) throw new InputError(`permutation '${p}' has length ${perm.length} but acts on axes of size ${n} in ${label}`);
  }
}
