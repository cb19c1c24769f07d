"""The classic architectures at full size, as torchvision defines them (same layers, same parameter counts).

    model = zoo.resnet18()                       # built for 3×224×224 images, 1,000 classes
    model.summary()                              # 11,689,512 parameters, as torchvision's resnet18
    small = zoo.vgg11(num_classes=10, input_size=32)   # the same network for 32×32 images

| function                      | parameters at 224×224, 1,000 classes (torchvision's count) |
|-------------------------------|------------------------------------------------------------|
| lenet5 (1×28×28, 10 classes)  | 61,706                                                     |
| alexnet                       | 61,100,840                                                 |
| vgg11 / vgg16 / vgg19         | 132,863,336 / 138,357,544 / 143,667,240                    |
|   batch_norm=True             | 132,868,840 / 138,365,992 / 143,678,248                    |
| resnet18 / resnet34 / resnet50| 11,689,512 / 21,797,672 / 25,557,032                       |
| mobilenet_v2                  | 3,504,872                                                  |
| googlenet (no auxiliary heads)| 6,624,904                                                  |

Parameters here are what torchvision counts: weights and biases, not batch norm's running statistics. At another
`input_size` the convolutions are the same; AlexNet's and VGG's first dense layer takes the flattened feature map
(torchvision instead pools it to 6×6 or 7×7 first, which is the identity at 224), so their counts change there.
Every function returns a built model (the weights seeded by `seed`).
"""
from .. import ops
from .layers import Conv2D, Dense, Dropout, Flatten, GlobalAvgPool2D, MaxPool2D, ReLU
from .model import Model, Sequential
from .normalization import BatchNorm2D


def _built(model, input_size, channels=3):
    model.build((channels, input_size, input_size))
    return model


class ConvBN(Model):
    """conv (no bias) → batch norm → activation (relu, relu6 or none): the unit of ResNet, MobileNetV2 and GoogLeNet
    (its BasicConv2d, with eps=0.001)."""

    def __init__(self, filters, kernel_size, stride=1, groups=1, activation="relu", eps=1e-5, name=None):
        super().__init__(name=name)
        self.conv = Conv2D(filters, kernel_size, stride=stride, padding=kernel_size // 2, groups=groups,
                           use_bias=False, weight_init="he_normal")
        self.bn = BatchNorm2D(eps=eps)
        self.activation = {"relu": ops.relu, "relu6": ops.relu6, None: None}[activation]   # relu6: MobileNetV2's

    def call(self, x, training):
        y = self.bn(self.conv(x, training), training)
        return self.activation(y) if self.activation else y


# ----------------------------------------------------------------------------------------------------------------
# LeNet-5 and AlexNet

def lenet5(num_classes=10, input_size=28, seed=0):
    """LeCun et al. 1998 with ReLU and max pooling: conv 6@5×5 (pad 2) → pool → conv 16@5×5 → pool → 120 → 84."""
    return _built(Sequential([
        Conv2D(6, 5, padding=2, activation="relu"), MaxPool2D(2), Conv2D(16, 5, activation="relu"), MaxPool2D(2),
        Flatten(), Dense(120, activation="relu"), Dense(84, activation="relu"), Dense(num_classes)],
        name="lenet5", seed=seed), input_size, channels=1)


def alexnet(num_classes=1000, input_size=224, seed=0):
    """Krizhevsky et al. 2012, as torchvision builds it: five convolutions (11×11/4, 5×5, three 3×3), three
    overlapping 3×3/2 max poolings, then dropout → 4096 → dropout → 4096 → classes."""
    return _built(Sequential([
        Conv2D(64, 11, stride=4, padding=2, activation="relu"), MaxPool2D(3, stride=2),
        Conv2D(192, 5, padding=2, activation="relu"), MaxPool2D(3, stride=2),
        Conv2D(384, 3, padding=1, activation="relu"), Conv2D(256, 3, padding=1, activation="relu"),
        Conv2D(256, 3, padding=1, activation="relu"), MaxPool2D(3, stride=2), Flatten(),
        Dropout(0.5), Dense(4096, activation="relu"), Dropout(0.5), Dense(4096, activation="relu"),
        Dense(num_classes)], name="alexnet", seed=seed), input_size)


# ----------------------------------------------------------------------------------------------------------------
# VGG

VGG_STAGES = {11: (1, 1, 2, 2, 2), 16: (2, 2, 3, 3, 3), 19: (2, 2, 4, 4, 4)}     # 3×3 convolutions per stage
VGG_WIDTHS = (64, 128, 256, 512, 512)


def _vgg(depth, num_classes, input_size, batch_norm, seed):
    """Simonyan and Zisserman 2014: five stages of 3×3 convolutions (64 … 512 channels), each ending in a 2×2 max
    pooling, then 4096 → dropout → 4096 → dropout → classes. With batch_norm, conv → BN → ReLU."""
    layers = []
    for convs, width in zip(VGG_STAGES[depth], VGG_WIDTHS):
        for _ in range(convs):
            if batch_norm:
                layers += [Conv2D(width, 3, padding=1, weight_init="he_normal"), BatchNorm2D(), ReLU()]
            else:
                layers.append(Conv2D(width, 3, padding=1, activation="relu", weight_init="he_normal"))
        layers.append(MaxPool2D(2))
    layers += [Flatten(), Dense(4096, activation="relu"), Dropout(0.5), Dense(4096, activation="relu"), Dropout(0.5),
               Dense(num_classes)]
    return _built(Sequential(layers, name=f"vgg{depth}" + ("_bn" if batch_norm else ""), seed=seed), input_size)


def vgg11(num_classes=1000, input_size=224, batch_norm=False, seed=0):
    return _vgg(11, num_classes, input_size, batch_norm, seed)


def vgg16(num_classes=1000, input_size=224, batch_norm=False, seed=0):
    return _vgg(16, num_classes, input_size, batch_norm, seed)


def vgg19(num_classes=1000, input_size=224, batch_norm=False, seed=0):
    return _vgg(19, num_classes, input_size, batch_norm, seed)


# ----------------------------------------------------------------------------------------------------------------
# ResNet

class BasicBlock(Model):
    """y = relu(BN(conv3×3(relu(BN(conv3×3/s(x))))) + shortcut(x)); the shortcut is x, or a 1×1/s convolution
    with BN where the size or the channels change (ResNet-18 and -34)."""
    expansion = 1

    def __init__(self, filters, stride=1, project=False, name=None):
        super().__init__(name=name)
        self.conv1 = ConvBN(filters, 3, stride=stride)
        self.conv2 = ConvBN(filters, 3, activation=None)
        self.downsample = ConvBN(filters, 1, stride=stride, activation=None) if project else None

    def call(self, x, training):
        shortcut = self.downsample(x, training) if self.downsample is not None else x
        return ops.relu(self.conv2(self.conv1(x, training), training) + shortcut)


class Bottleneck(Model):
    """y = relu(BN(conv1×1→4f(relu(BN(conv3×3/s(relu(BN(conv1×1→f(x))))))))) + shortcut(x)): the stride on the
    3×3 convolution, as torchvision's (ResNet v1.5) (ResNet-50)."""
    expansion = 4

    def __init__(self, filters, stride=1, project=False, name=None):
        super().__init__(name=name)
        self.conv1 = ConvBN(filters, 1)
        self.conv2 = ConvBN(filters, 3, stride=stride)
        self.conv3 = ConvBN(filters * 4, 1, activation=None)
        self.downsample = ConvBN(filters * 4, 1, stride=stride, activation=None) if project else None

    def call(self, x, training):
        shortcut = self.downsample(x, training) if self.downsample is not None else x
        return ops.relu(self.conv3(self.conv2(self.conv1(x, training), training), training) + shortcut)


class ResNet(Model):
    """He et al. 2015: a 7×7/2 stem and a 3×3/2 max pooling, four stages of blocks (64, 128, 256, 512 filters,
    the last three starting with stride 2), global average pooling, one dense layer."""

    def __init__(self, block, stage_blocks, num_classes, name, seed=0):
        super().__init__(name=name, seed=seed)
        self.stem = ConvBN(64, 7, stride=2)
        self.pool = MaxPool2D(3, stride=2, padding=1)
        channels, self.stages = 64, []
        for stage, (blocks, filters) in enumerate(zip(stage_blocks, (64, 128, 256, 512))):
            for index in range(blocks):
                stride = 2 if stage > 0 and index == 0 else 1
                project = index == 0 and (stride != 1 or channels != filters * block.expansion)
                layer = block(filters, stride, project)
                setattr(self, f"layer{stage + 1}_{index}", layer)
                self.stages.append(layer)
                channels = filters * block.expansion
        self.avgpool = GlobalAvgPool2D()
        self.fc = Dense(num_classes)

    def call(self, x, training):
        x = self.pool(self.stem(x, training), training)
        for layer in self.stages:
            x = layer(x, training)
        return self.fc(self.avgpool(x, training), training)


def resnet18(num_classes=1000, input_size=224, seed=0):
    return _built(ResNet(BasicBlock, (2, 2, 2, 2), num_classes, "resnet18", seed), input_size)


def resnet34(num_classes=1000, input_size=224, seed=0):
    return _built(ResNet(BasicBlock, (3, 4, 6, 3), num_classes, "resnet34", seed), input_size)


def resnet50(num_classes=1000, input_size=224, seed=0):
    return _built(ResNet(Bottleneck, (3, 4, 6, 3), num_classes, "resnet50", seed), input_size)


# ----------------------------------------------------------------------------------------------------------------
# MobileNetV2

class InvertedResidual(Model):
    """Sandler et al. 2018: expand (1×1, ×t, ReLU6) → depthwise 3×3/s (ReLU6) → project (1×1, linear),
    plus x where the stride is 1 and the channels stay."""

    def __init__(self, in_channels, out_channels, expansion, stride, name=None):
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


MOBILENET_V2_STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                       (6, 320, 1, 1))                       # (expansion t, channels c, blocks n, first stride s)


class MobileNetV2(Model):
    """A 3×3/2 stem (32 channels), the inverted residual stages above, a 1×1 convolution to 1280 channels, global
    average pooling, dropout 0.2 and one dense layer."""

    def __init__(self, num_classes, name="mobilenet_v2", seed=0):
        super().__init__(name=name, seed=seed)
        self.stem = ConvBN(32, 3, stride=2, activation="relu6")
        channels, self.blocks = 32, []
        for stage, (t, c, n, s) in enumerate(MOBILENET_V2_STAGES):
            for index in range(n):
                block = InvertedResidual(channels, c, t, s if index == 0 else 1)
                setattr(self, f"block{stage + 1}_{index}", block)
                self.blocks.append(block)
                channels = c
        self.head = ConvBN(1280, 1, activation="relu6")
        self.avgpool = GlobalAvgPool2D()
        self.dropout = Dropout(0.2)
        self.classifier = Dense(num_classes)

    def call(self, x, training):
        x = self.stem(x, training)
        for block in self.blocks:
            x = block(x, training)
        x = self.avgpool(self.head(x, training), training)
        return self.classifier(self.dropout(x, training), training)


def mobilenet_v2(num_classes=1000, input_size=224, seed=0):
    return _built(MobileNetV2(num_classes, seed=seed), input_size)


# ----------------------------------------------------------------------------------------------------------------
# GoogLeNet (Inception v1)

def basic_conv(filters, kernel_size, stride=1):
    """torchvision's BasicConv2d: conv (no bias, padding kernel_size // 2) → batch norm (eps 0.001) → ReLU."""
    return ConvBN(filters, kernel_size, stride=stride, eps=1e-3)


class Inception(Model):
    """Szegedy et al. 2014, as torchvision builds the block: four branches side by side, their channels
    concatenated —

        1×1 conv                                   (ch1x1)
        1×1 conv (ch3x3red) → 3×3 conv             (ch3x3)
        1×1 conv (ch5x5red) → 3×3 conv             (ch5x5: torchvision's "5×5" branch is 3×3, a known slip kept
                                                    for its weights)
        3×3/1 max pool (padding 1, ceil_mode) → 1×1 conv   (pool_proj)

    every conv a basic_conv; out channels = ch1x1 + ch3x3 + ch5x5 + pool_proj, the height and width kept."""

    def __init__(self, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj, name=None):
        super().__init__(name=name)
        self.branch1 = basic_conv(ch1x1, 1)
        self.branch2_reduce, self.branch2 = basic_conv(ch3x3red, 1), basic_conv(ch3x3, 3)
        self.branch3_reduce, self.branch3 = basic_conv(ch5x5red, 1), basic_conv(ch5x5, 3)
        self.branch4_pool, self.branch4 = MaxPool2D(3, stride=1, padding=1, ceil_mode=True), basic_conv(pool_proj, 1)

    def call(self, x, training):
        return ops.concat([self.branch1(x, training),
                           self.branch2(self.branch2_reduce(x, training), training),
                           self.branch3(self.branch3_reduce(x, training), training),
                           self.branch4(self.branch4_pool(x, training), training)], axis=1)


GOOGLENET_STAGES = (           # after the stem, in order: torchvision's inception blocks and the pools between them
    ("inception3a", (64, 96, 128, 16, 32, 32)),       # (ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj)
    ("inception3b", (128, 128, 192, 32, 96, 64)),
    ("maxpool3", 3),                                  # a max pool: its window, stride 2, ceil_mode
    ("inception4a", (192, 96, 208, 16, 48, 64)),
    ("inception4b", (160, 112, 224, 24, 64, 64)),
    ("inception4c", (128, 128, 256, 24, 64, 64)),
    ("inception4d", (112, 144, 288, 32, 64, 64)),
    ("inception4e", (256, 160, 320, 32, 128, 128)),
    ("maxpool4", 2),
    ("inception5a", (256, 160, 320, 32, 128, 128)),
    ("inception5b", (384, 192, 384, 48, 128, 128)),
)


class GoogLeNet(Model):
    """A 7×7/2 stem, 3×3/2 max pool, 1×1 and 3×3 convolutions, 3×3/2 max pool; inception 3a, 3b, 3×3/2 max pool;
    4a … 4e, 2×2/2 max pool; 5a, 5b (1,024 channels); global average pooling, dropout 0.2, one dense layer.
    Every max pool rounds up (ceil_mode), as torchvision's: 224 → 112 → 56 → 28 → 14 → 7. Without the two auxiliary
    classifiers (torchvision drops them too once trained); no LRN, as in torchvision (the paper's has two)."""

    def __init__(self, num_classes, name="googlenet", seed=0):
        super().__init__(name=name, seed=seed)
        self.conv1 = basic_conv(64, 7, stride=2)
        self.maxpool1 = MaxPool2D(3, stride=2, ceil_mode=True)
        self.conv2, self.conv3 = basic_conv(64, 1), basic_conv(192, 3)
        self.maxpool2 = MaxPool2D(3, stride=2, ceil_mode=True)
        self.stages = []
        for stage_name, spec in GOOGLENET_STAGES:
            layer = MaxPool2D(spec, stride=2, ceil_mode=True) if stage_name.startswith("maxpool") else Inception(*spec)
            setattr(self, stage_name, layer)
            self.stages.append(layer)
        self.avgpool = GlobalAvgPool2D()
        self.dropout = Dropout(0.2)
        self.fc = Dense(num_classes)

    def call(self, x, training):
        x = self.maxpool1(self.conv1(x, training), training)
        x = self.maxpool2(self.conv3(self.conv2(x, training), training), training)
        for layer in self.stages:
            x = layer(x, training)
        return self.fc(self.dropout(self.avgpool(x, training), training), training)


def googlenet(num_classes=1000, input_size=224, seed=0):
    """GoogLeNet as torchvision defines it (6,624,904 parameters for 1,000 classes); any input_size from 16 up
    (the ceil_mode pools keep a partial window)."""
    return _built(GoogLeNet(num_classes, seed=seed), input_size)
