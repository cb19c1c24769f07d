"""The PTX build check: every CUDA kernel of graphnet compiles to PTX and `ptxas` assembles it, for compute
capabilities 7.5, 8.0 and 9.0 — without a GPU.

It runs `python -m graphnet.backends.cuda.ptx_check` in a subprocess because Numba's simulator, which the other CUDA tests
switch on for this whole pytest process, replaces numba.cuda and cannot compile. It needs numba-cuda,
nvidia-cuda-nvrtc==13.0.* and the CUDA 13.0 toolkit (libnvvm and ptxas); where they are missing it fails rather
than skips, saying what is missing. The register and shared-memory table is printed (pytest -s shows it).
"""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_kernel_compiles_to_ptx_and_assembles_for_sm75_sm80_sm90():
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    run = subprocess.run([sys.executable, "-m", "graphnet.backends.cuda.ptx_check", "--cc", "7.5", "8.0", "9.0"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    print(run.stdout)
    assert run.returncode == 0, f"PTX check failed:\n{run.stdout[-6000:]}\n{run.stderr[-6000:]}"
    table = run.stdout.splitlines()
    summary = table[-1]
    assert " 0 failed" in summary, summary
    for arch in ("75", "80", "90"):
        assert any(line.split()[2:3] == [arch] for line in table if line.startswith("matmul[128x128]"))
    names = {line.split()[0] for line in table[1:] if line and not line.startswith(" ")}
    for expected in ("conv2d_grad_weight[16x128]", "max_pool_backward", "avg_pool_backward", "lrn_forward",
                     "lrn_backward", "dropout_mask", "sum.per_block", "cross_entropy_rows", "strided_copy", "relu.map",
                     "add.broadcast"):
        assert expected in names, f"{expected} missing from the PTX check"
