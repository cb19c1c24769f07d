"""float32 CUDA kernels compute in float32: the PTX check fails a float32 build that holds float64 arithmetic.

A Python number in a Numba kernel is an int64 or a float64, so `y * (1 - y)` with a float32 y computes in float64 —
at a fraction of the GPU's float32 rate, and rounded unlike the reference. The simulator runs kernels as Python
and cannot see it; the PTX can (add.f64, fma.rn.f64, cvt.f64.f32, ...). The kernels that did it (sigmoid, the
sigmoid and tanh gradients, ELU, select_grad's `dy * 0`) now take their constants in the kernel's type.

The compiling part runs in a subprocess: the other CUDA tests switch on Numba's simulator for this pytest process,
and the simulator has no compiler (see tests/test_cuda_ptx.py). It needs what that test needs (numba-cuda, NVRTC,
the CUDA toolkit's ptxas).
"""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from graphnet.backends.cuda.ptx_check import float64_instructions

ROOT = Path(__file__).resolve().parents[1]

PTX = """
    ld.global.f32   %f1, [%rd4];
    cvt.f64.f32     %fd1, %f1;
    mov.f64         %fd2, 0d3FF0000000000000;
    sub.f64         %fd3, %fd2, %fd1;
@%p1 fma.rn.f64      %fd4, %fd1, %fd3, %fd2;
    setp.lt.f64     %p2, %fd4, 0d0000000000000000;
    cvt.rn.f32.f64  %f2, %fd4;
    ld.global.f64   %fd5, [%rd6];
    add.f32         %f3, %f2, %f1;
    st.global.f32   [%rd5], %f3;
"""


def test_float64_arithmetic_is_found_in_ptx_and_moves_are_not():
    assert float64_instructions(PTX) == {"cvt.f64.f32": 1, "sub.f64": 1, "fma.rn.f64": 1, "setp.lt.f64": 1,
                                         "cvt.rn.f32.f64": 1}
    assert float64_instructions(PTX.replace("f64", "f32").replace("fd", "f")) == {}


CHECK = textwrap.dedent('''
    import json
    from numba import cuda
    from graphnet.backends.cuda import ptx_check
    from graphnet.backends.cuda.registry import DEVICE_KERNELS, register_generic

    @cuda.jit
    def deliberately_wrong(out, y):
        """sigmoid's gradient as it was written: `1 - y` is float64 to Numba when y is float32"""
        for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
            out[i] = y[i] * (1 - y[i])

    @cuda.jit
    def right(out, y, one):
        """the same with 1 in y's type"""
        for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
            out[i] = y[i] * (one - y[i])

    ptx_check.all_kernels()
    register_generic("deliberately_wrong", deliberately_wrong, lambda f: (f[::1], f[::1]))
    register_generic("right", right, lambda f: (f[::1], f[::1], f))
    problems = {}
    for name in NAMES:
        index = next(i for i, kernel in enumerate(DEVICE_KERNELS) if kernel.name == name)
        (row,) = ptx_check.check_one((index, "float32", [(8, 0)], ptx_check.find_ptxas()))
        problems[name] = row[4] if row[3] is None else None
    print(json.dumps(problems))
''')

# Kernels once caught with float64 arithmetic, and the pointwise formulas full of constants (gelu's 0.5 and
# 1/√2, hard_swish's 3 and 0.5), which graphnet/backends/cuda/pointwise.py writes as T(…) in the kernel's type.
FIXED = ["sigmoid.map", "sigmoid_grad.map", "tanh_grad.map", "elu.map", "select_grad[max_first].map",
         "select_grad[min_second].broadcast", "route_to_maxima", "max_pool_backward", "avg_pool_forward",
         "bce_backward_logits", "gelu.map", "gelu_tanh_grad.map", "hard_swish_grad.map", "silu_grad.map"]


def test_a_float32_kernel_with_float64_arithmetic_fails_the_ptx_check_and_the_fixed_kernels_pass():
    names = ["deliberately_wrong", "right"] + FIXED
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    run = subprocess.run([sys.executable, "-c", f"NAMES = {names!r}\n" + CHECK], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-4000:]
    problems = json.loads(run.stdout.splitlines()[-1])
    wrong = problems.pop("deliberately_wrong")
    assert wrong is not None and wrong.startswith("float64 arithmetic in the float32 build of deliberately_wrong: ")
    assert "cvt.f64.f32" in wrong and "sub.f64" in wrong and "pass constants in the kernel's type" in wrong
    assert problems == {name: None for name in ["right"] + FIXED}
