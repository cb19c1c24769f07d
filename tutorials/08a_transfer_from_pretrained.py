"""Lesson 8a — transfer from a pretrained network: LeNet-5 trained on MNIST reads another digit data set.

What this teaches:
  * graphnet ships a small pretrained network: `pretrained.load("lenet5_mnist")` builds LeNet-5 (lesson 5) and
    loads weights trained on 4,000 MNIST digits with augmentation (`pretrained.info` is the record of that
    training; `python -m graphnet.pretrained.train_lenet5_mnist` trains it again);
  * new data must look like the data the network learned from: scikit-learn's 8x8 digits (other writers, another
    scanner, 17 grey levels) are resized by linear interpolation to 20x20 and centred in a 28x28 frame, as MNIST's
    digits are. A resize is a linear map along each axis: X' = A·X·Aᵀ, with A the interpolation matrix. The MNIST
    network as it is, untrained on the new digits, already reads most of them (0.83 in the full run); resized to
    fill the frame instead, unlike MNIST, only 0.65;
  * four ways to learn the new data set, side by side, each with the same budget of updates (8 epochs of the
    whole training set: 344, rounded up to whole epochs of the smaller sets):
        frozen features + new head   only the last layer (850 parameters) learns: a linear classifier on the
                                     84 features the pretrained network computes
        fine-tune the top            the convolutions stay frozen; the three dense layers learn
        fine-tune everything         every layer learns, at a smaller learning rate
        from scratch                 the same LeNet-5 with random weights
  * at 10, 30 and 100 examples per class and on the whole training set, each over several seeds (the draw of the
    examples, the new head's weights, the data order): the mean and its spread. What transfers is worth most
    where examples are fewest. In the full run (3 seeds) the best transferred network beat the one trained from
    scratch by 6.9 points at 10 examples per class (0.938 ± 0.011 vs 0.868 ± 0.010: a linear head on frozen
    features was best there), and by 3.0, 2.7 and 3.3 points at 30, 100 and all 135 (fine-tuning the top: 0.987
    vs 0.953 on the whole training set). With more examples, letting the dense layers adapt pays: fine-tuning the
    top wins from 30 per class up.

    python tutorials/08a_transfer_from_pretrained.py            # 3 seeds x 4 sizes x 4 methods: ~45 s of one core
    python tutorials/08a_transfer_from_pretrained.py --quick    # a tiny run (CI): seconds
"""
# %%
import math
import time

import numpy as np

import graphnet as gn
from _lesson import Lesson, parse_args, plt
from graphnet import nn, optim, pretrained, train
from graphnet.data import load_digits, load_mnist_5k

args = parse_args(__doc__, epochs=8, seeds=(int, 3, "seeds per result (default 3; 1 with --quick)"))
lesson = Lesson(args, "08a_transfer_from_pretrained")
seeds = range(1 if args.quick else args.seeds)
batch_size = 32

# %% The pretrained network and the record of its training
record = pretrained.info("lenet5_mnist")
print(f"lenet5_mnist: trained on {record['train_images']} MNIST digits for {record['epochs']} epochs "
      f"(seed {record['seed']}, {', '.join(record['augmentation'])}); "
      f"test accuracy {record['test_accuracy']:.4f} on {record['test_images']} digits")
model = pretrained.load("lenet5_mnist")
model.summary()


# %% The new data set: scikit-learn's 8x8 digits, made to look like MNIST
def resize_matrix(n_in, n_out):
    """The (n_out, n_in) matrix of linear interpolation along one axis, pixel centres aligned: output pixel i
    reads the input at s = (i + ½)·n_in/n_out − ½ (clipped to the image), mixing pixels ⌊s⌋ and ⌊s⌋ + 1."""
    s = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
    low = np.floor(s).astype(int)
    high = np.minimum(low + 1, n_in - 1)
    a = np.zeros((n_out, n_in))
    np.add.at(a, (np.arange(n_out), low), 1 - (s - low))
    np.add.at(a, (np.arange(n_out), high), s - low)
    return a


def like_mnist(images, box=20, size=28):
    """(N, 1, h, w) images -> (N, 1, size, size): resized to box x box, centred with a margin of zeros (MNIST's
    digits fit a 20x20 box inside their 28x28 frame)."""
    rows, cols = resize_matrix(images.shape[2], box), resize_matrix(images.shape[3], box)
    resized = rows @ images @ cols.T                       # X' = A·X·Aᵀ for every image at once
    margin = (size - box) // 2
    frame = ((0, 0), (0, 0), (margin, size - box - margin), (margin, size - box - margin))
    return np.pad(resized, frame).astype(np.float32)


(x8_train, y_train), (x8_test, y_test) = load_digits(test_size=0.25, seed=0)
x_train, x_test = like_mnist(x8_train), like_mnist(x8_test)
if args.quick:
    x_test, y_test = x_test[:200], y_test[:200]
print(f"digits: {len(x_train)} training and {len(x_test)} test images, {x8_train.shape[1:]} -> {x_train.shape[1:]}")

(x_mnist, y_mnist), _ = load_mnist_5k(test_size=0.2, seed=0)
figure, axes = plt.subplots(3, 8, figsize=(10, 4.2))
for column in range(8):
    axes[0, column].imshow(x8_train[column, 0], cmap="gray_r")
    axes[1, column].imshow(x_train[column, 0], cmap="gray_r")
    axes[2, column].imshow(x_mnist[column, 0], cmap="gray_r")
    axes[0, column].set_title(f"label {y_train[column]}")
    axes[2, column].set_title(f"label {y_mnist[column]}")
for row, text in enumerate(["digits 8x8", "resized 28x28", "MNIST 28x28"]):
    axes[row, 0].set_ylabel(text)
for ax in axes.flat:
    ax.set_xticks([])
    ax.set_yticks([])
figure.suptitle("the new data (rows 1-2) beside the data the network was trained on (row 3); x, y: pixels")
lesson.save(figure, "data")

# %% Before any training: the MNIST classifier as it is on the new digits
# The two data sets share their ten classes, so the pretrained head can be tried as it stands. Whatever it gets
# right, the features carried over; what it gets wrong, the new data's differences cost.
as_is = gn.compile(model.output, device=args.device)
zero_shot = float(np.mean(as_is.run({model.input: x_test}).argmax(axis=1) == y_test))
filled = like_mnist(x8_test[:len(x_test)], box=28)            # the same digits, resized to fill the whole frame
zero_shot_filled = float(np.mean(as_is.run({model.input: filled}).argmax(axis=1) == y_test))
print(f"the MNIST network on the resized digits, no training: accuracy {zero_shot:.3f} "
      f"(resized to fill the 28x28 frame instead: {zero_shot_filled:.3f}; chance: 0.1)")

# %% Four ways to learn the new data set
METHODS = ("frozen features + new head", "fine-tune the top", "fine-tune everything", "from scratch")
LEARNING_RATES = {"frozen features + new head": 3e-3, "fine-tune the top": 1e-3,
                  "fine-tune everything": 3e-4, "from scratch": 1e-3}


def make_model(method, seed):
    """LeNet-5 for `method`: the pretrained weights with a new 10-unit head (and some layers frozen), or new."""
    if method == "from scratch":
        return pretrained.lenet5(seed=seed)
    model = pretrained.load("lenet5_mnist")
    if method == "frozen features + new head":
        model.freeze("conv1", "conv2", "dense1", "dense2")
    elif method == "fine-tune the top":
        model.freeze(nn.Conv2D)
    head = nn.Dense(10, name="head")
    head.seed = seed                                          # the new head's random weights depend on the seed
    model.replace("dense3", head)
    return model


for method in METHODS:
    model_for_count = make_model(method, 0)
    model_for_count.build((1, 28, 28))
    counts = model_for_count.parameter_counts()
    print(f"{method:<28} trainable {counts['trainable']:>6,}  frozen {counts['frozen']:>6,}  "
          f"learning rate {LEARNING_RATES[method]:g}")


def per_class(k, seed):
    """k training images of each class, drawn at random (seed); None for k: the whole training set."""
    if k is None:
        return x_train, y_train
    rng = np.random.default_rng(seed)
    chosen = np.concatenate([rng.choice(np.flatnonzero(y_train == c), k, replace=False) for c in range(10)])
    return x_train[chosen], y_train[chosen]


class BatchLosses(train.Callback):
    """Keeps every mini-batch's training loss."""

    def __init__(self):
        self.losses = []

    def on_batch_end(self, batch, logs):
        self.losses.append(logs["loss"])


# The budget: --epochs passes over the whole training set, in updates; a smaller set runs whole epochs up to it.
steps = 6 if args.quick else args.epochs * math.ceil(len(x_train) / batch_size)


def learn(method, k, seed):
    """Train `method` on k examples per class for `steps` updates (whole epochs: a few more where they do not
    divide); returns (test accuracy, batch losses)."""
    x, y = per_class(k, seed)
    trainer = train.Trainer(make_model(method, seed), optim.Adam(LEARNING_RATES[method]), device=args.device,
                            seed=seed)
    losses = BatchLosses()
    trainer.fit(x, y, epochs=math.ceil(steps / math.ceil(len(x) / batch_size)), batch_size=batch_size,
                callbacks=[losses], progress=False)
    return trainer.evaluate(x_test, y_test)["accuracy"], losses.losses


# %% The experiment: every method at every size, over the seeds
sizes = [10, 30] if args.quick else [10, 30, 100, None]           # None: the whole training set
label = {k: str(k) if k else f"all ({len(x_train) / 10:.0f})" for k in sizes}
results, losses_seen = {}, {}
started = time.perf_counter()
for k in sizes:
    for method in METHODS:
        runs = [learn(method, k, seed) for seed in seeds]
        accuracies = np.array([accuracy for accuracy, _ in runs])
        results[method, k] = accuracies
        losses_seen[method, k] = runs[0][1]
        spread = accuracies.std(ddof=1) if len(accuracies) > 1 else 0.0
        print(f"{label[k]:>9} per class  {method:<28} test accuracy {accuracies.mean():.3f} ± {spread:.3f} "
              f"(seeds: {', '.join(f'{a:.3f}' for a in accuracies)})")
seconds = time.perf_counter() - started
print(f"{len(sizes) * len(METHODS) * len(seeds)} runs of at least {steps} updates each in {seconds:.1f} s")

# %% Figure: accuracy against the training-set size, four lines with error bars
x_positions = [k if k else len(x_train) / 10 for k in sizes]
figure, ax = plt.subplots(figsize=(8, 5))
for method, marker in zip(METHODS, "osD^"):
    mean = [results[method, k].mean() for k in sizes]
    error = [results[method, k].std(ddof=1) if len(seeds) > 1 else 0.0 for k in sizes]
    ax.errorbar(x_positions, mean, yerr=error, marker=marker, capsize=3, label=method)
ax.set_xscale("log")
ax.set_xticks(x_positions, [label[k] for k in sizes])
ax.minorticks_off()
ax.set_xlabel("training examples per class (scikit-learn's digits, resized to 28x28)")
ax.set_ylabel(f"test accuracy ({len(x_test)} digits)")
ax.set_title(f"LeNet-5 pretrained on MNIST vs from scratch (mean ± std over {len(seeds)} seed(s))")
ax.axhline(zero_shot, color="gray", linestyle=":", label=f"MNIST network as it is ({zero_shot:.3f})")
ax.legend()
lesson.save(figure, "accuracy_vs_size")

# %% The table, the gain at each size, and the result
print(f"\n{'per class':>9}  " + "  ".join(f"{m:>28}" for m in METHODS))
for k in sizes:
    print(f"{label[k]:>9}  " + "  ".join(f"{results[m, k].mean():>28.3f}" for m in METHODS))
print()
for k in sizes:                                  # the best of the three transfers against from scratch
    best = max(METHODS[:3], key=lambda m: results[m, k].mean())
    points = 100 * (results[best, k].mean() - results["from scratch", k].mean())
    print(f"at {label[k]} examples per class, '{best}' beats training from scratch by {points:.1f} points "
          f"({results[best, k].mean():.3f} vs {results['from scratch', k].mean():.3f})")
smallest, whole = sizes[0], sizes[-1]


def gain(k):
    """Points the best of the three transfers gains over training from scratch, at k examples per class."""
    return 100 * (max(results[m, k].mean() for m in METHODS[:3]) - results["from scratch", k].mean())


recorded = losses_seen["fine-tune everything", smallest]
lesson.finish(recorded[0], float(np.mean(recorded[-max(1, min(5, len(recorded) // 3)):])),
              "; ".join(f"at {label[k]}/class: " + ", ".join(f"{m} {results[m, k].mean():.3f}" for m in METHODS)
                        for k in (smallest, whole))
              + f"; the best transfer beats from scratch by {gain(smallest):+.1f} points at {label[smallest]}/class, "
              f"{gain(whole):+.1f} at {label[whole]}/class ({len(seeds)} seed(s))")


# %% Exercises
# Call one with your answer, e.g. check_exercise_1((100, 1000)).
def check_exercise_1(answer):
    """Exercise 1: (the head's parameters, the parameters 'fine-tune the top' trains) for 26 classes."""
    head = (84 + 1) * 26                                      # (n_in + 1)·n_out on dense2's 84 units
    top = (400 + 1) * 120 + (120 + 1) * 84 + head            # dense1, dense2 and the head
    if tuple(answer) == (head, top):
        print(f"Right: a 26-way head has {head:,} parameters; with dense1 and dense2 the top trains {top:,}.")
        return True
    if tuple(answer)[:1] == (head,):
        print("The head is right. 'Fine-tune the top' trains dense1 and dense2 as well as the head.")
    else:
        print("Not yet. A dense layer has (n_in + 1)·n_out parameters; the head reads dense2's 84 units.")
    return False


def check_exercise_2(resize_nearest):
    """Exercise 2: resize_nearest(images, size) takes each output pixel from the input pixel nearest its centre."""
    rng = np.random.default_rng(0)
    for shape, size in (((4, 1, 8, 8), 20), ((2, 3, 6, 6), 9), ((1, 1, 5, 5), 5)):
        images = rng.random(shape).astype(np.float32)
        # output pixel i has its centre at (i + ½)·n/size in input pixels: the input pixel ⌊(2i + 1)·n / 2size⌋
        source = ((2 * np.arange(size) + 1) * shape[-1]) // (2 * size)
        expected = images[:, :, source][:, :, :, source]
        got = np.asarray(resize_nearest(images, size))
        if got.shape != expected.shape:
            print(f"Not yet: {shape} images resized to {size} should give {expected.shape}, not {got.shape}.")
            return False
        if not np.allclose(got, expected):
            copies = np.isin(got, images).all()
            print("Not yet: " + ("every value is an input pixel, but not the nearest one: output pixel i is centred "
                                 "at (i + ½)·n/size in the input." if copies else
                                 "some values are not input pixels: nearest-neighbour copies, it never mixes."))
            return False
    print("Right: every output pixel is a copy of the input pixel nearest its centre.")
    return True


# %% [markdown]
# **Exercise 1 — a head for letters.** Suppose the new data set had 26 classes (the letters) instead of 10. How many
# parameters would the new head have, and how many would "fine-tune the top" train? Work them out from (n_in +
# 1)·n_out, then `check_exercise_1((head, top))`.
#
# **Exercise 2 — another resize.** Write `resize_nearest(images, size)`: (N, C, n, n) images to (N, C, size, size),
# each output pixel a copy of the input pixel nearest its centre (it, too, is a matrix along each axis: one 1 per
# row). Check it with `check_exercise_2(resize_nearest)`, use it in `like_mnist` in place of `resize_matrix`, and run
# the lesson again: how much do the blocky digits cost the network as it is, and after training?
#
# **Exercise 3 — fine-tuning too hard.** Fine-tune everything at 10 examples per class with learning rates 1e-4, 3e-4,
# 1e-3 and 3e-3 (`LEARNING_RATES`). Which is best? At the largest, does the pretrained network keep its advantage over
# training from scratch, or do the first updates of a random head wreck what it transferred?
