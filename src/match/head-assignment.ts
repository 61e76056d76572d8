/**
 * The assignment step for a head group (permutation-spec/heads.ts): choose the group's head-structured permutations
 * together, maximising the sum of their cost matrices' assigned entries.
 *
 * With σ_m(h·d_m + i) = π(h)·d_m + τ_{m,h}(i), the objective splits over head pairs:
 *   Σ_m Σ_h Σ_i C_m[h·d_m + i, π(h)·d_m + τ_{m,h}(i)] = Σ_h Σ_m (that sum over i for head pair (h, π(h))).
 * For a fixed pair (a, b) the τ's only affect their own block, so the best value of the pair is
 *   S[a][b] = Σ_m (best assignment of block (a, b) of C_m),
 * and the best π is the assignment that maximises Σ_a S[a][π(a)]. This is the standard nested solve
 * (score each head pair by its best within-head assignment, assign heads, keep the chosen pairs' inner
 * assignments), and it is the exact optimum over head-structured permutations, not a heuristic.
 */
import { headStructured } from '../permutation-spec/heads.js';
import { solveAssignment } from './lap.js';

export interface HeadGroupCost {
  /** Row-major n×n scores: cost[i·n + j] for sending A's unit i to B's unit j (maximised). */
  readonly cost: Float64Array;
  readonly n: number;
}

export interface HeadGroupSolution {
  /** One head-structured permutation per member, in the members' order (rowToCol convention). */
  readonly perms: Int32Array[];
  /** The permutation of the heads the members share. */
  readonly heads: Int32Array;
  readonly objective: number;
}

export function solveHeadGroup(members: readonly HeadGroupCost[], heads: number): HeadGroupSolution {
  const H = heads;
  const score = new Float64Array(H * H);
  // inner[m][a·H + b]: member m's best order inside head pair (a, b).
  const inner: Int32Array[][] = members.map(() => new Array<Int32Array>(H * H));
  members.forEach(({ cost, n }, m) => {
    const d = n / H;
    if (!Number.isInteger(d)) throw new Error(`solveHeadGroup: ${n} units are not ${H} heads`);
    const block = new Float64Array(d * d);
    for (let a = 0; a < H; a++) {
      for (let b = 0; b < H; b++) {
        for (let i = 0; i < d; i++) {
          const row = (a * d + i) * n + b * d;
          block.set(cost.subarray(row, row + d), i * d);
        }
        const r = solveAssignment(block, d, d, { maximize: true });
        score[a * H + b] += r.objective;
        inner[m][a * H + b] = Int32Array.from(r.rowToCol);
      }
    }
  });
  const top = solveAssignment(score, H, H, { maximize: true });
  const pi = Int32Array.from(top.rowToCol);
  const perms = members.map((_, m) => headStructured(pi, Array.from({ length: H }, (_, a) => inner[m][a * H + pi[a]])));
  return { perms, heads: pi, objective: top.objective };
}
