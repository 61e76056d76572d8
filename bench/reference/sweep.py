"""numpy reference of rebasin's loss-barrier sweep for a Linear+ReLU MLP, used by bench/sweep.ts.

Usage: python3 sweep.py A.safetensors B.safetensors IMAGES.idx[.gz] LABELS.idx[.gz] COUNT INTERVALS
A and B: float32 safetensors with layers '<name>.weight' (out, in) and '<name>.bias', applied in the order of
the numbers in their names (fc1, fc2, ...). B is already aligned to A. The images are decoded here from the
IDX files (uint8 / 255, flattened), independently of rebasin's loader.

At each α = i / INTERVALS: θ = (1 − α)·A + α·B computed in float64 and rounded to float32 (the endpoints are
A and B exactly), a forward pass over the first COUNT images in one batch (float32 BLAS), and the mean
softmax cross-entropy (float64) and accuracy. Only the sweep is timed (wall and CPU); peak RSS is read after
resetting the high-water mark once weights and data are loaded.
Prints one JSON line: {"seconds", "cpuSeconds", "curve": [{"alpha", "loss", "accuracy"}], "rssAtStartMiB", "maxRssMiB"}.
"""
import gzip
import json
import re
import struct
import sys
import time

import numpy as np


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        if t["dtype"] != "F32":
            raise SystemExit(f"{path}: tensor {name} is {t['dtype']}, expected F32")
        lo, hi = t["data_offsets"]
        out[name] = np.frombuffer(data[lo:hi], dtype="<f4").reshape(t["shape"])
    return out


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    zero, dtype, ndim = raw[0] * 256 + raw[1], raw[2], raw[3]
    if zero != 0 or dtype != 0x08:
        raise SystemExit(f"{path}: not an unsigned-byte IDX file")
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def layers(params):
    names = sorted({k[: -len(".weight")] for k in params if k.endswith(".weight")},
                   key=lambda s: [int(x) if x.isdigit() else x for x in re.split(r"(\d+)", s)])
    return [(params[n + ".weight"], params.get(n + ".bias")) for n in names]


def evaluate(params, x, y):
    h = x
    net = layers(params)
    for i, (w, b) in enumerate(net):
        h = h @ w.T
        if b is not None:
            h += b
        if i < len(net) - 1:
            np.maximum(h, 0, out=h)
    z = h.astype(np.float64)
    m = z.max(axis=1, keepdims=True)
    lse = np.log(np.exp(z - m).sum(axis=1)) + m[:, 0]
    loss = float(np.mean(lse - z[np.arange(len(y)), y]))
    acc = float(np.mean(z.argmax(axis=1) == y))
    return loss, acc


def interpolate(a, b, alpha):
    if alpha == 0:
        return a
    if alpha == 1:
        return b
    return {k: ((1 - alpha) * a[k].astype(np.float64) + alpha * b[k].astype(np.float64)).astype(np.float32) for k in a}


def sweep(a, b, x, y, intervals):
    curve = []
    for i in range(intervals + 1):
        alpha = i / intervals
        loss, acc = evaluate(interpolate(a, b, alpha), x, y)
        curve.append({"alpha": alpha, "loss": loss, "accuracy": acc})
    return curve


def status(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key + ":")) / 1024


def main():
    a_path, b_path, images, labels, count, intervals = sys.argv[1:7]
    count, intervals = int(count), int(intervals)
    a, b = read_safetensors(a_path), read_safetensors(b_path)
    x = (read_idx(images)[:count].reshape(count, -1).astype(np.float32) / np.float32(255))
    y = read_idx(labels)[:count].astype(np.int64)
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    rss_start = status("VmRSS")
    t0, c0 = time.perf_counter(), time.process_time()
    curve = sweep(a, b, x, y, intervals)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(json.dumps({"seconds": seconds, "cpuSeconds": cpu, "curve": curve, "rssAtStartMiB": rss_start,
                      "maxRssMiB": status("VmHWM")}))


if __name__ == "__main__":
    main()
