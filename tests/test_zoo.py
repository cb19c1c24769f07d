"""The model zoo: each classic architecture at full size has torchvision's parameter count and runs a 224×224
forward pass on the cpu device; small versions export to ONNX (same outputs in onnxruntime) and train a step."""
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
         "mobilenet_v2": 32}


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
