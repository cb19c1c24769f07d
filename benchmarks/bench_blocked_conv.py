#!/usr/bin/env python
"""The blocked direct convolution (graphnet/_ext/blocked_conv.pyx) against the cpu backend's im2col + sgemm
(graphnet._ext.conv) and PyTorch CPU (oneDNN): the forward pass of the course's layers, float32, at OMP_NUM_THREADS
threads (default 1). blocked_conv.worthwhile is read from this table.

    OMP_NUM_THREADS=1 python benchmarks/bench_blocked_conv.py [--reps 7] [--only C3]

Method (bench_winograd.py's): the three run interleaved — each repetition times each once, the order rotating, so
a burst of load on this shared machine hits all alike. A sample is the mean of enough back-to-back calls to last
bench_winograd.SAMPLE_SECONDS; the table shows the median and the minimum over the repetitions, and the load
average. Outputs and workspaces are preallocated (PyTorch allocates its outputs, as in eager mode). GFLOP/s counts
2·N·K·C·R·S·OH·OW.
"""
import argparse
import os
import statistics

from bench_winograd import sample, torch   # noqa: I001 (first: it sets the thread counts before NumPy loads)

import numpy as np  # noqa: E402

from graphnet._ext import blocked_conv, conv  # noqa: E402

CASES = [  # name, N, C, K, size, kernel, stride, padding
    ("LeNet C1 1->6 5x5 @32", 64, 1, 6, 32, 5, 1, 0),
    ("LeNet C3 6->16 5x5 @14", 64, 6, 16, 14, 5, 1, 0),
    ("16->32 3x3/2 @32", 64, 16, 32, 32, 3, 2, 1),
    ("3->32 3x3 @32 (CIFAR first)", 64, 3, 32, 32, 3, 1, 1),
    ("3->64 7x7/2 @112 (ResNet stem)", 8, 3, 64, 112, 7, 2, 3),
    ("64->128 3x3/2 @32", 16, 64, 128, 32, 3, 2, 1),
    ("128->256 3x3/2 @16", 16, 128, 256, 16, 3, 2, 1),
    ("32->64 5x5 @16", 64, 32, 64, 16, 5, 1, 2),
    ("20->50 5x5 @12", 64, 20, 50, 12, 5, 1, 0),
    ("16->24 3x3 @8", 64, 16, 24, 8, 3, 1, 1),
    ("64->64 3x3 @4", 64, 64, 64, 4, 3, 1, 1),
]


def contenders(n, c, k, size, kernel, stride, pad):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c, size, size), dtype=np.float32)
    w = rng.standard_normal((k, c, kernel, kernel), dtype=np.float32)
    b = rng.standard_normal(k, dtype=np.float32)
    params = dict(stride=(stride, stride), padding=((pad, pad), (pad, pad)), dilation=(1, 1), groups=1)
    y_shape = conv.output_shape(x.shape, w.shape, params["stride"], params["padding"], params["dilation"])
    found = {}
    for algorithm in ("blocked", "im2col+sgemm"):
        if algorithm == "blocked" and not blocked_conv.applies(x.shape, w.shape, 1, np.float32):
            continue
        out = np.empty(y_shape, np.float32)
        rule = conv.WORKSPACE[conv.Conv2d]
        space = np.empty(rule(dict(params, algorithm=algorithm), [x.shape, w.shape, b.shape], y_shape, np.float32),
                         np.uint8)
        found[algorithm] = (lambda out=out, space=space, algorithm=algorithm:
                            conv.conv2d(out, x, w, b, algorithm=algorithm, workspace=space, **params))
    if torch is not None:
        xt, wt, bt = (torch.from_numpy(a) for a in (x, w, b))
        found["PyTorch"] = lambda: torch.nn.functional.conv2d(xt, wt, bt, stride=stride, padding=pad)
    flops = 2 * n * k * c * kernel * kernel * y_shape[2] * y_shape[3]
    return found, flops


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--only", default="")
    parser.add_argument("--lanes", type=int, choices=(8, 16), help="run the kernels at this vector width (8: the "
                        "AVX2 ones, also on an AVX-512 processor)")
    args = parser.parse_args()
    if args.lanes:
        blocked_conv.use_lanes(args.lanes)
    print(f"threads {os.environ['OMP_NUM_THREADS']}, vector lanes {blocked_conv.LANES}, "
          f"load average {os.getloadavg()[0]:.2f} at the start")
    print(f"{'layer':34s} {'chosen':>14s} " + " ".join(f"{name + ' ms med/min':>24s}" for name in
                                                       ("blocked", "im2col+sgemm", "PyTorch")) + "   GFLOP/s blocked")
    for name, *shape in CASES:
        if args.only.lower() not in name.lower():
            continue
        found, flops = contenders(*shape)
        times = {label: [] for label in found}
        labels = list(found)
        for rep in range(args.reps):
            for label in labels[rep % len(labels):] + labels[:rep % len(labels)]:
                times[label].append(sample(found[label]))
        n, c, k, size, kernel, stride, pad = shape
        chosen = conv.choose_algorithm("forward", (n, c, size, size), (k, c, kernel, kernel), (stride, stride),
                                       ((pad, pad), (pad, pad)), 1, np.float32)
        cells = []
        for label in ("blocked", "im2col+sgemm", "PyTorch"):
            if label in times:
                cells.append(f"{statistics.median(times[label]) * 1e3:11.3f} {min(times[label]) * 1e3:11.3f}")
            else:
                cells.append(f"{'-':>23s}")
        rate = flops / min(times["blocked"]) / 1e9 if "blocked" in times else float("nan")
        print(f"{name:34s} {chosen:>14s} " + " ".join(f"{cell:>24s}" for cell in cells) + f"   {rate:8.1f}")
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
