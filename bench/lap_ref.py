"""Reference timings for bench/lap.ts: scipy's linear_sum_assignment on the same matrix bytes.

Usage: python3 lap_ref.py LIST   where each line of LIST is "path rows cols maximize reps".
Prints one JSON list: per matrix, the best wall time of the call alone (seconds) and the objective.
"""
import json
import sys
import time

import numpy as np
from scipy.optimize import linear_sum_assignment

out = []
for line in open(sys.argv[1]):
    path, rows, cols, maximize, reps = line.split()
    c = np.fromfile(path, dtype='<f8').reshape(int(rows), int(cols))
    best = float('inf')
    for _ in range(int(reps)):
        t0 = time.perf_counter()
        r, k = linear_sum_assignment(c, maximize=maximize == '1')
        best = min(best, time.perf_counter() - t0)
    out.append({'seconds': best, 'objective': float(c[r, k].sum())})
print(json.dumps(out))
