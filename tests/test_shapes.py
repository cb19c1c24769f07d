"""Output-size rules of graphnet.shapes: right sizes when valid, ShapeRuleViolation with the numbers otherwise."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from graphnet import shapes
from graphnet.errors import ShapeRuleViolation

try:                                   # PyTorch, where installed, is a second oracle of the pooling sizes
    import torch
except ImportError:
    torch = None

SETTINGS = settings(deadline=None, max_examples=200)

sizes = st.integers(0, 40)
kernels = st.integers(1, 9)
pads = st.integers(0, 4)
strides = st.integers(1, 4)
dilations = st.integers(1, 3)
axes = st.sampled_from(["height", "width"])


def count_windows(size, kernel, pad_lo, pad_hi, stride, dilation):
    """Windows of span D*(F-1)+1 that fit in the padded input, counted one start position at a time."""
    span = dilation * (kernel - 1) + 1
    return len(range(0, size + pad_lo + pad_hi - span + 1, stride))


@SETTINGS
@given(sizes, kernels, pads, pads, strides, dilations, axes)
def test_conv_output_size_counts_windows_and_raises_exactly_when_empty(size, kernel, pad_lo, pad_hi, stride,
                                                                       dilation, axis):
    expected = count_windows(size, kernel, pad_lo, pad_hi, stride, dilation)
    if expected >= 1:
        assert shapes.conv_output_size(size, kernel, pad_lo, pad_hi, stride, dilation, axis) == expected
        return
    with pytest.raises(ShapeRuleViolation) as caught:
        shapes.conv_output_size(size, kernel, pad_lo, pad_hi, stride, dilation, axis)
    message = str(caught.value)
    assert message.startswith(f"output {axis} floor((")
    if pad_lo == pad_hi and dilation == 1:
        assert f"floor(({size} - {kernel} + 2*{pad_lo})/{stride}) + 1" in message
    elif dilation == 1:
        assert f"floor(({size} - {kernel} + {pad_lo} + {pad_hi})/{stride}) + 1" in message
    else:
        assert f"floor(({size} + {pad_lo} + {pad_hi} - {dilation}*({kernel}-1) - 1)/{stride}) + 1" in message
    shortfall = dilation * (kernel - 1) + 1 - (size + pad_lo + pad_hi)
    assert f"pad at least {shortfall} more" in message


@SETTINGS
@given(sizes, kernels, pads, pads, strides, dilations, axes)
def test_formula_text_ends_with_the_size(size, kernel, pad_lo, pad_hi, stride, dilation, axis):
    text = shapes.output_size_formula(size, kernel, pad_lo, pad_hi, stride, dilation, axis)
    value = int(text.rsplit("= ", 1)[1])
    assert value == (size + pad_lo + pad_hi - dilation * (kernel - 1) - 1) // stride + 1
    if value >= 1:
        assert value == shapes.conv_output_size(size, kernel, pad_lo, pad_hi, stride, dilation, axis)


def test_textbook_example_reads_like_the_textbook():
    text = shapes.output_size_formula(28, 5, 0, 0, 3, 1, "width")
    assert text == "floor((W - F + 2P)/S) + 1 = floor((28 - 5 + 2*0)/3) + 1 = 8"
    with pytest.raises(ShapeRuleViolation, match=r"5-wide kernel is larger than the padded 4-wide input"):
        shapes.conv_output_size(4, 5, 0, 0, 1, 1, "width")
    with pytest.raises(ShapeRuleViolation, match=r"dilated by 2 spans 5 positions"):
        shapes.conv_output_size(4, 3, 0, 0, 1, 2, "height")


@given(kernels, pads, pads, strides, dilations)
def test_unknown_size_gives_unknown_output(kernel, pad_lo, pad_hi, stride, dilation):
    assert shapes.conv_output_size(None, kernel, pad_lo, pad_hi, stride, dilation, "height") is None


@pytest.mark.parametrize("size, kernel, pad_lo, pad_hi, stride, dilation", [
    (-1, 3, 0, 0, 1, 1), (5, 0, 0, 0, 1, 1), (5, 3, -1, 0, 1, 1), (5, 3, 0, 0, 0, 1), (5, 3, 0, 0, 1, 0),
    (5.0, 3, 0, 0, 1, 1), (5, 3, 0, 0, 1.5, 1),
])
def test_conv_output_size_refuses_bad_arguments(size, kernel, pad_lo, pad_hi, stride, dilation):
    with pytest.raises(ShapeRuleViolation):
        shapes.conv_output_size(size, kernel, pad_lo, pad_hi, stride, dilation, "width")


# ----------------------------------------------------------------------------------------------------------------
# padding


@SETTINGS
@given(st.integers(1, 30), st.integers(1, 30), st.integers(1, 8), st.integers(1, 8), dilations, dilations)
def test_same_padding_keeps_the_size_at_stride_1(height, width, kh, kw, dh, dw):
    (pt, pb), (pl, pr) = shapes.conv_padding("same", (kh, kw), (dh, dw), (1, 1))
    assert (pt + pb, pl + pr) == (dh * (kh - 1), dw * (kw - 1))
    assert pb - pt in (0, 1) and pr - pl in (0, 1)          # an even kernel pads one more at the bottom/right
    assert shapes.conv_output_size(height, kh, pt, pb, 1, dh, "height") == height
    assert shapes.conv_output_size(width, kw, pl, pr, 1, dw, "width") == width


@given(st.integers(1, 7), st.sampled_from([(2, 1), (1, 2), (3, 3)]))
def test_same_padding_with_stride_asks_for_explicit_padding(kernel, stride):
    with pytest.raises(ShapeRuleViolation, match=r"padding='same' needs stride 1.*explicit padding"):
        shapes.conv_padding("same", (kernel, kernel), (1, 1), stride)


@pytest.mark.parametrize("padding, expected", [
    ("valid", ((0, 0), (0, 0))),
    (2, ((2, 2), (2, 2))),
    ((1, 3), ((1, 1), (3, 3))),
    ([0, 1], ((0, 0), (1, 1))),
    (((1, 0), (2, 3)), ((1, 0), (2, 3))),
    (np.int64(1), ((1, 1), (1, 1))),
])
def test_explicit_padding_forms(padding, expected):
    assert shapes.conv_padding(padding, (3, 3), (1, 1), (2, 2)) == expected


def test_a_flat_four_entry_padding_is_refused_naming_both_orders():
    with pytest.raises(ShapeRuleViolation, match=r"padding \(1, 2, 3, 4\) has 4 entries.*ONNX: top, left, bottom, "
                                                 r"right; PyTorch's F.pad: left, right, top, bottom.*"
                                                 r"\(\(1, 3\), \(2, 4\)\) for ONNX's order"):
        shapes.conv_padding((1, 2, 3, 4), (3, 3), (1, 1), (1, 1))


@pytest.mark.parametrize("padding", ["full", -1, (1, 2, 3), (1.0, 1), ((1, -1), (0, 0))])
def test_bad_padding_is_refused(padding):
    with pytest.raises(ShapeRuleViolation, match="padding"):
        shapes.conv_padding(padding, (3, 3), (1, 1), (1, 1))


# ----------------------------------------------------------------------------------------------------------------
# normalize_pair


@pytest.mark.parametrize("value, expected", [(3, (3, 3)), ((2, 5), (2, 5)), ([1, 4], (1, 4)),
                                             (np.int32(2), (2, 2)), ((np.int64(1), 2), (1, 2))])
def test_normalize_pair_accepts_ints_and_pairs(value, expected):
    pair = shapes.normalize_pair(value, "stride")
    assert pair == expected and all(type(v) is int for v in pair)


@pytest.mark.parametrize("value, allow_zero, fragment", [
    (0, False, "positive"), ((1, 0), False, "positive"), (-1, True, "non-negative"), ((2, 2, 2), False, "pair"),
    ((2,), False, "pair"), (2.0, False, "integer"), ("2", False, "integer"), (True, False, "integer"),
    (None, False, "integer"),
])
def test_normalize_pair_refuses_bad_values(value, allow_zero, fragment):
    with pytest.raises(ShapeRuleViolation, match=fragment) as caught:
        shapes.normalize_pair(value, "stride", allow_zero=allow_zero)
    assert "stride" in str(caught.value)


def test_normalize_pair_allows_zero_padding():
    assert shapes.normalize_pair(0, "padding", allow_zero=True) == (0, 0)


# ----------------------------------------------------------------------------------------------------------------
# pooling


@SETTINGS
@given(st.integers(1, 30), kernels, pads, pads, strides, axes)
def test_pool_output_size_follows_pytorch_padding_rule(size, kernel, pad_lo, pad_hi, stride, axis):
    limit = kernel // 2
    if max(pad_lo, pad_hi) > limit:
        side, pad = ("before", pad_lo) if pad_lo > limit else ("after", pad_hi)
        with pytest.raises(ShapeRuleViolation, match=rf"padding {side} the {axis} is {pad}, more than half the "
                                                     rf"{kernel}-\w+ pooling window \(at most {limit}"):
            shapes.pool_output_size(size, kernel, pad_lo, pad_hi, stride, axis)
        return
    expected = count_windows(size, kernel, pad_lo, pad_hi, stride, 1)
    if expected >= 1:
        assert shapes.pool_output_size(size, kernel, pad_lo, pad_hi, stride, axis) == expected
    else:
        with pytest.raises(ShapeRuleViolation, match="is empty"):
            shapes.pool_output_size(size, kernel, pad_lo, pad_hi, stride, axis)


def ceil_mode_windows(size, kernel, pad_lo, pad_hi, stride):
    """Windows at 0, S, 2S, … of the padded input: those that fit, then the next one if it overhangs the padded
    input by less than a stride and starts inside the input or its top/left padding (PyTorch's and ONNX's rule)."""
    padded, count = size + pad_lo + pad_hi, 0
    while count * stride + kernel <= padded:
        count += 1
    if count * stride + kernel - padded < stride and count * stride < size + pad_lo:
        count += 1
    return count


def torch_pool_size(size, kernel, pad, stride, ceil_mode):
    return torch.nn.functional.max_pool1d(torch.zeros(1, 1, size), kernel, stride, pad, ceil_mode=ceil_mode).shape[-1]


@SETTINGS
@given(st.integers(1, 30), kernels, pads, pads, strides, axes)
def test_pool_output_size_in_ceil_mode_keeps_a_partial_last_window(size, kernel, pad_lo, pad_hi, stride, axis):
    if max(pad_lo, pad_hi) > kernel // 2:
        with pytest.raises(ShapeRuleViolation, match=r"more than half the"):
            shapes.pool_output_size(size, kernel, pad_lo, pad_hi, stride, axis, ceil_mode=True)
        return
    expected = ceil_mode_windows(size, kernel, pad_lo, pad_hi, stride)
    if torch is not None and pad_lo == pad_hi and expected >= 1:
        assert torch_pool_size(size, kernel, pad_lo, stride, True) == expected
    if expected >= 1:
        assert shapes.pool_output_size(size, kernel, pad_lo, pad_hi, stride, axis, ceil_mode=True) == expected
        return
    with pytest.raises(ShapeRuleViolation) as caught:
        shapes.pool_output_size(size, kernel, pad_lo, pad_hi, stride, axis, ceil_mode=True)
    message = str(caught.value)
    if pad_lo == pad_hi:
        assert f"output {axis} ceil((" in message and f"ceil(({size} - {kernel} + 2*{pad_lo})/{stride}) + 1" in message
    else:
        assert f"ceil(({size} - {kernel} + {pad_lo} + {pad_hi})/{stride}) + 1" in message
    overhang = kernel - (size + pad_lo + pad_hi)
    assert f"overhangs the padded {size + pad_lo + pad_hi}-" in message and f"by {overhang}" in message
    assert f"less than the stride {stride}; pad at least {overhang - stride + 1} more" in message


@SETTINGS
@given(st.integers(1, 30), kernels, st.integers(0, 4), strides)
def test_pool_output_size_in_floor_mode_agrees_with_pytorch(size, kernel, pad, stride):
    if torch is None or pad > kernel // 2:
        return
    try:
        ours = shapes.pool_output_size(size, kernel, pad, pad, stride, "width")
    except ShapeRuleViolation:
        ours = None
    try:
        theirs = torch_pool_size(size, kernel, pad, stride, False)
    except RuntimeError:                             # "Output size is too small"
        theirs = None
    assert ours == theirs


def test_ceil_mode_drops_a_window_that_would_start_in_the_bottom_padding():
    """5 tall, 3×3/3, padding 1: ceil((5 - 3 + 2)/3) + 1 = 3, but the third window would start at row 6 of the
    padded input, in the bottom padding — PyTorch drops it (and floor mode has 2 windows too)."""
    assert shapes.pool_output_size(5, 3, 1, 1, 3, "height", ceil_mode=True) == 2
    assert shapes.pool_output_size(6, 3, 1, 1, 3, "height", ceil_mode=True) == 3
    text = shapes.output_size_formula(5, 3, 1, 1, 3, 1, "height", ceil_mode=True)
    assert text == "ceil((H - F + 2P)/S) + 1 = ceil((5 - 3 + 2*1)/3) + 1 = 3"
    with pytest.raises(ShapeRuleViolation, match=r"input width is 0, and with ceil_mode a window must start inside "
                                                 r"the input or its left padding"):
        shapes.pool_output_size(0, 2, 1, 1, 1, "width", ceil_mode=True)
