#!/usr/bin/env python
"""graphnet's `cpu` backend against PyTorch CPU eager and NumPy, measured in one run (the benchmark of issue 3).

    python benchmarks/bench_cpu.py                  # at 1 thread, then at 2 threads (one process each)
    python benchmarks/bench_cpu.py --threads 2      # one thread count
    python benchmarks/bench_cpu.py --quick          # fewer repetitions and GEMM sizes (about a minute)
    python benchmarks/bench_cpu.py --only lenet     # the cases whose name contains "lenet"

PyTorch is optional (`pip install torch==2.13.0`); without it the PyTorch column stays empty.

What is measured
    graphnet  a program compiled with gn.compile(..., device="cpu"): for a training step the schedule holds the
              forward pass, the loss, the backward pass and the SGD update (gn.assign(w, w - lr·dw) per variable)
    PyTorch   eager mode: zero_grad, forward, F.cross_entropy, loss.backward(), torch.optim.SGD.step()
    NumPy     the same graph compiled for device="reference" (graphnet's NumPy kernels)
    GEMM      C = A·B into a preallocated C: graphnet's cpu matmul kernel, np.matmul(a, b, out=c), torch.mm(out=)

Method. The three run interleaved: every repetition times each of them once, in an order that rotates from one
repetition to the next, so that a burst of load on the machine hits all of them alike. A sample is the mean of
enough back-to-back calls to last SAMPLE_SECONDS; the table shows the median and the minimum of the samples.
Before each sample the benchmark sleeps SETTLE_SECONDS, so that threads the previous implementation left
spin-waiting do not hold the cores while the next one is timed: PyTorch's libgomp spins 300,000 `pause`s after
each parallel loop (3 ms on this project's Xeon), and at two threads a graphnet sample of LeNet's C3 layer taken
right after a PyTorch sample measured 0.34 ms per call, 0.20 ms after another graphnet sample or after a 5 ms
pause (benchmarks/bench_contention.py is where graphnet and PyTorch meet other busy threads on purpose). Both
frameworks see the same numbers first: each network starts from the same weights and data, and the first losses
are checked to agree before timing. GFLOP/s counts the FLOPs of graphnet's schedule (the FLOPs column of
`print(prog)`) for every column. "% peak" divides by the machine's FP32 peak as measured here: the faster of
NumPy's and PyTorch's sgemm on 2048×2048 matrices at the same thread count (BLAS kernels run close to the FMA
peak of the instruction set they use; on AVX-512 machines PyTorch's MKL uses 512-bit FMAs where an OpenBLAS pinned
to the Haswell kernels, OPENBLAS_CORETYPE=Haswell, uses 256-bit ones — the header line prints which).

Threads. OMP_NUM_THREADS (graphnet's OpenMP loops and PyTorch's), OPENBLAS_NUM_THREADS and MKL_NUM_THREADS are set
before NumPy, SciPy or PyTorch are imported, and torch.set_num_threads is called: one process per thread count.

BLAS kernels. graphnet's GEMMs run on the OpenBLAS that SciPy ships, whose kernel family is chosen when it loads:
by CPU detection, or by the OPENBLAS_CORETYPE environment variable when set. An environment that pins
OPENBLAS_CORETYPE=Haswell on an AVX-512 machine halves the FP32 peak of every graphnet GEMM (256-bit instead of
512-bit FMAs) while PyTorch's MKL/oneDNN keeps AVX-512; --openblas-coretype SkylakeX measures without the pin.
"""
import argparse
import os
import subprocess
import sys
import time

SAMPLE_SECONDS = {"full": 0.03, "quick": 0.01}
SETTLE_SECONDS = 0.005
REPETITIONS = {"full": 15, "quick": 5}

TARGETS = {         # case -> (peer, minimum of peer time / graphnet time), from issues 3 and 11
    "MLP 64-64-10 train b32": ("PyTorch", 3.0),
    "MLP 784-512-512-10 train b128": ("PyTorch", 1.0),
    "LeNet C3 6->16 5x5 fwd": ("PyTorch", 1.0),
    "conv 16->32 3x3/2 @32 fwd": ("PyTorch", 1.0),
    "LeNet-5 train b64": ("PyTorch", 1.5),
    "LeNet-5 train b256": ("PyTorch", 1.5),
    "LeNet-5 infer b256": ("PyTorch", 1.5),
    "max pool 2x2/2 fwd+bwd": ("PyTorch", 3.0),
    "avg pool 2x2/2 fwd+bwd": ("PyTorch", 3.0),
    "CIFAR CNN train b64": ("PyTorch", 0.8),
    "conv 32->64 3x3 @32 fwd": ("PyTorch", 0.8),
    "conv 32->64 3x3 @32 fwd+bwd": ("PyTorch", 0.8),
    "conv 64->64 3x3 @56 fwd": ("PyTorch", 0.8),
    "conv 64->64 3x3 @56 fwd+bwd": ("PyTorch", 0.8),
}
GEMM_TARGET = ("NumPy", 0.95)


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, choices=(1, 2), help="thread count (default: 1, then 2)")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions and GEMM sizes")
    parser.add_argument("--only", default="", help="run only the cases whose name contains this (case-insensitive)")
    parser.add_argument("--openblas-coretype", metavar="NAME",
                        help="set OPENBLAS_CORETYPE (e.g. SkylakeX, Haswell) before SciPy's OpenBLAS loads: the kernel "
                             "family graphnet's GEMMs use (the default is what the environment says, else detected)")
    return parser.parse_args()


def main():
    args = parse_arguments()
    if args.openblas_coretype:
        os.environ["OPENBLAS_CORETYPE"] = args.openblas_coretype
    if args.threads is None:                     # thread pools are sized at import: one process per thread count
        for threads in (1, 2):
            command = [sys.executable, os.path.abspath(__file__), "--threads", str(threads), "--only", args.only]
            subprocess.run(command + (["--quick"] if args.quick else []), check=True)
        return
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = str(args.threads)
    run_benchmark(args)


# ------------------------------------------------------------------------------------------------------------------
# everything below runs after the thread variables are set


def run_benchmark(args):
    import numpy as np
    import graphnet as gn
    torch = import_torch(args.threads)
    mode = "quick" if args.quick else "full"
    peak, peak_source = measure_peak(np, torch)
    print(machine_line(args.threads, np, torch))
    print(f"FP32 peak at {args.threads} thread(s): {peak:.0f} GFLOP/s ({peak_source})\n")
    rows = []
    for case in all_cases(np, gn, torch, mode):
        if args.only.lower() not in case.name.lower():
            continue
        timings = measure(case, mode)
        rows.append((case, timings))
        print(format_row(case, timings, peak), flush=True)
    print()
    print_targets(rows)


def import_torch(threads):
    try:
        import torch
    except ImportError:
        print("PyTorch is not installed, so its column stays empty: pip install torch==2.13.0\n")
        return None
    torch.set_num_threads(threads)
    return torch


def machine_line(threads, np, torch):
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    blas = openblas_core()
    parts = [f"{time.strftime('%Y-%m-%d')}", cpu, f"{os.cpu_count()} cores", f"{threads} thread(s)",
             f"NumPy {np.__version__}", f"SciPy BLAS core: {blas}"]
    if torch is not None:
        parts.append(f"PyTorch {torch.__version__} ({torch.backends.cpu.get_cpu_capability()})")
    return " | ".join(parts)


def openblas_core():
    """The kernel family SciPy's OpenBLAS chose (graphnet's GEMMs run on it), e.g. Haswell (AVX2) or SkylakeX."""
    import ctypes
    from scipy.linalg import cython_blas
    library = ctypes.CDLL(cython_blas.__file__)
    for name in ("scipy_openblas_get_corename", "openblas_get_corename"):
        function = getattr(library, name, None)
        if function is not None:
            function.restype = ctypes.c_char_p
            forced = os.environ.get("OPENBLAS_CORETYPE")
            return function().decode() + (f" (OPENBLAS_CORETYPE={forced})" if forced else "")
    return "not OpenBLAS"


def measure_peak(np, torch, size=2048):
    """The faster of NumPy's and PyTorch's sgemm on size×size float32 matrices, in GFLOP/s."""
    a = np.random.default_rng(0).standard_normal((size, size)).astype(np.float32)
    out = np.empty_like(a)
    rates = {"NumPy sgemm 2048³": 2 * size ** 3 / best_time(lambda: np.matmul(a, a, out=out)) / 1e9}
    if torch is not None:
        t = torch.from_numpy(a)
        t_out = torch.empty_like(t)
        rates["PyTorch sgemm 2048³"] = 2 * size ** 3 / best_time(lambda: torch.mm(t, t, out=t_out)) / 1e9
    source = max(rates, key=rates.get)
    others = ", ".join(f"{k}: {v:.0f}" for k, v in rates.items() if k != source)
    return rates[source], source + (f"; {others}" if others else "")


def best_time(fn, repeat=7):
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


# ------------------------------------------------------------------------------------------------------------------
# measuring


class Case:
    def __init__(self, name, flops, runners):
        self.name = name
        self.flops = flops                       # per call, from graphnet's schedule
        self.runners = runners                   # {"graphnet": fn, "PyTorch": fn, "NumPy": fn}: one call each


def measure(case, mode):
    """{implementation: list of seconds per call}, interleaved over the repetitions."""
    names = list(case.runners)
    calls = {}
    for name in names:                           # warm up, and choose how many calls make one sample
        fn = case.runners[name]
        fn()
        once = best_time(fn, repeat=2)
        calls[name] = max(1, int(SAMPLE_SECONDS[mode] / max(once, 1e-7)))
    samples = {name: [] for name in names}
    for repetition in range(REPETITIONS[mode]):
        shift = repetition % len(names)
        for name in names[shift:] + names[:shift]:
            fn, count = case.runners[name], calls[name]
            time.sleep(SETTLE_SECONDS)
            start = time.perf_counter()
            for _ in range(count):
                fn()
            samples[name].append((time.perf_counter() - start) / count)
    return samples


def median(values):
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else 0.5 * (ordered[middle - 1] + ordered[middle])


HEADER = (f"{'case':<30} {'graphnet ms':>12} {'(min)':>8} {'GFLOP/s':>8} {'%peak':>6}   {'PyTorch ms':>11} {'(min)':>8} "
          f"{'GFLOP/s':>8} {'%peak':>6}   {'NumPy ms':>9}   {'PT/gn':>6} {'NP/gn':>6}")


def format_row(case, timings, peak):
    if not hasattr(format_row, "printed"):
        format_row.printed = True
        print(HEADER)
        print("-" * len(HEADER))

    def cells(name, width):
        if name not in timings:
            return f"{'-':>{width}} {'-':>8} {'-':>8} {'-':>6}"
        med, low = median(timings[name]), min(timings[name])
        rate = case.flops / med / 1e9
        return f"{med * 1e3:>{width}.3f} {low * 1e3:>8.3f} {rate:>8.1f} {100 * rate / peak:>5.0f}%"

    graphnet_time = median(timings["graphnet"])
    ratios = [f"{median(timings[p]) / graphnet_time:>6.2f}" if p in timings else f"{'-':>6}"
              for p in ("PyTorch", "NumPy")]
    numpy_cell = f"{median(timings['NumPy']) * 1e3:>9.3f}" if "NumPy" in timings else f"{'-':>9}"
    return (f"{case.name:<30} {cells('graphnet', 12)}   {cells('PyTorch', 11)}   {numpy_cell}   "
            f"{ratios[0]} {ratios[1]}")


def print_targets(rows):
    print("Targets (ratio = peer time / graphnet time, medians of this run):")
    for case, timings in rows:
        peer, needed = GEMM_TARGET if case.name.startswith("GEMM") else TARGETS.get(case.name, (None, None))
        if peer is None:
            continue
        if peer not in timings:
            print(f"  {case.name:<30} needs {peer} (not measured)")
            continue
        ratio = median(timings[peer]) / median(timings["graphnet"])
        verdict = "met" if ratio >= needed else "NOT met"
        print(f"  {case.name:<30} {peer}/graphnet = {ratio:5.2f}  (target >= {needed:g})  {verdict}")


# ------------------------------------------------------------------------------------------------------------------
# the cases

def all_cases(np, gn, torch, mode):
    cases = []
    nets = Networks(np, gn, torch)
    cases.append(nets.training_case("MLP 64-64-10 train b32", nets.mlp((64, 64, 10)), (32, 64)))
    cases.append(nets.training_case("MLP 784-512-512-10 train b128", nets.mlp((784, 512, 512, 10)), (128, 784)))
    cases.append(nets.training_case("LeNet-5 train b64", nets.lenet(), (64, 1, 28, 28)))
    cases.append(nets.training_case("LeNet-5 train b256", nets.lenet(), (256, 1, 28, 28)))
    cases.append(nets.training_case("CIFAR CNN train b64", nets.cifar(), (64, 3, 32, 32)))
    cases.append(nets.inference_case("LeNet-5 infer b256", nets.lenet(), (256, 1, 28, 28)))
    layers = Layers(np, gn, torch)
    for name, n, c, k, size, kernel, pad, stride in (("LeNet C1 1->6 5x5", 64, 1, 6, 28, 5, 2, 1),
                                                     ("LeNet C3 6->16 5x5", 64, 6, 16, 14, 5, 0, 1),
                                                     ("conv 32->64 3x3 @32", 64, 32, 64, 32, 3, 1, 1),
                                                     ("conv 64->64 3x3 @56", 32, 64, 64, 56, 3, 1, 1),
                                                     ("conv 16->32 3x3/2 @32", 64, 16, 32, 32, 3, 1, 2)):
        for backward in (False, True):
            cases.append(layers.conv_case(name + (" fwd+bwd" if backward else " fwd"), (n, c, size, size),
                                          (k, c, kernel, kernel), pad, stride, backward))
    for kind in ("max", "avg"):
        cases.append(layers.pool_case(f"{kind} pool 2x2/2 fwd+bwd", kind, (64, 32, 32, 32)))
    for size in ((128, 512, 1024) if mode == "quick" else (128, 256, 512, 1024, 2048)):
        cases.append(layers.gemm_case(f"GEMM {size}", size))
    return cases


class Networks:
    """The same network three ways: a graphnet graph (compiled for cpu and for reference) and a torch module."""

    def __init__(self, np, gn, torch):
        self.np, self.gn, self.torch = np, gn, torch
        self.lr = 0.01

    # each architecture: a list of layer specs; weights are made once (numpy) and given to every implementation
    def mlp(self, sizes):
        return [("dense", a, b, i < len(sizes) - 2) for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))]

    def lenet(self):
        return [("conv", 1, 6, 5, 2), ("pool",), ("conv", 6, 16, 5, 0), ("pool",), ("flatten",),
                ("dense", 400, 120, True), ("dense", 120, 84, True), ("dense", 84, 10, False)]

    def cifar(self):
        return [("conv", 3, 32, 3, 1), ("conv", 32, 32, 3, 1), ("pool",), ("conv", 32, 64, 3, 1),
                ("conv", 64, 64, 3, 1), ("pool",), ("flatten",), ("dense", 64 * 8 * 8, 256, True),
                ("dense", 256, 10, False)]

    def weights(self, layers, seed=0):
        rng = self.np.random.default_rng(seed)
        params = []
        for spec in layers:
            if spec[0] == "conv":
                _, c, k, size, _ = spec
                fan_in = c * size * size
                params.append((rng.standard_normal((k, c, size, size)) * (2 / fan_in) ** 0.5).astype("float32"))
                params.append(self.np.zeros(k, "float32"))
            elif spec[0] == "dense":
                _, fan_in, fan_out, _ = spec
                params.append((rng.standard_normal((fan_in, fan_out)) * (2 / fan_in) ** 0.5).astype("float32"))
                params.append(self.np.zeros(fan_out, "float32"))
        return params

    def data(self, x_shape, seed=1):
        rng = self.np.random.default_rng(seed)
        return (rng.standard_normal(x_shape).astype("float32"),
                rng.integers(0, 10, x_shape[0]).astype("int64"))

    # graphnet
    def graphnet_program(self, layers, x_shape, device, train):
        gn = self.gn
        with gn.Graph():
            x = gn.placeholder((None,) + tuple(x_shape[1:]), name="x")
            labels = gn.placeholder((None,), dtype="int64", name="labels")
            values = iter(self.weights(layers))
            variables, h = [], x
            for index, spec in enumerate(layers):
                if spec[0] == "conv":
                    w = gn.variable(next(values), name=f"conv{index}/w")
                    b = gn.variable(next(values), name=f"conv{index}/b")
                    h = gn.relu(gn.conv2d(h, w, b, padding=spec[4]))
                    variables += [w, b]
                elif spec[0] == "pool":
                    h = gn.max_pool2d(h, 2)
                elif spec[0] == "flatten":
                    h = gn.flatten(h)
                else:
                    w = gn.variable(next(values), name=f"dense{index}/w")
                    b = gn.variable(next(values), name=f"dense{index}/b")
                    h = gn.matmul(h, w) + b
                    h = gn.relu(h) if spec[3] else h
                    variables += [w, b]
            if not train:
                return gn.compile(h, device=device), x, labels
            loss = gn.softmax_cross_entropy(h, labels)
            grads = gn.gradients(loss, variables)
            updates = [gn.assign(v, v - self.lr * g) for v, g in zip(variables, grads)]
            return gn.compile([loss] + updates, device=device), x, labels

    # torch
    def torch_model(self, layers):
        torch, nn = self.torch, self.torch.nn
        modules, values = [], iter(self.weights(layers))
        for spec in layers:
            if spec[0] == "conv":
                conv = nn.Conv2d(spec[1], spec[2], spec[3], padding=spec[4])
                with torch.no_grad():
                    conv.weight.copy_(torch.from_numpy(next(values)))
                    conv.bias.copy_(torch.from_numpy(next(values)))
                modules += [conv, nn.ReLU()]
            elif spec[0] == "pool":
                modules.append(nn.MaxPool2d(2))
            elif spec[0] == "flatten":
                modules.append(nn.Flatten())
            else:
                linear = nn.Linear(spec[1], spec[2])
                with torch.no_grad():
                    linear.weight.copy_(torch.from_numpy(next(values).T.copy()))
                    linear.bias.copy_(torch.from_numpy(next(values)))
                modules += [linear] + ([nn.ReLU()] if spec[3] else [])
        return nn.Sequential(*modules)

    def torch_training_step(self, layers, xv, yv):
        """One PyTorch SGD step of the network on (xv, yv): zero_grad, forward, cross-entropy, backward, step."""
        torch = self.torch
        model = self.torch_model(layers)
        optimizer = torch.optim.SGD(model.parameters(), lr=self.lr)
        tx, ty = torch.from_numpy(xv), torch.from_numpy(yv)

        def step():
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(tx), ty)
            loss.backward()
            optimizer.step()
            return loss
        return step

    def training_case(self, name, layers, x_shape):
        np, torch = self.np, self.torch
        xv, yv = self.data(x_shape)
        runners, first_losses = {}, {}
        for label, device in (("graphnet", "cpu"), ("NumPy", "reference")):
            prog, x, labels = self.graphnet_program(layers, x_shape, device, train=True)
            feeds = {x: xv, labels: yv}
            runners[label] = program_runner(prog, feeds)
            first_losses[label] = (lambda run=runners[label]: float(run()[0]))
        if torch is not None:
            torch_step = self.torch_training_step(layers, xv, yv)
            runners["PyTorch"] = torch_step
            first_losses["PyTorch"] = lambda: float(torch_step().detach())
        agree(name, first_losses, np)          # first, while every implementation still has the same weights
        return Case(name, schedule_flops(runners["graphnet"]), runners)

    def inference_case(self, name, layers, x_shape):
        np, torch = self.np, self.torch
        xv, _ = self.data(x_shape)
        runners, outputs = {}, {}
        for label, device in (("graphnet", "cpu"), ("NumPy", "reference")):
            prog, x, _ = self.graphnet_program(layers, x_shape, device, train=False)
            runners[label] = outputs[label] = program_runner(prog, {x: xv})
        if torch is not None:
            model = self.torch_model(layers).eval()
            tx = torch.from_numpy(xv)

            def torch_forward():
                with torch.no_grad():
                    return model(tx)

            runners["PyTorch"] = torch_forward
            outputs["PyTorch"] = lambda: torch_forward().numpy()
        agree(name, outputs, np)
        return Case(name, schedule_flops(runners["graphnet"]), runners)


def program_runner(prog, feeds):
    """One call: prog.run(feeds). The function keeps the program, for its FLOP count."""
    def run():
        return prog.run(feeds)
    run.program = prog
    return run


def schedule_flops(run):
    """FLOPs per call of a graphnet program: its schedule's FLOP column, summed (after one run made the plan)."""
    run()
    return sum(step.flops for step in run.program.plan().steps)


def agree(name, results, np, rtol=1e-3):
    """The first results (losses, or logits) of every implementation, from the same weights, agree."""
    values = {label: np.asarray(fn(), dtype=np.float64) for label, fn in results.items()}
    reference = values["NumPy"]
    for label, value in values.items():
        if not np.allclose(value, reference, rtol=rtol, atol=1e-4):
            raise AssertionError(f"{name}: {label} computes {value.ravel()[:4]} where NumPy computes "
                                 f"{reference.ravel()[:4]}: the implementations do not run the same network")


class Layers:
    """Single layers: conv2d, pooling and GEMM, each as a graphnet program, a torch call and a NumPy one."""

    def __init__(self, np, gn, torch):
        self.np, self.gn, self.torch = np, gn, torch

    def conv_case(self, name, x_shape, w_shape, pad, stride, backward):
        np, gn, torch = self.np, self.gn, self.torch
        rng = np.random.default_rng(2)
        xv = rng.standard_normal(x_shape).astype("float32")
        wv = (rng.standard_normal(w_shape) * 0.1).astype("float32")
        bv = rng.standard_normal(w_shape[0]).astype("float32")
        runners = {}
        for label, device in (("graphnet", "cpu"), ("NumPy", "reference")):
            with gn.Graph():
                x = gn.placeholder((None,) + x_shape[1:], name="x")
                w, b = gn.variable(wv, name="w"), gn.variable(bv, name="b")
                y = gn.conv2d(x, w, b, stride=stride, padding=pad)
                # y is fetched with the gradients: the forward runs and y is materialized, as PyTorch's conv(x)
                fetches = [y] + gn.gradients(gn.sum(y), [x, w, b]) if backward else y
                prog = gn.compile(fetches, device=device)
            runners[label] = program_runner(prog, {x: xv})
        flops = schedule_flops(runners["graphnet"])
        if torch is not None:
            conv = torch.nn.Conv2d(x_shape[1], w_shape[0], w_shape[2], stride=stride, padding=pad)
            with torch.no_grad():
                conv.weight.copy_(torch.from_numpy(wv))
                conv.bias.copy_(torch.from_numpy(bv))
            tx = torch.from_numpy(xv).requires_grad_(backward)
            ones = torch.ones(conv(tx).shape)

            def torch_call():
                if not backward:
                    with torch.no_grad():
                        return conv(tx)
                tx.grad = conv.weight.grad = conv.bias.grad = None
                conv(tx).backward(ones)

            runners["PyTorch"] = torch_call
        return Case(name, flops, runners)

    def pool_case(self, name, kind, x_shape):
        """Pooling inside a graph, forward and backward: loss = Σ pool(x) · c for a fixed random c, and its
        gradient with respect to x (torch: pool(x).backward(c))."""
        np, gn, torch = self.np, self.gn, self.torch
        rng = np.random.default_rng(3)
        xv = rng.standard_normal(x_shape).astype("float32")
        cv = rng.standard_normal(x_shape[:2] + (x_shape[2] // 2, x_shape[3] // 2)).astype("float32")
        runners = {}
        for label, device in (("graphnet", "cpu"), ("NumPy", "reference")):
            with gn.Graph():
                x = gn.placeholder((None,) + x_shape[1:], name="x")
                y = (gn.max_pool2d if kind == "max" else gn.avg_pool2d)(x, 2)
                # y is fetched with the gradient: the forward runs and y is materialized, as PyTorch's pool(x)
                prog = gn.compile([y] + gn.gradients(gn.sum(y * gn.constant(cv)), [x]), device=device)
            runners[label] = program_runner(prog, {x: xv})
        flops = schedule_flops(runners["graphnet"])
        if torch is not None:
            pool = torch.nn.MaxPool2d(2) if kind == "max" else torch.nn.AvgPool2d(2)
            tx, tc = torch.from_numpy(xv).requires_grad_(True), torch.from_numpy(cv)

            def torch_call():
                tx.grad = None
                pool(tx).backward(tc)

            runners["PyTorch"] = torch_call
        return Case(name, flops, runners)

    def gemm_case(self, name, size):
        """C = A·B into a preallocated C: graphnet's matmul kernel called directly, like np.matmul(a, b, out=c)."""
        np, gn, torch = self.np, self.gn, self.torch
        rng = np.random.default_rng(4)
        av = rng.standard_normal((size, size)).astype("float32")
        bv = rng.standard_normal((size, size)).astype("float32")
        out = np.empty((size, size), np.float32)
        matmul = gn.backends.get_backend("cpu").kernel(gn.ops.linalg.MatMul)
        runners = {"graphnet": lambda: matmul(out, av, bv, transpose_a=False, transpose_b=False),
                   "NumPy": lambda: np.matmul(av, bv, out=out)}
        if torch is not None:
            ta, tb, t_out = torch.from_numpy(av), torch.from_numpy(bv), torch.empty(size, size)
            runners["PyTorch"] = lambda: torch.mm(ta, tb, out=t_out)
        return Case(name, 2 * size ** 3, runners)


if __name__ == "__main__":
    main()
