"""Your first network: LeNet-5 as a static graph, trained with plain SGD written as graph ops.

What this teaches:
  * a network is declared once — placeholders, variables, ops — and nothing runs while it is built;
  * `gn.gradients` adds the backward pass to the same graph, and `gn.assign` adds the SGD update w ← w − lr·dw;
  * `gn.compile` turns it into a schedule you can print and read, step by step, with a memory plan;
  * the compiled program then runs once per mini-batch with new data.

The data are generated (graphnet.data.shape_images): noisy 28x28 images of seven kinds of stroke — bars,
diagonals, rings, crosses, squares — at random places and sizes.

    python tutorials/00_first_network.py            # a few epochs, prints the schedule and the test accuracy
    python tutorials/00_first_network.py --quick    # a tiny run (CI)
    python tutorials/00_first_network.py --out DIR  # its figures (the data, the loss) in DIR
"""
# %%
import time

import numpy as np

import graphnet as gn
from graphnet.data import shape_images
from graphnet.data.synthetic import SHAPE_CLASSES
from _lesson import Lesson, parse_args, plt

args = parse_args(__doc__, epochs=8)
lesson = Lesson(args, "00_first_network")
n_train, n_test = (256, 128) if args.quick else (4000, 1000)
epochs = 1 if args.quick else args.epochs
batch_size, learning_rate = 32, 0.05

# %% Data: look at it before training anything
x_train, y_train = shape_images(n_train, seed=1)
x_test, y_test = shape_images(n_test, seed=2)
print(f"data: {n_train} training and {n_test} test images of {x_train.shape[1:]}, classes {SHAPE_CLASSES}")

figure, axes = plt.subplots(2, len(SHAPE_CLASSES), figsize=(1.5 * len(SHAPE_CLASSES), 3.2))
for label, column in enumerate(axes.T):
    for ax, index in zip(column, np.flatnonzero(y_train == label)):       # the first two images of each class
        ax.imshow(x_train[index, 0], cmap="gray_r")
        ax.axis("off")
    column[0].set_title(SHAPE_CLASSES[label], fontsize=9)
lesson.save(figure, "data")

# %% The graph: LeNet-5 (conv 6@5x5 pad 2, pool, conv 16@5x5, pool, dense 120, 84, classes)
rng = np.random.default_rng(0)


def he_normal(*shape):
    """Weights drawn N(0, 2/fan_in), which keeps ReLU activations at a steady scale layer after layer."""
    fan_in = int(np.prod(shape[1:])) if len(shape) == 4 else shape[0]
    return gn.variable(rng.normal(0, np.sqrt(2 / fan_in), size=shape).astype("float32"), name="weight")


def zeros(n):
    return gn.variable(np.zeros(n, "float32"), name="bias")


graph = gn.Graph()
with graph:
    x = gn.placeholder((None, 1, 28, 28), name="x")
    y = gn.placeholder((None,), dtype="int64", name="y")
    with gn.name_scope("conv1"):
        w1, b1 = he_normal(6, 1, 5, 5), zeros(6)
    with gn.name_scope("conv2"):
        w2, b2 = he_normal(16, 6, 5, 5), zeros(16)
    dense = []
    for name, (n_in, n_out) in zip(("fc1", "fc2", "fc3"), ((400, 120), (120, 84), (84, len(SHAPE_CLASSES)))):
        with gn.name_scope(name):
            dense.append((he_normal(n_in, n_out), zeros(n_out)))

    h = gn.max_pool2d(gn.relu(gn.conv2d(x, w1, b1, padding=2, name="conv1")), 2, name="pool1")   # 6x14x14
    h = gn.max_pool2d(gn.relu(gn.conv2d(h, w2, b2, name="conv2")), 2, name="pool2")              # 16x5x5
    h = gn.flatten(h)                                                                             # 400
    for i, (w, b) in enumerate(dense):
        h = h @ w + b
        if i < len(dense) - 1:
            h = gn.relu(h)
    logits = h
    loss = gn.softmax_cross_entropy(logits, y, name="loss")

    params = [w1, b1, w2, b2] + [v for pair in dense for v in pair]
    grads = gn.gradients(loss, params)
    with graph.phase("update"):
        updates = [gn.assign(p, p - learning_rate * g) for p, g in zip(params, grads)]

train_step = gn.compile([loss, *updates], device=args.device)
predict = gn.compile(logits, device=args.device)

# %% The schedule: forward, backward, update — and the memory plan
print(train_step.describe(batch_size=batch_size))


# %% Training
def accuracy(images, labels):
    correct = 0
    for start in range(0, len(images), 256):
        correct += int((predict.run({x: images[start:start + 256]}).argmax(1) == labels[start:start + 256]).sum())
    return correct / len(images)


order_rng = np.random.default_rng(0)
batch_losses = []                                # every mini-batch's loss, for the figure
for epoch in range(1, epochs + 1):
    started, losses = time.perf_counter(), []
    order = order_rng.permutation(n_train)
    for start in range(0, n_train - batch_size + 1, batch_size):
        batch = order[start:start + batch_size]
        loss_value = train_step.run({x: x_train[batch], y: y_train[batch]})[0]
        losses.append(float(loss_value))
    batch_losses += losses
    seconds = time.perf_counter() - started
    print(f"epoch {epoch}/{epochs}: mean loss {np.mean(losses):.4f}, "
          f"{len(losses) * batch_size / seconds:.0f} samples/s, test accuracy {accuracy(x_test, y_test):.3f}")

figure, ax = plt.subplots(figsize=(7, 3.5))
ax.plot(batch_losses, lw=1)
ax.axhline(np.log(len(SHAPE_CLASSES)), color="gray", ls=":", label=f"ln {len(SHAPE_CLASSES)}: a uniform guess")
ax.set(title="training loss, one point per mini-batch", xlabel="step", ylabel="cross-entropy")
ax.legend()
lesson.save(figure, "loss")

# %% Result
first_loss = batch_losses[0]
print(f"first batch loss {first_loss:.4f} -> last epoch mean loss {np.mean(losses):.4f}")
lesson.finish(first_loss, float(np.mean(losses)),
              f"test accuracy {accuracy(x_test, y_test):.3f} after {epochs} epoch(s) on '{args.device}'")


# %% Exercises
# The questions are in the last cell; the functions here check your answers (run this cell first). Each prints
# whether the answer is right and returns True or False.
def check_exercise_1(parameters):
    """`parameters`: how many numbers the network's variables hold in all (weights and biases)."""
    import numpy as np
    shapes = [(6, 1, 5, 5), (6,), (16, 6, 5, 5), (16,), (400, 120), (120,), (120, 84), (84,), (84, 7), (7,)]
    expected = int(sum(np.prod(shape) for shape in shapes))
    right = parameters == expected
    print(f"right: {expected:,} parameters, most of them in fc1" if right else
          f"wrong: not {parameters}; a conv layer holds K·C·R·S weights and K biases, a dense one n_in·n_out and n_out")
    return right


def check_exercise_2(shape):
    """`shape`: conv2's output shape (batch as None) if conv2 were built with padding=2."""
    import numpy as np
    import graphnet as gn
    with gn.Graph():
        pooled = gn.placeholder((None, 6, 14, 14), name="pool1")
        conv2 = gn.conv2d(pooled, gn.variable(np.zeros((16, 6, 5, 5), "float32")), padding=2)
    right = tuple(shape) == conv2.shape
    print(f"right: {conv2.shape}: padding (F − 1)/2 = 2 keeps 14x14" if right else
          f"wrong: not {tuple(shape)}; use floor((W − F + 2P)/S) + 1 for the height and the width")
    return right


# %% [markdown]
# **Exercise 1 — counting parameters.** Add up the weights and biases of the five layers (conv1, conv2, fc1, fc2,
# fc3, for the 7 classes) and check the total: `check_exercise_1(total)`. Which layer holds most of them?
#
# **Exercise 2 — shapes in the schedule.** conv2 turns pool1's (N, 6, 14, 14) into (N, 16, 10, 10). What would
# it give with `padding=2`? Check your shape (with None for the batch): `check_exercise_2((None, ...))`, then
# find the row in the printed schedule whose shape would change, and every row after it that would too.
#
# **Exercise 3 — the learning rate (no checker: look).** Run the lesson with `learning_rate` 0.5 and 0.005 instead
# of 0.05 and compare the loss figures. Which one still learns in 8 epochs, and what does the other do?
