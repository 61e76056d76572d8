"""numpy + scipy port of the reference weight matching (Ainsworth et al., Algorithm 1), used by rebasin's
tests and benchmarks as an independent implementation to compare against.

Usage: python3 weight_matching.py PROBLEM_DIR [--seed S] [--max-iter N] [--orders ORDERS.json]
PROBLEM_DIR holds problem.json ({"axes": {tensor: [perm or null, ...]}, "tensors": {name: {"shape": [...],
"offset": element offset}}}) and a.bin / b.bin (float32, little-endian, concatenated tensors).
ORDERS.json, when given, is a list of passes, each the list of permutation names in visiting order (as
rebasin's result history records them), so both implementations can follow the same path; passes beyond
the list draw their order from the seed.
Prints one JSON line: objective before/after, iterations, seconds spent matching, permutations.
"""
import json
import sys
import time

import numpy as np
from scipy.optimize import linear_sum_assignment


def load(problem_dir):
    with open(f"{problem_dir}/problem.json") as f:
        problem = json.load(f)
    params = []
    for which in ("a", "b"):
        flat = np.fromfile(f"{problem_dir}/{which}.bin", dtype="<f4")
        params.append({
            name: flat[t["offset"]:t["offset"] + int(np.prod(t["shape"], dtype=np.int64))].reshape(t["shape"])
            for name, t in problem["tensors"].items()
        })
    return problem["axes"], params[0], params[1]


def perm_to_axes(axes_to_perm):
    out = {}
    for name, perms in axes_to_perm.items():
        for axis, p in enumerate(perms):
            if p is not None:
                out.setdefault(p, []).append((name, axis))
    return out


def permuted(axes_to_perm, perm, name, w, except_axis=None):
    for axis, p in enumerate(axes_to_perm.get(name, [])):
        if axis == except_axis or p is None:
            continue
        w = np.take(w, perm[p], axis=axis)
    return w


def objective(axes_to_perm, perm, a, b):
    return float(sum(np.vdot(a[k].astype(np.float64), permuted(axes_to_perm, perm, k, b[k]).astype(np.float64)) for k in a))


def weight_matching(axes_to_perm, a, b, seed=0, max_iter=100, orders=None):
    p2a = perm_to_axes(axes_to_perm)
    sizes = {p: a[axes[0][0]].shape[axes[0][1]] for p, axes in p2a.items()}
    perm = {p: np.arange(n) for p, n in sizes.items()}
    names = list(perm.keys())
    rng = np.random.default_rng(seed)
    iterations = 0
    for iteration in range(max_iter):
        iterations = iteration + 1
        progress = False
        order = orders[iteration] if orders and iteration < len(orders) else [names[i] for i in rng.permutation(len(names))]
        for p in order:
            n = sizes[p]
            c = np.zeros((n, n), dtype=np.float64)
            for name, axis in p2a[p]:
                w_a = np.moveaxis(a[name], axis, 0).reshape((n, -1))
                w_b = np.moveaxis(permuted(axes_to_perm, perm, name, b[name], except_axis=axis), axis, 0).reshape((n, -1))
                c += w_a @ w_b.T
            ri, ci = linear_sum_assignment(c, maximize=True)
            assert (ri == np.arange(len(ri))).all()
            old = c[np.arange(n), perm[p]].sum()
            new = c[np.arange(n), ci].sum()
            if new > old + 1e-12 * max(1.0, abs(old)):
                progress = True
                perm[p] = ci
        if not progress:
            break
    return perm, iterations


def main():
    args = sys.argv[1:]
    problem_dir = args[0]
    seed = int(args[args.index("--seed") + 1]) if "--seed" in args else 0
    max_iter = int(args[args.index("--max-iter") + 1]) if "--max-iter" in args else 100
    orders = None
    if "--orders" in args:
        with open(args[args.index("--orders") + 1]) as f:
            orders = json.load(f)
    axes, a, b = load(problem_dir)
    before = objective(axes, {p: np.arange(a[ax[0][0]].shape[ax[0][1]]) for p, ax in perm_to_axes(axes).items()}, a, b)
    t0 = time.perf_counter()
    perm, iterations = weight_matching(axes, a, b, seed=seed, max_iter=max_iter, orders=orders)
    seconds = time.perf_counter() - t0
    after = objective(axes, perm, a, b)
    print(json.dumps({
        "objectiveBefore": before, "objectiveAfter": after, "iterations": iterations, "seconds": seconds,
        "perms": {p: v.tolist() for p, v in perm.items()},
    }))


if __name__ == "__main__":
    main()
