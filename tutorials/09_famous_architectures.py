"""Lesson 9 — famous architectures in miniature: AlexNet, VGG, Inception, ResNet and MobileNetV2, built from graphnet
layers.

What this teaches — the one idea each architecture added, at a size that trains on a laptop core:
  * AlexNet (2012): the network that won ImageNet and started the deep-learning decade — five convolutions, the
    first 11×11 with stride 4, ReLU instead of tanh, overlapping 3×3 max pooling with stride 2, dropout before
    two dense layers of 4,096. Built here at full size on 224×224 inputs (only its summary: 61 million parameters,
    1.4 GFLOP per image, almost all of the parameters in the dense layers), and a small version trained.
  * VGG (2014): only 3×3 convolutions, stacked. Two 3×3 layers see a 5×5 window, as one 5×5 layer does, with
    2·9·C² weights instead of 25·C² and a ReLU in between. Most of VGG's weights sit in its dense layers.
  * Inception (GoogLeNet, 2014): parallel branches — 1×1, 3×3 and 5×5 convolutions and a pooling — concatenated
    along the channels, so the next layer picks the scale it needs; 1×1 "reduce" convolutions make it cheap.
  * ResNet (2015): y = relu(F(x) + x). The block learns a residual F; the identity path lets gradients and
    signals pass straight through, which is what made networks of 100+ layers trainable. Global average pooling
    replaces the big dense layers. The lesson shows it at depth: a 20-layer plain CNN and the same CNN with skip
    connections (both with batch norm, as in the paper), trained side by side on the same data. The plain one's
    loss falls more slowly; at initialisation its gradient norm changes by a similar factor at every layer — a
    straight line on a log scale, compounding over depth — while with the skips it stays within a narrow band.
  * MobileNetV2 (2018): the inverted residual block — expand with a 1×1 convolution (×6 channels), filter with a
    depthwise 3×3 convolution (groups = channels: one filter per channel), project back with a linear 1×1
    convolution (no ReLU: a "linear bottleneck"), and add the input when the shapes match.

Branches and residual additions are not a stack of layers, so each block is a small `nn.Model` subclass whose
`call` wires its layers with graph ops (`gn.concat`, `+`). The lesson prints each network's summary and a table of
parameters and FLOPs side by side, then trains the small AlexNet and the small ResNet on 4,000 real MNIST digits,
then the plain and the residual 20-layer networks on 2,000 of them.

    python tutorials/09_famous_architectures.py            # summaries, the table, the training runs (~2-3 min)
    python tutorials/09_famous_architectures.py --quick    # a tiny run (CI)
    python tutorials/09_famous_architectures.py --train-all 1   # train all five, to compare accuracy with cost
"""
# %%
import math
import time

import numpy as np

import graphnet as gn
from _lesson import Lesson, parse_args, plt
from graphnet import nn, optim, train
from graphnet.data import load_mnist_5k

args = parse_args(__doc__, epochs=8, train_all=(int, 0, "1: train all five networks, not only AlexNet and ResNet"),
                  depth_epochs=(int, 4, "epochs for the 20-layer plain and residual networks"))
lesson = Lesson(args, "09_famous_architectures")
epochs = 1 if args.quick else args.epochs


# %% One block built from layers: "conv -> batch norm -> activation". MobileNet's activation is ReLU6,
# min(max(x, 0), 6), kept bounded for low-precision arithmetic (nn.ReLU6: one pointwise op, gn.relu6).
class ConvBN(nn.Model):
    """Conv2D (no bias: batch norm's β takes its place) -> BatchNorm2D -> activation (None: linear)."""

    def __init__(self, filters, kernel_size, stride=1, groups=1, activation="relu", name=None):
        super().__init__(name=name)
        self.conv = nn.Conv2D(filters, kernel_size, stride=stride, padding=kernel_size // 2, groups=groups,
                              use_bias=False, weight_init="he_normal")
        self.bn = nn.BatchNorm2D()
        self.act = (nn.ReLU6() if activation == "relu6" else nn.ReLU()) if activation else None

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


# %% AlexNet at full size, as torchvision builds it: 224×224 colour images, 1,000 ImageNet classes
def alexnet_features(init):
    """AlexNet's five convolutions and three overlapping max poolings (3×3 windows, stride 2):
    3@224 -conv 11×11/4, pad 2-> 64@55 -pool-> 64@27 -conv 5×5-> 192@27 -pool-> 192@13 -conv 3×3-> 384@13
    -conv 3×3-> 256@13 -conv 3×3-> 256@13 -pool-> 256@6×6"""
    return [nn.Conv2D(64, 11, stride=4, padding=2, activation="relu", weight_init=init), nn.MaxPool2D(3, stride=2),
            nn.Conv2D(192, 5, padding=2, activation="relu", weight_init=init), nn.MaxPool2D(3, stride=2),
            nn.Conv2D(384, 3, padding=1, activation="relu", weight_init=init),
            nn.Conv2D(256, 3, padding=1, activation="relu", weight_init=init),
            nn.Conv2D(256, 3, padding=1, activation="relu", weight_init=init), nn.MaxPool2D(3, stride=2)]


def alexnet(classes=1000, init="glorot_uniform"):
    """The features, then dropout and two dense layers of 4,096 ReLU units, and the classifier. (torchvision also
    puts an adaptive average pooling to 6×6 before the dense layers; at 224×224 the maps are already 6×6.)"""
    return nn.Sequential(alexnet_features(init) + [
        nn.Flatten(), nn.Dropout(0.5), nn.Dense(4096, activation="relu", weight_init=init),
        nn.Dropout(0.5), nn.Dense(4096, activation="relu", weight_init=init),
        nn.Dense(classes, weight_init=init)], name="alexnet")


TORCHVISION_ALEXNET_PARAMS = 61_100_840           # sum(p.numel() for p in torchvision.models.alexnet().parameters())
full_alexnet = alexnet(init="zeros")              # only counted, never run: zeros are made at once, 61 million
full_alexnet.build((3, 224, 224))                 # random numbers take a second (its variables: 244 MB of float32)
full_alexnet.summary()
dense_params = sum(layer.count_params() for layer in full_alexnet.walk() if isinstance(layer, nn.Dense))
print(f"AlexNet: {full_alexnet.count_params():,} parameters here, {TORCHVISION_ALEXNET_PARAMS:,} in torchvision; "
      f"{full_alexnet.flops / 1e9:.2f} GFLOP per 224×224 image; the three dense layers hold "
      f"{dense_params / full_alexnet.count_params():.1%} of the parameters")
alexnet_full = dict(params=full_alexnet.count_params(), flops=full_alexnet.flops)
del full_alexnet                                  # its 61 million weights are not needed any more


# %% The five networks, each a classifier of 28×28 digits into 10 classes
def small_alexnet():
    """AlexNet's recipe at MNIST's size: a larger first kernel (5×5), overlapping 3×3/2 max pooling, five ReLU
    convolutions, dropout and two dense layers. 1@28 -> 16@28 -pool-> 16@13 -> 32@13 -pool-> 32@6 -> 48@6 -> 32@6
    -> 32@6 -pool-> 32@2×2 -> 128 -> 128 -> 10"""
    return nn.Sequential([
        nn.Conv2D(16, 5, padding=2, activation="relu"), nn.MaxPool2D(3, stride=2),
        nn.Conv2D(32, 5, padding=2, activation="relu"), nn.MaxPool2D(3, stride=2),
        nn.Conv2D(48, 3, padding=1, activation="relu"),
        nn.Conv2D(32, 3, padding=1, activation="relu"),
        nn.Conv2D(32, 3, padding=1, activation="relu"), nn.MaxPool2D(3, stride=2),
        nn.Flatten(), nn.Dropout(0.5), nn.Dense(128, activation="relu"),
        nn.Dropout(0.5), nn.Dense(128, activation="relu"), nn.Dense(10)], name="alexnet_small")


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


ARCHITECTURES = {"AlexNet": small_alexnet, "VGG": vgg, "Inception": inception, "ResNet": resnet,
                 "MobileNetV2": mobilenet_v2}

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
colors = ["tab:brown", "tab:gray", "tab:purple", "tab:green", "tab:orange"]
for ax, title, values in ((left, "parameters", [networks[n].count_params() for n in names]),
                          (right, "FLOPs per 28×28 sample (forward)", [networks[n].flops for n in names])):
    ax.bar(names, values, color=colors)
    ax.set_ylim(0, 1.15 * max(values))
    ax.set(title=title, xlabel="network", ylabel=title.split(" (")[0])
    for i, v in enumerate(values):
        ax.text(i, v + 0.02 * max(values), f"{v:,}", ha="center", fontsize=9)
lesson.save(figure, "cost")

# %% Train: the small AlexNet and ResNet (or, with --train-all, all five) on 4,000 MNIST digits
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


to_train = list(networks) if args.train_all else ["AlexNet", "ResNet"]
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
left.set_ylabel("training loss (running mean, log scale)")
left.legend()
right.set_xlabel("epoch")
right.set_ylabel("test accuracy")
right.legend()
figure.suptitle("training on 4,000 MNIST digits" if not args.quick else "training (quick run)")
lesson.save(figure, "training")

# %% Why ResNet trains: 20 layers, plain versus residual
# In a plain stack the gradient reaching layer l is a product of one Jacobian per layer above it, so its size
# changes by a factor per layer and compounds over depth. With y = relu(F(x) + x) each block's Jacobian is, up to the
# ReLU after the sum, I + ∂F/∂x: the identity carries the gradient through every block, whatever F does.
class TwoConvBlock(nn.Model):
    """Two 3×3 ConvBN layers: relu(BN(conv(relu(BN(conv(x)))))) — plus x before the last ReLU when skip=True.
    The same layers either way; only the addition differs."""

    def __init__(self, filters, skip, name=None):
        super().__init__(name=name)
        self.conv1 = ConvBN(filters, 3)
        self.conv2 = ConvBN(filters, 3, activation=None)
        self.skip = skip

    def call(self, x, training):
        y = self.conv2(self.conv1(x, training), training)
        return gn.relu(y + x if self.skip else y, name="add_relu" if self.skip else "relu")


def deep_cnn(skip, blocks=9, width=16):
    """2·blocks + 2 layers with weights (20 for 9 blocks): a stem convolution (16 × 14×14, then pooled to 7×7),
    the blocks of 2 convolutions, and the dense classifier after global average pooling."""
    depth = 2 * blocks + 2
    return nn.Sequential([ConvBN(width, 3, stride=2, name="stem"), nn.MaxPool2D(2)]
                         + [TwoConvBlock(width, skip, name=f"block{i + 1}") for i in range(blocks)]
                         + [nn.GlobalAvgPool2D(), nn.Dense(10)], name=f"resnet{depth}" if skip else f"plain{depth}")


def gradient_norms(model, x, y):
    """‖∂loss/∂W‖ for every convolution's weights W, in order from the input, at the model's current weights:
    one forward and backward pass on (x, y) in training mode, nothing updated."""
    convs = [layer for layer in model.walk() if isinstance(layer, nn.Conv2D)]
    with model.graph:
        labels = gn.placeholder((None,), dtype="int64", name="labels")
        loss = gn.softmax_cross_entropy(model(model.input, training=True), labels)
        grads = gn.gradients(loss, [layer.weight for layer in convs])
    return [float(np.linalg.norm(g)) for g in gn.compile(grads, device=args.device).run({model.input: x, labels: y})]


depth_epochs = 1 if args.quick else args.depth_epochs
n_depth = min(2000, len(x_train))
deep = {}
for skip in (False, True):
    model = deep_cnn(skip)
    model.build((1, 28, 28))
    norms = gradient_norms(model, x_train[:256], y_train[:256])          # at initialisation
    recorder = BatchLosses()
    trainer = train.Trainer(model, optim.Adam(2e-3), device=args.device, seed=0)
    started = time.perf_counter()
    history = trainer.fit(x_train[:n_depth], y_train[:n_depth], epochs=depth_epochs, batch_size=32,
                          validation_data=(x_test, y_test), callbacks=[recorder])
    deep[model.name] = dict(norms=norms, losses=recorder.losses, history=history,
                            seconds=time.perf_counter() - started,
                            accuracy=trainer.evaluate(x_test, y_test)["accuracy"])
    blocks = norms[1:]                    # the blocks' convolutions (the stem's filters see 1 channel, not 16)
    deep[model.name]["spread"] = max(blocks) / min(blocks)
    n_layers = sum(isinstance(layer, (nn.Conv2D, nn.Dense)) for layer in model.walk())
    print(f"{model.name}: {model.count_params():,} parameters, {n_layers} layers with weights; gradient norms of the "
          f"blocks at initialisation from {max(blocks):.3f} to {min(blocks):.3f} "
          f"({deep[model.name]['spread']:.1f}x apart); final training loss {history['loss'][-1]:.3f}, "
          f"test accuracy {deep[model.name]['accuracy']:.3f} ({deep[model.name]['seconds']:.0f} s)")

figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4))
for (name, r), colour in zip(deep.items(), ("tab:red", "tab:green")):
    losses = np.asarray(r["losses"])
    width = max(1, min(20, len(losses) // 4))
    left.plot(np.convolve(losses, np.ones(width) / width, mode="valid"), color=colour, label=name)
    right.plot(range(1, len(r["norms"]) + 1), r["norms"], "o-", color=colour, label=name)
left.set(yscale="log", xlabel="step (batch of 32)", ylabel="training loss (running mean, log scale)",
         title=f"20 layers on {n_depth} MNIST digits")
right.set(yscale="log", xlabel="convolution (1 = nearest the input)", ylabel="‖∂loss/∂W‖ (log scale)",
          title="gradient norm per layer at initialisation")
left.legend()
right.legend()
lesson.save(figure, "plain_vs_residual")

# %% The result
print(f"\nAlexNet at 224×224: {alexnet_full['params']:,} parameters (torchvision: {TORCHVISION_ALEXNET_PARAMS:,}), "
      f"{alexnet_full['flops'] / 1e9:.2f} GFLOP per image")
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
              + "".join(f"; {n} {r['accuracy']:.3f}" for n, r in trained.items() if n != "ResNet")
              + f"; AlexNet at 224x224 {alexnet_full['params']:,} params"
              + "; 20 layers, final training loss " + ", ".join(f"{n} {r['history']['loss'][-1]:.3f}"
                                                                for n, r in deep.items())
              + " (gradient norms at initialisation " + " vs ".join(f"{r['spread']:.1f}x" for r in deep.values())
              + " apart)")

# %% Exercises
# Call them with your answers, e.g. check_exercise_1(12345).
def check_exercise_1(answer):
    """Exercise 1: the parameters of AlexNet's first layer, 64 filters of 11×11 on RGB input, with biases."""
    from graphnet import nn
    first = nn.Sequential([nn.Conv2D(64, 11, stride=4, padding=2)])
    first.build((3, 224, 224))
    if answer == first.count_params():
        print(f"right: K·(C·R·S + 1) = 64·(3·11·11 + 1) = {first.count_params():,}")
        return True
    print(f"not yet ({answer}): each of the K filters has C·R·S weights and one bias")
    return False


def check_exercise_2(answer):
    """Exercise 2: the number of inputs of AlexNet's first dense layer on 256×256 images (no adaptive pooling)."""
    from graphnet import nn
    features = nn.Sequential([
        nn.Conv2D(64, 11, stride=4, padding=2), nn.MaxPool2D(3, stride=2), nn.Conv2D(192, 5, padding=2),
        nn.MaxPool2D(3, stride=2), nn.Conv2D(384, 3, padding=1), nn.Conv2D(256, 3, padding=1),
        nn.Conv2D(256, 3, padding=1), nn.MaxPool2D(3, stride=2), nn.Flatten()])
    features.build((3, 256, 256))
    if answer == features.output.shape[1]:
        print(f"right: 256 -> 63 -> 31 -> 31 -> 15 -> 15 -> 15 -> 15 -> 7, and 256·7·7 = "
              f"{features.output.shape[1]:,}")
        return True
    print(f"not yet ({answer}): follow floor((W − F + 2P)/S) + 1 through all eight layers, then multiply by the "
          "256 channels")
    return False


# %% [markdown]
# **Exercise 1.** AlexNet's first layer has 64 filters of 11×11 over the 3 colour channels, each with a bias. How many
# parameters is that? Work it out, then check: `check_exercise_1(answer)`. Compare with the dense layer after the
# convolutions in the summary above: which kind of layer holds AlexNet's weights?
#
# **Exercise 2.** Feed AlexNet 256×256 images instead of 224×224 (and leave out torchvision's adaptive pooling, as
# this lesson's AlexNet does). Follow the output size floor((W − F + 2P)/S) + 1 through the five convolutions and
# three poolings: how many numbers does `Flatten` hand to the first dense layer (224×224 gives 256·6·6 = 9,216)?
# Check: `check_exercise_2(answer)`.
#
# **Exercise 3.** Make the plain and residual networks deeper: `deep_cnn(skip, blocks=19)` has 40 layers. Train both
# as the lesson does and compare the final training losses and the gradient norms per layer with the 20-layer ones.
# Does the gap between plain and residual grow with depth?
