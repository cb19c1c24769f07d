"""The PTX build check: compile every device kernel of graphnet/backends/cuda to PTX and assemble it with `ptxas`.

    python -m graphnet.backends.cuda.ptx_check [--cc 7.5 8.0 9.0] [--jobs 2]

No GPU is needed: `numba.cuda.compile_ptx` runs NVVM (libnvvm from the CUDA toolkit, NVRTC from the wheel
nvidia-cuda-nvrtc==13.0.*) and `ptxas -v` turns the PTX into machine code for each compute capability, reporting
registers, shared memory, stack and spills per kernel. This catches what Numba's simulator cannot: shared arrays
whose size is not a compile-time constant, Python that does not compile for the GPU, register spills.

Every kernel in registry.DEVICE_KERNELS is compiled for float32 at every compute capability asked for, and for
float64 at the first. The check fails (exit status 1) if any kernel fails to compile or assemble, or if a float32
build computes in float64 — an instruction such as add.f64, fma.rn.f64, setp.lt.f64 or cvt.f64.f32 — unless the
kernel was registered with `float64="why"` (sums accumulated in float64 on purpose). Such arithmetic comes from a
Python number in the kernel: Numba types `1 - y` as float64 when y is float32, so a float32 kernel silently runs
at the GPU's float64 rate (1/2 to 1/64 of float32) and rounds differently from the reference. The simulator
cannot see it; the PTX can. It must run without the simulator (NUMBA_ENABLE_CUDASIM unset): the simulator
replaces numba.cuda and has no compiler.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

DEFAULT_CCS = ((7, 5), (8, 0), (9, 0))
PTXAS_CANDIDATES = ("/usr/local/cuda/bin/ptxas", "/usr/local/cuda-13.0/bin/ptxas")


def find_ptxas():
    found = shutil.which("ptxas")
    if found:
        return found
    for candidate in PTXAS_CANDIDATES:
        if os.path.exists(candidate):
            return candidate
    return None


def all_kernels():
    """Import every kernel module (which registers its device kernels) and return the registry."""
    import sys
    from ..base import kernel_modules
    from .registry import DEVICE_KERNELS
    kernel_modules(sys.modules[__package__])
    return DEVICE_KERNELS


# An arithmetic, comparison or conversion instruction and its modifiers, e.g. "fma.rn.f64", "setp.lt.f64",
# "cvt.rn.f32.f64" (loads, stores and moves of float64 values are not arithmetic, and are left out).
ARITHMETIC = re.compile(r"^\s*(?:@!?%\w+\s+)?((?:add|sub|mul|div|fma|mad|neg|abs|min|max|sqrt|rsqrt|rcp|ex2|lg2|sin|cos"
                        r"|tanh|setp|set|testp|copysign|cvt)(?:\.\w+)+)\s", re.MULTILINE)


def float64_instructions(ptx):
    """{instruction: count} of the float64 arithmetic in a PTX text, e.g. {"add.f64": 2, "cvt.f64.f32": 1}."""
    found = {}
    for instruction in ARITHMETIC.findall(ptx):
        if ".f64" in instruction:
            found[instruction] = found.get(instruction, 0) + 1
    return found


def float64_problem(name, ptx):
    """Why a float32 build of kernel `name` fails the check, or None: the float64 arithmetic in its PTX."""
    found = float64_instructions(ptx)
    if not found:
        return None
    listed = ", ".join(f"{instruction} x{count}" for instruction, count in sorted(found.items()))
    return (f"float64 arithmetic in the float32 build of {name}: {listed}. A Python number in the kernel (1 - y, "
            "dy * 0, min(x, 0)) is a float64 or int64 to Numba; pass constants in the kernel's type (a parameter "
            "such as `one`, or x.dtype.type(1) from the host), or multiply by a boolean — or, where float64 is "
            "meant, register the kernel with float64=\"why\"")


USAGE = re.compile(r"Used (\d+) registers(?:.*?(\d+) bytes smem)?")
FRAME = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")


def assemble(ptxas, ptx, cc):
    """ptxas -v on one PTX text: (registers, shared bytes, stack bytes, spill bytes) or an error text."""
    with tempfile.TemporaryDirectory() as folder:
        source = os.path.join(folder, "kernel.ptx")
        with open(source, "w") as f:
            f.write(ptx)
        run = subprocess.run([ptxas, "-v", f"-arch=sm_{cc[0]}{cc[1]}", source, "-o", os.path.join(folder, "k.cubin")],
                             capture_output=True, text=True)
    report = run.stdout + run.stderr
    if run.returncode != 0:
        return None, report.strip()
    usage, frame = USAGE.search(report), FRAME.search(report)
    if usage is None or frame is None:
        return None, f"could not read ptxas -v:\n{report}"
    return (int(usage.group(1)), int(usage.group(2) or 0), int(frame.group(1)),
            int(frame.group(2)) + int(frame.group(3))), None


class _TargetDevice:
    """Stands in for the GPU this machine may not have. Numba compiles a device function (@cuda.jit(device=True))
    the first time a kernel calling it is typed, for the compute capability of the *current device*; without a
    GPU there is none, so the check names the capability it is building for."""

    def __init__(self, cc):
        self.compute_capability = cc


def _build_for(cc):
    from numba.cuda import dispatcher
    dispatcher.get_current_device = lambda: _TargetDevice(cc)


def check_one(job):
    """Compile kernel number `index` for one dtype at the given capabilities; one result row per capability."""
    index, dtype_name, ccs, ptxas = job
    import numba
    from numba import cuda
    kernel = all_kernels()[index]
    dtype = np.dtype(dtype_name)
    dispatcher = kernel.kernel_for(dtype)
    signature = kernel.signature(numba.from_dtype(dtype))
    rows = []
    for cc in ccs:
        start = time.perf_counter()
        _build_for(cc)
        try:
            ptx, _ = cuda.compile_ptx(dispatcher.py_func, signature, cc=cc,
                                      launch_bounds=dispatcher.targetoptions.get("launch_bounds"))
        except Exception as error:
            rows.append((kernel.name, dtype_name, cc, None, f"compile_ptx failed: {type(error).__name__}: {error}"))
            continue
        if dtype == np.float32 and kernel.float64 is None:
            problem = float64_problem(kernel.name, ptx)
            if problem is not None:
                rows.append((kernel.name, dtype_name, cc, None, problem))
                continue
        usage, problem = assemble(ptxas, ptx, cc)
        rows.append((kernel.name, dtype_name, cc, usage, problem, time.perf_counter() - start))
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cc", nargs="+", default=[f"{a}.{b}" for a, b in DEFAULT_CCS],
                        help="compute capabilities, e.g. 7.5 8.0 9.0")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--only", nargs="*", metavar="TEXT",
                        help="check only the kernels whose name contains one of these, e.g. --only mish lrn")
    args = parser.parse_args(argv)
    import numba
    if numba.config.ENABLE_CUDASIM:
        print("the PTX check needs the real numba.cuda: unset NUMBA_ENABLE_CUDASIM")
        return 1
    ptxas = find_ptxas()
    if ptxas is None:
        print("ptxas not found: install the CUDA toolkit (it ships ptxas and libnvvm) or put ptxas on the PATH")
        return 1
    ccs = [tuple(int(part) for part in text.split(".")) for text in args.cc]
    kernels = all_kernels()
    chosen = [i for i, kernel in enumerate(kernels) if not args.only or any(t in kernel.name for t in args.only)]
    if not chosen:
        print(f"no kernel's name contains any of {args.only}")
        return 1
    jobs = [(i, "float32", ccs, ptxas) for i in chosen]
    jobs += [(i, "float64", ccs[:1], ptxas) for i in chosen]
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        rows = [row for result in pool.map(check_one, jobs) for row in result]
    failures = [row for row in rows if row[3] is None]
    print(f"{'kernel':<44} {'dtype':<8} {'sm':>3} {'regs':>5} {'smem':>7} {'stack':>6} {'spill':>6}")
    for name, dtype_name, cc, usage, problem, *_ in rows:
        sm = f"{cc[0]}{cc[1]}"
        if usage is None:
            print(f"{name:<44} {dtype_name:<8} {sm:>3}  FAILED: {problem}")
        else:
            regs, smem, stack, spill = usage
            print(f"{name:<44} {dtype_name:<8} {sm:>3} {regs:>5} {smem:>7} {stack:>6} {spill:>6}")
    print(f"\n{len(chosen)} kernels, {len(rows)} builds (float32 at sm {', '.join(f'{a}{b}' for a, b in ccs)}; "
          f"float64 at sm {ccs[0][0]}{ccs[0][1]}), {len(failures)} failed, {time.perf_counter() - start:.0f} s; "
          f"ptxas: {ptxas}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
