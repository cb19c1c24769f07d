"""Lesson 3 — binary classification: a single perceptron draws a line, an MLP draws a curve.

What this teaches:
  * a classifier for two classes outputs one number, the logit z; σ(z) = 1 / (1 + e^−z) is the probability of
    class 1, and training minimises the binary cross-entropy −[y·log σ(z) + (1 − y)·log(1 − σ(z))]
    (`gn.binary_cross_entropy_with_logits` computes it from z directly, stably);
  * a single perceptron, z = x·w + b (logistic regression), separates the plane with a straight line — not
    enough for two interleaved moons;
  * one or two hidden layers of ReLU units bend the boundary around them;
  * the decision boundary is drawn by asking the trained program for the class of every point of a grid.

    python tutorials/03_binary_classification.py            # 1000 full-batch steps per model (a few seconds)
    python tutorials/03_binary_classification.py --quick    # fewer points and steps (CI)
"""
# %%
import numpy as np
from tqdm.auto import tqdm

import graphnet as gn
from graphnet import optim
from graphnet.data import two_moons
from _lesson import Lesson, parse_args, plt

args = parse_args(__doc__, epochs=1000)
lesson = Lesson(args, "03_binary_classification")
steps = 150 if args.quick else args.epochs           # full-batch steps

# %% Data: two interleaved half moons, labels 0 and 1
x_train, y_train = two_moons(n=100 if args.quick else 400, noise=0.15, seed=0)
x_test, y_test = two_moons(n=400, noise=0.15, seed=1)
print(f"data: {len(x_train)} training and {len(x_test)} test points in 2-D, "
      f"{np.mean(y_train):.0%} of class 1")

# %% Models as graphs
rng = np.random.default_rng(0)


def dense(h, n_in, n_out, name):
    """h·W + b, with W drawn N(0, 2/n_in) (He initialisation, for ReLU) and b = 0."""
    with gn.name_scope(name):
        w = gn.variable(rng.normal(0, np.sqrt(2 / n_in), (n_in, n_out)).astype("float32"), name="weight")
        b = gn.variable(np.zeros(n_out, "float32"), name="bias")
        return h @ w + b                                        # ops named hidden1/matmul, hidden1/add


def build(hidden):
    """hidden=(): the perceptron z = x·w + b; hidden=(16, 16): an MLP with two ReLU layers."""
    graph = gn.Graph()
    with graph:
        x = gn.placeholder((None, 2), name="x")
        y = gn.placeholder((None, 1), name="y")                 # the labels as floats 0.0 / 1.0
        h, width = x, 2
        for i, units in enumerate(hidden, 1):
            h, width = gn.relu(dense(h, width, units, f"hidden{i}")), units
        logit = dense(h, width, 1, "output")
        loss = gn.binary_cross_entropy_with_logits(logit, y, name="loss")
        train_op = optim.Adam(0.02).minimize(loss)
    return x, y, logit, gn.compile([loss, train_op], device=args.device), gn.compile(logit, device=args.device)


def fit(name, hidden):
    x, y, logit, train, predict = build(hidden)
    targets = y_train[:, None].astype("float32")
    losses = []
    for _ in tqdm(range(steps), desc=name, unit="step"):
        losses.append(float(train.run({x: x_train, y: targets})[0]))
    classify = lambda points: (predict.run({x: points})[:, 0] > 0).astype(int)     # z > 0  <=>  σ(z) > 0.5
    accuracy = float(np.mean(classify(x_test) == y_test))
    print(f"{name}: loss {losses[0]:.4f} -> {losses[-1]:.4f}, test accuracy {accuracy:.3f}")
    return losses, accuracy, classify, predict


perceptron_losses, perceptron_accuracy, perceptron, _ = fit("perceptron", hidden=())
mlp_losses, mlp_accuracy, mlp, mlp_predict = fit("MLP 2-16-16-1 (ReLU)", hidden=(16, 16))

# %% The MLP's inference program: each layer's x·W + b (and its ReLU) runs as one fused kernel
print(mlp_predict.describe(batch_size=len(x_test)))

# %% Decision boundaries: classify every point of a grid over the plane
lo, hi = x_test.min(axis=0) - 0.5, x_test.max(axis=0) + 0.5
gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], 200), np.linspace(lo[1], hi[1], 200))
grid = np.stack([gx.ravel(), gy.ravel()], axis=1).astype("float32")

figure, axes = plt.subplots(1, 3, figsize=(15, 4.2))
for ax, classify, title in ((axes[0], perceptron, f"perceptron: test accuracy {perceptron_accuracy:.3f}"),
                            (axes[1], mlp, f"MLP: test accuracy {mlp_accuracy:.3f}")):
    ax.contourf(gx, gy, classify(grid).reshape(gx.shape), levels=[-0.5, 0.5, 1.5], colors=["#c6dbef", "#fdd0a2"])
    ax.scatter(x_test[:, 0], x_test[:, 1], c=y_test, cmap="coolwarm", s=8, edgecolors="none")
    ax.set(title=title, xlabel="x₁", ylabel="x₂")
axes[2].plot(perceptron_losses, label="perceptron")
axes[2].plot(mlp_losses, label="MLP")
axes[2].set(title="binary cross-entropy while training", xlabel="step", ylabel="loss (log scale)", yscale="log")
axes[2].legend()
lesson.save(figure, "decision_boundaries")

# %% Result
lesson.finish(mlp_losses[0], mlp_losses[-1],
              f"test accuracy perceptron {perceptron_accuracy:.3f} vs MLP {mlp_accuracy:.3f}")


# %% Exercises
# The questions are in the last cell; the functions here check your answers (run this cell first). Each prints
# whether the answer is right and returns True or False.
def check_exercise_1(loss):
    """`loss`: the binary cross-entropy of a model whose logit is z = 0 for every point."""
    import numpy as np
    import graphnet as gn
    with gn.Graph():
        bce = gn.binary_cross_entropy_with_logits(gn.constant(np.zeros((8, 1))),
                                                  gn.constant((np.arange(8) % 2)[:, None].astype("float64")))
    expected = float(gn.compile(bce, device="reference").run({}))
    right = abs(float(loss) - expected) < 1e-3
    print(f"right: σ(0) = 1/2 for every point, so the loss is −log ½ = ln 2 = {expected:.4f}" if right else
          f"wrong: not {loss}; what is σ(0), and what is −log of it?")
    return right


def check_exercise_2(bce_gradient):
    """`bce_gradient(z, y)` should return ∂L/∂z for L = gn.binary_cross_entropy_with_logits(z, y) (a mean)."""
    import numpy as np
    import graphnet as gn
    rng = np.random.default_rng(0)
    z_value, y_value = rng.normal(size=(10, 1)), rng.integers(0, 2, (10, 1)).astype("float64")
    with gn.Graph():
        z = gn.variable(z_value, name="z")
        (d_z,) = gn.gradients(gn.binary_cross_entropy_with_logits(z, gn.constant(y_value)), [z])
    expected = gn.compile(d_z, device="reference").run({})
    answer = np.asarray(bce_gradient(z_value, y_value), dtype="float64")
    right = answer.shape == expected.shape and np.allclose(answer, expected, atol=1e-9)
    print("right: ∂L/∂z = (σ(z) − y) / N" if right else
          "wrong: compare with gn.gradients at a few points; remember that the loss is a mean over N points")
    return bool(right)


# %% [markdown]
# **Exercise 1 — the loss of knowing nothing.** Before training, a model that outputs z = 0 everywhere says 50%
# for every point. What is its binary cross-entropy? Check: `check_exercise_1(value)`, and compare with the first
# losses printed above.
#
# **Exercise 2 — the gradient of the loss.** Derive ∂L/∂z for L = mean of −[y·log σ(z) + (1 − y)·log(1 − σ(z))]
# (hint: σ'(z) = σ(z)(1 − σ(z))), write it as `bce_gradient(z, y)` with NumPy and check it:
# `check_exercise_2(bce_gradient)`.
#
# **Exercise 3 — a feature instead of a layer (no checker: look).** Train the perceptron on
# `graphnet.data.circles` (one ring inside another): it fails. Give it a third input, x₁² + x₂², and it succeeds.
# Why?
