"""The model zoo: each classic architecture at full size has torchvision's parameter count and runs a 224×224
forward pass on the cpu device; small versions export to ONNX (same outputs in onnxruntime) and train a step;
GoogLeNet computes what torchvision's definition computes with the same weights (PyTorch, where installed)."""
import numpy as np
import onnxruntime
import pytest

import graphnet as gn
from graphnet import optim, train
from graphnet.nn import zoo

PUBLISHED = {                       # torchvision's parameter counts (lenet5: the classic 6-16-120-84-10 network)
    "lenet5": (zoo.lenet5, {}, 61_706),
    "alexnet": (zoo.alexnet, {}, 61_100_840),
    "vgg11": (zoo.vgg11, {}, 132_863_336),
    "vgg11_bn": (zoo.vgg11, {"batch_norm": True}, 132_868_840),
    "vgg16": (zoo.vgg16, {}, 138_357_544),
    "vgg16_bn": (zoo.vgg16, {"batch_norm": True}, 138_365_992),
    "vgg19": (zoo.vgg19, {}, 143_667_240),
    "vgg19_bn": (zoo.vgg19, {"batch_norm": True}, 143_678_248),
    "resnet18": (zoo.resnet18, {}, 11_689_512),
    "resnet34": (zoo.resnet34, {}, 21_797_672),
    "resnet50": (zoo.resnet50, {}, 25_557_032),
    "mobilenet_v2": (zoo.mobilenet_v2, {}, 3_504_872),
    "googlenet": (zoo.googlenet, {}, 6_624_904),          # without the auxiliary classifiers
}


def parameters(model):
    counts = model.parameter_counts()
    return counts["trainable"] + counts["frozen"]            # torchvision counts no running statistics


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_full_size_models_have_torchvisions_parameter_count_and_run_a_224_forward(name):
    build, kwargs, published = PUBLISHED[name]
    model = build(**kwargs)
    assert parameters(model) == published
    size = model.input.shape[1:]
    logits = gn.compile(model.output, device="cpu").run(
        {model.input: np.random.default_rng(0).standard_normal((1,) + size).astype(np.float32)})
    assert logits.shape == (1, 10 if name == "lenet5" else 1000) and np.all(np.isfinite(logits))


SMALL = {"lenet5": 28, "alexnet": 64, "vgg11": 32, "vgg11_bn": 32, "resnet18": 32, "resnet50": 32,
         "mobilenet_v2": 32, "googlenet": 32}


@pytest.mark.parametrize("name", sorted(SMALL))
def test_small_versions_export_to_onnx_and_train_a_step(name, tmp_path):
    build, kwargs, _ = PUBLISHED[name]
    model = build(num_classes=10, input_size=SMALL[name], **kwargs)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4,) + model.input.shape[1:]).astype(np.float32)
    model.export_onnx(tmp_path / f"{name}.onnx")
    expected = gn.compile(model.output, device="cpu").run({model.input: x})
    session = onnxruntime.InferenceSession(str(tmp_path / f"{name}.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {session.get_inputs()[0].name: x})[0], expected,
                               rtol=1e-3, atol=1e-4)
    before = {k: v.copy() for k, v in model.get_weights().items()}
    history = train.Trainer(model, optim.SGD(0.01)).fit(x, np.arange(4) % 10, epochs=1, batch_size=4,
                                                        progress=False)
    assert np.isfinite(history["loss"][0])
    changed = [k for k, v in model.get_weights().items() if not np.array_equal(v, before[k])]
    assert changed, "no weight changed in a training step"


def torch_googlenet(torch, num_classes):
    """torchvision's GoogLeNet (torchvision/models/googlenet.py) without the auxiliary classifiers, transcribed
    (torchvision itself need not be installed)."""
    nn_, functional = torch.nn, torch.nn.functional

    class BasicConv2d(nn_.Module):
        def __init__(self, inputs, outputs, **kwargs):
            super().__init__()
            self.conv = nn_.Conv2d(inputs, outputs, bias=False, **kwargs)
            self.bn = nn_.BatchNorm2d(outputs, eps=0.001)

        def forward(self, x):
            return functional.relu(self.bn(self.conv(x)))

    class Inception(nn_.Module):
        def __init__(self, inputs, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj):
            super().__init__()
            self.branch1 = BasicConv2d(inputs, ch1x1, kernel_size=1)
            self.branch2 = nn_.Sequential(BasicConv2d(inputs, ch3x3red, kernel_size=1),
                                          BasicConv2d(ch3x3red, ch3x3, kernel_size=3, padding=1))
            self.branch3 = nn_.Sequential(BasicConv2d(inputs, ch5x5red, kernel_size=1),
                                          BasicConv2d(ch5x5red, ch5x5, kernel_size=3, padding=1))
            self.branch4 = nn_.Sequential(nn_.MaxPool2d(3, stride=1, padding=1, ceil_mode=True),
                                          BasicConv2d(inputs, pool_proj, kernel_size=1))

        def forward(self, x):
            return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)

    layers, channels = [BasicConv2d(3, 64, kernel_size=7, stride=2, padding=3),
                        nn_.MaxPool2d(3, stride=2, ceil_mode=True), BasicConv2d(64, 64, kernel_size=1),
                        BasicConv2d(64, 192, kernel_size=3, padding=1), nn_.MaxPool2d(3, stride=2, ceil_mode=True)], 192
    for _, spec in zoo.GOOGLENET_STAGES:
        if isinstance(spec, int):
            layers.append(nn_.MaxPool2d(spec, stride=2, ceil_mode=True))
        else:
            layers.append(Inception(channels, *spec))
            channels = spec[0] + spec[2] + spec[4] + spec[5]
    layers += [nn_.AdaptiveAvgPool2d((1, 1)), nn_.Flatten(), nn_.Dropout(0.2), nn_.Linear(1024, num_classes)]
    return nn_.Sequential(*layers)


def test_googlenet_computes_what_torchvisions_definition_computes_with_the_same_weights():
    torch = pytest.importorskip("torch", reason="PyTorch is the oracle here; the parameter count is checked above")
    model = zoo.googlenet(num_classes=10, input_size=32, seed=3)
    weights = model.get_weights()
    reference = torch_googlenet(torch, 10).eval()
    ours = {"weight": "weight", "gamma": "weight", "beta": "bias", "running_mean": "running_mean",
            "running_var": "running_var", "bias": "bias"}
    theirs = {}
    for name, value in weights.items():            # conv1/bn/gamma -> 0.bn.weight, inception3a/branch2/conv/weight
        parts = name.split("/")                    # -> 5.branch2.1.conv.weight, fc/weight -> 19.weight (transposed)
        if parts[0] == "fc":
            theirs[f"{len(reference) - 1}.{ours[parts[1]]}"] = value.T if parts[1] == "weight" else value
            continue
        stem = {"conv1": "0", "conv2": "2", "conv3": "3"}.get(parts[0])
        if stem is None:
            index = 5 + [stage for stage, _ in zoo.GOOGLENET_STAGES].index(parts[0])
            branch = {"branch1": "branch1", "branch2_reduce": "branch2.0", "branch2": "branch2.1",
                      "branch3_reduce": "branch3.0", "branch3": "branch3.1", "branch4": "branch4.1"}[parts[1]]
            stem, parts = f"{index}.{branch}", parts[1:]
        theirs[f"{stem}.{parts[1]}.{ours[parts[2]]}"] = value
    state = reference.state_dict()
    assert sorted(k for k in state if not k.endswith("num_batches_tracked")) == sorted(theirs)
    reference.load_state_dict({k: torch.tensor(v) for k, v in theirs.items()}, strict=False)
    x = np.random.default_rng(4).standard_normal((2, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        expected = reference(torch.tensor(x)).numpy()
    np.testing.assert_allclose(gn.compile(model.output, device="cpu").run({model.input: x}), expected, rtol=1e-4,
                               atol=1e-4)
