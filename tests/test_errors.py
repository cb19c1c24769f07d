"""Every error a user can cause: its class, its moment (build, compile or run) and its message — the op, the line of
user code that made it (here: test_errors.py:<line>), the numbers, and the hint where there is an obvious fix.

The expected line is read from the traceback (the frame of this file that made the failing call), not from
graphnet, so a wrong site fails the test.
"""
import os
import sys
import traceback

import numpy as np
import pytest

import graphnet as gn

THIS_FILE = os.path.basename(__file__)


def here():
    """'test_errors.py:LINE' of the caller's current line."""
    return f"{THIS_FILE}:{sys._getframe(1).f_lineno}"


def raised_at(excinfo):
    """'test_errors.py:LINE' of the line in this file from which the failing call was made."""
    entries = [e for e in excinfo.traceback if os.path.basename(str(e.path)) == THIS_FILE]
    return f"{THIS_FILE}:{entries[-1].lineno + 1}"


@pytest.fixture
def mnist():
    """A small graph: x (None, 1, 28, 28), labels y (None,) int64, a conv weight, and the sites of x and y."""
    g = gn.Graph()
    with g:
        x, x_site = gn.placeholder((None, 1, 28, 28), name="x"), here()
        y, y_site = gn.placeholder((None,), dtype="int64", name="y"), here()
        w = gn.variable(np.zeros((6, 1, 5, 5), "float32"), name="w")
    return g, x, y, w, x_site, y_site


# ----------------------------------------------------------------------------------------------------------------
# ShapeError at build time


def test_conv2d_empty_output_names_op_site_and_formula(mnist):
    g, x, _, w, _, _ = mnist
    with g, pytest.raises(gn.ShapeError) as caught:
        gn.conv2d(x, w, stride=3, padding=0, dilation=7, name="conv1")
    message = str(caught.value)
    assert message.startswith(f"conv2d 'conv1' ({raised_at(caught)}): output height ")
    assert "floor((28 + 0 + 0 - 7*(5-1) - 1)/3) + 1 = 0" in message
    assert "spans 29 positions" in message and "pad at least 1 more" in message


def test_conv2d_textbook_formula_in_the_message(mnist):
    g, _, _, w, _, _ = mnist
    with g:
        small = gn.placeholder((None, 1, 4, 4), name="small")
        with pytest.raises(gn.ShapeError, match=r"^conv2d 'conv1' \(test_errors\.py:\d+\): output height "
                                                r"floor\(\(H - F \+ 2P\)/S\) \+ 1 = floor\(\(4 - 5 \+ 2\*0\)/3\) "
                                                r"\+ 1 = 0 is empty") as caught:
            gn.conv2d(small, w, stride=3, name="conv1")
    assert f"({raised_at(caught)})" in str(caught.value)


def test_conv2d_nhwc_input_gets_the_layout_hint():
    with gn.Graph():
        x = gn.placeholder((None, 28, 28, 1), name="x")
        w = gn.variable(np.zeros((6, 1, 5, 5), "float32"), name="w")
        with pytest.raises(gn.ShapeError, match=r"input looks NHWC: graphnet expects NCHW, use "
                                                r"x\.transpose\(0, 3, 1, 2\)") as caught:
            gn.conv2d(x, w, padding=2, name="conv1")
    message = str(caught.value)
    assert message.startswith(f"conv2d 'conv1' ({raised_at(caught)}): input channels do not match")
    assert "C=28" in message and "(6, 1, 5, 5)" in message


def test_conv2d_channel_mismatch_without_nhwc_look_has_no_layout_hint():
    with gn.Graph():
        x = gn.placeholder((None, 3, 8, 8), name="x")
        w = gn.variable(np.zeros((4, 2, 3, 3), "float32"), name="w")
        with pytest.raises(gn.ShapeError, match=r"input channels do not match: input \(None, 3, 8, 8\) has C=3") \
                as caught:
            gn.conv2d(x, w)
    assert "NHWC" not in str(caught.value)
    assert raised_at(caught) in str(caught.value)


def test_conv2d_groups_errors():
    with gn.Graph():
        x = gn.placeholder((None, 4, 8, 8), name="x")
        w = gn.variable(np.zeros((6, 2, 3, 3), "float32"), name="w")
        with pytest.raises(gn.ShapeError, match=r"groups=4 does not divide the 6 output channels") as caught:
            gn.conv2d(x, w, groups=4)
        assert raised_at(caught) in str(caught.value)
        x3 = gn.placeholder((None, 3, 8, 8), name="x3")
        w2 = gn.variable(np.zeros((4, 1, 3, 3), "float32"), name="w2")
        with pytest.raises(gn.ShapeError, match=r"groups=2 does not divide the 3 input channels") as caught:
            gn.conv2d(x3, w2, groups=2)
        assert raised_at(caught) in str(caught.value)
        with pytest.raises(gn.ShapeError, match=r"groups must be a positive int, got 0") as caught:
            gn.conv2d(x, w, groups=0)
        assert raised_at(caught) in str(caught.value)


def test_conv2d_same_padding_with_stride_and_bad_arguments():
    with gn.Graph():
        x = gn.placeholder((None, 1, 8, 8), name="x")
        w = gn.variable(np.zeros((2, 1, 3, 3), "float32"), name="w")
        with pytest.raises(gn.ShapeError, match=r"padding='same' needs stride 1.*got stride \(2, 2\).*"
                                                r"padding=\(1, 1\)") as caught:
            gn.conv2d(x, w, stride=2, padding="same")
        assert raised_at(caught) in str(caught.value)
        with pytest.raises(gn.ShapeError, match=r"stride must be a positive integer, got 0") as caught:
            gn.conv2d(x, w, stride=0)
        assert raised_at(caught) in str(caught.value)
        with pytest.raises(gn.ShapeError, match=r"padding must be non-negative, got -1"):
            gn.conv2d(x, w, padding=-1)
        with pytest.raises(gn.ShapeError, match=r"padding must be an int, a pair, 'valid' or 'same', got 'full'"):
            gn.conv2d(x, w, padding="full")
        with pytest.raises(gn.ShapeError, match=r"stride must be an integer, got 1.5"):
            gn.conv2d(x, w, stride=1.5)
        with pytest.raises(gn.ShapeError, match=r"bias must have shape \(2,\).*got \(3,\)"):
            gn.conv2d(x, w, gn.variable(np.zeros(3, "float32")))
        with pytest.raises(gn.ShapeError, match=r"input must be 4-D \(N, C, H, W\), got \(None, 8, 8\); add a "
                                                r"channel axis"):
            gn.conv2d(gn.placeholder((None, 8, 8)), w)


def test_pooling_errors_name_the_numbers():
    with gn.Graph():
        x = gn.placeholder((None, 1, 28, 28), name="x")
        with pytest.raises(gn.ShapeError, match=r"^max_pool2d 'pool1' \(test_errors\.py:\d+\): padding before the "
                                                r"height is 2, more than half the 2-tall pooling window \(at most 1"
                                                ) as caught:
            gn.max_pool2d(x, 2, padding=2, name="pool1")
        assert raised_at(caught) in str(caught.value)
        with pytest.raises(gn.ShapeError, match=r"floor\(\(28 - 40 \+ 2\*0\)/40\) \+ 1 = 0 is empty") as caught:
            gn.avg_pool2d(x, 40)
        assert raised_at(caught) in str(caught.value)
        with pytest.raises(gn.ShapeError, match=r"pooling takes an int, a pair \(ph, pw\) or \(\(top, bottom\), "
                                                r"\(left, right\)\)"):
            gn.max_pool2d(x, 2, padding="same")
        with pytest.raises(gn.ShapeError, match=r"ceil\(\(28 - 31 \+ 2\*0\)/2\) \+ 1 = 0 is empty: the 31-tall "
                                                r"window overhangs the padded 28-tall input \(28 \+ 0 \+ 0\) by 3, "
                                                r"and ceil_mode keeps a partial window only where it overhangs by less "
                                                r"than the stride 2; pad at least 2 more in total"):
            gn.max_pool2d(x, 31, stride=2, ceil_mode=True)


def test_matmul_inner_mismatch_names_both_sizes():
    with gn.Graph():
        a = gn.placeholder((None, 3), name="a")
        b = gn.placeholder((4, 5), name="b")
        with pytest.raises(gn.ShapeError, match=r"inner sizes differ: a \(None, 3\) @ b \(4, 5\) needs a's columns "
                                                r"\(3\) to equal b's rows \(4\)") as caught:
            a @ b
    assert str(caught.value).startswith(f"matmul 'matmul' ({raised_at(caught)})")


def test_matmul_of_an_unflattened_image_suggests_flatten():
    with gn.Graph():
        x = gn.placeholder((None, 1, 28, 28), name="x")
        v = gn.variable(np.zeros((784, 10), "float32"), name="v")
        with pytest.raises(gn.ShapeError, match=r"a looks unflattened: gn\.flatten\(a\) gives \(None, 784\)"):
            x @ v
        with pytest.raises(gn.ShapeError) as caught:        # no hint where flattening would not help either
            gn.placeholder((None, 2, 3, 5)) @ v
        assert "flatten" not in str(caught.value)


def test_matmul_dtype_mismatch_is_a_shape_error():
    with gn.Graph():
        a = gn.placeholder((2, 3), name="a")
        b = gn.placeholder((3, 4), dtype="float64", name="b")
        with pytest.raises(gn.ShapeError, match=r"dtypes differ: float32 @ float64") as caught:
            a @ b
    assert raised_at(caught) in str(caught.value)


def test_reshape_and_axes_errors():
    with gn.Graph():
        x = gn.placeholder((2, 3, 4), name="x")
        with pytest.raises(gn.ShapeError, match=r"cannot reshape \(2, 3, 4\) \(24 elements\) to \(5, -1\): 24 is not "
                                                r"a multiple of 5") as caught:
            gn.reshape(x, (5, -1))
        assert raised_at(caught) in str(caught.value)
        with pytest.raises(gn.ShapeError, match=r"\(24 elements\) to \(5, 5\) \(25 elements\)"):
            x.reshape(5, 5)
        with pytest.raises(gn.ShapeError, match=r"^sum \(test_errors\.py:\d+\): axis 3 is out of range for a tensor "
                                                r"of rank 3 \(valid: -3\.\.2\)") as caught:
            gn.sum(x, axis=3)
        assert raised_at(caught) in str(caught.value)
        with pytest.raises(gn.ShapeError, match=r"axis \(1, -2\) repeats an axis"):
            gn.mean(x, axis=(1, -2))
        with pytest.raises(gn.ShapeError, match=r"index 3 is out of bounds for axis 1 with size 3") as caught:
            x[:, 3]
        assert raised_at(caught) in str(caught.value)
        with pytest.raises(gn.ShapeError, match=r"differ on axis 1") as caught:
            gn.concat([x, gn.placeholder((2, 4, 4))], axis=2)
        assert raised_at(caught) in str(caught.value)


def test_loss_shape_errors_have_hints():
    with gn.Graph():
        pred = gn.placeholder((None, 1), name="pred")
        target = gn.placeholder((None,), name="target")
        with pytest.raises(gn.ShapeError, match=r"prediction \(None, 1\) and target \(None,\) must have the same "
                                                r"shape \(no broadcasting in a loss\); .*reshape the target to "
                                                r"\(None, 1\)") as caught:
            gn.mse(pred, target)
        assert str(caught.value).startswith(f"mse 'mse' ({raised_at(caught)})")
        logits = gn.placeholder((None, 10), name="logits")
        one_hot = gn.placeholder((None, 10), name="one_hot")
        with pytest.raises(gn.ShapeError, match=r"labels must be a vector of class indices \(batch,\), got "
                                                r"\(None, 10\); one-hot labels\? pass labels\.argmax\(1\)") as caught:
            gn.softmax_cross_entropy(logits, one_hot)
        assert raised_at(caught) in str(caught.value)
        float_labels = gn.placeholder((None,), name="float_labels")
        with pytest.raises(gn.ShapeError, match=r"labels must be integer class indices, got dtype float32"):
            gn.softmax_cross_entropy(logits, float_labels)


def test_shape_error_traceback_is_short():
    """Raised `from None`: no chained internal exception in the traceback the user reads."""
    with gn.Graph():
        x = gn.placeholder((None, 1, 4, 4), name="x")
        w = gn.variable(np.zeros((2, 1, 5, 5), "float32"), name="w")
        for make in (lambda: gn.conv2d(x, w),                  # raised in Graph.apply
                     lambda: gn.conv2d(x, w, stride=0),        # raised by a check before the node is made
                     lambda: gn.sum(x, axis=7)):
            with pytest.raises(gn.ShapeError) as caught:
                make()
            error = caught.value
            assert error.__cause__ is None
            assert error.__context__ is None or error.__suppress_context__
            text = "".join(traceback.format_exception(error))
            assert "During handling of the above exception" not in text
            assert "direct cause" not in text
            assert "ShapeRuleViolation" not in text
            assert text.count(f'File "{__file__}"') >= 1


# ----------------------------------------------------------------------------------------------------------------
# FeedError at run time


def test_feed_of_wrong_rank(mnist):
    g, x, _, w, x_site, _ = mnist
    with g:
        prog = gn.compile(gn.conv2d(x, w))
    with pytest.raises(gn.FeedError, match=rf"placeholder 'x' \({x_site}\) expects shape \(None, 1, 28, 28\) "
                                           r"\(None = any size\), got \(4, 28, 28\); a size-1 axis is missing"):
        prog.run({x: np.zeros((4, 28, 28), "float32")})
    with pytest.raises(gn.FeedError, match=r"expects shape \(None, 1, 28, 28\) .*got \(4, 1, 28, 28, 1\)"):
        prog.run({x: np.zeros((4, 1, 28, 28, 1), "float32")})


def test_feed_of_wrong_known_size(mnist):
    g, x, _, w, x_site, _ = mnist
    with g:
        prog = gn.compile(gn.conv2d(x, w))
    with pytest.raises(gn.FeedError, match=rf"placeholder 'x' \({x_site}\) expects shape \(None, 1, 28, 28\) "
                                           r"\(None = any size\), got \(4, 1, 28, 27\)$"):
        prog.run({x: np.zeros((4, 1, 28, 27), "float32")})


def test_feed_in_nhwc_gets_the_layout_hint(mnist):
    g, x, _, w, x_site, _ = mnist
    with g:
        prog = gn.compile(gn.conv2d(x, w))
    with pytest.raises(gn.FeedError, match=rf"placeholder 'x' \({x_site}\) expects shape \(None, 1, 28, 28\).*got "
                                           r"\(4, 28, 28, 1\); it looks NHWC: graphnet expects NCHW, use "
                                           r"array\.transpose\(0, 3, 1, 2\)"):
        prog.run({x: np.zeros((4, 28, 28, 1), "float32")})


def test_float_fed_to_int64_labels(mnist):
    g, _, y, _, _, y_site = mnist
    with g:
        logits = gn.placeholder((None, 10), name="logits")
        prog = gn.compile(gn.softmax_cross_entropy(logits, y))
    with pytest.raises(gn.FeedError, match=rf"placeholder 'y' \({y_site}\) has dtype int64; a float64 array does "
                                           r"not convert safely \(floats are not class labels"):
        prog.run({logits: np.zeros((2, 10), "float32"), y: np.array([1.0, 2.0])})
    with pytest.raises(gn.FeedError, match=r"a complex128 array does not convert safely"):
        prog.run({logits: np.zeros((2, 10)) + 0j, y: np.array([1, 2])})
    # safe conversions are accepted: int32 labels, float64 and int logits
    prog.run({logits: np.zeros((2, 10)), y: np.array([1, 2], dtype=np.int32)})
    prog.run({logits: np.zeros((2, 10), dtype=np.int64), y: np.array([1, 2])})


def test_missing_feed_lists_the_placeholders_the_fetches_need(mnist):
    g, x, y, w, _, _ = mnist
    with g:
        unused = gn.placeholder((3,), name="unused")          # not needed: must not be listed
        logits = gn.mean(gn.conv2d(x, w), axis=(2, 3), name="logits")
        loss = gn.softmax_cross_entropy(logits, y, name="loss")
    prog = gn.compile(loss)
    with pytest.raises(gn.FeedError, match=r"missing feeds: the fetches 'loss' need the placeholder\(s\) "
                                           r"'x' \(None, 1, 28, 28\) float32, 'y' \(None,\) int64") as caught:
        prog.run({})
    assert "unused" not in str(caught.value)
    with pytest.raises(gn.FeedError, match=r"missing feeds: .* 'y' \(None,\) int64") as caught:
        prog.run({x: np.zeros((2, 1, 28, 28), "float32")})
    assert "'x'" not in str(caught.value)


def test_feeding_a_non_placeholder(mnist):
    g, x, _, w, _, _ = mnist
    with g:
        h = gn.conv2d(x, w)
    prog = gn.compile(h)
    feed = np.zeros((1, 1, 28, 28), "float32")
    with pytest.raises(gn.FeedError, match=r"cannot feed .*'w'.*only placeholders are fed; this program's are 'x'"):
        prog.run({x: feed, w: np.zeros((6, 1, 5, 5), "float32")})
    with pytest.raises(gn.FeedError, match=r"cannot feed .*only placeholders are fed"):
        prog.run({x: feed, h: np.zeros((1, 6, 24, 24), "float32")})
    with pytest.raises(gn.FeedError, match=r"cannot feed 'nope'"):
        prog.run({"nope": feed})
    with pytest.raises(gn.FeedError, match=r"feeds must be a dict"):
        prog.run([feed])


def test_label_out_of_range_at_run_time():
    with gn.Graph():
        logits = gn.placeholder((None, 10), name="logits")
        labels = gn.placeholder((None,), dtype="int64", name="labels")
        loss, loss_site = gn.softmax_cross_entropy(logits, labels), here()
    prog = gn.compile(loss)
    with pytest.raises(gn.FeedError, match=r"labels must be class indices in \[0, 10\), got 12") as caught:
        prog.run({logits: np.zeros((3, 10), "float32"), labels: np.array([1, 12, 3])})
    notes = "\n".join(getattr(caught.value, "__notes__", []))
    assert loss_site in notes                                   # which op, created where
    with pytest.raises(gn.FeedError, match=r"got -1"):
        prog.run({logits: np.zeros((3, 10), "float32"), labels: np.array([1, -1, 3])})


def test_label_out_of_range_when_only_the_gradient_is_fetched():
    """The backward step must check the labels too: -1 would otherwise silently pick the last class."""
    with gn.Graph():
        logits = gn.placeholder((None, 4), name="logits")
        labels = gn.placeholder((None,), dtype="int64", name="labels")
        w = gn.variable(np.eye(4, dtype="float32"), name="w")
        dw = gn.gradients(gn.softmax_cross_entropy(logits @ w, labels), w)
    prog = gn.compile(dw)
    ops = [step.node.op.name for step in prog.plan(batch_size=2).steps]
    assert "softmax_cross_entropy_grad" in ops and "softmax_cross_entropy" not in ops     # no forward loss step
    for bad in (-1, 4):
        with pytest.raises(gn.FeedError, match=rf"labels must be class indices in \[0, 4\), got {bad}"):
            prog.run({logits: np.ones((2, 4)), labels: np.array([1, bad])})
    prog.run({logits: np.ones((2, 4)), labels: np.array([1, 3])})


def test_batches_of_two_none_sizes_assumed_equal_must_agree():
    with gn.Graph():
        x = gn.placeholder((None, 3), name="x")
        z = gn.placeholder((None, 3), name="z")
        s, site = x + z, here()
    prog = gn.compile(s)
    with pytest.raises(gn.ShapeError, match=r"None") as caught:
        prog.run({x: np.ones((4, 3), "float32"), z: np.ones((1, 3), "float32")})
    message = str(caught.value)
    assert message.startswith(f"add 'add' ({site})")
    assert "size 1" in message and "4" in message and "'x' (4, 3)" in message and "'z' (1, 3)" in message
    np.testing.assert_array_equal(prog.run({x: np.ones((4, 3)), z: np.ones((4, 3))}), np.full((4, 3), 2.0))


def test_sizes_unknown_at_build_time_are_checked_against_the_formula_at_run_time():
    with gn.Graph():
        images = gn.placeholder((None, 1, None, None), name="images")
        w = gn.variable(np.ones((2, 1, 3, 3), "float32"), name="w")
        y, site = gn.conv2d(images, w, stride=2, name="conv"), here()
    assert y.shape == (None, 2, None, None)
    prog = gn.compile(y)
    assert prog.run({images: np.ones((1, 1, 7, 5), "float32")}).shape == (1, 2, 3, 2)
    with pytest.raises(gn.ShapeError, match=r"floor\(\(2 - 3 \+ 2\*0\)/2\) \+ 1 = 0 is empty.*with the feeds "
                                            r"'images' \(1, 1, 2, 5\)") as caught:
        prog.run({images: np.ones((1, 1, 2, 5), "float32")})
    assert str(caught.value).startswith(f"conv2d 'conv' ({site})")


def test_batch_size_mismatch_between_logits_and_labels_at_run_time():
    with gn.Graph():
        logits = gn.placeholder((None, 10), name="logits")
        labels = gn.placeholder((None,), dtype="int64", name="labels")
        loss, site = gn.softmax_cross_entropy(logits, labels), here()
    prog = gn.compile(loss)
    with pytest.raises(gn.ShapeError, match=r"batch sizes differ: logits \(2, 10\), labels \(3,\)") as caught:
        prog.run({logits: np.zeros((2, 10)), labels: np.array([1, 2, 3])})
    assert site in str(caught.value)


# ----------------------------------------------------------------------------------------------------------------
# GraphError


def test_gradient_without_a_path_names_the_variable():
    with gn.Graph():
        x = gn.placeholder((None, 3), name="x")
        w = gn.variable(np.ones((3, 2), "float32"), name="w")
        orphan, orphan_site = gn.variable(np.ones((3, 2), "float32"), name="orphan"), here()
        loss = gn.sum(x @ w, name="loss")
        with pytest.raises(gn.GraphError) as caught:
            gn.gradients(loss, [w, orphan])
    message = str(caught.value)
    assert message.startswith(f"gradients ({raised_at(caught)}): 'orphan' (variable, {orphan_site}) does not "
                              "affect 'loss'")
    assert "no chain of differentiable ops" in message


def test_gradient_through_a_non_differentiable_path_is_an_error_not_none():
    with gn.Graph():
        x = gn.placeholder((None, 3), name="x")
        w = gn.variable(np.ones((3,), "float32"), name="w")
        counter = gn.variable(np.zeros((3,), "float32"), name="counter")
        bump = gn.assign(counter, counter + w)              # assign is not differentiable
        loss = gn.sum(x * bump, name="loss")
        with pytest.raises(gn.GraphError, match=r"'w' \(variable, .*\) does not affect 'loss'"):
            gn.gradients(loss, w)


def test_gradients_of_a_non_scalar():
    with gn.Graph():
        x = gn.placeholder((None, 3), name="x")
        w = gn.variable(np.ones((3, 2), "float32"), name="w")
        y = gn.matmul(x, w, name="y")
        with pytest.raises(gn.GraphError, match=r"y 'y' has shape \(None, 2\); it must be a scalar — reduce it "
                                                r"first") as caught:
            gn.gradients(y, [w])
    assert str(caught.value).startswith(f"gradients ({raised_at(caught)})")


def test_gradients_with_respect_to_an_int_tensor():
    with gn.Graph():
        logits = gn.placeholder((None, 10), name="logits")
        labels = gn.placeholder((None,), dtype="int64", name="labels")
        loss = gn.softmax_cross_entropy(logits, labels)
        with pytest.raises(gn.GraphError, match=r"'labels' has dtype int64; integer tensors such as labels have "
                                                r"no gradient") as caught:
            gn.gradients(loss, [logits, labels])
    assert raised_at(caught) in str(caught.value)


def test_mixing_two_graphs():
    g1, g2 = gn.Graph(), gn.Graph()
    with g1:
        a = gn.placeholder((None, 3), name="a")
    with g2:
        b = gn.placeholder((None, 3), name="b")
        with pytest.raises(gn.GraphError, match=r"input 'a' belongs to another graph") as caught:
            b + a
        assert str(caught.value).startswith(f"add ({raised_at(caught)})")
    with pytest.raises(gn.GraphError, match=r"belong to different graphs"):
        gn.compile([a, b])
    with g1:
        loss = gn.sum(a)
    with pytest.raises(gn.GraphError, match=r"'b' belongs to another graph"):
        gn.gradients(loss, [b])


def test_unknown_device():
    with gn.Graph():
        x = gn.placeholder((None, 3), name="x")
    with pytest.raises(gn.GraphError, match=r"unknown device 'tpu'; available: .*reference"):
        gn.compile(x, device="tpu")


def test_assigning_to_a_non_variable():
    with gn.Graph():
        x = gn.placeholder((None, 3), name="x")
        w = gn.variable(np.ones((3, 3), "float32"), name="w")
        with pytest.raises(gn.GraphError, match=r"'x' is a placeholder, not a variable; only variables have "
                                                r"storage to write") as caught:
            gn.assign(x, x * 2)
        assert str(caught.value).startswith(f"assign ({raised_at(caught)}): ")
        with pytest.raises(gn.GraphError, match=r"is a matmul, not a variable"):
            gn.assign(x @ w, x @ w)
        c = gn.constant(np.ones(3, "float32"), name="c")
        with pytest.raises(gn.GraphError, match=r"'c' is a constant, not a variable"):
            gn.assign(c, c * 2)
        with pytest.raises(gn.GraphError, match=r"value .* is float64 but variable 'w' is float32") as caught:
            gn.assign(w, np.ones((3, 3)))
        assert raised_at(caught) in str(caught.value)
        with pytest.raises(gn.ShapeError, match=r"value \(3, 2\) does not fit variable \(3, 3\)") as caught:
            gn.assign(w, gn.variable(np.ones((3, 2), "float32")))
        assert raised_at(caught) in str(caught.value)


def test_assigning_the_same_variable_twice_in_one_program():
    with gn.Graph():
        w = gn.variable(np.ones(3, "float32"), name="w")
        first, first_site = gn.assign(w, w * 2), here()
        second, second_site = gn.assign(w, w * 3), here()
    with pytest.raises(gn.GraphError, match=r"variable 'w' is assigned twice in one program") as caught:
        gn.compile([first, second])
    message = str(caught.value)
    assert message.startswith(f"compile ({raised_at(caught)})")
    # both sites, in either order (the compiler walks a set of nodes)
    assert f"({first_site} and {second_site})" in message or f"({second_site} and {first_site})" in message
    # each alone is fine
    np.testing.assert_array_equal(gn.compile(first).run(), np.full(3, 2.0))


def test_bad_placeholder_and_source_arguments():
    with gn.Graph():
        with pytest.raises(gn.GraphError, match=r"shape must be a tuple such as \(None, 784\), got 784"):
            gn.placeholder(784)
        with pytest.raises(gn.GraphError, match=r"each size must be an int >= 0 or None"):
            gn.placeholder((None, -1))
        with pytest.raises(gn.GraphError, match=r"dtype 'floaty' is not a NumPy dtype"):
            gn.placeholder((None, 3), dtype="floaty")
        x = gn.placeholder((None, 3), name="x")
        with pytest.raises(gn.GraphError, match=r"'x' is computed by placeholder, not stored"):
            x.numpy()
        with pytest.raises(gn.GraphError, match=r"has no value while the graph is built"):
            if x:
                pass
        w = gn.variable(np.ones((3, 2), "float32"), name="w")
        with pytest.raises(gn.ShapeError, match=r"variable 'w' has shape \(3, 2\), the value has \(2, 3\)"):
            w.assign_value(np.ones((2, 3)))


def test_compile_argument_errors():
    with gn.Graph():
        gn.placeholder((None, 3), name="x")
    with pytest.raises(gn.GraphError, match=r"nothing to fetch"):
        gn.compile([])
    with pytest.raises(gn.GraphError, match=r"fetches must be tensors, got ndarray"):
        gn.compile([np.ones(3)])


def test_every_error_is_a_graphnet_error_and_a_value_error():
    for cls in (gn.ShapeError, gn.FeedError, gn.GraphError):
        assert issubclass(cls, gn.GraphnetError) and issubclass(cls, ValueError)
