"""What the GEMM kernels compile to: the K loop's machine code, read with nvdisasm — without a GPU.

No test here times anything. They check properties of the compiled inner loop that decide how fast it can run
on any GPU (see graphnet/backends/cuda/sass_report.py): shared memory is read in runs of neighbours (four floats at a
time), no integer division by a runtime value and no register spill is left inside the K loop, and fused
multiply-adds are a floor share of the instructions issued per K step. The floors sit a little under what the
kernels compile to today (sm_90, numba-cuda 0.30, CUDA 13.0 ptxas: 52% for matmul 64x64, 27–46% for the
convolutions). The kernels before the rewrite of 2026-11-29 compiled to 28% for matmul 64x64 and 2–8% for the
convolutions, with 17–36 calls to a 64-bit division routine in their K loop and one-float shared-memory loads;
the share, call and load tests each fail on them.

Runs `python -m graphnet.backends.cuda.sass_report` in a subprocess, like the PTX check, because the simulator that the
other CUDA tests switch on cannot compile.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

EXPECTED = {       # kernel: (least FFMA share of the instructions per K step, widest shared-memory load)
    "matmul[64x64]": (0.45, "LDS.128"),
    "matmul[128x128]": (0.50, "LDS.128"),
    "matmul[32x32 Aᵀ]": (0.30, "LDS.64"),         # 2 x 2 outputs per thread: runs of two
    "conv2d[64x64]": (0.40, "LDS.128"),
    "conv2d[16x128]": (0.22, "LDS.128"),
    "conv2d_grad_input[64x64]": (0.35, "LDS.128"),
    "conv2d_grad_weight[64x64]": (0.40, "LDS.128"),
    "conv2d_grad_weight[128x16]": (0.28, "LDS.128"),
}


@pytest.fixture(scope="module")
def report():
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    run = subprocess.run([sys.executable, "-m", "graphnet.backends.cuda.sass_report", "--cc", "9.0", "--kernels", *EXPECTED],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    print(run.stdout)
    assert run.returncode == 0, f"the SASS report failed:\n{run.stdout[-4000:]}\n{run.stderr[-4000:]}"
    rows = {}
    for line in run.stdout.splitlines()[1:]:
        name, bracket, rest = line.partition("]")       # names may hold spaces: "matmul[32x32 Aᵀ]"
        if bracket:
            registers, ffma, issued, share, widest, calls, spills = rest.split()[:7]
            rows[name + bracket] = dict(ffma=int(ffma), issued=int(issued), widest=widest, calls=int(calls),
                                        spills=int(spills))
    assert set(rows) == set(EXPECTED), run.stdout
    return rows


@pytest.mark.parametrize("kernel", list(EXPECTED))
def test_the_k_loop_spends_its_issue_slots_on_multiply_adds(report, kernel):
    share, floor = report[kernel]["ffma"] / report[kernel]["issued"], EXPECTED[kernel][0]
    assert share >= floor, f"{kernel}: FFMA are {share:.0%} of the K loop's instructions, the floor is {floor:.0%}"


@pytest.mark.parametrize("kernel", list(EXPECTED))
def test_no_division_call_in_the_k_loop(report, kernel):
    assert report[kernel]["calls"] == 0, f"{kernel}: {report[kernel]['calls']} calls in the K loop"


@pytest.mark.parametrize("kernel", list(EXPECTED))
def test_no_register_spills_in_the_k_loop(report, kernel):
    assert report[kernel]["spills"] == 0, f"{kernel}: {report[kernel]['spills']} local-memory accesses per K step"


@pytest.mark.parametrize("kernel", list(EXPECTED))
def test_shared_tiles_are_read_in_runs_of_neighbours(report, kernel):
    assert report[kernel]["widest"] == EXPECTED[kernel][1], f"{kernel} reads shared memory with {report[kernel]}"
