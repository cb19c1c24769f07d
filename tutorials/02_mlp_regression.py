"""Lesson 2 — from a perceptron to a multilayer perceptron: fitting a noisy sine wave by least squares.

What this teaches:
  * regression: predict a number, and score it with the mean squared error MSE = mean((ŷ − y)²);
  * a single linear unit ŷ = x·w + b can only draw a straight line, however long it trains;
  * stacking layers with a non-linearity between them, ŷ = tanh(tanh(x·W₁ + b₁)·W₂ + b₂)·W₃ + b₃, bends the
    line: the MLP fits the curve down to the noise level (MSE ≈ noise², here 0.1² = 0.01);
  * both models are written with the raw graph API — placeholders, variables, ops — and trained by an optimizer
    whose update is part of the compiled program (`optim.Adam(...).minimize(loss)`); print(program) shows it.

    python tutorials/02_mlp_regression.py            # 2000 full-batch steps per model (a few seconds)
    python tutorials/02_mlp_regression.py --quick    # fewer points and steps (CI)
"""
# %%
import numpy as np
from tqdm.auto import tqdm

import graphnet as gn
from graphnet import optim
from graphnet.data import noisy_sinusoid
from _lesson import Lesson, parse_args, plt

args = parse_args(__doc__, epochs=2000)
lesson = Lesson(args, "02_mlp_regression")
steps = 150 if args.quick else args.epochs          # each step sees the whole data set (full-batch training)
noise = 0.1

# %% Data: y = sin(x) + noise
x_train, y_train = noisy_sinusoid(n=60 if args.quick else 200, noise=noise, seed=0)
x_test, y_test = noisy_sinusoid(n=200, noise=noise, seed=1)
print(f"data: {len(x_train)} training points, x in [{x_train.min():.2f}, {x_train.max():.2f}], "
      f"noise std {noise} (so the best possible MSE is about {noise ** 2:.3f})")

# %% Two models as graphs
rng = np.random.default_rng(0)


def dense(h, n_in, n_out, name):
    """h·W + b, with W drawn N(0, 1/n_in) (keeps tanh units out of saturation) and b = 0."""
    with gn.name_scope(name):
        w = gn.variable(rng.normal(0, np.sqrt(1 / n_in), (n_in, n_out)).astype("float32"), name="weight")
        b = gn.variable(np.zeros(n_out, "float32"), name="bias")
        return h @ w + b                                        # ops named hidden1/matmul, hidden1/add


def build(hidden):
    """A regression graph: hidden=() is the perceptron (one linear unit); (32, 32) an MLP with two tanh layers."""
    graph = gn.Graph()
    with graph:
        x = gn.placeholder((None, 1), name="x")
        y = gn.placeholder((None, 1), name="y")
        h, width = x, 1
        for i, units in enumerate(hidden, 1):
            h, width = gn.tanh(dense(h, width, units, f"hidden{i}")), units
        prediction = dense(h, width, 1, "output")
        loss = gn.mse(prediction, y, name="loss")
        train_op = optim.Adam(0.01).minimize(loss)          # backward pass + Adam update, as graph ops
    train = gn.compile([loss, train_op], device=args.device)
    predict = gn.compile(prediction, device=args.device)
    return x, y, train, predict


def fit(name, hidden):
    x, y, train, predict = build(hidden)
    losses = []
    for _ in tqdm(range(steps), desc=name, unit="step"):
        losses.append(float(train.run({x: x_train, y: y_train})[0]))
    test_mse = float(np.mean((predict.run({x: x_test}) - y_test) ** 2))
    print(f"{name}: training MSE {losses[0]:.4f} -> {losses[-1]:.4f}, test MSE {test_mse:.4f}")
    return losses, test_mse, train, lambda points: predict.run({x: points})


linear_losses, linear_mse, linear_train, linear = fit("perceptron (linear)", hidden=())
mlp_losses, mlp_mse, _, mlp = fit("MLP 1-32-32-1 (tanh)", hidden=(32, 32))

# %% What one training step of the perceptron runs: forward, backward, then Adam's update of w and b
# (the MLP's program is the same story with 127 steps; print it too if you like)
print(linear_train.describe(batch_size=len(x_train)))

# %% Figures: the fits, and the losses while training
grid = np.linspace(x_test.min(), x_test.max(), 300, dtype="float32")[:, None]
figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4))
left.scatter(x_train[:, 0], y_train[:, 0], s=10, color="grey", label="training data")
left.plot(grid, np.sin(grid), "k--", linewidth=1, label="sin(x)")
left.plot(grid, linear(grid), label=f"perceptron (test MSE {linear_mse:.3f})")
left.plot(grid, mlp(grid), label=f"MLP (test MSE {mlp_mse:.3f})")
left.set(title="fits", xlabel="x", ylabel="y")
left.legend(loc="upper left", fontsize=8)
right.semilogy(linear_losses, label="perceptron")
right.semilogy(mlp_losses, label="MLP")
right.axhline(noise ** 2, color="k", linestyle=":", label="noise² (best possible)")
right.set(title="training MSE", xlabel="step", ylabel="MSE")
right.legend()
lesson.save(figure, "fit")

# %% Result
lesson.finish(mlp_losses[0], mlp_losses[-1],
              f"test MSE perceptron {linear_mse:.3f} vs MLP {mlp_mse:.3f} (noise² = {noise ** 2:.3f})")


# %% Exercises
# The questions are in the last cell; the functions here check your answers (run this cell first). Each prints
# whether the answer is right and returns True or False.
def check_exercise_1(parameters):
    """`parameters`: how many weights and biases the MLP 1-32-32-1 has."""
    sizes = [1, 32, 32, 1]
    expected = sum((n_in + 1) * n_out for n_in, n_out in zip(sizes[:-1], sizes[1:]))
    right = parameters == expected
    print(f"right: (1+1)·32 + (32+1)·32 + (32+1)·1 = {expected:,}" if right else
          f"wrong: not {parameters}; a dense layer has (n_in + 1)·n_out: its weights and one bias per output")
    return right


def check_exercise_2(best_mse):
    """`best_mse`: the lowest test MSE any model can expect on this data (noise std 0.1), measured here."""
    import numpy as np
    from graphnet.data import noisy_sinusoid
    x, y = noisy_sinusoid(n=100_000, noise=0.1, seed=3)
    expected = float(np.mean((np.sin(x) - y) ** 2))          # the true curve itself: what is left is the noise
    right = abs(float(best_mse) - expected) < 0.1 * expected
    print(f"right: even sin(x) itself scores {expected:.4f} = noise²" if right else
          f"wrong: the true curve sin(x) scores {expected:.4f} on 100,000 fresh points")
    return right


# %% [markdown]
# **Exercise 1 — parameters.** How many weights and biases does the MLP 1-32-32-1 have? Check:
# `check_exercise_1(count)`. And the perceptron?
#
# **Exercise 2 — the best possible score.** The targets are sin(x) plus Gaussian noise of standard deviation 0.1.
# What test MSE would even a perfect model, ŷ = sin(x), get? Check: `check_exercise_2(value)`. Is the MLP there?
#
# **Exercise 3 — other shapes (no checker: look).** Replace tanh by relu (`gn.relu`) in `build`, then try one
# hidden layer of 4 units and one of 256. Which fits are smooth, which are piecewise straight, and which test MSE is
# best?
