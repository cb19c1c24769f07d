"""Kernels that move data: reshape (a copy only when the compiler could not make it a view), transpose, concat,
slicing and their adjoints, and assign (a copy into a variable's storage)."""
import numpy as np

from ...ops.state import Assign
from ...ops.shape import Concat, ConcatGrad, GetItem, GetItemGrad, Reshape, ReshapeLike, Transpose


def reshape(out, x):
    out[...] = x.reshape(out.shape)


def transpose(out, x, *, axes):
    out[...] = np.transpose(x, axes)


def concat(out, *xs, axis):
    np.concatenate(xs, axis=axis, out=out)


def concat_grad(out, dy, *, axis, start, stop):
    out[...] = np.take(dy, np.arange(start, stop), axis=axis)


def getitem(out, x, *, index):
    out[...] = x[index]


def getitem_grad(out, dy, *, index):
    out[...] = 0
    out[index] = dy



def assign(out, variable, value):
    """`out` is the variable's own storage, so copying the value into it updates the variable."""
    np.copyto(out, value)


KERNELS = {Reshape: reshape, ReshapeLike: reshape, Transpose: transpose, Concat: concat, ConcatGrad: concat_grad,
           GetItem: getitem, GetItemGrad: getitem_grad, Assign: assign}
