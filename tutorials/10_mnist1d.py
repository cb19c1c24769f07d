"""Lesson 10 — MNIST-1D: a tiny data set on which the classic ordering of models shows clearly — logistic < MLP < CNN.

What this teaches:
  * MNIST-1D (Greydanus 2020) turns the ten digits into 1-D signals of 40 points: each digit's template is padded,
    shifted, scaled, sheared and made noisy. Because a digit can sit anywhere in the signal, a model that shares
    weights across positions — a convolution — wins by far, as on images, but in seconds on one CPU core;
  * a 1-D convolution is a 2-D one over (N, C, 1, L) inputs with 1×K kernels: stride (1, 2), padding (0, 1);
  * the paper's three models and what they reach on its 4000 / 1000 split: logistic regression ~32%,
    an MLP with two hidden layers of 100 ~68%, a CNN of three 25-channel conv layers ~94%;
  * a model's capacity is not the point: the MLP has more parameters than the CNN and does far worse.

Run it:

    python tutorials/10_mnist1d.py              # the three models, 150 epochs each (6000 Adam steps), ~30 s
    python tutorials/10_mnist1d.py --quick      # a tiny run (CI)
    python tutorials/10_mnist1d.py --device reference --epochs 20
"""
# %%
import time

import numpy as np

from _lesson import Lesson, parse_args, plt
from graphnet import nn, optim, train
from graphnet.data import load_mnist1d

args = parse_args(__doc__, epochs=150)
lesson = Lesson(args, "10_mnist1d")
epochs = 1 if args.quick else args.epochs
batch_size, learning_rate = 100, 1e-2            # the paper's settings: Adam, lr 0.01, batches of 100

# %% The data: 4000 training and 1000 test signals of length 40, ten classes
(x_train, y_train), (x_test, y_test) = load_mnist1d(seed=0)
if args.quick:
    x_train, y_train, x_test, y_test = x_train[:1000], y_train[:1000], x_test[:300], y_test[:300]
print(f"MNIST-1D: {len(x_train)} training and {len(x_test)} test signals of shape {x_train.shape[1:]} "
      f"(N, C, H=1, W=L), classes {np.bincount(y_train).tolist()}")

figure, axes = plt.subplots(2, 5, figsize=(12, 4), sharex=True, sharey=True)
for digit, ax in enumerate(axes.flat):
    for signal in x_train[y_train == digit][:4]:
        ax.plot(signal[0, 0], lw=1)
    ax.set_title(f"digit {digit}")
for ax in axes[1]:
    ax.set_xlabel("position (0..39)")
for ax in axes[:, 0]:
    ax.set_ylabel("signal value")
figure.suptitle("MNIST-1D: four training signals of each class (a digit can sit anywhere)")
lesson.save(figure, "signals")


# %% The three models of the paper
def logistic():
    """Logistic regression: one linear layer from the 40 points to 10 logits."""
    return nn.Sequential([nn.Flatten(), nn.Dense(10)], name="logistic")


def mlp():
    """Two hidden layers of 100 ReLU units."""
    return nn.Sequential([nn.Flatten(), nn.Dense(100, activation="relu"), nn.Dense(100, activation="relu"),
                          nn.Dense(10)], name="mlp")


def cnn():
    """Three conv layers of 25 channels (1-D: 1×K kernels), stride 2, ReLU, then a linear layer.

    lengths: 40 -> floor((40 + 2 − 5)/2) + 1 = 19 -> floor((19 + 2 − 3)/2) + 1 = 10 -> 5;  25·5 = 125 features"""
    return nn.Sequential([
        nn.Conv2D(25, (1, 5), stride=(1, 2), padding=(0, 1), activation="relu"),
        nn.Conv2D(25, (1, 3), stride=(1, 2), padding=(0, 1), activation="relu"),
        nn.Conv2D(25, (1, 3), stride=(1, 2), padding=(0, 1), activation="relu"),
        nn.Flatten(), nn.Dense(10)], name="cnn")


class BatchLosses(train.Callback):
    """Keeps every mini-batch's training loss."""

    def __init__(self):
        self.losses = []

    def on_batch_end(self, batch, logs):
        self.losses.append(logs["loss"])


# %% Train each model the same way: Adam, lr 0.01, batches of 100, test accuracy after every epoch
results = {}
for make in (logistic, mlp, cnn):
    model = make()
    model.build(x_train.shape[1:])
    model.summary()
    trainer = train.Trainer(model, optim.Adam(learning_rate), device=args.device)
    recorder = BatchLosses()
    started = time.perf_counter()
    history = trainer.fit(x_train, y_train, epochs=epochs, batch_size=batch_size,
                          validation_data=(x_test, y_test), callbacks=[recorder])
    seconds = time.perf_counter() - started
    accuracy = trainer.evaluate(x_test, y_test)["accuracy"]
    results[model.name] = dict(accuracy=accuracy, history=history, losses=recorder.losses, seconds=seconds,
                               params=model.count_params(), steps=len(recorder.losses))
    print(f"{model.name}: test accuracy {accuracy:.3f} after {len(recorder.losses)} steps "
          f"({model.count_params():,} parameters, {seconds:.1f} s)\n")

# %% Results: the paper's ordering
paper = {"logistic": 0.32, "mlp": 0.68, "cnn": 0.94}
print(f"{'model':<10} {'params':>8} {'test acc':>9} {'paper':>6}")
for name, r in results.items():
    print(f"{name:<10} {r['params']:>8,} {r['accuracy']:>9.3f} {paper[name]:>6.2f}")

figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.2))
names = list(results)
bars = left.bar(names, [results[n]["accuracy"] for n in names], color=["tab:gray", "tab:blue", "tab:green"])
left.scatter(names, [paper[n] for n in names], color="black", marker="_", s=900, zorder=3, label="paper")
for bar, name in zip(bars, names):
    left.text(bar.get_x() + bar.get_width() / 2, results[name]["accuracy"] / 2, f"{results[name]['accuracy']:.1%}",
              ha="center", color="white", fontweight="bold")
left.set_ylim(0, 1.05)
left.set_ylabel("test accuracy")
left.set_title("MNIST-1D test accuracy (bars: this run; lines: the paper)")
left.legend(loc="upper left")
for name in names:
    right.plot(results[name]["history"].epochs, results[name]["history"]["val_accuracy"], label=name,
               marker="." if epochs < 20 else None)
right.set_xlabel("epoch")
right.set_ylabel("test accuracy")
right.set_title("test accuracy during training")
right.legend()
lesson.save(figure, "accuracy")

# %% The result
losses = results["cnn"]["losses"]
tail = max(1, min(10, len(losses) // 3))
lesson.finish(losses[0], float(np.mean(losses[-tail:])),
              " ".join(f"{n} {results[n]['accuracy']:.3f}" for n in names)
              + f" (test accuracy; paper: logistic 0.32 mlp 0.68 cnn 0.94)")

# %% Exercises
# Call them with your answers, e.g. check_exercise_1(100).
def check_exercise_1(answer):
    """Exercise 1: the number of features the CNN's Flatten hands its dense layer for signals of length 100."""
    from graphnet import nn
    model = nn.Sequential([nn.Conv2D(25, (1, 5), stride=(1, 2), padding=(0, 1)),
                           nn.Conv2D(25, (1, 3), stride=(1, 2), padding=(0, 1)),
                           nn.Conv2D(25, (1, 3), stride=(1, 2), padding=(0, 1)), nn.Flatten()])
    model.build((1, 1, 100))
    if answer == model.output.shape[1]:
        print(f"right: 100 -> 49 -> 25 -> 13 points, 25 channels: {model.output.shape[1]} features")
        return True
    print(f"not yet ({answer}): L' = floor((L + 2P − K)/S) + 1 three times, then times the 25 channels")
    return False


def check_exercise_2(answer):
    """Exercise 2: how many of the 64 input points one output of the third conv layer sees (its receptive field),
    measured: the gradient of that output with respect to the input is non-zero exactly there."""
    import numpy as np
    import graphnet as gn
    with gn.Graph():
        x = gn.variable(np.ones((1, 1, 1, 64)), name="x")
        h = x
        for k in (5, 3, 3):                       # the CNN's kernels; ones, so that no path cancels
            h = gn.conv2d(h, gn.constant(np.ones((1, 1, 1, k))), stride=(1, 2), padding=(0, 1))
        (d_x,) = gn.gradients(gn.sum(h[:, :, :, 3:4]), [x])     # output 3 of 8: away from the padded edges
    seen = int(np.count_nonzero(gn.compile(d_x, device="reference").run({})))
    if answer == seen:
        print(f"right: r = 5, then 5 + (3 − 1)·2 = 9, then 9 + (3 − 1)·4 = {seen} points")
        return True
    print(f"not yet ({answer}): each layer adds (K − 1) times the product of the strides before it")
    return False

# %% [markdown]
# **Exercise 1.** Feed the CNN signals of length 100 instead of 40. How many features does its `Flatten` hand the
# dense layer (at length 40: 25 channels · 5 points = 125)? Use L' = floor((L + 2P − K)/S) + 1 for each conv layer,
# then check: `check_exercise_1(answer)`.
#
# **Exercise 2.** One output of the third conv layer depends on a window of the input signal: its receptive field.
# Each layer widens it by (K − 1) times the product of the strides of the layers before it. How many input points does
# it span? Check: `check_exercise_2(answer)` — the checker measures it with `gn.gradients`.
#
# **Exercise 3.** Shuffle the 40 positions of every signal with one fixed permutation (`perm =
# np.random.default_rng(0).permutation(40)`, then `x[..., perm]` for the training and the test set) and train the
# three models again. Which model does not care, and which one loses most? Why?
