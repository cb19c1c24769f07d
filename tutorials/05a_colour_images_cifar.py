"""Lesson 5a — colour images: a CNN on 32x32 RGB pictures, per-channel normalisation, flips and crops, and the
confusion matrix.

What this teaches:
  * a colour image is three images, one per channel: a batch is (N, 3, 32, 32) in NCHW, and the first convolution
    has a 3-deep filter for each output channel — K·(3·R·S + 1) parameters instead of K·(R·S + 1);
  * per-channel normalisation: each channel c is shifted and scaled by the mean and standard deviation of that
    channel over the *training* images, x'_c = (x_c − mean_c) / std_c. The test images use the same numbers (a
    model must not peek at the test set, not even at its mean). Zero then means "an average pixel";
  * augmentation that keeps the label: a left-right mirror (RandomFlip) and a random 32x32 window of the image
    padded by 4 pixels (RandomCrop). Done after normalisation, the padding is 0 — the average colour;
  * the confusion matrix: row = true class, column = predicted class; what lies off the diagonal says which
    classes the model mixes up, which one number (accuracy) cannot;
  * whether colour matters: the same CNN trained on the grayscale images, 0.299·R + 0.587·G + 0.114·B.

The data: CIFAR-10 (60,000 photos of 10 classes) when you have its binary version on disk — pass the folder
`cifar-10-batches-bin` (or the one holding it) as --cifar-root, or set GRAPHNET_CIFAR10 to it; nothing is
downloaded. Otherwise a generated set (`graphnet.data.colour_shape_images`): a red, green or blue disc, square or
triangle, 9 classes, where the three colours have exactly the same brightness — so the grayscale images show the
shape but not the colour, and a grayscale model cannot tell a red square from a blue one.

    python tutorials/05a_colour_images_cifar.py                 # generated colour shapes, 12 epochs per model
    python tutorials/05a_colour_images_cifar.py --cifar-root ~/data/cifar-10-batches-bin --train-size 50000
    python tutorials/05a_colour_images_cifar.py --quick         # a tiny run (CI)
"""
# %%
import os
import time

import numpy as np

from _lesson import Lesson, parse_args, plt
from graphnet import nn, optim, train
from graphnet.data import (CIFAR10_CLASSES, COLOUR_SHAPE_CLASSES, RandomCrop, RandomFlip, colour_shape_images,
                           load_cifar10, to_grayscale)

args = parse_args(__doc__, epochs=12,
                  cifar_root=(str, os.environ.get("GRAPHNET_CIFAR10") or None,
                              "CIFAR-10's binary folder (default: $GRAPHNET_CIFAR10; none: generated images)"),
                  train_size=(int, 4000, "training images (CIFAR-10 has 50,000; the generated set is made this big)"),
                  batch_size=(int, 64, "images per mini-batch"),
                  lr=(float, 2e-3, "Adam's learning rate"))
lesson = Lesson(args, "05a_colour_images_cifar")
epochs = 1 if args.quick else args.epochs
train_size, test_size = (300, 200) if args.quick else (args.train_size, 1000)

# %% The data: (N, 3, 32, 32) float32 in [0, 1], labels int64
if args.cifar_root:
    (x_train, y_train), (x_test, y_test) = load_cifar10(args.cifar_root)
    x_train, y_train = x_train[:train_size], y_train[:train_size]
    x_test, y_test = x_test[:test_size], y_test[:test_size]
    source, classes = "CIFAR-10", CIFAR10_CLASSES
else:
    x_train, y_train = colour_shape_images(train_size, seed=0)
    x_test, y_test = colour_shape_images(test_size, seed=1)          # another seed: other images
    source, classes = "generated colour shapes", COLOUR_SHAPE_CLASSES
print(f"{source}: {len(x_train)} training and {len(x_test)} test images of {x_train.shape[1:]}, "
      f"{len(classes)} classes")

gray_train, gray_test = to_grayscale(x_train), to_grayscale(x_test)
figure, axes = plt.subplots(2, len(classes), figsize=(1.4 * len(classes), 3.3))
for c, name in enumerate(classes):
    index = np.flatnonzero(y_train == c)
    if index.size:
        axes[0, c].imshow(x_train[index[0]].transpose(1, 2, 0))                 # matplotlib wants (H, W, 3)
        axes[1, c].imshow(gray_train[index[0], 0], cmap="gray", vmin=0, vmax=1)
    axes[0, c].set_title(name, fontsize=8)
axes[0, 0].set_ylabel("colour")
axes[1, 0].set_ylabel("grayscale")
for ax in axes.flat:
    ax.set_xticks([])
    ax.set_yticks([])
figure.suptitle(f"{source}: one training image of each class, in colour and in grayscale")
lesson.save(figure, "samples")

# %% Per-channel normalisation: the mean and standard deviation of each channel over the training images
mean = x_train.mean(axis=(0, 2, 3), keepdims=True)        # (1, 3, 1, 1): one number per channel
std = x_train.std(axis=(0, 2, 3), keepdims=True)
print("per channel (R, G, B): mean", np.round(mean.ravel(), 3), " std", np.round(std.ravel(), 3))


def normalise(x, mean, std):
    """(x − mean) / std, channel by channel (NumPy broadcasts the (1, C, 1, 1) statistics over N, H and W)."""
    return ((x - mean) / std).astype(np.float32)


colour = normalise(x_train, mean, std), normalise(x_test, mean, std)       # the test set: the training numbers
gray_mean, gray_std = gray_train.mean(), gray_train.std()
gray = normalise(gray_train, gray_mean, gray_std), normalise(gray_test, gray_mean, gray_std)
print("after: training mean per channel", np.round(colour[0].mean(axis=(0, 2, 3)), 4) + 0.0,     # + 0.0: no "-0."
      " std", np.round(colour[0].std(axis=(0, 2, 3)), 4))

# %% The CNN: three 3x3 conv layers, each halving the size with 2x2 max pooling, then a dense layer
def cnn(channels, n_classes):
    """(channels, 32, 32) -> 16@32x32 -> pool 16@16x16 -> 32@16x16 -> pool 32@8x8 -> 64@8x8 -> pool 64@4x4
    -> flatten 1024 -> n_classes logits."""
    model = nn.Sequential([
        nn.Conv2D(16, 3, padding=1, activation="relu"), nn.MaxPool2D(2),
        nn.Conv2D(32, 3, padding=1, activation="relu"), nn.MaxPool2D(2),
        nn.Conv2D(64, 3, padding=1, activation="relu"), nn.MaxPool2D(2),
        nn.Flatten(), nn.Dense(n_classes)], name="colour_cnn" if channels == 3 else "grayscale_cnn")
    model.build((channels, 32, 32))
    return model


cnn(3, len(classes)).summary()

# %% Train the same CNN twice: on the colour images and on the grayscale ones, with flips and crops
augment = [RandomFlip(0.5), RandomCrop(32, padding=4)]     # mirror half of the images; shift by up to 4 pixels
results = {}
for name, ((x, xt), channels) in {"colour": (colour, 3), "grayscale": (gray, 1)}.items():
    print(f"--- {name}")
    model = cnn(channels, len(classes))
    trainer = train.Trainer(model, optim.Adam(args.lr), device=args.device, seed=0)
    trainer.build(x.shape[1:])
    before = trainer.evaluate(x, y_train)["loss"]
    started = time.perf_counter()
    history = trainer.fit(x, y_train, epochs=epochs, batch_size=args.batch_size, augment=augment,
                          validation_data=(xt, y_test))
    predicted = trainer.predict(xt).argmax(axis=1)
    results[name] = dict(history=history, predicted=predicted, seconds=time.perf_counter() - started,
                         accuracy=float((predicted == y_test).mean()), loss_before=before,
                         loss_after=trainer.evaluate(x, y_train)["loss"])
    print(f"{name}: test accuracy {results[name]['accuracy']:.3f} after {epochs} epoch(s), "
          f"{results[name]['seconds']:.1f} s")

# %% Confusion matrices: row = the true class, column = the predicted one
def confusion_matrix(truth, predicted, n_classes):
    """counts[i, j] = how many images of class i were predicted as class j."""
    counts = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(counts, (truth, predicted), 1)
    return counts


confusion = {name: confusion_matrix(y_test, r["predicted"], len(classes)) for name, r in results.items()}
figure, axes = plt.subplots(1, 2, figsize=(14, 5.8), layout="constrained")
for ax, (name, counts) in zip(axes, confusion.items()):
    image = ax.imshow(counts, cmap="Blues")
    figure.colorbar(image, ax=ax, shrink=0.8, label="test images")
    for (i, j), value in np.ndenumerate(counts):
        if value:
            ax.text(j, i, value, ha="center", va="center", fontsize=7,
                    color="white" if value > counts.max() / 2 else "black")
    ax.set_xticks(range(len(classes)), classes, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(classes)), classes, fontsize=8)
    ax.set(xlabel="predicted class", ylabel="true class",
           title=f"{name} CNN: test accuracy {results[name]['accuracy']:.3f}")
lesson.save(figure, "confusion")

if source != "CIFAR-10":
    # On the generated set, class = 3·colour + shape: how often did each model get the shape right, whatever the
    # colour? A grayscale model that knows the shape can only guess the colour: 1 in 3.
    shape_right = {name: float((r["predicted"] % 3 == y_test % 3).mean()) for name, r in results.items()}
    print("shape right (colour ignored): " + ", ".join(f"{n} {v:.3f}" for n, v in shape_right.items()))

# %% Training curves
figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4))
for (name, r), colour_of_line in zip(results.items(), ("tab:blue", "tab:gray")):
    h = r["history"]
    left.plot(h.epochs, h["loss"], "o-", color=colour_of_line, label=f"{name}: training (augmented)")
    left.plot(h.epochs, h["val_loss"], "o--", color=colour_of_line, mfc="white", label=f"{name}: test")
    right.plot(h.epochs, h["val_accuracy"], "o-", color=colour_of_line, label=name)
left.set(xlabel="epoch", ylabel="cross-entropy (log scale)", yscale="log", title="loss")
right.axhline(1 / len(classes), color="gray", lw=0.8, ls=":", label="chance")
right.set(xlabel="epoch", ylabel="test accuracy", ylim=(0, 1.02), title="colour versus grayscale")
left.legend(fontsize=8)
right.legend(fontsize=8)
lesson.save(figure, "curves")

# %% Result
colour_result, gray_result = results["colour"], results["grayscale"]
lesson.finish(colour_result["loss_before"], colour_result["loss_after"],
              f"{source}: test accuracy colour {colour_result['accuracy']:.3f}, "
              f"grayscale {gray_result['accuracy']:.3f} "
              f"(same CNN, {epochs} epoch(s), {colour_result['seconds']:.1f} s + {gray_result['seconds']:.1f} s "
              f"on '{args.device}')")

# %% Exercises
# Call them with your answers, e.g. check_exercise_1(100, 50).
def check_exercise_1(colour_params, grayscale_params):
    """Exercise 1: the parameters of a Conv2D(16, 3) layer on colour and on grayscale input, with biases."""
    from graphnet import nn

    def params(channels):
        layer = nn.Sequential([nn.Conv2D(16, 3, padding=1)])
        layer.build((channels, 32, 32))
        return layer.count_params()
    if (colour_params, grayscale_params) == (params(3), params(1)):
        print(f"right: 16·(3·3·3 + 1) = {params(3)} on colour, 16·(1·3·3 + 1) = {params(1)} on grayscale")
        return True
    print(f"not yet ({colour_params}, {grayscale_params}): a layer has K·(C·R·S + 1) parameters, C the input "
          "channels")
    return False


def check_exercise_2(pair, confusion):
    """Exercise 2: the two classes (their indices) a model mixes up most, read from its confusion matrix."""
    import numpy as np
    counts = np.asarray(confusion)
    mixed = counts + counts.T - 2 * np.diag(np.diag(counts))       # i taken for j plus j taken for i
    i, j = pair
    if i != j and mixed.max() > 0 and mixed[i, j] == mixed.max():
        print(f"right: classes {i} and {j} were taken for each other {mixed[i, j]} times, more than any other pair")
        return True
    print(f"not yet: classes {i} and {j} were taken for each other {mixed[i, j]} times; look for the largest "
          "confusion[i, j] + confusion[j, i] off the diagonal")
    return False


# %% [markdown]
# **Exercise 1.** The first layer of the CNN is `Conv2D(16, 3, padding=1)`. How many parameters does it have on colour
# images, and how many on grayscale ones? Work it out with K·(C·R·S + 1), then check: `check_exercise_1(colour_params,
# grayscale_params)`.
#
# **Exercise 2.** Read the grayscale model's confusion matrix (the figure, or `confusion["grayscale"]`): which two
# classes does it mix up most? Answer with their indices and check: `check_exercise_2((i, j),
# confusion["grayscale"])`. On the generated set, why are they the same shape? Does the colour model mix up the same
# pair?
#
# **Exercise 3.** Switch the augmentation off (`augment = []`) and then the normalisation (`colour = x_train,
# x_test`), one at a time, and compare the test accuracy and the gap between the training and test losses. With
# CIFAR-10 (`--cifar-root`) the differences are larger: there, which classes does the colour model confuse?
