"""Lesson 3a — backpropagation by hand: a two-layer network's gradients from the chain rule, checked against graphnet.

What this teaches:
  * the forward pass of a two-layer classifier on N examples, written as matrices:
        z1 = X·W1 + b1        (N, H)   the hidden layer's pre-activations
        h  = relu(z1)         (N, H)
        z2 = h·W2 + b2        (N, C)   the logits
        L  = −(1/N) Σₙ log softmax(z2)ₙ,yₙ
  * the backward pass is the chain rule applied from the loss back to each weight, one line per forward line,
    each line reusing the one before it (δ is "the gradient of L with respect to this value"):
        δ2     = ∂L/∂z2 = (softmax(z2) − onehot(y)) / N
        ∂L/∂b2 = Σₙ δ2                (the bias was broadcast over the N rows: its gradient sums them)
        ∂L/∂W2 = hᵀ·δ2
        ∂L/∂h  = δ2·W2ᵀ
        δ1     = ∂L/∂z1 = ∂L/∂h ⊙ [z1 > 0]     (relu passes the gradient where it was active, else 0)
        ∂L/∂b1 = Σₙ δ1
        ∂L/∂W1 = Xᵀ·δ1
    (the shapes check the formulas: ∂L/∂W has W's shape, so hᵀ (H, N) times δ2 (N, C) is the only product that fits);
  * `gn.gradients` writes the same lines as graph ops: the backward half of `print(prog)` is this derivation,
    row by row — softmax_cross_entropy_grad, sum_to for the biases, matmul with a transposed operand, relu_grad
    (on the cpu backend one kernel with the matmul before it: the row matmul+relu_grad is ∂L/∂h and δ1);
  * the hand-made gradients agree with graphnet's to rounding (float64), and they train the network.

The data are two interleaved half moons in the plane (graphnet.data.two_moons), two classes.

    python tutorials/03a_backpropagation_by_hand.py            # 300 full-batch steps with the hand gradients
    python tutorials/03a_backpropagation_by_hand.py --quick    # fewer points and steps (CI)
"""
# %%
import pathlib
import tempfile

import numpy as np

import graphnet as gn
from graphnet.data import two_moons
from _lesson import Lesson, parse_args, plt

args = parse_args(__doc__, epochs=300, lr=(float, 0.5, "gradient-descent step size"))
lesson = Lesson(args, "03a_backpropagation_by_hand")
steps = 30 if args.quick else args.epochs            # full-batch gradient-descent steps with the hand gradients

# %% Data and initial weights (float64, so that the two computations below agree to about 1e-16)
x_train, y_train = two_moons(n=100 if args.quick else 400, noise=0.15, seed=0)
X, Y = x_train.astype("float64"), y_train
N, D, H, C = len(X), 2, 16, 2                        # examples, inputs, hidden units, classes
rng = np.random.default_rng(0)
params = {"W1": rng.normal(0, np.sqrt(2 / D), (D, H)), "b1": np.zeros(H),
          "W2": rng.normal(0, np.sqrt(2 / H), (H, C)), "b2": np.zeros(C)}
print(f"data: X {X.shape}, labels {Y.shape}; W1 {params['W1'].shape}, W2 {params['W2'].shape}")


# %% The forward and backward passes by hand, in NumPy: one line per formula of the derivation above
def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))      # minus the row's max: the same softmax, no overflow
    return e / e.sum(axis=1, keepdims=True)


def forward_backward(p, X, Y):
    """The loss and its gradients with respect to W1, b1, W2, b2, by the chain rule."""
    n = len(X)
    z1 = X @ p["W1"] + p["b1"]
    h = np.maximum(z1, 0)
    z2 = h @ p["W2"] + p["b2"]
    probabilities = softmax(z2)
    loss = -np.mean(np.log(probabilities[np.arange(n), Y]))

    delta2 = (probabilities - np.eye(C)[Y]) / n       # ∂L/∂z2
    grads = {"b2": delta2.sum(axis=0),                # Σₙ δ2
             "W2": h.T @ delta2}                      # hᵀ·δ2
    d_h = delta2 @ p["W2"].T                          # δ2·W2ᵀ
    delta1 = d_h * (z1 > 0)                           # ∂L/∂h ⊙ [z1 > 0]
    grads["b1"] = delta1.sum(axis=0)
    grads["W1"] = X.T @ delta1
    return loss, grads


# %% The same network as a graph; gn.gradients writes its backward pass
def graphnet_program(p):
    """Compile loss and gradients for weights `p`; return (program, x, y, the gradient tensors by name)."""
    graph = gn.Graph()
    with graph:
        x = gn.placeholder((None, D), dtype="float64", name="X")
        y = gn.placeholder((None,), dtype="int64", name="y")
        w = {name: gn.variable(value.copy(), name=name) for name, value in p.items()}
        h = gn.relu(x @ w["W1"] + w["b1"], name="h")
        z2 = h @ w["W2"] + w["b2"]
        loss = gn.softmax_cross_entropy(z2, y, name="L")
        grads = dict(zip(w, gn.gradients(loss, list(w.values()))))
    return gn.compile([loss, *grads.values()], device=args.device), x, y, grads


def compare(p, when):
    """Hand gradients against graphnet's at weights `p`; print and return the largest difference."""
    program, x, y, grads = graphnet_program(p)
    loss_gn, *values = program.run({x: X, y: Y})
    loss_hand, by_hand = forward_backward(p, X, Y)
    by_graphnet = dict(zip(grads, values))
    worst = max(np.abs(by_hand[k] - by_graphnet[k]).max() for k in by_hand)
    print(f"{when}: loss by hand {loss_hand:.10f}, by graphnet {loss_gn:.10f}; "
          "max |difference| of each gradient: "
          + ", ".join(f"{k} {np.abs(by_hand[k] - by_graphnet[k]).max():.1e}" for k in by_hand)
          + f"  ->  max {worst:.1e}")
    return worst, program, grads, by_hand, by_graphnet


difference_at_start, program, grad_tensors, by_hand, by_graphnet = compare(params, "at the initial weights")

# %% Reading the printed schedule: the backward rows are the derivation's lines
# The forward rows are fused (matmul+add+relu is one kernel on the cpu backend). The backward rows follow the
# derivation from the loss down: each row computes one δ or one gradient, but for matmul+relu_grad, which
# computes ∂L/∂h = δ2·W2ᵀ and masks it into δ1 as it is written (one kernel on the cpu backend, two lines). The transposes of the derivation are
# not separate steps: `matmul Bᵀ` multiplies by the transpose of its second operand, `matmul Aᵀ` of its first.
# graphnet computes relu's mask from h = relu(z1) (h > 0 exactly where z1 > 0), and does not compute ∂L/∂X,
# which nothing asked for. The backward pass starts from ∂L/∂L = 1, the constant that gn.draw shows below.
print(program)

meaning = {grad_tensors["b2"].name: "∂L/∂b2 = Σₙ δ2",
           grad_tensors["W2"].name: "∂L/∂W2 = hᵀ·δ2",
           grad_tensors["b1"].name: "∂L/∂b1 = Σₙ δ1",
           grad_tensors["W1"].name: "∂L/∂W1 = Xᵀ·δ1",
           "softmax_cross_entropy_grad": "δ2 = (softmax(z2) − onehot(y)) / N",
           "matmul": "∂L/∂h = δ2·W2ᵀ",
           "relu_grad": "δ1 = ∂L/∂h ⊙ [h > 0]",
           "matmul+relu_grad": "δ1 = (δ2·W2ᵀ) ⊙ [h > 0]"}
print("the backward rows, each with its line of the derivation:")
for index, step in enumerate(program.plan().steps):
    if step.node.phase == "backward":
        op = f"{step.op_name} {step.node.op.describe(step.node.attrs) or ''}".strip()
        line = meaning.get(step.node.name) or meaning.get(step.op_name, "?")
        print(f"  {index:>2}  {op:<28} {str(program.plan().shapes[step.node]):<9} {line}")

# %% Figure: the gradient matrices, by hand and by graphnet, and their difference
figure, axes = plt.subplots(2, 3, figsize=(15, 4.5))
for row, (key, label) in enumerate((("W1", "input"), ("W2", "class"))):
    hand, graph_value = by_hand[key], by_graphnet[key]
    if key == "W2":                                   # W2 is (16, 2): shown transposed, as two rows of 16
        hand, graph_value = hand.T, graph_value.T
    limit = np.abs(hand).max()
    name = key + ("ᵀ" if key == "W2" else "")
    panels = ((hand, f"∂L/∂{name} by hand", "gradient", dict(vmin=-limit, vmax=limit)),
              (graph_value, f"∂L/∂{name} by gn.gradients", "gradient", dict(vmin=-limit, vmax=limit)),
              (hand - graph_value, "by hand − by gn.gradients", "difference", {}))
    for ax, (values, title, bar_label, scale) in zip(axes[row], panels):
        image = ax.imshow(values, cmap="coolwarm", aspect="auto", **scale)
        figure.colorbar(image, ax=ax, label=bar_label)
        ax.set(title=title, xlabel="hidden unit", ylabel=label, xticks=range(0, H, 3), yticks=range(values.shape[0]))
figure.suptitle(f"the gradients at the initial weights: largest difference {difference_at_start:.1e}")
figure.tight_layout()
lesson.save(figure, "gradients")

# %% The computational graph, as gn.draw lays it out (forward blue, backward orange), where Graphviz is installed
try:
    with tempfile.TemporaryDirectory() as folder:
        path = pathlib.Path(folder) / "graph.png"
        gn.draw(program, str(path))
        picture = plt.imread(path)
    figure, ax = plt.subplots(figsize=(9, 9 * picture.shape[0] / picture.shape[1]))
    ax.imshow(picture)
    ax.axis("off")                                    # a picture of the graph: no axes to label
    ax.set_title("the compiled program: each op numbered with its step in print(program)")
    lesson.save(figure, "graph")
except Exception as error:                           # no graphviz package or no dot program: skip the picture
    print(f"(no picture of the graph: {error})")

# %% Training with the hand-made gradients: plain gradient descent, w ← w − η·∂L/∂w
losses = []
for _ in range(steps):
    loss, grads = forward_backward(params, X, Y)
    losses.append(loss)
    for name in params:
        params[name] -= args.lr * grads[name]
difference_at_end, *_ = compare(params, f"after {steps} steps")
x_test, y_test = two_moons(n=400, noise=0.15, seed=1)
hidden = np.maximum(x_test @ params["W1"] + params["b1"], 0)
accuracy = float(np.mean((hidden @ params["W2"] + params["b2"]).argmax(axis=1) == y_test))
print(f"loss {losses[0]:.4f} -> {losses[-1]:.4f}; test accuracy {accuracy:.3f}")

figure, ax = plt.subplots(figsize=(7, 3.5))
ax.plot(losses)
ax.set(title="training with gradients derived by hand", xlabel="gradient-descent step",
       ylabel="cross-entropy (log scale)", yscale="log")
lesson.save(figure, "training")

# %% Result
lesson.finish(losses[0], losses[-1],
              f"max |hand − gn.gradients| {difference_at_start:.1e} at the start, {difference_at_end:.1e} after "
              f"{steps} steps; test accuracy {accuracy:.3f} trained with the hand gradients")


# %% Exercises
# The questions are in the last cell; the functions here check your answers (run this cell first). Each prints
# whether the answer is right and returns True or False.
def check_exercise_1(tanh_backward):
    """`tanh_backward(d_h, h)` should return ∂L/∂z for h = tanh(z), given d_h = ∂L/∂h."""
    import numpy as np
    import graphnet as gn
    rng = np.random.default_rng(1)
    z_value, upstream = rng.normal(size=(4, 5)), rng.normal(size=(4, 5))
    with gn.Graph():
        z = gn.variable(z_value, name="z")
        h = gn.tanh(z)
        (d_z,) = gn.gradients(gn.sum(h * gn.constant(upstream)), [z])    # ∂L/∂h = upstream for this L
    expected = gn.compile(d_z, device="reference").run({})
    answer = np.asarray(tanh_backward(upstream, np.tanh(z_value)), dtype="float64")
    right = answer.shape == expected.shape and np.allclose(answer, expected, atol=1e-9)
    print("right: ∂L/∂z = ∂L/∂h ⊙ (1 − h²)" if right else
          f"wrong: max difference from gn.gradients {np.abs(answer - expected).max():.3g}"
          if answer.shape == expected.shape else f"wrong: shape {answer.shape}, expected {expected.shape}")
    return bool(right)


def check_exercise_2(rows):
    """`rows`: how many backward rows the schedule has for a network with two hidden ReLU layers."""
    import numpy as np
    import graphnet as gn
    graph = gn.Graph()
    with graph:
        x = gn.placeholder((None, 2), dtype="float64", name="X")
        y = gn.placeholder((None,), dtype="int64", name="y")
        weights, h = [], x
        for i, (n_in, n_out) in enumerate(((2, 8), (8, 8), (8, 2))):
            w, b = gn.variable(np.ones((n_in, n_out))), gn.variable(np.zeros(n_out))
            weights += [w, b]
            h = h @ w + b
            if i < 2:
                h = gn.relu(h)
        grads = gn.gradients(gn.softmax_cross_entropy(h, y), weights)
    program = gn.compile(grads, device="cpu")
    count = sum(step.node.phase == "backward" for step in program.plan(4).steps)
    right = rows == count
    print(f"right: {count} backward rows" if right else f"wrong: not {rows}; print the program to count them")
    return right


def check_exercise_3(mse_backward):
    """`mse_backward(prediction, target)` should return ∂L/∂prediction for L = gn.mse(prediction, target)."""
    import numpy as np
    import graphnet as gn
    rng = np.random.default_rng(2)
    prediction, target = rng.normal(size=(6, 3)), rng.normal(size=(6, 3))
    with gn.Graph():
        p = gn.variable(prediction, name="prediction")
        (d_p,) = gn.gradients(gn.mse(p, gn.constant(target)), [p])
    expected = gn.compile(d_p, device="reference").run({})
    answer = np.asarray(mse_backward(prediction, target), dtype="float64")
    right = answer.shape == expected.shape and np.allclose(answer, expected, atol=1e-12)
    print("right: ∂L/∂ŷ = 2(ŷ − y) / (number of elements)" if right else
          "wrong: compare with the mean over every element that gn.mse takes")
    return bool(right)


# %% [markdown]
# **Exercise 1 — a tanh layer.** Replace relu by tanh: h = tanh(z1). Derive ∂L/∂z1 from ∂L/∂h (hint:
# d tanh(z)/dz = 1 − tanh²(z), and write it with h, which the forward pass kept). Write it as a function
# `tanh_backward(d_h, h)` and check it: `check_exercise_1(tanh_backward)`.
#
# **Exercise 2 — reading a longer schedule.** A network with two hidden ReLU layers (X → 8 → 8 → 2 classes),
# gradients asked for all three weights and three biases. Without running it: how many rows does the backward
# half of its cpu schedule have? List them in order as the derivation would (a row matmul+relu_grad computes two
# of its lines), then check: `check_exercise_2(rows)`.
#
# **Exercise 3 — a regression loss.** `gn.mse(ŷ, y)` is the mean of (ŷ − y)² over every element of a (6, 3)
# array. Derive ∂L/∂ŷ, write it as `mse_backward(prediction, target)` and check it: `check_exercise_3(mse_backward)`.
