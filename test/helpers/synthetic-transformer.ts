/**
 * A pre-norm transformer's parameters and spec, built from shapes alone (random weights): one residual
 * permutation over the embeddings, every LayerNorm, q/k/v inputs, out-projection and MLP outputs and the
 * head; per block an MLP hidden permutation and a head group {qk, v}. For matching tests and benches
 * that need a model with the symmetries of a ViT but no forward pass.
 */
import { specFromAxes, type PermutationSpec } from '../../src/permutation-spec/spec.js';
import { createRng } from '../../src/random.js';
import type { Params, Tensor } from '../../src/tensor.js';

export interface SyntheticTransformer {
  spec: PermutationSpec;
  params: Params;
}

export function syntheticTransformer(o: { layers: number; dim: number; heads: number; mlp?: number; seed?: number }): SyntheticTransformer {
  const E = o.dim, M = o.mlp ?? 2 * o.dim;
  const axes: Record<string, (string | null)[]> = Object.create(null);
  const shapes: Record<string, number[]> = Object.create(null);
  const add = (name: string, shape: number[], perms: (string | null)[]) => {
    shapes[name] = shape;
    axes[name] = perms;
  };
  add('embed.weight', [E, 49], ['res', null]);
  add('pos', [17, E], [null, 'res']);
  add('cls', [1, 1, E], [null, null, 'res']);
  const heads: Record<string, { count: number; perms: string[] }> = Object.create(null);
  for (let l = 0; l < o.layers; l++) {
    const b = `blocks.${l}`;
    for (const n of ['norm1', 'norm2']) for (const leaf of ['weight', 'bias']) add(`${b}.${n}.${leaf}`, [E], ['res']);
    for (const [t, p] of [['q', `${b}.qk`], ['k', `${b}.qk`], ['v', `${b}.v`]]) {
      add(`${b}.attn.${t}.weight`, [E, E], [p, 'res']);
      add(`${b}.attn.${t}.bias`, [E], [p]);
    }
    add(`${b}.attn.proj.weight`, [E, E], ['res', `${b}.v`]);
    add(`${b}.attn.proj.bias`, [E], ['res']);
    add(`${b}.fc1.weight`, [M, E], [`${b}.mlp`, 'res']);
    add(`${b}.fc1.bias`, [M], [`${b}.mlp`]);
    add(`${b}.fc2.weight`, [E, M], ['res', `${b}.mlp`]);
    add(`${b}.fc2.bias`, [E], ['res']);
    heads[`${b}.attn`] = { count: o.heads, perms: [`${b}.qk`, `${b}.v`] };
  }
  add('norm.weight', [E], ['res']);
  add('norm.bias', [E], ['res']);
  add('head.weight', [10, E], [null, 'res']);
  const rng = createRng(o.seed ?? 1);
  const params: Record<string, Tensor> = Object.create(null);
  for (const [n, s] of Object.entries(shapes)) params[n] = { shape: s, data: Float32Array.from({ length: s.reduce((x, y) => x * y, 1) }, () => rng.normal()) };
  return { spec: specFromAxes(axes, heads), params };
}
