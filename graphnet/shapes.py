"""Output-size formulas of convolution and pooling (NCHW, PyTorch semantics), explained when they fail.

Along one spatial axis, an input of size W, a kernel of size F with dilation D, stride S and padding P_lo / P_hi
on the two sides give

    output = floor((W + P_lo + P_hi - D*(F-1) - 1) / S) + 1

which, with symmetric padding P and no dilation, is the textbook form floor((W - F + 2P) / S) + 1.
The dilated kernel spans D*(F-1) + 1 input positions; the output is empty exactly when that span is larger than
the padded input W + P_lo + P_hi.

Pooling may round up instead (PyTorch's and ONNX's ceil_mode): a last, partial window is kept where the windows do
not tile the padded input exactly,

    output = ceil((W + P_lo + P_hi - F)/S) + 1,   less 1 if the last window would start in the bottom/right padding
                                                  ((output - 1)*S >= W + P_lo)

so every window starts inside the input or its top/left padding, and the positions a partial window reaches past the
padded input take no part in it.

Every function here raises `ShapeRuleViolation` with the formula and the user's numbers; the graph layer adds the
op's name and the line of user code. A size of None (unknown while the graph is built) gives None.
"""
import operator

from .errors import ShapeRuleViolation

_ADJECTIVE = {"height": "tall", "width": "wide"}
_SYMBOL = {"height": "H", "width": "W"}


def _as_int(value, what):
    """`value` as a Python int; bools and floats are refused (2.0 is not a stride)."""
    if isinstance(value, bool):
        raise ShapeRuleViolation(f"{what} must be an integer, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise ShapeRuleViolation(f"{what} must be an integer, got {value!r}") from None


def normalize_pair(value, what, allow_zero=False):
    """(height, width) from an int or a pair of ints.

    `what` names the argument in messages ("stride", "padding", ...). Values must be at least 1 (kernel size,
    stride, dilation), or at least 0 with `allow_zero` (padding).
    """
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ShapeRuleViolation(f"{what} must be an int or a pair (height, width), got {value!r} "
                                     f"with {len(value)} entries")
        pair = (_as_int(value[0], what), _as_int(value[1], what))
    else:
        number = _as_int(value, what)
        pair = (number, number)
    minimum = 0 if allow_zero else 1
    if min(pair) < minimum:
        rule = "non-negative" if allow_zero else "a positive integer"
        raise ShapeRuleViolation(f"{what} must be {rule}, got {value!r}")
    return pair


def explicit_padding(padding, what="padding"):
    """((top, bottom), (left, right)) from an int, a pair (ph, pw) or a pair of pairs ((pt, pb), (pl, pr)).

    A flat 4-tuple is refused: frameworks order its entries differently (ONNX's pads are top, left, bottom, right;
    PyTorch's F.pad takes left, right, top, bottom), and a silent guess would pad the wrong sides."""
    if isinstance(padding, (tuple, list)) and len(padding) == 4 and not any(
            isinstance(side, (tuple, list)) for side in padding):
        a, b, c, d = padding
        raise ShapeRuleViolation(
            f"{what} {tuple(padding)!r} has 4 entries, which frameworks order differently (ONNX: top, left, bottom, "
            f"right; PyTorch's F.pad: left, right, top, bottom); write ((top, bottom), (left, right)) — e.g. "
            f"(({a}, {c}), ({b}, {d})) for ONNX's order")
    if (isinstance(padding, (tuple, list)) and len(padding) == 2
            and all(isinstance(side, (tuple, list)) for side in padding)):
        (top, bottom), (left, right) = (normalize_pair(side, what, allow_zero=True) for side in padding)
        return (top, bottom), (left, right)
    ph, pw = normalize_pair(padding, what, allow_zero=True)
    return (ph, ph), (pw, pw)


def conv_padding(padding, kernel_hw, dilation_hw, stride_hw):
    """((top, bottom), (left, right)) from what the user wrote: an int, a pair, a pair of pairs, "valid" or "same".

    "valid" is no padding. "same" keeps the size at stride 1, as in PyTorch: along each axis the total padding is
    D*(F-1), split as top = total // 2, bottom = total - top (an even kernel pads one more at the bottom/right).
    """
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0), (0, 0)
        if padding != "same":
            raise ShapeRuleViolation(f"padding must be an int, a pair, 'valid' or 'same', got {padding!r}")
        pads = []
        for kernel, dilation in zip(kernel_hw, dilation_hw):
            total = dilation * (kernel - 1)
            pads.append((total // 2, total - total // 2))
        if tuple(stride_hw) != (1, 1):
            symmetric = all(lo == hi for lo, hi in pads)
            suggestion = (pads[0][0], pads[1][0]) if symmetric else tuple(pads)
            raise ShapeRuleViolation(
                f"padding='same' needs stride 1 (as in PyTorch), got stride {tuple(stride_hw)}; give explicit "
                f"padding instead, e.g. padding={suggestion} pads like 'same' does at stride 1")
        return tuple(pads[0]), tuple(pads[1])
    return explicit_padding(padding)


def output_size_formula(size, kernel, pad_lo, pad_hi, stride, dilation, axis_name, ceil_mode=False):
    """'floor((W - F + 2P)/S) + 1 = floor((28 - 5 + 2*0)/3) + 1 = 8': the formula, then with the numbers.

    The textbook form when the padding is symmetric and the dilation 1, the general form otherwise; with
    `ceil_mode`, ceil instead of floor (before the rule that drops a window starting in the bottom/right padding).
    """
    symbol = _SYMBOL.get(axis_name, "N")
    rounding = "ceil" if ceil_mode else "floor"
    reach = size + pad_lo + pad_hi - dilation * (kernel - 1) - 1
    result = (-(-reach // stride) if ceil_mode else reach // stride) + 1
    if pad_lo == pad_hi and dilation == 1:
        letters = f"{rounding}(({symbol} - F + 2P)/S) + 1"
        numbers = f"{rounding}(({size} - {kernel} + 2*{pad_lo})/{stride}) + 1"
    elif dilation == 1:
        letters = f"{rounding}(({symbol} - F + P_lo + P_hi)/S) + 1"
        numbers = f"{rounding}(({size} - {kernel} + {pad_lo} + {pad_hi})/{stride}) + 1"
    else:
        letters = f"{rounding}(({symbol} + P_lo + P_hi - D*(F-1) - 1)/S) + 1"
        numbers = f"{rounding}(({size} + {pad_lo} + {pad_hi} - {dilation}*({kernel}-1) - 1)/{stride}) + 1"
    return f"{letters} = {numbers} = {result}"


def _check_axis_arguments(size, kernel, pad_lo, pad_hi, stride, dilation, axis_name):
    if size is not None and _as_int(size, f"input {axis_name}") < 0:
        raise ShapeRuleViolation(f"input {axis_name} must be non-negative, got {size}")
    for value, what, minimum in ((kernel, f"kernel {axis_name}", 1), (stride, f"stride along the {axis_name}", 1),
                                 (dilation, f"dilation along the {axis_name}", 1),
                                 (pad_lo, f"padding before the {axis_name}", 0),
                                 (pad_hi, f"padding after the {axis_name}", 0)):
        if value is not None and _as_int(value, what) < minimum:
            rule = "non-negative" if minimum == 0 else f"at least {minimum}"
            raise ShapeRuleViolation(f"{what} must be {rule}, got {value}")


def conv_output_size(size, kernel, pad_lo, pad_hi, stride, dilation, axis_name):
    """floor((W + P_lo + P_hi - D*(F-1) - 1)/S) + 1 along one axis ("height" or "width"); None if `size` is None.

    Raises `ShapeRuleViolation` showing the formula with the numbers when the output would be empty.
    """
    _check_axis_arguments(size, kernel, pad_lo, pad_hi, stride, dilation, axis_name)
    if size is None or kernel is None:
        return None
    padded = size + pad_lo + pad_hi
    span = dilation * (kernel - 1) + 1
    if span > padded:
        adjective = _ADJECTIVE.get(axis_name, "long")
        padded_text = f"padded {padded}-{adjective} input"
        if pad_lo or pad_hi:
            padded_text += f" ({size} + {pad_lo} + {pad_hi})"
        if dilation == 1:
            reason = f"the {kernel}-{adjective} kernel is larger than the {padded_text}"
            fix = "use a smaller kernel"
        else:
            reason = (f"the {kernel}-{adjective} kernel dilated by {dilation} spans {span} positions, more than "
                      f"the {padded_text}")
            fix = "use a smaller kernel or dilation"
        formula = output_size_formula(size, kernel, pad_lo, pad_hi, stride, dilation, axis_name)
        raise ShapeRuleViolation(f"output {axis_name} {formula} is empty: {reason}; "
                                 f"pad at least {span - padded} more in total or {fix}")
    return (padded - span) // stride + 1


def pool_output_size(size, kernel, pad_lo, pad_hi, stride, axis_name, dilation=1, ceil_mode=False):
    """The convolution formula again (or its ceil_mode form, see the top of this module), plus PyTorch's pooling
    rule: each padding at most half the window.

    PyTorch requires pad <= (D*(F-1) + 1) // 2 (for D = 1: pad <= F // 2); with more, a window could hold nothing
    but padding, and its maximum or average would be meaningless.
    """
    _check_axis_arguments(size, kernel, pad_lo, pad_hi, stride, dilation, axis_name)
    if kernel is not None:
        limit = (dilation * (kernel - 1) + 1) // 2
        for pad, side in ((pad_lo, "before"), (pad_hi, "after")):
            if pad > limit:
                adjective = _ADJECTIVE.get(axis_name, "long")
                raise ShapeRuleViolation(
                    f"padding {side} the {axis_name} is {pad}, more than half the {kernel}-{adjective} pooling "
                    f"window (at most {limit}, as in PyTorch): a window could then hold only padding; "
                    f"use padding <= {limit} or a larger window")
    if not ceil_mode:
        return conv_output_size(size, kernel, pad_lo, pad_hi, stride, dilation, axis_name)
    if size is None or kernel is None:
        return None
    return _ceil_mode_output_size(size, kernel, pad_lo, pad_hi, stride, dilation, axis_name)


def _ceil_mode_output_size(size, kernel, pad_lo, pad_hi, stride, dilation, axis_name):
    """ceil((W + P_lo + P_hi - D*(F-1) - 1)/S) + 1, less the last window if it would start in the bottom/right
    padding ((output - 1)*S >= W + P_lo), as PyTorch and ONNX count; refused when that leaves no window."""
    adjective = _ADJECTIVE.get(axis_name, "long")
    if size == 0:
        side = "top" if axis_name == "height" else "left"
        raise ShapeRuleViolation(f"output {axis_name} is empty: the input {axis_name} is 0, and with ceil_mode a "
                                 f"window must start inside the input or its {side} padding; give an input with at "
                                 "least one row and column")
    formula = output_size_formula(size, kernel, pad_lo, pad_hi, stride, dilation, axis_name, ceil_mode=True)
    padded = size + pad_lo + pad_hi
    span = dilation * (kernel - 1) + 1
    rounded_up = -(-(padded - span) // stride) + 1
    if rounded_up < 1:
        raise ShapeRuleViolation(
            f"output {axis_name} {formula} is empty: the {kernel}-{adjective} window overhangs the padded "
            f"{padded}-{adjective} input ({size} + {pad_lo} + {pad_hi}) by {span - padded}, and ceil_mode keeps a "
            f"partial window only where it overhangs by less than the stride {stride}; pad at least "
            f"{span - padded - stride + 1} more in total or use a smaller window")
    if (rounded_up - 1) * stride >= size + pad_lo:
        return rounded_up - 1          # that window would start in the bottom/right padding: PyTorch drops it
    return rounded_up
