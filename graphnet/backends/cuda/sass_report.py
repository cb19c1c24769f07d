"""What the tiled GEMM kernels' K loop compiles to, read from the machine code — no GPU needed.

    python -m graphnet.backends.cuda.sass_report [--cc 9.0] [--kernels matmul[64x64] conv2d[16x128] ...]

A multiprocessor's schedulers each issue one instruction per cycle, and only an FFMA (fused multiply-add, two
floating-point operations) does a GEMM's arithmetic. So the share of FFMA among the instructions a thread issues
per K step bounds the share of the GPU's FP32 peak the kernel can reach, whatever the memory system does:
an address computation, a bounds check or a loop counter is an issue slot not spent on arithmetic.

Each kernel is compiled as the PTX check does (compile_ptx, then ptxas) and disassembled with `nvdisasm` (pip
package nvidia-cuda-nvdisasm). The K loop is the loop that holds the barriers; an inner loop inside it runs as
many times as it takes to reach the TM·TN·BK multiply-adds a thread does per K step. Every instruction of the loop
body is counted once, as in a tile where every bounds check passes. The table shows per K step: FFMA, all
instructions, their ratio, the widest shared-memory load (LDS.128 reads four floats at once), calls (integer
division by a runtime value compiles to a call; there should be none in the loop) and local-memory accesses
(LDL/STL: registers spilled to memory when the compiler runs out of them).
"""
import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from dataclasses import dataclass

import numpy as np

INSTRUCTION = re.compile(r"^\s+/\*([0-9a-f]{4,})\*/\s+(.*?)\s*;", re.M)
LABEL = re.compile(r"^(\.L_x_\d+):", re.M)
BRANCH = re.compile(r"\bBRA\s+(?:!?U?P\w+,\s*)?`?\(?(\.L_x_\d+|0x[0-9a-f]+)")
PREDICATE = re.compile(r"^@!?U?P\w+\s+")


def find_nvdisasm():
    found = shutil.which("nvdisasm")
    if found:
        return found
    for root in {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}:
        for candidate in sorted(glob.glob(os.path.join(root, "nvidia", "cu*", "bin", "nvdisasm"))):
            return candidate
    return None


@dataclass
class LoopReport:
    name: str
    registers: int
    ffma: int            # per K step
    issued: int          # per K step
    widest_shared_load: str
    calls: int
    spill_accesses: int

    @property
    def ffma_share(self):
        return self.ffma / self.issued


def opcode(text):
    return PREDICATE.sub("", text).split()[0]


def instructions_and_loops(sass):
    """[(address, text)] and the loops [(first, last)] as index ranges, from the backward branches."""
    instructions = [(int(address, 16), text) for address, text in INSTRUCTION.findall(sass)]
    index_of = {address: i for i, (address, _) in enumerate(instructions)}
    label_address = {}
    for match in LABEL.finditer(sass):
        following = INSTRUCTION.search(sass, match.end())
        if following:
            label_address[match.group(1)] = int(following.group(1), 16)
    loops = []
    for i, (address, text) in enumerate(instructions):
        branch = BRANCH.search(text)
        if not branch:
            continue
        target = branch.group(1)
        target = int(target, 16) if target.startswith("0x") else label_address.get(target)
        if target is not None and target <= address:
            loops.append((index_of[target], i))
    return instructions, loops


def k_loop_report(name, sass, registers, multiply_adds_per_step):
    """Per K step counts of the loop that holds the barriers (see the module docstring)."""
    instructions, loops = instructions_and_loops(sass)
    ops = [opcode(text) for _, text in instructions]

    def count(first, last, prefix):
        return sum(op.startswith(prefix) for op in ops[first:last + 1])

    with_barrier = [(a, b) for a, b in loops if count(a, b, "BAR") > 0]
    if not with_barrier:
        raise RuntimeError(f"{name}: no loop with a barrier in the machine code")
    first, last = max(with_barrier, key=lambda loop: loop[1] - loop[0])
    inner = [(a, b) for a, b in loops if first <= a and b <= last and (a, b) != (first, last)
             and count(a, b, "BAR") == 0]
    issued = last - first + 1
    ffma = count(first, last, "FFMA")
    for a, b in inner:                  # our kernels have at most one: the loop over the tile's k
        body, body_ffma = b - a + 1, count(a, b, "FFMA")
        trips = (multiply_adds_per_step - (ffma - body_ffma)) / max(body_ffma, 1)
        issued += body * (trips - 1)
        ffma += body_ffma * (trips - 1)
    shared_loads = sorted({op for op in ops[first:last + 1] if op.startswith("LDS")})
    widest = max(shared_loads, key=lambda op: int(op.split(".")[1]) if "." in op and op.split(".")[1].isdigit()
                 else 32, default="-")
    spills = count(first, last, "LDL") + count(first, last, "STL")
    return LoopReport(name, registers, round(ffma), round(issued), widest, count(first, last, "CALL"), spills)


def gemm_kernels():
    """{name: (registry entry, tiling)} of every kernel built on gemm.tiled_gemm."""
    from .gemm import TILINGS
    from .ptx_check import all_kernels
    labels = {t.label: t for t in TILINGS}
    found = {}
    for kernel in all_kernels():
        match = re.search(r"\[(\d+x\d+)", kernel.name)
        if match and match.group(1) in labels:
            found[kernel.name] = (kernel, labels[match.group(1)])
    return found


def report(name, kernels, cc=(9, 0)):
    import numba
    from numba import cuda
    from .ptx_check import _build_for, assemble, find_ptxas
    kernel, tiling = kernels[name]
    dispatcher = kernel.kernel_for(np.dtype("float32"))
    _build_for(cc)
    ptx, _ = cuda.compile_ptx(dispatcher.py_func, kernel.signature(numba.float32), cc=cc,
                              launch_bounds=dispatcher.targetoptions.get("launch_bounds"))
    usage, problem = assemble(find_ptxas(), ptx, cc)
    if usage is None:
        raise RuntimeError(f"{name}: {problem}")
    with tempfile.TemporaryDirectory() as folder:
        source, cubin = os.path.join(folder, "kernel.ptx"), os.path.join(folder, "kernel.cubin")
        with open(source, "w") as f:
            f.write(ptx)
        subprocess.run([find_ptxas(), f"-arch=sm_{cc[0]}{cc[1]}", source, "-o", cubin], check=True)
        sass = subprocess.run([find_nvdisasm(), cubin], check=True, capture_output=True, text=True).stdout
    per_step = tiling.thread_m * tiling.thread_n * tiling.block_k
    return k_loop_report(name, sass, usage[0], per_step)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cc", default="9.0", help="compute capability, e.g. 8.0")
    parser.add_argument("--kernels", nargs="*", help="names as the PTX check prints them (default: all float32 "
                                                     "GEMM kernels)")
    args = parser.parse_args(argv)
    import numba
    if numba.config.ENABLE_CUDASIM:
        print("the report needs the real numba.cuda: unset NUMBA_ENABLE_CUDASIM")
        return 1
    if find_nvdisasm() is None:
        print("nvdisasm not found: pip install 'nvidia-cuda-nvdisasm==13.2.*' (or put the CUDA toolkit's on PATH)")
        return 1
    cc = tuple(int(part) for part in args.cc.split("."))
    kernels = gemm_kernels()
    names = args.kernels or list(kernels)
    unknown = [name for name in names if name not in kernels]
    if unknown:
        print(f"not a GEMM kernel: {', '.join(unknown)}; choose from {', '.join(kernels)}")
        return 1
    print(f"{'kernel':<40} {'regs':>4} {'FFMA':>5} {'issued':>6} {'share':>6} {'shared load':>11} {'calls':>5} "
          f"{'spills':>6}   (per K step and thread, sm_{cc[0]}{cc[1]})")
    for name in names:
        r = report(name, kernels, cc)
        print(f"{r.name:<40} {r.registers:>4} {r.ffma:>5} {r.issued:>6} {r.ffma_share:>6.0%} "
              f"{r.widest_shared_load:>11} {r.calls:>5} {r.spill_accesses:>6}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
