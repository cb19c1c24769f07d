#!/usr/bin/env python
"""Winograd F(2x2, 3x3) (graphnet/_ext/winograd.pyx) against the cpu backend's im2col + sgemm conv
(graphnet._ext.conv) and PyTorch CPU (oneDNN), forward and input gradient, at OMP_NUM_THREADS threads (default 1).

    OMP_NUM_THREADS=1 python benchmarks/bench_winograd.py [--reps 11] [--only 56] [--dtype float32] [--block-kib 512]
    OMP_NUM_THREADS=1 python benchmarks/bench_winograd.py --sweep [--channels 16:16,32:32]   # winograd.worthwhile's data

Method: the three run interleaved — each repetition times each of them once, the order rotating from one
repetition to the next, so a burst of load on this shared machine hits all alike. A sample is the mean of enough
back-to-back calls to last SAMPLE_SECONDS; the table shows the median and the minimum over the repetitions.
Outputs and workspaces are preallocated (PyTorch allocates its outputs, as in eager mode). GFLOP/s counts the
direct convolution's 2·N·K·C·9·OH·OW for every column (Winograd does fewer FLOPs: the number says how fast the
layer is, not how busy the FPU is).
"""
import argparse
import os
import statistics
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from graphnet._ext import conv as im2col_conv  # noqa: E402
from graphnet._ext import winograd  # noqa: E402

try:
    import torch
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
except ImportError:                     # pragma: no cover
    torch = None

SAMPLE_SECONDS = 0.04
SWEEP_SAMPLE_SECONDS = 0.01
CASES = [  # name, N, C, K, size (3x3, pad 1)
    ("32->64 @32 N64", 64, 32, 64, 32),
    ("64->64 @56 N32", 32, 64, 64, 56),
    ("32->32 @32 N64", 64, 32, 32, 32),
    ("64->64 @16 N64", 64, 64, 64, 16),
    ("64->64 @8 N64", 64, 64, 64, 8),
]
P = ((1, 1), (1, 1))
CONV = dict(stride=(1, 1), padding=P, dilation=(1, 1), groups=1)


def sample(fn, seconds=None):
    seconds = seconds or SAMPLE_SECONDS
    fn()
    calls, start = 0, time.perf_counter()
    while True:
        fn()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return elapsed / calls


def contenders(n, c, k, size, dtype, direction):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c, size, size)).astype(dtype)
    w = (rng.standard_normal((k, c, 3, 3)) / np.sqrt(9 * c)).astype(dtype)
    b = rng.standard_normal(k).astype(dtype)
    y = np.empty((n, k, size, size), dtype)
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx = np.empty_like(x)
    itemsize = np.dtype(dtype).itemsize
    threads = int(os.environ["OMP_NUM_THREADS"])
    if direction == "fwd":
        ws_w = np.empty(winograd.winograd_workspace_bytes(x.shape, w.shape, y.shape, itemsize, threads), np.uint8)
        ws_i = np.empty(im2col_conv.WORKSPACE["conv2d"](dict(CONV), [x.shape, w.shape, b.shape], y.shape, dtype),
                        np.uint8)
        alg = im2col_conv.choose_algorithm("forward", x.shape, w.shape, (1, 1), P, 1, dtype)
        fns = {"winograd": lambda: winograd.winograd_conv2d(y, x, w, b, padding=P, workspace=ws_w),
               "im2col": lambda: im2col_conv.conv2d(y, x, w, b, algorithm=alg, workspace=ws_i, **CONV)}
        fns["im2col"].algorithm = alg
        if torch is not None:
            tx, tw, tb = (torch.from_numpy(a) for a in (x, w, b))
            fns["torch"] = lambda: torch.nn.functional.conv2d(tx, tw, tb, padding=1)
    else:
        ws_w = np.empty(winograd.winograd_workspace_bytes(dy.shape, w.shape, dx.shape, itemsize, threads), np.uint8)
        ws_i = np.empty(im2col_conv.WORKSPACE["conv2d_grad_input"](dict(CONV), [dy.shape, w.shape], x.shape, dtype),
                        np.uint8)
        alg = im2col_conv.choose_algorithm("grad_input", x.shape, w.shape, (1, 1), P, 1, dtype)
        fns = {"winograd": lambda: winograd.winograd_conv2d_grad_input(dx, dy, w, padding=P, workspace=ws_w),
               "im2col": lambda: im2col_conv.conv2d_grad_input(dx, dy, w, algorithm=alg, workspace=ws_i, **CONV)}
        fns["im2col"].algorithm = alg
        if torch is not None:
            tx, tw, tdy = (torch.from_numpy(a) for a in (x, w, dy))
            fns["torch"] = lambda: torch.ops.aten.convolution_backward(
                tdy, tx, tw, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1, [True, False, False])
    return fns


SWEEP_CHANNELS = [(3, 16), (3, 32), (3, 64), (4, 4), (8, 8), (8, 16), (16, 8), (16, 16), (16, 32), (32, 16), (24, 24),
                  (32, 32), (64, 64), (128, 128)]
SWEEP_SIZES = [3, 4, 7, 8, 14, 16, 28, 32]


def sweep(args):
    """cpu conv time / winograd time (median of interleaved samples) per (C, K) and image size, N = --batch."""
    print(f"cpu conv / winograd time, {args.dtype}, N={args.batch}, pad 1, median of {args.reps}; directions {args.directions}")
    print("(*: the cpu backend's own choice there is its batched im2col)")
    print(f"{'C->K':>9} {'dir':<4}" + "".join(f"{size:>6} " for size in SWEEP_SIZES))
    pairs = ([tuple(int(v) for v in pair.split(":")) for pair in args.channels.split(",")] if args.channels
             else SWEEP_CHANNELS)
    for c, k in pairs:
        for direction in args.directions.split(","):
            cells = []
            for size in SWEEP_SIZES:
                fns = contenders(args.batch, c, k, size, args.dtype, direction)
                times = {key: [] for key in ("winograd", "im2col")}
                for rep in range(args.reps):
                    for key in (("winograd", "im2col") if rep % 2 else ("im2col", "winograd")):
                        times[key].append(sample(fns[key], SWEEP_SAMPLE_SECONDS))
                ratio = statistics.median(times["im2col"]) / statistics.median(times["winograd"])
                cells.append(f"{ratio:6.2f}" + ("*" if fns["im2col"].algorithm.startswith("batched") else " "))
            print(f"{c:>4}->{k:<4} {direction:<4}" + "".join(cells), flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=11)
    parser.add_argument("--only", default="")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--directions", default="fwd,dx")
    parser.add_argument("--batch", type=int, default=16, help="N for --sweep")
    parser.add_argument("--block-kib", type=int, help="bytes of V + M per block (winograd.BLOCK_BYTES), in KiB")
    parser.add_argument("--channels", default="", help="sweep only these C:K pairs, e.g. 16:16,32:64")
    parser.add_argument("--sweep", action="store_true", help="winograd vs im2col over a grid of layer shapes (the "
                        "measurements behind winograd.worthwhile)")
    args = parser.parse_args()
    if args.block_kib:
        winograd._block_bytes = args.block_kib * 1024
    if args.sweep:
        return sweep(args)
    print(f"threads {os.environ['OMP_NUM_THREADS']}, {args.dtype}, {args.reps} interleaved repetitions; "
          f"ms median (min); GFLOP/s = direct-conv FLOPs / median time")
    print(f"{'case':<22}{'dir':<5}{'winograd':>17}{'im2col':>17}{'torch':>17}{'GF/s wino':>10}{'GF/s i2c':>9}"
          f"{'GF/s torch':>11}{'t/wino':>8}{'t/i2c':>7}{'i2c/wino':>9}  (im2col: the cpu backend's choice)")
    for name, n, c, k, size in CASES:
        if args.only not in name:
            continue
        flops = 2 * n * k * c * 9 * size * size
        for direction in args.directions.split(","):
            fns = contenders(n, c, k, size, args.dtype, direction)
            names = list(fns)
            times = {key: [] for key in names}
            for rep in range(args.reps):
                order = names[rep % len(names):] + names[:rep % len(names)]
                for key in order:
                    times[key].append(sample(fns[key]))
            med = {key: statistics.median(v) for key, v in times.items()}
            low = {key: min(v) for key, v in times.items()}
            cell = lambda key: f"{med[key] * 1e3:8.2f} ({low[key] * 1e3:6.2f})" if key in med else " " * 17  # noqa
            gf = lambda key: flops / med[key] / 1e9 if key in med else float("nan")  # noqa
            print(f"{name:<22}{direction:<5}{cell('winograd')}{cell('im2col')}{cell('torch')}{gf('winograd'):10.1f}"
                  f"{gf('im2col'):9.1f}{gf('torch'):11.1f}{med.get('torch', np.nan) / med['winograd']:8.2f}"
                  f"{med.get('torch', np.nan) / med['im2col']:7.2f}{med['im2col'] / med['winograd']:9.2f}  "
                  f"{fns['im2col'].algorithm}", flush=True)


if __name__ == "__main__":
    main()
