"""train.TensorBoard: the logs that tensorboard's own reader finds — the history's scalars, histograms of the
weights and of the real gradients, the first convolution's filters, the training graph."""
import sys

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import graphnet as gn
from graphnet import nn, optim, train
from graphnet.data import shape_images

EVERYTHING = {"scalars": 0, "histograms": 0, "images": 0, "compressedHistograms": 0}


def small_cnn(dropout=0.0):
    layers = [nn.Conv2D(4, 5, padding=2, activation="relu"), nn.MaxPool2D(4), nn.Flatten()]
    layers += [nn.Dropout(dropout)] if dropout else []
    return nn.Sequential(layers + [nn.Dense(7)])


def read(logdir):
    events = EventAccumulator(str(logdir), size_guidance=EVERYTHING)
    events.Reload()
    return events


def test_scalars_histograms_filters_and_the_graph_are_written(tmp_path):
    x, y = shape_images(120, seed=3)
    model = small_cnn()
    trainer = train.Trainer(model, optim.Adam(2e-3))
    history = trainer.fit(x, y, epochs=2, batch_size=32, validation_split=0.2, progress=False,
                          callbacks=[train.TensorBoard(tmp_path, update_freq="batch")])
    events = read(tmp_path)
    for key in ("loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "seconds"):
        logged = events.Scalars(f"epoch/{key}")
        assert [e.step for e in logged] == [1, 2]
        assert [e.value for e in logged] == pytest.approx(history[key], rel=1e-6)
    batches = events.Scalars("batch/loss")
    assert [e.step for e in batches] == list(range(1, 2 * len(trainer.loader) + 1))   # optimizer steps
    tags = events.Tags()
    names = list(model.variables())                          # conv1/weight, conv1/bias, dense1/...
    for name in names:
        assert f"weights/{name}" in tags["histograms"] and f"gradients/{name}" in tags["histograms"]
        histogram = events.Histograms(f"weights/{name}")
        assert [h.step for h in histogram] == [1, 2]
        assert histogram[-1].histogram_value.num == model.variables()[name].numpy().size
    assert events.Histograms("gradients/conv1/weight")[-1].histogram_value.max == pytest.approx(
        trainer.gradients["conv1/weight"].max(), rel=1e-6)
    image = events.Images("filters/conv1/weight")[-1]
    assert image.encoded_image_string[:8] == b"\x89PNG\r\n\x1a\n"
    assert image.width > 50 and image.height > 50                   # 4 tiles of 5x5 pixels, enlarged
    graph = events.Graph()
    by_name = {node.name: node for node in graph.node}
    assert set(by_name) == {n.name for n in trainer.train_program.nodes}
    conv = next(n for n in trainer.train_program.nodes if n.op.name == "conv2d")
    assert by_name[conv.name].op == "conv2d" and by_name[conv.name].attr["site"].s.decode() == conv.site
    assert [d.size for d in by_name[conv.name].attr["_output_shapes"].list.shape[0].dim] == [-1, 4, 28, 28]
    assert list(by_name[conv.name].input) == [i.name for i in conv.inputs]


class WeightsBeforeLastBatch(train.Callback):
    def on_batch_end(self, batch, logs):
        if batch == len(self.trainer.loader) - 2:
            self.weights = self.trainer.model.get_weights()


def test_the_gradients_logged_are_those_of_the_last_batchs_update(tmp_path):
    x, y = shape_images(80, seed=4)
    model = small_cnn()
    before = WeightsBeforeLastBatch()
    trainer = train.Trainer(model, optim.SGD(0.05))
    trainer.fit(x, y, epochs=1, batch_size=16, progress=False,
                callbacks=[before, train.TensorBoard(tmp_path, write_images=False, write_graph=False)])
    after = model.get_weights()
    for name, gradient in trainer.gradients.items():                 # SGD: w ← w − η·g on the last batch
        np.testing.assert_allclose(after[name], before.weights[name] - 0.05 * gradient, rtol=1e-5, atol=1e-7)
    assert read(tmp_path).Histograms("gradients/dense1/weight")


def test_fetching_gradients_does_not_change_training(tmp_path):
    x, y = shape_images(80, seed=5)
    histories = []
    for callbacks in ([], [train.TensorBoard(tmp_path)]):
        trainer = train.Trainer(small_cnn(dropout=0.3), optim.Adam(2e-3), seed=1)
        histories.append(trainer.fit(x, y, epochs=2, batch_size=16, progress=False, callbacks=callbacks))
    assert histories[0]["loss"] == histories[1]["loss"]             # same dropout masks, same updates


def test_histograms_every_other_epoch_fetch_gradients_only_then(tmp_path):
    x, y = shape_images(48, seed=6)
    board = train.TensorBoard(tmp_path, histogram_freq=2, write_images=False, write_graph=False)
    assert [board.wants_gradients(epoch) for epoch in (1, 2, 3, 4)] == [False, True, False, True]
    train.Trainer(small_cnn(), optim.SGD(0.01)).fit(x, y, epochs=3, batch_size=16, progress=False,
                                                     callbacks=[board])
    events = read(tmp_path)
    assert [h.step for h in events.Histograms("gradients/conv1/weight")] == [2]
    assert [e.step for e in events.Scalars("epoch/loss")] == [1, 2, 3]
    assert not events.Tags()["graph"] and not events.Tags()["images"]


def test_without_tensorboardx_the_error_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)
    with pytest.raises(gn.GraphnetError, match=r"pip install 'graphnet\[tensorboard\]'"):
        train.TensorBoard(tmp_path)
