#!/usr/bin/python3
"""PyTorch side of bench/eval.ts: conv-net evaluation on CPU, as a whole process.

    python3 bench/eval_torch.py make DIR            # the ResNet-20 pair: DIR/resnet20_{a,b}.{pt,onnx}
    python3 bench/eval_torch.py eval DIR IMAGES THREADS IDX_FOLDER

`make` builds a CIFAR-style ResNet-20 for [N, 1, 28, 28] (three BasicBlocks per stage, 16/32/64 channels,
BatchNorm) from two seeds, gives each BatchNorm non-trivial running statistics (so folding them changes the
convolution weights), and exports each net to ONNX in eval mode with constant folding on: the exporter folds
BatchNorm into the convolutions, as in the pair of issue 17. Nothing is trained: speed does not depend on it.

`eval` is what is timed: load both state dicts, read the first IMAGES Fashion-MNIST test images (IDX, /255),
evaluate each model (mean cross-entropy in float64, accuracy) in batches of 500 with THREADS threads, print
one JSON line. Needs Debian's python3-torch; a bench only, never a test dependency.
"""

import gzip
import json
import os
import resource
import sys
import time

T0 = time.perf_counter()

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet20(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = nn.Sequential(BasicBlock(16, 16, 1), BasicBlock(16, 16, 1), BasicBlock(16, 16, 1))
        self.layer2 = nn.Sequential(BasicBlock(16, 32, 2), BasicBlock(32, 32, 1), BasicBlock(32, 32, 1))
        self.layer3 = nn.Sequential(BasicBlock(32, 64, 2), BasicBlock(64, 64, 1), BasicBlock(64, 64, 1))
        self.linear = nn.Linear(64, 10)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        x = x.mean(dim=(2, 3))
        return self.linear(x)


def make(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    for tag, seed in (("a", 0), ("b", 1)):
        torch.manual_seed(seed)
        model = ResNet20()
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.running_mean.uniform_(-0.2, 0.2)
                    m.running_var.uniform_(0.5, 2.0)
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.uniform_(-0.1, 0.1)
        model.eval()
        torch.save(model.state_dict(), os.path.join(out_dir, f"resnet20_{tag}.pt"))
        torch.onnx.export(
            model, torch.zeros(2, 1, 28, 28), os.path.join(out_dir, f"resnet20_{tag}.onnx"),
            input_names=["input"], output_names=["logits"],
            dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}},
            opset_version=13, do_constant_folding=True,
        )
    print(json.dumps({"made": out_dir}))


def read_idx(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


@torch.no_grad()
def evaluate(model, x, y, batch=500):
    loss_sum, correct = 0.0, 0
    for start in range(0, x.shape[0], batch):
        logits = model(x[start:start + batch])
        loss_sum += F.cross_entropy(logits.double(), y[start:start + batch], reduction="sum").item()
        correct += (logits.argmax(1) == y[start:start + batch]).sum().item()
    return loss_sum / x.shape[0], correct / x.shape[0]


def run(model_dir, images, threads, idx_folder):
    torch.set_num_threads(threads)
    x = read_idx(os.path.join(idx_folder, "t10k-images-idx3-ubyte.gz"))[:images]
    y = read_idx(os.path.join(idx_folder, "t10k-labels-idx1-ubyte.gz"))[:images]
    x = torch.from_numpy(x.astype(np.float32) / 255.0).reshape(-1, 1, 28, 28)
    y = torch.from_numpy(y.astype(np.int64))
    results = []
    t_eval = 0.0
    for tag in ("a", "b"):
        model = ResNet20()
        model.load_state_dict(torch.load(os.path.join(model_dir, f"resnet20_{tag}.pt")))
        model.eval()
        t = time.perf_counter()
        loss, acc = evaluate(model, x, y)
        t_eval += time.perf_counter() - t
        results.append({"loss": loss, "accuracy": acc})
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"results": results, "evalSeconds": t_eval, "threads": torch.get_num_threads(),
                      "cpuSeconds": usage.ru_utime + usage.ru_stime, "inProcessSeconds": time.perf_counter() - T0}))


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(sys.argv[2])
    else:
        run(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
