"""graphnet `cuda` against PyTorch's CUDA build (cuBLAS, cuDNN), measured interleaved in one run.

    python benchmarks/bench_cuda.py [--quick] [--repeat 5]

ratio = PyTorch time / graphnet time (above 1: graphnet is faster). Both sides compute in float32 with TF32 off
(torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False), cuDNN in benchmark mode.

    training steps   the whole step as a user runs it: copy the batch in, forward, loss, backward, SGD update, copy
                     the loss out (graphnet: Program.run; PyTorch: .cuda(), forward, backward, optimizer.step(),
                     loss.item())
    layers / GEMM    only the kernels, on data already on the GPU: graphnet replays the plan's steps of the layer,
                     PyTorch calls the op; both end with a device synchronize
    launch overhead  microseconds per launch of an empty kernel through each of Numba's launch paths

Each time is the median of `repeat` timings of a loop long enough to take ~50 ms. Targets (issue 6): GEMM 2048
≥ 0.5x cuBLAS, conv layers ≥ 0.3x cuDNN, LeNet-5 b256 training step ≥ 1x.
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import graphnet as gn  # noqa: E402
from graphnet.backends.cuda.launch import Bound  # noqa: E402


def sync():
    from numba import cuda
    cuda.synchronize()


def seconds_per_call(fn, repeat, target=0.05, synchronize=sync):
    """Median over `repeat` timings of a loop of fn() long enough to take about `target` seconds."""
    fn()
    synchronize()
    start = time.perf_counter()
    fn()
    synchronize()
    once = max(time.perf_counter() - start, 1e-6)
    loops = max(1, min(2000, int(target / once)))
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(loops):
            fn()
        synchronize()
        samples.append((time.perf_counter() - start) / loops)
    return statistics.median(samples)


def torch_sync():
    import torch
    torch.cuda.synchronize()


# ---------------------------------------------------------------------------------------------------------------
# graphnet models (plain ops, SGD by assign)

rng = np.random.default_rng(0)


def weight(*shape, fan_in):
    return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype("float32")


def dense(h, n_in, n_out, relu=True):
    w, b = gn.variable(weight(n_in, n_out, fan_in=n_in)), gn.variable(np.zeros(n_out, "float32"))
    h = h @ w + b
    return gn.relu(h) if relu else h


def conv(h, c_in, c_out, k, padding=0, stride=1):
    w = gn.variable(weight(c_out, c_in, k, k, fan_in=c_in * k * k))
    b = gn.variable(np.zeros(c_out, "float32"))
    return gn.relu(gn.conv2d(h, w, b, padding=padding, stride=stride))


def gn_mlp(sizes):
    def build(x):
        h = x
        for i, (n_in, n_out) in enumerate(zip(sizes, sizes[1:])):
            h = dense(h, n_in, n_out, relu=i < len(sizes) - 2)
        return h
    return build


def gn_lenet(x):
    h = gn.max_pool2d(conv(x, 1, 6, 5, padding=2), 2)
    h = gn.max_pool2d(conv(h, 6, 16, 5), 2)
    h = gn.reshape(h, (-1, 400))
    return dense(dense(dense(h, 400, 120), 120, 84), 84, 10, relu=False)


def gn_cifar(x):
    h = conv(conv(x, 3, 32, 3, padding=1), 32, 32, 3, padding=1)
    h = gn.max_pool2d(h, 2)
    h = conv(conv(h, 32, 64, 3, padding=1), 64, 64, 3, padding=1)
    h = gn.reshape(gn.max_pool2d(h, 2), (-1, 64 * 8 * 8))
    return dense(dense(h, 4096, 256), 256, 10, relu=False)


def gn_training_program(build, x_shape, lr=0.01, train=True):
    x = gn.placeholder((None,) + x_shape, name="x")
    y = gn.placeholder((None,), dtype="int64", name="y")
    logits = build(x)
    if not train:
        return gn.compile(logits, device="cuda"), x, y
    loss = gn.softmax_cross_entropy(logits, y)
    params = gn.get_default_graph().trainable_variables()
    grads = gn.gradients(loss, params)
    updates = [gn.assign(p, p - lr * g) for p, g in zip(params, grads)]
    return gn.compile([loss] + updates, device="cuda"), x, y


# ---------------------------------------------------------------------------------------------------------------
# PyTorch twins

def torch_models():
    import torch.nn as nn

    def mlp(sizes):
        layers = []
        for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
            layers.append(nn.Linear(a, b))
            if i < len(sizes) - 2:
                layers.append(nn.ReLU())
        return nn.Sequential(*layers)

    lenet = lambda: nn.Sequential(  # noqa: E731
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))
    cifar = lambda: nn.Sequential(  # noqa: E731
        nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(4096, 256), nn.ReLU(), nn.Linear(256, 10))
    return mlp, lenet, cifar


def torch_step(model, x, y, train=True):
    import torch
    model = model.cuda()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    loss_fn = torch.nn.CrossEntropyLoss()
    x_host, y_host = torch.from_numpy(x), torch.from_numpy(y)

    def step():
        xb = x_host.cuda()
        if not train:
            with torch.no_grad():
                return model(xb).cpu()
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(xb), y_host.cuda())
        loss.backward()
        optimizer.step()
        return loss.item()
    return step


# ---------------------------------------------------------------------------------------------------------------
# the rows

ROWS = []


def row(name, ours, theirs, flops=None, target=None):
    ratio = theirs / ours if theirs else float("nan")
    rate = f"{flops / ours / 1e9:9.1f}" if flops else " " * 9
    met = "" if target is None else ("yes" if ratio >= target else "NO")
    line = (f"{name:<44} {ours * 1e3:10.3f} {theirs * 1e3:10.3f} {ratio:7.2f}x {rate} "
            f"{'' if target is None else f'>= {target}x':>8} {met:>4}")
    ROWS.append(line)
    print(line, flush=True)


def header():
    print(f"{'benchmark':<44} {'graphnet':>10} {'pytorch':>10} {'ratio':>8} {'GFLOP/s':>9} {'target':>8} {'met':>4}")
    print(f"{'':<44} {'ms':>10} {'ms':>10}")


def training_rows(repeat, quick):
    mlp, lenet, cifar = torch_models()
    cases = [("MLP 64-64-10 b32 train step", gn_mlp([64, 64, 10]), lambda: mlp([64, 64, 10]), (64,), 32, True, None),
             ("MLP 784-512-512-10 b128 train step", gn_mlp([784, 512, 512, 10]), lambda: mlp([784, 512, 512, 10]),
              (784,), 128, True, None),
             ("LeNet-5 b64 train step", gn_lenet, lenet, (1, 28, 28), 64, True, None),
             ("LeNet-5 b256 train step", gn_lenet, lenet, (1, 28, 28), 256, True, 1.0),
             ("LeNet-5 b256 inference", gn_lenet, lenet, (1, 28, 28), 256, False, None),
             ("CIFAR CNN b64 train step", gn_cifar, cifar, (3, 32, 32), 64, True, None)]
    if quick:
        cases = cases[2:4]
    for name, gn_build, torch_build, x_shape, batch, train, target in cases:
        x = rng.standard_normal((batch,) + x_shape).astype("float32")
        y = rng.integers(0, 10, batch).astype("int64")
        with gn.Graph():
            program, xp, yp = gn_training_program(gn_build, x_shape, train=train)
            feeds = {xp: x, yp: y} if train else {xp: x}
            ours = seconds_per_call(lambda: program.run(feeds), repeat, synchronize=lambda: None)
            flops = sum(s.flops for s in program.plan().steps)
        theirs = seconds_per_call(torch_step(torch_build(), x, y, train), repeat, synchronize=torch_sync)
        row(f"{name} ({launches_per_run(program)} launches)", ours, theirs, flops, target)


def launches_per_run(program):
    """The kernel launches one run of the program makes (a step may launch several: split-K adds a reduction)."""
    return sum(len(s.params["bound"].launches) for s in program.plan().steps
               if s.kernel is not None and "bound" in s.params)


def kernel_replay(program, feeds, keep):
    """A function that replays the plan's kernels of the steps `keep` selects (data stays where it is)."""
    program.run(feeds)
    steps = [s for s in program.plan().steps if s.kernel is not None and keep(s)]

    def replay():
        for s in steps:
            s.kernel(s.out, *s.ins, **s.params)
    return replay, sum(s.flops for s in steps), [s.label for s in steps]


def conv_rows(repeat, quick):
    import torch
    import torch.nn.functional as F
    layers = [("LeNet C1 1->6 5x5 pad2 28x28 N64", 64, 1, 28, 6, 5, 2, 1),
              ("LeNet C3 6->16 5x5 14x14 N64", 64, 6, 14, 16, 5, 0, 1),
              ("32->64 3x3 pad1 32x32 N64", 64, 32, 32, 64, 3, 1, 1),
              ("64->64 3x3 pad1 56x56 N32", 32, 64, 56, 64, 3, 1, 1),
              ("16->32 3x3 stride2 32x32 N64", 64, 16, 32, 32, 3, 0, 2)]
    if quick:
        layers = layers[2:3]
    for name, n, c, size, k, r, pad, stride in layers:
        x = rng.standard_normal((n, c, size, size)).astype("float32")
        w = weight(k, c, r, r, fan_in=c * r * r)
        with gn.Graph():
            xp = gn.placeholder(x.shape, name="x")
            wv = gn.variable(w)
            y = gn.conv2d(xp, wv, padding=pad, stride=stride)
            dx, dw = gn.gradients(gn.sum(y), [xp, wv])
            program = gn.compile([y, dx, dw], device="cuda")    # y too: else the forward, unread, would not run
            forward, f_flops, labels = kernel_replay(program, {xp: x}, lambda s: s.op_name == "conv2d")
            both, b_flops, _ = kernel_replay(program, {xp: x}, lambda s: s.op_name.startswith("conv2d"))
        xt = torch.from_numpy(x).cuda().requires_grad_(True)
        wt = torch.from_numpy(w).cuda().requires_grad_(True)
        with torch.no_grad():
            t_forward = seconds_per_call(lambda: F.conv2d(xt, wt, padding=pad, stride=stride), repeat,
                                         synchronize=torch_sync)
        out = F.conv2d(xt, wt, padding=pad, stride=stride)
        grad = torch.ones_like(out)

        def torch_both():
            y = F.conv2d(xt, wt, padding=pad, stride=stride)
            torch.autograd.grad(y, (xt, wt), grad)
        t_both = seconds_per_call(torch_both, repeat, synchronize=torch_sync)
        row(f"conv {name} fwd [{labels[0].split('[')[-1].rstrip(']')}]", seconds_per_call(forward, repeat), t_forward,
            f_flops, 0.3)
        row(f"conv {name} fwd+bwd", seconds_per_call(both, repeat), t_both, b_flops, 0.3)


def pool_rows(repeat):
    import torch
    import torch.nn.functional as F
    x = rng.standard_normal((64, 32, 32, 32)).astype("float32")
    for name, gn_pool, torch_pool in (("max", gn.max_pool2d, F.max_pool2d), ("avg", gn.avg_pool2d, F.avg_pool2d)):
        with gn.Graph():
            xp = gn.placeholder(x.shape, name="x")
            y = gn_pool(xp, 2)
            (dx,) = gn.gradients(gn.sum(y), [xp])
            program = gn.compile([y, dx], device="cuda")          # y too: else avg's forward would not run
            replay, _, _ = kernel_replay(program, {xp: x}, lambda s: "pool" in s.op_name)
        xt = torch.from_numpy(x).cuda().requires_grad_(True)
        grad = torch.ones((64, 32, 16, 16), device="cuda")
        t = seconds_per_call(lambda: torch.autograd.grad(torch_pool(xt, 2), xt, grad), repeat, synchronize=torch_sync)
        row(f"{name} pool 2x2/2 64x32x32x32 fwd+bwd", seconds_per_call(replay, repeat), t)


def gemm_rows(repeat, quick):
    import torch
    sizes = (2048,) if quick else (128, 256, 512, 1024, 2048)
    for n in sizes:
        a, b = rng.standard_normal((n, n)).astype("float32"), rng.standard_normal((n, n)).astype("float32")
        with gn.Graph():
            av, bv = gn.variable(a), gn.variable(b)
            program = gn.compile(av @ bv, device="cuda")
            result = program.run()
            replay, flops, labels = kernel_replay(program, {}, lambda s: s.op_name == "matmul")
        at, bt = torch.from_numpy(a).cuda(), torch.from_numpy(b).cuda()
        ct = torch.empty_like(at)
        expected = (at @ bt).cpu().numpy()
        assert np.allclose(result, expected, rtol=1e-3, atol=1e-3 * np.sqrt(n)), "GEMM result differs from cuBLAS"
        t = seconds_per_call(lambda: torch.matmul(at, bt, out=ct), repeat, synchronize=torch_sync)
        row(f"GEMM {n} [{labels[0].split('[')[-1].rstrip(']')}]", seconds_per_call(replay, repeat), t, flops,
            0.5 if n == 2048 else None)


def tiling_rows(repeat, n=2048):
    """GEMM n on every tiling of gemm.py (to choose the defaults)."""
    import torch
    from numba import cuda

    from graphnet.backends.cuda import gemm
    from graphnet.backends.cuda.linalg import matmul
    a, b = rng.standard_normal((n, n)).astype("float32"), rng.standard_normal((n, n)).astype("float32")
    da, db, out = cuda.to_device(a), cuda.to_device(b), cuda.device_array((n, n), np.float32)
    at, bt = torch.from_numpy(a).cuda(), torch.from_numpy(b).cuda()
    ct = torch.empty_like(at)
    theirs = seconds_per_call(lambda: torch.matmul(at, bt, out=ct), repeat, synchronize=torch_sync)
    for tiling in gemm.TILINGS:
        for ta, tb in ((False, False), (True, False), (False, True)):
            bound = Bound()
            call = lambda: matmul(out, da, db, transpose_a=ta, transpose_b=tb, tiling=tiling, bound=bound)  # noqa
            row(f"GEMM {n} tiling {tiling.label}{' Aᵀ' if ta else ''}{' Bᵀ' if tb else ''}",
                seconds_per_call(call, repeat), theirs, 2 * n ** 3)


def launch_overhead(repeat):
    """Microseconds per launch of a one-thread kernel through each path (the GPU work is nil)."""
    from numba import cuda

    from graphnet.backends.cuda.launch import BoundLaunch
    from graphnet.backends.cuda.shape import fill
    out = cuda.device_array(1, dtype=np.float32)
    value = np.float32(1)
    configured = fill[1, 1]
    bound = BoundLaunch(fill, 1, 1, [out, value])
    bound()
    compiled = fill.overloads[tuple(fill.typeof_pyval(a) for a in (out, value))]
    from numba.cuda.cudadrv.driver import _to_core_stream
    stream = _to_core_stream(0)
    paths = [("dispatcher: fill[1, 1](out, v)", lambda: fill[1, 1](out, value)),
             ("configured: cfg = fill[1, 1]; cfg(out, v)", lambda: configured(out, value)),
             ("compiled overload: kernel.launch(args, 1, 1)", lambda: compiled.launch([out, value], (1, 1, 1),
                                                                                     (1, 1, 1), stream)),
             (f"BoundLaunch ({'cuLaunchKernel, packed once' if bound.packed else bound.why_not_packed})", bound)]
    try:
        import torch
        tiny = torch.zeros(1, device="cuda")
        paths.append(("PyTorch: tiny.add_(1)", lambda: tiny.add_(1)))
    except ImportError:
        pass
    print("\nlaunch overhead (a one-thread kernel, many launches, then one synchronize)")
    for name, fn in paths:
        print(f"  {name:<50} {seconds_per_call(fn, repeat, target=0.02) * 1e6:7.2f} µs/launch")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one case of each kind")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--only", choices=["train", "conv", "pool", "gemm", "tilings", "launch"], nargs="*")
    args = parser.parse_args(argv)
    import torch
    from numba import cuda
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    device = cuda.get_current_device()
    name = device.name.decode() if isinstance(device.name, bytes) else device.name
    print(f"{time.strftime('%Y-%m-%d')}  GPU: {name} (cc {device.compute_capability}), torch {torch.__version__}, "
          f"cuDNN {torch.backends.cudnn.version()}, float32, TF32 off; ratio = PyTorch time / graphnet time\n")
    only = set(args.only or ["train", "conv", "pool", "gemm", "launch"])
    header()
    if "gemm" in only:
        gemm_rows(args.repeat, args.quick)
    if "conv" in only:
        conv_rows(args.repeat, args.quick)
    if "pool" in only:
        pool_rows(args.repeat)
    if "train" in only:
        training_rows(args.repeat, args.quick)
    if "tilings" in only:
        tiling_rows(args.repeat)
    if "launch" in only:
        launch_overhead(args.repeat)


if __name__ == "__main__":
    main()
