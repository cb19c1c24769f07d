"""graphnet.nn: names, parameter counts and FLOPs, the two modes, normalization layers against NumPy, initializers."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import graphnet as gn
from graphnet import nn
from graphnet.nn import initializers

from gradcheck import check_gradients


def lenet5(**kwargs):
    return nn.Sequential([nn.Conv2D(6, 5, padding=2, activation="relu"), nn.MaxPool2D(2),
                          nn.Conv2D(16, 5, activation="relu"), nn.MaxPool2D(2), nn.Flatten(),
                          nn.Dense(120, activation="relu"), nn.Dense(84, activation="relu"), nn.Dense(7)],
                         name="lenet5", **kwargs)


# ---------------------------------------------------------------------------------------------------------------
# Names


def test_sequential_names_layers_by_kind_and_variables_by_layer():
    model = lenet5()
    model.build((1, 28, 28))
    assert [layer.name for layer in model] == ["conv1", "maxpool1", "conv2", "maxpool2", "flatten1", "dense1",
                                               "dense2", "dense3"]
    assert list(model.variables()) == ["conv1/weight", "conv1/bias", "conv2/weight", "conv2/bias", "dense1/weight",
                                       "dense1/bias", "dense2/weight", "dense2/bias", "dense3/weight", "dense3/bias"]
    assert all(name == var.name for name, var in model.variables().items())     # the graph uses the same names
    assert model.variables()["conv2/weight"].shape == (16, 6, 5, 5)


def test_subclassed_models_name_layers_after_attributes_and_nest():
    class Block(nn.Model):
        def __init__(self, name=None):
            super().__init__(name=name)
            self.conv = nn.Conv2D(4, 3, padding=1)
            self.norm = nn.BatchNorm2D()

        def call(self, x, training):
            return gn.relu(self.norm(self.conv(x, training), training))

    class Net(nn.Model):
        def __init__(self):
            super().__init__(name="net")
            self.block1 = Block()
            self.head = nn.Sequential([nn.GlobalAvgPool2D(), nn.Dense(3)])

        def call(self, x, training):
            return self.head(self.block1(x, training), training)

    net = Net()
    out = net.build((2, 8, 8))
    assert out.shape == (None, 3)
    assert list(net.variables()) == ["block1/conv/weight", "block1/conv/bias", "block1/norm/gamma",
                                     "block1/norm/beta", "block1/norm/running_mean", "block1/norm/running_var",
                                     "head/dense1/weight", "head/dense1/bias"]
    assert net.get_layer("block1/conv").name == "conv"
    assert "block1/conv (Conv2D)" in net.summary(print_fn=None)


def test_duplicate_names_and_misplaced_calls_are_refused():
    with pytest.raises(gn.GraphError, match="already has a layer named 'fc'"):
        nn.Sequential([nn.Dense(3, name="fc"), nn.Dense(2, name="fc")])
    model = nn.Sequential([nn.Dense(2)])
    model.build((3,))
    with gn.Graph():
        other = gn.placeholder((None, 3))
        with pytest.raises(gn.GraphError, match="another graph"):
            model(other)
    with pytest.raises(gn.ShapeError, match="add a Flatten"):
        nn.Sequential([nn.Dense(3)]).build((2, 4, 4))
    with pytest.raises(gn.GraphError, match="unknown activation"):
        nn.Dense(3, activation="swishy")
    with pytest.raises(gn.GraphError, match="unknown initializer"):
        initializers.get("glorious")


# ---------------------------------------------------------------------------------------------------------------
# Parameter counts and FLOPs: the formulas of the summary


@given(st.integers(1, 50), st.integers(1, 50), st.booleans())
def test_dense_has_n_in_plus_one_times_n_out_parameters(n_in, n_out, use_bias):
    model = nn.Sequential([nn.Dense(n_out, use_bias=use_bias)])
    model.build((n_in,))
    assert model.count_params() == ((n_in + 1) * n_out if use_bias else n_in * n_out)
    assert model[0].flops == 2 * n_in * n_out + (n_out if use_bias else 0)


@settings(max_examples=20)
@given(st.integers(1, 4), st.integers(1, 3), st.integers(1, 3), st.integers(1, 3), st.sampled_from([1, 2]))
def test_conv_has_k_times_c_r_s_plus_one_parameters(k, c, r, s, groups):
    k, c = k * groups, c * groups
    model = nn.Sequential([nn.Conv2D(k, (r, s), groups=groups)])
    model.build((c, 6, 7))
    assert model.count_params() == k * (c // groups * r * s + 1)
    h_out, w_out = 6 - r + 1, 7 - s + 1
    assert model[0].flops == 2 * k * h_out * w_out * (c // groups) * r * s + k * h_out * w_out
    assert model[0].param_formula() == f"{k}·({c // groups}·{r}·{s}+1)"


def test_summary_of_lenet5_shows_shapes_counts_formulas_and_matches_the_schedule_flops():
    model = lenet5()
    model.add(nn.Dropout(0.5))
    model.add(nn.BatchNorm1D())
    out = model.build((1, 28, 28))
    text = model.summary(print_fn=None)
    for expected in ("conv1 (Conv2D)", "(None, 6, 28, 28)", "156", "6·(1·5·5+1)", "16·(6·5·5+1)", "2,416",
                     "(400+1)·120", "48,120", "(84+1)·7", "595", "(None, 16, 5, 5)"):
        assert expected in text, expected
    counts = model.parameter_counts()
    assert counts == {"trainable": 61_451 + 14, "frozen": 0, "statistics": 14}
    assert f"Total params: {61_451 + 28:,}" in text
    program = gn.compile(out)
    schedule_flops = sum(step.flops for step in program.plan(batch_size=1).steps)
    summary_flops = sum(layer.flops for layer in model)
    assert summary_flops == schedule_flops
    assert f"Forward FLOPs per sample: {schedule_flops:,}" in text


def test_frozen_layers_are_counted_and_shown():
    model = lenet5()
    model.build((1, 28, 28))
    model.freeze(nn.Conv2D)
    text = model.summary(print_fn=None)
    assert "frozen: 2,572  (conv1, conv2)" in text
    assert [line.split()[0] for line in text.splitlines() if line.endswith("frozen")] == ["conv1", "conv2"]
    assert not model.variables()["conv1/weight"].attrs["trainable"]
    model.unfreeze("conv1")
    assert model.parameter_counts()["frozen"] == 2_416


def test_replacing_the_head_builds_a_new_layer_on_the_next_call():
    model = lenet5()
    model.build((1, 28, 28))
    old = model.replace("dense3", nn.Dense(3, name="head"))
    assert old.name == "dense3" and "not built" in model.summary(print_fn=None)
    out = model.build((1, 28, 28))
    assert out.shape == (None, 3)
    assert "head/weight" in model.variables() and "dense3/weight" not in model.variables()
    model.pop()
    assert model.add(nn.Dense(5)).name == "dense4"          # numbers are not reused


# ---------------------------------------------------------------------------------------------------------------
# Training and inference branches


def test_training_and_inference_branches_share_variables():
    model = nn.Sequential([nn.Dense(16, activation="relu"), nn.Dropout(0.5), nn.BatchNorm1D(), nn.Dense(3)],
                          seed=3)
    model.build((4,))
    with model.graph:
        x = gn.placeholder((None, 4), name="x")
        train_out = model(x, training=True)
        infer_out = model(x, training=False)
    train_program, infer_program = gn.compile(train_out), gn.compile(infer_out)
    variables = set(model.variables().values())
    assert variables <= set(train_program.stored) and variables <= set(infer_program.stored)
    batch = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    first = infer_program.run({x: batch})
    assert np.array_equal(first, infer_program.run({x: batch}))          # inference is deterministic
    assert not np.array_equal(train_program.run({x: batch}), first)       # dropout and batch statistics
    after_training = infer_program.run({x: batch})
    assert not np.array_equal(after_training, first)      # the training run updated the shared running statistics
    head_bias = model.variables()["dense2/bias"]
    head_bias.assign_value(head_bias.numpy() + 1.0)
    np.testing.assert_allclose(infer_program.run({x: batch}), after_training + 1.0, rtol=1e-5, atol=1e-5)


def test_dropout_masks_depend_on_the_seed_and_the_run_not_on_the_build():
    def masks(seed):
        model = nn.Sequential([nn.Dropout(0.25)], seed=seed)
        with gn.Graph():
            x = gn.placeholder((None, 1000), name="x")
            program = gn.compile(model(x, training=True))
        ones = np.ones((1, 1000), "float32")
        return program.run({x: ones}), program.run({x: ones})

    first, second = masks(0)
    assert set(np.unique(first)) == {0.0, np.float32(1 / 0.75)}
    assert abs((first == 0).mean() - 0.25) < 0.05
    assert not np.array_equal(first, second)                  # a new mask on every run
    again = masks(0)
    assert np.array_equal(first, again[0]) and np.array_equal(second, again[1])
    assert not np.array_equal(first, masks(1)[0])


def test_batch_norm_uses_batch_statistics_in_training_and_running_ones_in_inference():
    layer = nn.BatchNorm2D(momentum=0.1)
    with gn.Graph():
        x = gn.placeholder((None, 3, 4, 4), "float64", name="x")
        train_program = gn.compile(layer(x, training=True))
        infer_program = gn.compile(layer(x, training=False))
    batch = np.random.default_rng(1).normal(2.0, 3.0, size=(5, 3, 4, 4))
    y = train_program.run({x: batch})
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-9)
    np.testing.assert_allclose(y.std(axis=(0, 2, 3)), 1, rtol=1e-4)
    mean, var = batch.mean(axis=(0, 2, 3)), batch.var(axis=(0, 2, 3), ddof=1)
    np.testing.assert_allclose(layer.running_mean.numpy(), 0.1 * mean, rtol=1e-12)
    np.testing.assert_allclose(layer.running_var.numpy(), 0.9 + 0.1 * var, rtol=1e-12)
    expected = (batch - (0.1 * mean)[:, None, None]) / np.sqrt(0.9 + 0.1 * var + 1e-5)[:, None, None]
    np.testing.assert_allclose(infer_program.run({x: batch}), expected, rtol=1e-10)


# ---------------------------------------------------------------------------------------------------------------
# Layer, group and instance norm against NumPy


def numpy_group_norm(x, groups, gamma, beta, eps=1e-5):
    n, c = x.shape[:2]
    grouped = x.reshape(n, groups, -1)
    mean = grouped.mean(axis=2, keepdims=True)
    var = grouped.var(axis=2, keepdims=True)
    normalized = ((grouped - mean) / np.sqrt(var + eps)).reshape(x.shape)
    affine = (1, c) + (1,) * (x.ndim - 2)
    return normalized * gamma.reshape(affine) + beta.reshape(affine)


@settings(max_examples=15)
@given(st.sampled_from(["layer", "group", "instance"]), st.sampled_from([(4,), (4, 5), (4, 3, 3)]),
       st.integers(0, 1000))
def test_layer_group_and_instance_norm_match_numpy(kind, sample_shape, seed):
    rng = np.random.default_rng(seed)
    layer = {"layer": lambda: nn.LayerNorm(ndim=len(sample_shape)), "group": lambda: nn.GroupNorm(2),
             "instance": lambda: nn.InstanceNorm()}[kind]()
    with gn.Graph():
        x = gn.placeholder((None,) + sample_shape, "float64", name="x")
        out = layer(x)
    gamma, beta = rng.normal(size=layer.gamma.shape), rng.normal(size=layer.beta.shape)
    layer.gamma.assign_value(gamma)
    layer.beta.assign_value(beta)
    batch = rng.normal(1.0, 2.0, size=(3,) + sample_shape)
    got = gn.compile(out).run({x: batch})
    if kind == "layer":
        axes = tuple(range(1, batch.ndim))
        normalized = (batch - batch.mean(axis=axes, keepdims=True)) / np.sqrt(batch.var(axis=axes, keepdims=True)
                                                                               + 1e-5)
        expected = normalized * gamma + beta
    else:
        expected = numpy_group_norm(batch, 2 if kind == "group" else sample_shape[0], gamma, beta)
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)


def test_group_norm_gradients_match_finite_differences():
    x = np.random.default_rng(0).normal(size=(2, 4, 3, 3))
    check_gradients(lambda t: nn.GroupNorm(2)(t), [x])


def test_pooling_layers_pass_ceil_mode_padding_and_count_include_pad_to_their_ops():
    """GoogLeNet's stem pool (3×3/2, ceil_mode) and an average with asymmetric padding that leaves the padding out
    of the divisor: the layers' output sizes and values are the ops' own."""
    x_value = np.random.default_rng(0).normal(size=(2, 3, 9, 9))
    layers = [nn.MaxPool2D(3, stride=2, ceil_mode=True),
              nn.AvgPool2D(3, stride=2, padding=((1, 0), (0, 1)), ceil_mode=True, count_include_pad=False)]
    with gn.Graph():
        x = gn.placeholder((None, 3, 9, 9), "float64", name="x")
        outputs = [layer(x) for layer in layers]
        ops = [gn.max_pool2d(x, 3, stride=2, ceil_mode=True),
               gn.avg_pool2d(x, 3, stride=2, padding=((1, 0), (0, 1)), ceil_mode=True, count_include_pad=False)]
    assert [o.shape for o in outputs] == [(None, 3, 4, 4), (None, 3, 5, 5)]
    got, expected = gn.compile(outputs).run({x: x_value}), gn.compile(ops).run({x: x_value})
    for g, e in zip(got, expected):
        np.testing.assert_array_equal(g, e)
    assert layers[0].count_params() == 0 and layers[1].count_include_pad is False


def test_local_response_norm_layer_is_pytorchs_formula_without_parameters():
    rng = np.random.default_rng(1)
    layer = nn.LocalResponseNorm(3, alpha=0.3, beta=0.5, k=2.0)
    with gn.Graph():
        x = gn.placeholder((None, 4, 2, 2), "float64", name="x")
        y_train, y_infer = layer(x, training=True), layer(x, training=False)
    value = rng.normal(size=(2, 4, 2, 2))
    squares = np.pad(value ** 2, ((0, 0), (1, 1), (0, 0), (0, 0)))
    expected = value / (2.0 + 0.3 / 3 * (squares[:, :-2] + squares[:, 1:-1] + squares[:, 2:])) ** 0.5
    for got in gn.compile([y_train, y_infer]).run({x: value}):
        np.testing.assert_allclose(got, expected, rtol=1e-12)
    assert layer.count_params() == 0 and layer.name == "lrn"


# ---------------------------------------------------------------------------------------------------------------
# Initializers


def test_initial_values_depend_on_the_seed_and_the_name_only():
    def weights(seed, order):
        layers = [nn.Dense(8, name="a"), nn.Dense(8, name="b")]
        model = nn.Sequential(layers if order else layers[::-1], seed=seed)
        with gn.Graph():
            x = gn.placeholder((None, 8))
            model(x)
        return model.get_weights()

    first = weights(0, True)
    assert all(np.array_equal(v, weights(0, False)[k]) for k, v in first.items())   # not the build order
    assert not np.array_equal(first["a/weight"], weights(1, True)["a/weight"])
    assert not np.array_equal(first["a/weight"], first["b/weight"])


def test_a_nested_model_draws_from_the_outer_models_seed():
    class Block(nn.Model):
        def __init__(self):
            super().__init__(name="block")
            self.dense = nn.Dense(3)

        def call(self, x, training):
            return self.dense(x, training)

    def weights(seed):
        model = nn.Sequential([nn.Dense(3), Block()], seed=seed)
        with gn.Graph():
            model(gn.placeholder((None, 4)))
        return model.get_weights()

    assert not np.array_equal(weights(0)["block/dense/weight"], weights(5)["block/dense/weight"])
    np.testing.assert_array_equal(weights(5)["block/dense/weight"], weights(5)["block/dense/weight"])


def test_summary_total_flops_include_ops_written_in_call():
    class Residual(nn.Model):
        def __init__(self):
            super().__init__(name="residual")
            self.dense = nn.Dense(6)

        def call(self, x, training):
            return x + self.dense(x, training)          # the addition belongs to no layer

    model = Residual()
    out = model.build((6,))
    text = model.summary(print_fn=None)
    schedule_flops = sum(step.flops for step in gn.compile(out).plan(batch_size=1).steps)
    assert schedule_flops == model.dense.flops + 6
    assert f"Forward FLOPs per sample: {schedule_flops:,} ({schedule_flops} FLOP)" in text
    assert "of which in the model's own ops (not in a layer row): 6" in text


@pytest.mark.parametrize("name, shape, check", [
    ("he_normal", (400, 300), lambda a, fi, fo: abs(a.std() - math.sqrt(2 / fi)) < 0.02 * math.sqrt(2 / fi)),
    ("glorot_normal", (64, 32, 3, 3), lambda a, fi, fo: abs(a.std() - math.sqrt(2 / (fi + fo))) < 0.02 * a.std()),
    ("glorot_uniform", (300, 200), lambda a, fi, fo: np.abs(a).max() <= math.sqrt(6 / (fi + fo))
     and np.abs(a).max() > 0.99 * math.sqrt(6 / (fi + fo))),
    ("he_uniform", (16, 8, 5, 5), lambda a, fi, fo: np.abs(a).max() <= math.sqrt(6 / fi)),
    ("zeros", (3, 4), lambda a, fi, fo: not a.any()),
])
def test_initializers_follow_their_fan_formulas(name, shape, check):
    array = initializers.get(name)(shape, np.dtype("float64"), np.random.default_rng(0))
    fan_in, fan_out = initializers.fans(shape)
    assert array.shape == shape and check(array, fan_in, fan_out)
    assert initializers.fans((64, 32, 3, 3)) == (32 * 9, 64 * 9)
