"""Lesson 8 — transfer learning: features learned on one task help another that has only a few examples.

What this teaches:
  * train a small CNN on the digits 0–4 (about 2,000 real MNIST digits), and save its weights to a checkpoint
    (`model.save_weights`: an .npz file, written atomically, read back without pickle);
  * build the same network anew, load the checkpoint into it (`model.load_weights`, by variable name),
    freeze the convolutions (`model.freeze(nn.Conv2D)`: no gradient, no update) and replace the classifier's last
    layer with a new head (`model.replace`) for a new task: the digits 5–9, from only a few examples of each;
  * compare with the same network trained from scratch on the same few examples, and with fine-tuning every
    layer. Strokes, curves and corners learned on 0–4 serve for 5–9 as well, so the transferred network wins —
    by most when examples are fewest. (MNIST is easy: from scratch does well too, so each result is averaged
    over three random draws of the few examples, to tell a real gap of a few points from luck.)
  * what transfers is the features, not the classifier: dense1's 64 units were shaped for 0–4, so only the
    convolutions are frozen; dense1 and the new head learn the new task.

    python tutorials/08_transfer_learning.py            # ~40 s on one core
    python tutorials/08_transfer_learning.py --quick    # a tiny run (CI)
"""
# %%
import math
import time

import numpy as np

from _lesson import Lesson, parse_args, plt
from graphnet import nn, optim, train
from graphnet.data import load_mnist_5k

args = parse_args(__doc__, epochs=8, shots=(int, 50, "examples per class of the new task (default 50)"))
lesson = Lesson(args, "08_transfer_learning")
epochs = 1 if args.quick else args.epochs
shot_counts = [args.shots] if args.quick else sorted({5, 10, 20, args.shots})
draws = 1 if args.quick else 3                       # each few-shot result: the mean over 3 random draws
fine_tune_steps = 3 if args.quick else 300           # the same number of updates for every few-shot run
batch_size = 16

# %% Data: task A = digits 0–4 (all of them), task B = digits 5–9 (a few of each), from 5,000 real MNIST digits
(x_pool, y_pool), (x_test, y_test) = load_mnist_5k(test_size=0.2, seed=0)
a_train, a_test = y_pool < 5, y_test < 5
x_a, y_a = x_pool[a_train], y_pool[a_train]
x_a_test, y_a_test = x_test[a_test], y_test[a_test]
x_b_pool, y_b_pool = x_pool[~a_train], y_pool[~a_train] - 5      # labels 5..9 become 0..4 for the new head
x_b_test, y_b_test = x_test[~a_test], y_test[~a_test] - 5
if args.quick:
    x_a, y_a, x_a_test, y_a_test = x_a[:320], y_a[:320], x_a_test[:200], y_a_test[:200]
    x_b_test, y_b_test = x_b_test[:200], y_b_test[:200]


def few_shot(k, seed=0):
    """k examples of each of the 5 new classes, drawn at random from the training pool."""
    rng = np.random.default_rng(seed)
    chosen = np.concatenate([rng.choice(np.flatnonzero(y_b_pool == c), k, replace=False) for c in range(5)])
    chosen = rng.permutation(chosen)
    return x_b_pool[chosen], y_b_pool[chosen]


print(f"task A (digits 0-4): {len(x_a)} training, {len(x_a_test)} test images; "
      f"task B (digits 5-9): {', '.join(map(str, shot_counts))} training images per class, {len(x_b_test)} test")


# %% The network: two conv layers learn features, two dense layers classify
def cnn(seed=0):
    return nn.Sequential([
        nn.Conv2D(16, 3, padding=1, activation="relu"), nn.MaxPool2D(2),       # conv1: 16 x 28 x 28 -> 14 x 14
        nn.Conv2D(32, 3, padding=1, activation="relu"), nn.MaxPool2D(2),       # conv2: 32 x 14 x 14 -> 7 x 7
        nn.Flatten(), nn.Dense(64, activation="relu"), nn.Dense(5)], name="cnn", seed=seed)


class BatchLosses(train.Callback):
    """Keeps every mini-batch's training loss."""

    def __init__(self):
        self.losses = []

    def on_batch_end(self, batch, logs):
        self.losses.append(logs["loss"])


# %% Step 1 — train on task A and save the weights
base = cnn()
base.build(x_a.shape[1:])
base.summary()
recorder = BatchLosses()
trainer_a = train.Trainer(base, optim.Adam(1e-3), device=args.device)
trainer_a.fit(x_a, y_a, epochs=epochs, batch_size=32, validation_data=(x_a_test, y_a_test), callbacks=[recorder])
accuracy_a = trainer_a.evaluate(x_a_test, y_a_test)["accuracy"]
print(f"task A (0-4) test accuracy: {accuracy_a:.3f}")
checkpoint_path = args.out / "08_transfer_learning_digits0-4.npz"
base.save_weights(checkpoint_path)
print(f"saved {len(base.variables())} variables to {checkpoint_path}")


# %% Step 2 — three ways to learn task B from k examples per class
def transferred(freeze_convolutions):
    """A new network with the saved weights, a new head, and (optionally) frozen convolutions."""
    model = cnn(seed=1)
    model.build(x_a.shape[1:])
    loaded = model.load_weights(checkpoint_path)              # every variable, matched by name and shape
    if freeze_convolutions:
        model.freeze(nn.Conv2D)                               # conv1, conv2: no gradient, no update
    model.replace("dense2", nn.Dense(5, name="head"))        # the 0-4 classifier's last layer goes; a new one
    return model, loaded


def learn_task_b(method, k, draw=0, watch=False):
    x_b, y_b = few_shot(k, seed=draw)
    if method == "from scratch":
        model, learning_rate = cnn(seed=1), 1e-3
    elif method == "transfer, convs frozen":
        model, learning_rate = transferred(freeze_convolutions=True)[0], 1e-3
    else:                                                      # fine-tune everything, more gently
        model, learning_rate = transferred(freeze_convolutions=False)[0], 3e-4
    trainer = train.Trainer(model, optim.Adam(learning_rate), device=args.device)
    steps_per_epoch = math.ceil(len(x_b) / batch_size)
    run_epochs = 1 if args.quick else math.ceil(fine_tune_steps / steps_per_epoch)
    history = trainer.fit(x_b, y_b, epochs=run_epochs, batch_size=batch_size, progress=watch,
                          validation_data=(x_b_test, y_b_test) if watch else None)
    return dict(model=model, history=history, accuracy=trainer.evaluate(x_b_test, y_b_test)["accuracy"])


model, loaded = transferred(freeze_convolutions=True)
print(f"loaded {len(loaded)} variables: {', '.join(loaded)}")
model.build(x_a.shape[1:])                                    # builds the new head, for the summary
model.summary()                                               # frozen: conv1, conv2

methods = ("from scratch", "transfer, convs frozen", "fine-tune all layers")
results, curves = {}, {}
for k in shot_counts:
    for method in methods:
        started = time.perf_counter()
        runs = [learn_task_b(method, k, draw, watch=(k == args.shots and draw == 0)) for draw in range(draws)]
        accuracies = [r["accuracy"] for r in runs]
        results[method, k] = dict(accuracy=float(np.mean(accuracies)), low=min(accuracies), high=max(accuracies))
        if k == args.shots:
            curves[method] = runs[0]["history"]
        print(f"k={k:>3} per class, {method:<24} test accuracy on 5-9: {np.mean(accuracies):.3f} "
              f"(draws: {', '.join(f'{a:.3f}' for a in accuracies)}; {time.perf_counter() - started:.1f} s)")

# %% Figures: accuracy against the number of examples, and the learning curves at k = --shots
figure, (left, right) = plt.subplots(1, 2, figsize=(13, 4.5))
for method, marker in zip(methods, "osD"):
    mean = [results[method, k]["accuracy"] for k in shot_counts]
    spread = [[m - results[method, k]["low"] for m, k in zip(mean, shot_counts)],
              [results[method, k]["high"] - m for m, k in zip(mean, shot_counts)]]
    left.errorbar(shot_counts, mean, yerr=spread, marker=marker, capsize=3, label=method)
    h = curves[method]
    right.plot(h.epochs, h["val_accuracy"], marker="." if len(h) < 20 else None, label=method)
left.set_xscale("log")
left.set_xticks(shot_counts, [str(k) for k in shot_counts])
left.minorticks_off()
left.set_xlabel("training examples per class (digits 5-9)")
left.set_ylabel("test accuracy on 5-9")
left.set_title(f"few-shot learning of 5-9 (mean and range of {draws} draws)")
left.legend()
right.set_xlabel("epoch")
right.set_ylabel("test accuracy on 5-9")
right.set_title(f"learning curves with {args.shots} examples per class (first draw)")
right.legend()
lesson.save(figure, "few_shot")

filters = base.get_weights()["conv1/weight"][:, 0]              # (16, 3, 3): what conv1 learned on 0-4
figure, axes = plt.subplots(2, 8, figsize=(8, 2.3))
for f, ax in zip(filters, axes.flat):
    ax.imshow(f, cmap="RdBu_r", vmin=-abs(filters).max(), vmax=abs(filters).max())
    ax.axis("off")
figure.suptitle("conv1's 16 filters after training on 0-4 (frozen and reused for 5-9)")
lesson.save(figure, "filters")

# %% The table (mean test accuracy over the draws) and the result
print(f"\n{'examples/class':>14}  " + "  ".join(f"{m:>24}" for m in methods))
for k in shot_counts:
    print(f"{k:>14}  " + "  ".join(f"{results[m, k]['accuracy']:>24.3f}" for m in methods))

k = args.shots
lesson.finish(recorder.losses[0], float(np.mean(recorder.losses[-max(1, min(10, len(recorder.losses) // 3)):])),
              f"digits 5-9 from {k} examples per class: transfer {results['transfer, convs frozen', k]['accuracy']:.3f}"
              f", fine-tune all {results['fine-tune all layers', k]['accuracy']:.3f}"
              f", from scratch {results['from scratch', k]['accuracy']:.3f} (task A 0-4: {accuracy_a:.3f})")


# %% Exercises
# Call one with your answer, e.g. check_exercise_1(12345).
def check_exercise_1(answer):
    """Exercise 1: how many parameters the optimizer updates when the convolutions are frozen."""
    flattened = 32 * 7 * 7                                   # conv2's 32 maps of 7x7 after the second pooling
    expected = (flattened + 1) * 64 + (64 + 1) * 5           # dense1 and the new head: (n_in + 1)·n_out each
    if answer == expected:
        print(f"Right: {expected:,} parameters learn; conv1 and conv2 keep their values from task A.")
        return True
    print("Not yet. Only dense1 and the new head learn; a dense layer has (n_in + 1)·n_out parameters, and "
          "dense1's n_in is the flattened size of conv2's output after two 2x2 poolings of a 28x28 image.")
    return False


def check_exercise_2(fraction):
    """Exercise 2: the fraction of all parameters that learn when only the new head does."""
    convolutions = 16 * (1 * 3 * 3 + 1) + 32 * (16 * 3 * 3 + 1)      # K·(C·R·S + 1) for conv1 and conv2
    dense1, head = (32 * 7 * 7 + 1) * 64, (64 + 1) * 5
    expected = head / (convolutions + dense1 + head)
    if abs(fraction - expected) <= 0.02 * expected:
        print(f"Right: {expected:.4f} — {head} of {convolutions + dense1 + head:,} parameters, about 1 in "
              f"{round(1 / expected)}.")
        return True
    print("Not yet. The head is Dense(5) on dense1's 64 units; divide its parameters by those of the whole "
          "network (both convolutions, dense1 and the head — model.summary() shows the total).")
    return False


def check_exercise_3(names):
    """Exercise 3: the names of the arrays the task-A checkpoint holds in its 'model' group."""
    expected = {f"{layer}/{kind}" for layer in ("conv1", "conv2", "dense1", "dense2") for kind in ("weight", "bias")}
    given = set(names)
    if given == expected:
        print(f"Right: {len(expected)} arrays, named after the layers of the network that was saved: "
              "load_weights matches them by name and shape.")
        return True
    if any(name.startswith("model/") for name in given):
        print("Almost: those are the names in the file; Checkpoint.group('model') gives them without the prefix.")
    elif any(name.startswith("head/") for name in given):
        print("Not yet: the head was added after the checkpoint was written, to a new network; it is not in the "
              "file.")
    else:
        print("Not yet. Read the file with graphnet.checkpoint.read(checkpoint_path) and look at .group('model').")
    return False


# %% [markdown]
# **Exercise 1 — count what learns.** With the convolutions frozen and a new head of 5 units, how many parameters does
# the optimizer update? Work it out from the formulas — (n_in + 1)·n_out for a dense layer — before you look at the
# summary printed above; then `check_exercise_1(your_number)`.
#
# **Exercise 2 — only the head learns.** Freeze dense1 as well (`model.freeze(nn.Conv2D, "dense1")` in `transferred`).
# What fraction of the network's parameters still learn? `check_exercise_2(your_fraction)`. Then run the lesson with
# that change and compare the transferred network with the one in the table at 5 and at 50 examples per class: when
# does a classifier on fixed features suffice, and when must dense1 adapt?
#
# **Exercise 3 — what a checkpoint holds.** Read the file that step 1 wrote, `gn.checkpoint.read(checkpoint_path)`
# (`import graphnet as gn`), and pass the names of its `group("model")` arrays to `check_exercise_3(names)`. Why does
# `transferred` load the weights *before* it replaces dense2 with the new head — what would
# `load_weights(strict=True)` say the other way round, and what does `strict=False` do then?
