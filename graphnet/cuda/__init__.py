"""Numba CUDA kernels for the `cuda` backend (graphnet/backends/cuda.py), one module per family of ops:

    elementwise    arithmetic with broadcasting           activations   activations, softmax
    reduce         sum, mean, max and their adjoints      shape         reshape, transpose, concat, slicing
    gemm           the tiled matrix-product kernel        linalg        matmul on it
    conv           convolution as implicit GEMMs          pool          max and average pooling
    losses         mean losses and their gradients        regularization dropout, batch norm
    lrn            local response normalization
    launch         grid sizes and launches bound once     layout        strides, broadcasting, merging axes
    registry       every device kernel with its argument types (for the PTX build check)

Each op module defines, at module level,
    KERNELS     {op name: fn(out, *inputs, **params)}                         what the schedule calls
    SPECIALIZE  {op name: fn(params, in_shapes, out_shape, dtype) -> params}   optional: choose an algorithm
    WORKSPACE   {op name: fn(params, in_shapes, out_shape, dtype) -> nbytes}   optional: scratch memory
    FUSIONS     {(op name, op name, ...): fused kernel name}                  optional: chains run as one step
    CAN_FUSE    {fused kernel name: fn(chain, shapes) -> bool}                optional: which chains qualify
"""
import importlib

OP_MODULES = ("elementwise", "activations", "reduce", "shape", "linalg", "conv", "pool", "losses", "regularization",
              "lrn")


def load_tables():
    """{"KERNELS": ..., "SPECIALIZE": ..., ...} merged over the op modules (imports Numba)."""
    merged = {"KERNELS": {}, "SPECIALIZE": {}, "WORKSPACE": {}, "FUSIONS": {}, "CAN_FUSE": {}}
    for name in OP_MODULES:
        module = importlib.import_module(f"{__name__}.{name}")
        for key, table in merged.items():
            table.update(getattr(module, key, {}))
    return merged
