"""Lesson 3b — activation functions: their shapes, their derivatives, and why deep sigmoid networks learn slowly.

What this teaches:
  * the activations of the course and their derivatives (the derivatives computed by `gn.gradients`, not by hand):
        sigmoid     σ(x) = 1 / (1 + e⁻ˣ)                 σ'(x) = σ(x)(1 − σ(x)) ≤ 1/4
        tanh        tanh(x)                             tanh'(x) = 1 − tanh²(x) ≤ 1
        ReLU        max(x, 0)                           1 for x > 0, else 0
        LeakyReLU   x if x > 0 else a·x                 1 for x > 0, else a (here a = 0.1, to be visible)
        ELU         x if x > 0 else α(eˣ − 1)            1 for x > 0, else α·eˣ
        Maxout      maxᵢ (aᵢ·x + cᵢ)                    the slope aᵢ of the piece that wins
  * backpropagation multiplies one activation derivative per layer (lesson 3a: δ = ∂L/∂h ⊙ f'(z)). A sigmoid's is
    at most 1/4, so in a deep sigmoid network the gradient shrinks layer by layer on its way back to the input:
    the first layers barely learn ("vanishing gradients"). ReLU's derivative is 1 where a unit is active, and with
    He initialisation the gradient keeps its size through the layers;
  * measured here on a network of 10 hidden layers on the 8×8 digits: the gradient norm of every layer's weights
    at initialisation — with sigmoid it falls about fourfold per layer back towards the input, about a million-fold
    in all, while tanh, ReLU and ELU keep it within a factor of three — and the training curves with plain SGD,
    where the sigmoid network hardly moves from a uniform guess while the others learn;
  * Maxout (Goodfellow et al. 2013) learns its activation: the max of a few linear pieces. With pieces x and 0 it
    is ReLU; with x and 0.1·x, LeakyReLU; with x and −x, |x|;
  * the activations of recent networks: smooth ReLUs — softplus log(1 + eˣ), SiLU x·σ(x) (EfficientNet, YOLO),
    GELU x·Φ(x) (BERT, GPT, ViT; Φ the normal CDF, often computed by its tanh approximation) — whose slope changes
    gradually instead of jumping at 0, and the "hard" ones made of straight pieces for cheap arithmetic on phones —
    ReLU6 min(max(x, 0), 6) (MobileNetV2), hard sigmoid relu6(x + 3)/6 and hard swish x·relu6(x + 3)/6
    (MobileNetV3). GELU joins the deep network of section 3.

    python tutorials/03b_activation_functions.py            # 10 epochs per network, about ten seconds
    python tutorials/03b_activation_functions.py --quick    # fewer images and one epoch (CI)
"""
# %%
import numpy as np

import graphnet as gn
from graphnet import optim
from graphnet.data import load_digits
from _lesson import Lesson, parse_args, plt

args = parse_args(__doc__, epochs=10, depth=(int, 10, "hidden layers of the deep network"),
                  lr=(float, 0.1, "SGD's learning rate"))
lesson = Lesson(args, "03b_activation_functions")
epochs = 1 if args.quick else args.epochs

# %% 1. Each activation and its derivative, the derivative by gn.gradients
# For an elementwise f, the gradient of Σᵢ f(xᵢ) with respect to x is the vector of f'(xᵢ): one gradients call
# gives the derivative at every point of the grid.
ACTIVATIONS = {"sigmoid": gn.sigmoid, "tanh": gn.tanh, "ReLU": gn.relu,
               "LeakyReLU (a = 0.1)": lambda x: gn.leaky_relu(x, slope=0.1), "ELU (α = 1)": gn.elu}
grid = np.linspace(-5, 5, 1001)                       # includes x = 0 (ReLU's kink: graphnet takes slope 0 there)


def value_and_derivative(f, x_values):
    """f(x) and f'(x) at every point of x_values, both computed by graphnet."""
    with gn.Graph():
        x = gn.variable(x_values, name="x")
        y = f(x)
        (dy_dx,) = gn.gradients(gn.sum(y), [x])
    return gn.compile([y, dy_dx], device=args.device).run({})


curves = {name: value_and_derivative(f, grid) for name, f in ACTIVATIONS.items()}
print(f"{'activation':<20} {'f(-5)':>8} {'f(5)':>8} {'max f′':>8} {'f′(-5)':>8}")
for name, (values, slopes) in curves.items():
    print(f"{name:<20} {values[0]:>8.4f} {values[-1]:>8.4f} {slopes.max():>8.4f} {slopes[0]:>8.4f}")
max_sigmoid_slope = float(curves["sigmoid"][1].max())

figure, axes = plt.subplots(2, len(curves), figsize=(3.2 * len(curves), 5.5), sharex=True)
for (name, (values, slopes)), top, bottom in zip(curves.items(), axes[0], axes[1]):
    top.plot(grid, values)
    top.set(title=name, ylabel="f(x)")
    bottom.plot(grid, slopes, color="tab:orange")
    bottom.set(xlabel="x", ylabel="f′(x) by gn.gradients", ylim=(-0.1, 1.15))
    for ax in (top, bottom):
        ax.axhline(0, color="gray", lw=0.5)
        ax.axvline(0, color="gray", lw=0.5)
axes[1, 0].axhline(0.25, color="gray", ls=":", lw=1)
axes[1, 0].text(-4.8, 0.3, "¼: sigmoid's largest slope", fontsize=8)
figure.tight_layout()
lesson.save(figure, "activations")

# %% 2. Maxout: the max of linear pieces
# Three pieces a·x + c; gn.maxout takes the max over groups of `pieces` consecutive features, so the three
# pieces of each point are laid out side by side, (points, 3), and maxout(…, pieces=3) keeps one per point.
slopes_pieces, intercepts = np.array([-1.0, 0.3, 1.5]), np.array([-1.0, 0.5, -2.0])
with gn.Graph():
    x = gn.variable(grid[:, None], name="x")                                  # (points, 1)
    pieces = x @ gn.constant(slopes_pieces[None]) + gn.constant(intercepts)   # (points, 3)
    unit = gn.maxout(pieces, pieces=3)                                       # (points, 1)
    (slope,) = gn.gradients(gn.sum(unit), [x])
pieces_v, unit_v, slope_v = gn.compile([pieces, unit, slope], device=args.device).run({})
winners = sorted({int(i) for i in np.argmax(pieces_v, axis=1)})
print(f"\nmaxout of 3 pieces: the pieces that win somewhere on [-5, 5]: {winners}; "
      f"its slopes by gn.gradients: {sorted({float(s) for s in np.round(slope_v[:, 0], 6)})}")

figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
for i, (a, c) in enumerate(zip(slopes_pieces, intercepts)):
    left.plot(grid, pieces_v[:, i], ls="--", lw=1, label=f"piece {i}: {a:g}·x {c:+g}")
left.plot(grid, unit_v[:, 0], color="k", lw=2.5, alpha=0.6, label="maxout: the max of the pieces")
left.set(title="Maxout of three linear pieces", xlabel="x", ylabel="value", ylim=(-4, 6))
left.legend(fontsize=8)
right.plot(grid, slope_v[:, 0], color="tab:orange")
right.set(title="its derivative (gn.gradients): the winning piece's slope", xlabel="x", ylabel="d maxout / dx")
lesson.save(figure, "maxout")

# %% 2b. The activations of recent networks: smooth ReLUs and hard (piecewise-linear) curves
# Each is one pointwise op of graphnet (declared as a formula, with its derivative, in graphnet/ops/formulas.py).
MODERN = {"softplus": gn.softplus, "SiLU (swish)": gn.silu, "GELU": gn.gelu, "ReLU6": gn.relu6,
          "hard sigmoid": gn.hard_sigmoid, "hard swish": gn.hard_swish}
wide = np.linspace(-8, 8, 1601)                       # wide enough to see ReLU6 level off at 6
modern = {name: value_and_derivative(f, wide) for name, f in MODERN.items()}
gelu_tanh, _ = value_and_derivative(gn.gelu_tanh, wide)
print(f"\n{'activation':<20} {'f(-8)':>8} {'f(8)':>8} {'min f′':>8} {'max f′':>8}")
for name, (values, slopes) in modern.items():
    print(f"{name:<20} {values[0]:>8.4f} {values[-1]:>8.4f} {slopes.min():>8.4f} {slopes.max():>8.4f}")
gelu_gap = float(np.abs(gelu_tanh - modern["GELU"][0]).max())
print(f"GELU's tanh approximation differs from the exact GELU by at most {gelu_gap:.1e} on [-8, 8]")

figure, axes = plt.subplots(2, len(modern), figsize=(3.0 * len(modern), 5.5), sharex=True, sharey="row")
for (name, (values, slopes)), top, bottom in zip(modern.items(), axes[0], axes[1]):
    top.plot(wide, values)
    top.plot(wide, np.maximum(wide, 0), color="gray", ls=":", lw=1)        # ReLU, for comparison
    top.set(title=name, ylim=(-1.5, 8.5))
    bottom.plot(wide, slopes, color="tab:orange")
    bottom.set(xlabel="x", ylim=(-0.6, 1.6))
    for ax in (top, bottom):
        ax.axhline(0, color="gray", lw=0.5)
        ax.axvline(0, color="gray", lw=0.5)
axes[0, 0].set(ylabel="f(x)")
axes[1, 0].set(ylabel="f′(x) by gn.gradients")
figure.suptitle("smooth ReLUs (SiLU and GELU dip below 0, and their slope exceeds 1 a little) and hard curves "
                "(ReLU dotted)", fontsize=9)
figure.tight_layout()
lesson.save(figure, "modern_activations")

# %% 3. A deep network: the gradient of each layer at initialisation
# depth hidden layers of 64 units on the 8x8 digits, then 10 logits. Each activation gets the initialisation
# made for it: He's N(0, 2/fan_in) for ReLU and GELU, which (nearly) zero half of their inputs; LeCun's
# N(0, 1/fan_in) for the others (ELU with He's scale grows from layer to layer: try it).
(x_train, y_train), (x_test, y_test) = load_digits(test_size=0.25, seed=0)
if args.quick:
    x_train, y_train, x_test, y_test = x_train[:320], y_train[:320], x_test[:200], y_test[:200]
x_train, x_test = x_train.reshape(len(x_train), -1), x_test.reshape(len(x_test), -1)
print(f"\ndigits: {len(x_train)} training and {len(x_test)} test images as {x_train.shape[1]} pixels")
DEEP = {"sigmoid": (gn.sigmoid, 1.0), "tanh": (gn.tanh, 1.0), "ReLU": (gn.relu, 2.0), "ELU": (gn.elu, 1.0),
        "GELU": (gn.gelu, 2.0)}
width = 64


def deep_network(activation, gain):
    """A graph of `args.depth` hidden layers; returns its placeholders, weights, loss, logits and SGD step."""
    rng = np.random.default_rng(0)                   # the same random numbers for every activation
    graph = gn.Graph()
    with graph:
        x = gn.placeholder((None, 64), name="x")
        y = gn.placeholder((None,), dtype="int64", name="y")
        h, weights = x, []
        sizes = [64] + [width] * args.depth + [10]
        for layer, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:]), 1):
            with gn.name_scope(f"layer{layer}"):
                w = gn.variable(rng.normal(0, np.sqrt(gain / n_in), (n_in, n_out)).astype("float32"), name="w")
                b = gn.variable(np.zeros(n_out, "float32"), name="b")
            weights.append(w)
            h = h @ w + b
            if layer < len(sizes) - 1:
                h = activation(h)
        loss = gn.softmax_cross_entropy(h, y, name="loss")
        grads = gn.gradients(loss, weights)
        train_op = optim.SGD(args.lr).minimize(loss)
    return x, y, grads, h, loss, train_op


networks = {name: deep_network(f, gain) for name, (f, gain) in DEEP.items()}
gradient_norms = {}
for name, (x, y, grads, *_) in networks.items():
    values = gn.compile(grads, device=args.device).run({x: x_train, y: y_train})
    gradient_norms[name] = np.array([np.linalg.norm(g) for g in values])
    print(f"{name:<8} ‖∂L/∂W‖ at initialisation, layer 1 … {len(values)}: "
          + " ".join(f"{n:.1e}" for n in gradient_norms[name])
          + f"  (largest / smallest: {gradient_norms[name].max() / gradient_norms[name].min():.1f})")
ratio = {name: norms[0] / norms[-1] for name, norms in gradient_norms.items()}

figure, ax = plt.subplots(figsize=(10, 4))
layers = np.arange(1, args.depth + 2)
bar = 0.8 / len(gradient_norms)
for i, (name, norms) in enumerate(gradient_norms.items()):
    ax.bar(layers + (i - (len(gradient_norms) - 1) / 2) * bar, norms, width=bar, label=name)
ax.set(title=f"{args.depth} hidden layers: the gradient of each layer's weights at initialisation",
       xlabel="layer (1: next to the input; last: the output layer)", ylabel="‖∂L/∂W‖ (log scale)",
       yscale="log", xticks=layers)
ax.legend(loc="lower right")
lesson.save(figure, "gradient_norms")

# %% 4. Training the deep networks with plain SGD
batch_size = 32
history = {}
for name, (x, y, grads, logits, loss, train_op) in networks.items():
    step = gn.compile([loss, train_op], device=args.device)
    evaluate = gn.compile([loss, logits], device=args.device)
    order_rng = np.random.default_rng(0)
    losses = [float(evaluate.run({x: x_train, y: y_train})[0])]         # the training loss before training
    for _ in range(epochs):
        order = order_rng.permutation(len(x_train))
        for start in range(0, len(x_train) - batch_size + 1, batch_size):
            batch = order[start:start + batch_size]
            step.run({x: x_train[batch], y: y_train[batch]})
        losses.append(float(evaluate.run({x: x_train, y: y_train})[0]))
    accuracy = float(np.mean(evaluate.run({x: x_test, y: y_test})[1].argmax(axis=1) == y_test))
    history[name] = dict(losses=losses, accuracy=accuracy)
    print(f"{name:<8} training loss {losses[0]:.4f} -> {losses[-1]:.4f} after {epochs} epoch(s), "
          f"test accuracy {accuracy:.3f}")

figure, ax = plt.subplots(figsize=(8, 4))
for name, h in history.items():
    ax.plot(range(len(h["losses"])), h["losses"], "o-", label=f"{name}: test accuracy {h['accuracy']:.3f}")
ax.axhline(np.log(10), color="gray", ls=":", lw=1, label="ln 10: a uniform guess")
ax.set(title=f"{args.depth} hidden layers, SGD η={args.lr:g}, batches of {batch_size}", xlabel="epoch",
       ylabel="training loss (cross-entropy)")
ax.legend()
lesson.save(figure, "training")

# %% Result
best = min(history, key=lambda name: history[name]["losses"][-1])
lesson.finish(history[best]["losses"][0], history[best]["losses"][-1],
              f"max sigmoid′ {max_sigmoid_slope:.4f}; ‖∂L/∂W‖ layer 1 / last layer at initialisation: "
              + ", ".join(f"{name} {r:.1e}" for name, r in ratio.items())
              + f"; test accuracy after {epochs} epoch(s): "
              + ", ".join(f"{name} {h['accuracy']:.3f}" for name, h in history.items()))


# %% Exercises
# The questions are in the last cell; the functions here check your answers (run this cell first). Each prints
# whether the answer is right and returns True or False.
def check_exercise_1(largest_slope):
    """`largest_slope`: the largest value of the sigmoid's derivative σ'(x) over all x."""
    import numpy as np
    import graphnet as gn
    with gn.Graph():
        x = gn.variable(np.linspace(-10, 10, 20001), name="x")
        (slope,) = gn.gradients(gn.sum(gn.sigmoid(x)), [x])
    expected = float(gn.compile(slope, device="reference").run({}).max())
    right = abs(float(largest_slope) - expected) < 1e-3
    print(f"right: σ'(0) = σ(0)(1 − σ(0)) = {expected:.4f}" if right else
          f"wrong: {largest_slope} is not the largest slope; where is σ(x)(1 − σ(x)) largest?")
    return right


def check_exercise_2(elu_derivative):
    """`elu_derivative(x)` should return ELU's derivative (α = 1) at every element of the array x."""
    import numpy as np
    import graphnet as gn
    points = np.linspace(-4, 4, 81) + 0.05                      # steps around 0, none exactly on it
    with gn.Graph():
        x = gn.variable(points, name="x")
        (slope,) = gn.gradients(gn.sum(gn.elu(x)), [x])
    expected = gn.compile(slope, device="reference").run({})
    answer = np.asarray(elu_derivative(points), dtype="float64")
    right = answer.shape == expected.shape and np.allclose(answer, expected, atol=1e-9)
    print("right: 1 for x > 0, eˣ (= ELU(x) + 1) below" if right else
          "wrong: compare with gn.gradients of gn.elu at a few negative and positive x")
    return bool(right)


def check_exercise_3(slopes, intercepts):
    """`slopes`, `intercepts`: the linear pieces a·x + c of a maxout unit that computes ReLU, max(x, 0)."""
    import numpy as np
    import graphnet as gn
    slopes, intercepts = np.asarray(slopes, "float64"), np.asarray(intercepts, "float64")
    points = np.linspace(-5, 5, 101)
    with gn.Graph():
        pieces = gn.constant(points[:, None] * slopes[None] + intercepts[None])
        unit = gn.maxout(pieces, pieces=len(slopes))
    answer = gn.compile(unit, device="reference").run({})[:, 0]
    right = np.allclose(answer, np.maximum(points, 0))
    print("right: the max of x and 0 is ReLU" if right else
          f"wrong: these pieces give maxout(−5) = {answer[0]:g} and maxout(5) = {answer[-1]:g}; ReLU gives 0 and 5")
    return bool(right)


# %% [markdown]
# **Exercise 1 — the sigmoid's best case.** What is the largest value of σ'(x) = σ(x)(1 − σ(x))? Check it with
# `check_exercise_1(value)`. Then explain, with the bar chart above, why 10 sigmoid layers shrink the first
# layer's gradient by orders of magnitude (the weights multiply too: what does N(0, 1/fan_in) do to them?).
#
# **Exercise 2 — ELU's derivative.** Write `elu_derivative(x)` for α = 1 with NumPy (hint: below 0 it can be
# written with ELU's own output, as lesson 3a wrote tanh's) and check it: `check_exercise_2(elu_derivative)`.
#
# **Exercise 3 — Maxout as ReLU.** Choose the slopes and intercepts of the linear pieces of a maxout unit so that
# it computes max(x, 0), and check them: `check_exercise_3(slopes=[...], intercepts=[...])`. Which pieces give
# LeakyReLU with a = 0.1, and which give |x|?
