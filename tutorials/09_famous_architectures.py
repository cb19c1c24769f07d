"""Lesson 9 — famous architectures in miniature: VGG, Inception, ResNet and MobileNetV2, built from graphnet layers.

What this teaches — the one idea each architecture added, at a size that trains on a laptop core:
  * VGG (2014): only 3×3 convolutions, stacked. Two 3×3 layers see a 5×5 window, as one 5×5 layer does, with
    2·9·C² weights instead of 25·C² and a ReLU in between. Most of VGG's weights sit in its dense layers.
  * Inception (GoogLeNet, 2014): parallel branches — 1×1, 3×3 and 5×5 convolutions and a pooling — concatenated
    along the channels, so the next layer picks the scale it needs; 1×1 "reduce" convolutions make it cheap.
  * ResNet (2015): y = relu(F(x) + x). The block learns a residual F; the identity path lets gradients and
    signals pass straight through, which is what made networks of 100+ layers trainable. Global average pooling
    replaces the big dense layers.
  * MobileNetV2 (2018): the inverted residual block — expand with a 1×1 convolution (×6 channels), filter with a
    depthwise 3×3 convolution (groups = channels: one filter per channel), project back with a linear 1×1
    convolution (no ReLU: a "linear bottleneck"), and add the input when the shapes match.

Branches and residual additions are not a stack of layers, so each block is a small `nn.Model` subclass whose
`call` wires its layers with graph ops (`gn.concat`, `+`). The lesson prints each network's summary and a table of
parameters and FLOPs side by side, then trains the small ResNet on 4,000 real MNIST digits.

    python tutorials/09_famous_architectures.py            # summaries, the table, and the ResNet trained (~1 min)
    python tutorials/09_famous_architectures.py --quick    # a tiny run (CI)
    python tutorials/09_famous_architectures.py --train-all 1   # train all four, to compare accuracy with cost (~3 min)
"""
# %%
import math
import time

import numpy as np

import graphnet as gn
from _lesson import Lesson, parse_args, plt
from graphnet import nn, optim, train
from graphnet.data import load_mnist_5k

args = parse_args(__doc__, epochs=8, train_all=(int, 0, "1: train all four networks, not only the ResNet"))
lesson = Lesson(args, "09_famous_architectures")
epochs = 1 if args.quick else args.epochs


# %% Two small layers graphnet does not have: ReLU6, and "conv -> batch norm -> activation" as one block
class ReLU6(nn.Layer):
    """min(max(x, 0), 6): MobileNet's activation, kept bounded for low-precision arithmetic."""
    kind = "relu6"

    def call(self, x, training):
        return gn.minimum(gn.relu(x), 6.0)


class ConvBN(nn.Model):
    """Conv2D (no bias: batch norm's β takes its place) -> BatchNorm2D -> activation (None: linear)."""

    def __init__(self, filters, kernel_size, stride=1, groups=1, activation="relu", name=None):
        super().__init__(name=name)
        self.conv = nn.Conv2D(filters, kernel_size, stride=stride, padding=kernel_size // 2, groups=groups,
                              use_bias=False, weight_init="he_normal")
        self.bn = nn.BatchNorm2D()
        self.act = (ReLU6() if activation == "relu6" else nn.ReLU()) if activation else None

    def call(self, x, training):
        y = self.bn(self.conv(x, training), training)
        return self.act(y, training) if self.act else y


# %% The blocks
class InceptionBlock(nn.Model):
    """Four branches on the same input, concatenated along the channels:
        1×1  |  1×1 reduce -> 3×3  |  1×1 reduce -> 5×5  |  3×3 max pool (stride 1) -> 1×1
    output channels = c1 + c3 + c5 + pool_proj; the spatial size is kept (padding 1 for 3×3, 2 for 5×5)."""

    def __init__(self, c1, c3_reduce, c3, c5_reduce, c5, pool_proj, name=None):
        super().__init__(name=name)
        self.branch1 = nn.Conv2D(c1, 1, activation="relu")
        self.branch3_reduce = nn.Conv2D(c3_reduce, 1, activation="relu")
        self.branch3 = nn.Conv2D(c3, 3, padding=1, activation="relu")
        self.branch5_reduce = nn.Conv2D(c5_reduce, 1, activation="relu")
        self.branch5 = nn.Conv2D(c5, 5, padding=2, activation="relu")
        self.pool = nn.MaxPool2D(3, stride=1, padding=1)
        self.pool_proj = nn.Conv2D(pool_proj, 1, activation="relu")

    def call(self, x, training):
        branches = [self.branch1(x, training),
                    self.branch3(self.branch3_reduce(x, training), training),
                    self.branch5(self.branch5_reduce(x, training), training),
                    self.pool_proj(self.pool(x, training), training)]
        return gn.concat(branches, axis=1, name="concat")


class ResidualBlock(nn.Model):
    """The basic ResNet block:  y = relu(BN(conv3×3(relu(BN(conv3×3(x))))) + shortcut(x)).

    shortcut = x itself, or — when the block halves the size (stride 2) or changes the channels — a 1×1
    convolution with that stride and batch norm ("projection shortcut"), so that the two can be added."""

    def __init__(self, filters, stride=1, project=False, name=None):
        super().__init__(name=name)
        self.conv1 = ConvBN(filters, 3, stride=stride)
        self.conv2 = ConvBN(filters, 3, activation=None)
        self.shortcut = ConvBN(filters, 1, stride=stride, activation=None) if project else None

    def call(self, x, training):
        residual = self.conv2(self.conv1(x, training), training)
        shortcut = self.shortcut(x, training) if self.shortcut is not None else x
        return gn.relu(residual + shortcut, name="add_relu")


class InvertedResidual(nn.Model):
    """MobileNetV2's block: expand (1×1, ×t channels, ReLU6) -> depthwise 3×3 (groups = channels, ReLU6) ->
    project (1×1, linear) [+ x when stride is 1 and the channels do not change]."""

    def __init__(self, in_channels, out_channels, expansion=6, stride=1, name=None):
        super().__init__(name=name)
        hidden = in_channels * expansion
        self.expand = ConvBN(hidden, 1, activation="relu6") if expansion != 1 else None
        self.depthwise = ConvBN(hidden, 3, stride=stride, groups=hidden, activation="relu6")
        self.project = ConvBN(out_channels, 1, activation=None)
        self.residual = stride == 1 and in_channels == out_channels

    def call(self, x, training):
        y = self.expand(x, training) if self.expand is not None else x
        y = self.project(self.depthwise(y, training), training)
        return y + x if self.residual else y


# %% The four networks, each a classifier of 28×28 digits into 10 classes
def vgg():
    return nn.Sequential([
        nn.Conv2D(16, 3, padding=1, activation="relu"), nn.Conv2D(16, 3, padding=1, activation="relu"),
        nn.MaxPool2D(2),                                                                         # 14×14
        nn.Conv2D(32, 3, padding=1, activation="relu"), nn.Conv2D(32, 3, padding=1, activation="relu"),
        nn.MaxPool2D(2),                                                                         # 7×7
        nn.Conv2D(64, 3, padding=1, activation="relu"), nn.Conv2D(64, 3, padding=1, activation="relu"),
        nn.MaxPool2D(2),                                                                         # 3×3
        nn.Flatten(), nn.Dense(128, activation="relu"), nn.Dense(10)], name="vgg")


def inception():
    return nn.Sequential([
        nn.Conv2D(16, 3, padding=1, activation="relu"), nn.MaxPool2D(2),                      # 16 × 14×14
        InceptionBlock(16, 16, 24, 4, 8, 8, name="inception1"), nn.MaxPool2D(2),               # 56 × 7×7
        InceptionBlock(32, 24, 48, 8, 16, 16, name="inception2"),                              # 112 × 7×7
        nn.GlobalAvgPool2D(), nn.Dense(10)], name="inception")


def resnet():
    return nn.Sequential([
        ConvBN(16, 3, name="stem"),                                                             # 16 × 28×28
        ResidualBlock(16, name="block1"),                                                       # 16 × 28×28
        ResidualBlock(32, stride=2, project=True, name="block2"),                               # 32 × 14×14
        ResidualBlock(64, stride=2, project=True, name="block3"),                               # 64 × 7×7
        nn.GlobalAvgPool2D(), nn.Dense(10)], name="resnet")


def mobilenet_v2():
    return nn.Sequential([
        ConvBN(16, 3, stride=2, activation="relu6", name="stem"),                              # 16 × 14×14
        InvertedResidual(16, 16, expansion=1, name="block1"),
        InvertedResidual(16, 24, stride=2, name="block2"),                                      # 24 × 7×7
        InvertedResidual(24, 24, name="block3"),
        InvertedResidual(24, 32, name="block4"),
        ConvBN(128, 1, activation="relu6", name="head_conv"),
        nn.GlobalAvgPool2D(), nn.Dense(10)], name="mobilenet_v2")


ARCHITECTURES = {"VGG": vgg, "Inception": inception, "ResNet": resnet, "MobileNetV2": mobilenet_v2}

# %% Summaries: every layer's output shape, parameters (with the formula) and FLOPs per sample
networks = {}
for name, make in ARCHITECTURES.items():
    model = make()
    model.build((1, 28, 28))
    print(f"\n=== {name}")
    model.summary()
    networks[name] = model

# %% Side by side: parameters and FLOPs
# `model.flops` is the whole inference graph, including the additions and concatenations written in the blocks'
# `call` (the summary's per-layer column counts only what its layers add).
print(f"\n{'network':<12} {'params':>9} {'FLOPs/sample':>13} {'largest layer':>28}  {'conv layers':>11}")
for name, model in networks.items():
    leaves = [layer for layer in model.walk() if not isinstance(layer, nn.Model)]
    largest = max(leaves, key=lambda layer: layer.count_params())
    n_conv = sum(isinstance(layer, nn.Conv2D) for layer in leaves)
    print(f"{name:<12} {model.count_params():>9,} {model.flops:>13,} "
          f"{largest.path + f' ({largest.count_params():,})':>28}  {n_conv:>11}")

c = 32
print(f"\nwhy VGG stacks 3x3: two 3x3 convs on {c} channels have 2*9*{c}^2 = {2 * 9 * c * c:,} weights; "
      f"one 5x5 has 25*{c}^2 = {25 * c * c:,}")
print(f"why MobileNet goes depthwise: a 3x3 conv {c}->{c} has 9*{c}^2 = {9 * c * c:,} weights; depthwise 3x3 + "
      f"pointwise 1x1 has 9*{c} + {c}^2 = {9 * c + c * c:,}")

figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4))
names = list(networks)
colors = ["tab:gray", "tab:purple", "tab:green", "tab:orange"]
for ax, title, values in ((left, "parameters", [networks[n].count_params() for n in names]),
                          (right, "FLOPs per 28×28 sample (forward)", [networks[n].flops for n in names])):
    ax.bar(names, values, color=colors)
    ax.set_ylim(0, 1.15 * max(values))
    ax.set_title(title)
    for i, v in enumerate(values):
        ax.text(i, v + 0.02 * max(values), f"{v:,}", ha="center", fontsize=9)
lesson.save(figure, "cost")

# %% Train: the small ResNet (or, with --train-all, all four) on 4,000 MNIST digits
(x_train, y_train), (x_test, y_test) = load_mnist_5k(test_size=0.2, seed=0)
if args.quick:
    x_train, y_train, x_test, y_test = x_train[:256], y_train[:256], x_test[:200], y_test[:200]
print(f"\nMNIST: {len(x_train)} training and {len(x_test)} test digits")


class BatchLosses(train.Callback):
    """Keeps every mini-batch's training loss."""

    def __init__(self):
        self.losses = []

    def on_batch_end(self, batch, logs):
        self.losses.append(logs["loss"])


to_train = list(networks) if args.train_all else ["ResNet"]
trained = {}
for name in to_train:
    model = networks[name]
    print(f"--- training {name}")
    recorder = BatchLosses()
    steps = epochs * math.ceil(len(x_train) / 32)
    schedule = optim.CosineDecay(2e-3, total_steps=steps)       # from 2e-3 down to 0: settles at the end
    trainer = train.Trainer(model, optim.Adam(schedule), device=args.device, seed=0)
    started = time.perf_counter()
    history = trainer.fit(x_train, y_train, epochs=epochs, batch_size=32, validation_data=(x_test, y_test),
                          callbacks=[recorder])
    trained[name] = dict(history=history, losses=recorder.losses, seconds=time.perf_counter() - started,
                         accuracy=trainer.evaluate(x_test, y_test)["accuracy"])
    print(f"{name}: test accuracy {trained[name]['accuracy']:.3f} in {trained[name]['seconds']:.0f} s")

figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4))
for name, r in trained.items():
    losses = np.asarray(r["losses"])
    width = max(1, min(20, len(losses) // 4))
    left.plot(np.convolve(losses, np.ones(width) / width, mode="valid"), label=name)
    right.plot(r["history"].epochs, r["history"]["val_accuracy"], marker=".", label=name)
left.set_yscale("log")
left.set_xlabel("step (batch of 32)")
left.set_ylabel("training loss (running mean)")
left.legend()
right.set_xlabel("epoch")
right.set_ylabel("test accuracy")
right.legend()
figure.suptitle("training on 4,000 MNIST digits" if not args.quick else "training (quick run)")
lesson.save(figure, "training")

# %% The result
if len(trained) > 1:
    print(f"\n{'network':<12} {'params':>9} {'FLOPs/sample':>13} {'test acc':>8} {'seconds':>8}")
    for name, r in trained.items():
        print(f"{name:<12} {networks[name].count_params():>9,} {networks[name].flops:>13,} {r['accuracy']:>8.3f} "
              f"{r['seconds']:>8.0f}")
losses = trained["ResNet"]["losses"]
tail = max(1, min(10, len(losses) // 3))
lesson.finish(losses[0], float(np.mean(losses[-tail:])),
              f"ResNet ({networks['ResNet'].count_params():,} params, {networks['ResNet'].flops / 1e6:.1f} MFLOP) "
              f"test accuracy {trained['ResNet']['accuracy']:.3f}"
              + "".join(f"; {n} {r['accuracy']:.3f}" for n, r in trained.items() if n != "ResNet"))
