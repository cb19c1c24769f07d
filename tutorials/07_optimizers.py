"""Lesson 7 — optimizers and learning rates: SGD, momentum, Adagrad, RMSprop, Adam; rates too small and too large.

What this teaches:
  * the update rules, each a few graph ops that `opt.minimize(loss)` appends after the backward pass:
        SGD        w ← w − η·g
        momentum   v ← μ·v + g,  w ← w − η·v                     (a heavy ball: speeds along steady directions)
        Adagrad    G ← G + g²,  w ← w − η·g / (√G + ε)            (a rate per weight: the sum of its squared
                                                                   gradients so far divides it, so it only shrinks)
        RMSprop    s ← ρ·s + (1 − ρ)·g²,  w ← w − η·g / (√s + ε)  (the same with a moving average: it can grow again)
        Adam       momentum and RMSprop together, with the bias of their zero start corrected
  * on a long, narrow valley (f = x²/20 + y²) you can see what each rule does. SGD zig-zags across the steep
    direction and crawls along the flat one; momentum builds speed along it and overshoots the minimum. Adagrad,
    RMSprop and Adam divide each coordinate's step by the size of its own gradients, so their first steps have the
    same size in x and in y and head diagonally, towards the floor and along it at once. What follows differs, and
    the run prints it (how often each path crosses the valley floor y = 0, how far it overshoots x = 0, and f at
    the end): Adagrad's steps shrink as its sums grow and it walks nearly straight in, the best of the five here;
    RMSprop runs down to the floor and along it almost as straight, then crosses y = 0 back and forth in tiny
    steps (a step of about η·sign(g) overshoots a floor that is nearer than η); Adam's momentum carries it past
    the minimum, and after 60 steps it is still coming back — the worst of the five on this valley. A rate per
    coordinate fixes the bad scaling of a problem; it does not make every path straight;
  * on a real network (an MLP on 8×8 digits) plain SGD is clearly the slowest; momentum, Adagrad, RMSprop and Adam,
    each at a sensible rate, are close to one another;
  * the learning rate matters more than the choice of optimizer: too small and nothing happens in the time you
    have; too large and the loss jumps about and stalls high (ReLU units die, or Adam's steps of size ~η keep
    overshooting) or explodes. Each optimizer has its own good range: SGD's is about 50× Adam's.

    python tutorials/07_optimizers.py            # 30 epochs per run, ~10 s on one core
    python tutorials/07_optimizers.py --quick    # a tiny run (CI)
"""
# %%
import math

import numpy as np

import graphnet as gn
from _lesson import Lesson, parse_args, plt
from graphnet import nn, optim, train
from graphnet.data import load_digits

args = parse_args(__doc__, epochs=30)
lesson = Lesson(args, "07_optimizers")
epochs = 1 if args.quick else args.epochs
batch_size = 32

# %% Part 1 — a valley in two dimensions: f(x, y) = x²/20 + y², a variable w = (x, y) and nothing else


def valley_path(optimizer, start=(-7.0, 2.0), steps=60):
    """Minimize f from `start` with `optimizer`; return the points visited and the losses."""
    graph = gn.Graph()
    with graph:
        w = gn.variable(np.array(start, "float32"), name="w")
        loss = w[0] * w[0] / 20 + w[1] * w[1]
        train_op = optimizer.minimize(loss)
    step = gn.compile([loss, train_op], device=args.device)
    points, losses = [w.numpy().copy()], []
    for _ in range(steps):
        losses.append(float(step.run({})[0]))        # the loss at the point before this update
        points.append(w.numpy().copy())              # where the update moved w
    return np.array(points), losses


valley_optimizers = {
    "SGD η=0.9": optim.SGD(0.9),
    "momentum η=0.1 μ=0.9": optim.Momentum(0.1, momentum=0.9),
    "Adagrad η=2": optim.Adagrad(2.0),
    "RMSprop η=0.3": optim.RMSprop(0.3),
    "Adam η=0.3": optim.Adam(0.3),
}
steps = 20 if args.quick else 60
paths = {name: valley_path(opt, steps=steps) for name, opt in valley_optimizers.items()}
for name, (points, losses) in paths.items():
    crossings = int(np.sum(np.diff(np.sign(points[:, 1])) != 0))         # times the path crossed the floor y = 0
    print(f"valley, {name:<22} after {steps} steps: w = ({points[-1][0]:+.3f}, {points[-1][1]:+.3f}), "
          f"f = {losses[-1]:.2e}; crossed y = 0 {crossings:>2} times, largest x {points[:, 0].max():+.2f} "
          f"(beyond the minimum where > 0)")
valley_f = {name: losses[-1] for name, (_, losses) in paths.items()}

figure, ax = plt.subplots(figsize=(10, 4.5))
gx, gy = np.meshgrid(np.linspace(-8, 8, 300), np.linspace(-3, 3, 200))
ax.contour(gx, gy, gx ** 2 / 20 + gy ** 2, levels=np.geomspace(0.02, 12, 14), colors="lightgray", linewidths=0.8)
for name, (points, _) in paths.items():
    ax.plot(points[:, 0], points[:, 1], marker=".", markersize=4, lw=1, label=name)
ax.plot(0, 0, "k*", markersize=12)
ax.set_xlim(-8, 8)
ax.set_ylim(-3, 3)
ax.set_aspect("equal")
ax.set(xlabel="x (the flat direction)", ylabel="y (the steep direction)")
ax.set_title(f"f(x, y) = x²/20 + y²: {steps} steps of each optimizer from (−7, 2)")
ax.legend(loc="lower right", fontsize=8)
lesson.save(figure, "valley")

# %% Part 2 — the same optimizers on a network: an MLP on scikit-learn's 8×8 digits
(x_train, y_train), (x_test, y_test) = load_digits(test_size=0.25, seed=0)
if args.quick:
    x_train, y_train, x_test, y_test = x_train[:480], y_train[:480], x_test[:200], y_test[:200]
print(f"\ndigits: {len(x_train)} training and {len(x_test)} test images of {x_train.shape[1:]}")


def mlp():
    """The same network, with the same initial weights (seed 0), for every run."""
    return nn.Sequential([nn.Flatten(), nn.Dense(128, activation="relu"), nn.Dense(128, activation="relu"),
                          nn.Dense(10)], name="mlp", seed=0)


class BatchLosses(train.Callback):
    """Keeps every mini-batch's training loss."""

    def __init__(self):
        self.losses = []

    def on_batch_end(self, batch, logs):
        self.losses.append(logs["loss"])


def run(optimizer):
    """Train a fresh MLP with `optimizer`; return its batch losses, history and test accuracy.

    drop_last=True: every step averages the gradient over a full batch of 32. (With 1,346 samples the last batch
    of each epoch would hold 2, and one step on so noisy a gradient can throw plain SGD far off.)"""
    trainer = train.Trainer(mlp(), optimizer, device=args.device, seed=0)
    recorder = BatchLosses()
    history = trainer.fit(x_train, y_train, epochs=epochs, batch_size=batch_size, validation_data=(x_test, y_test),
                          callbacks=[recorder], drop_last=True)
    accuracy = trainer.evaluate(x_test, y_test)["accuracy"]
    return dict(losses=np.array(recorder.losses), history=history, accuracy=accuracy)


def smooth(values, width=10):
    """A running mean over `width` steps (the batch losses are noisy); NaN and inf stay visible as gaps."""
    width = max(1, min(width, len(values) // 4))
    return np.convolve(values, np.ones(width) / width, mode="valid")


optimizers = {
    "SGD η=0.05": lambda: optim.SGD(0.05),
    "momentum η=0.05 μ=0.9": lambda: optim.Momentum(0.05, momentum=0.9),
    "Adagrad η=0.01": lambda: optim.Adagrad(0.01),
    "RMSprop η=1e-3": lambda: optim.RMSprop(1e-3),
    "Adam η=1e-3": lambda: optim.Adam(1e-3),
}
results = {}
for name, make in optimizers.items():
    print(f"--- {name}")
    results[name] = run(make())

figure, (left, right) = plt.subplots(1, 2, figsize=(13, 4.5))
for name, r in results.items():
    left.plot(smooth(r["losses"]), label=name)
    right.plot(r["history"].epochs, r["history"]["val_accuracy"], marker="." if epochs < 20 else None, label=name)
left.set_yscale("log")
left.set_xlabel("step (batch of 32)")
left.set_ylabel("training loss (running mean)")
left.set_title(f"one MLP, {len(results)} optimizers")
left.legend()
right.set_xlabel("epoch")
right.set_ylabel("test accuracy")
right.set_title("test accuracy after each epoch")
lesson.save(figure, "optimizers")

# %% Part 3 — learning rates: too small, about right, too large — for SGD and for Adam
sweeps = {
    "SGD": (optim.SGD, [1e-3, 0.05, 1.0]),
    "Adam": (optim.Adam, [1e-5, 1e-3, 0.1]),
}
already_run = {("SGD", 0.05): results["SGD η=0.05"], ("Adam", 1e-3): results["Adam η=1e-3"]}
sweep_results = {}
for family, (cls, rates) in sweeps.items():
    for rate in rates:
        if (family, rate) in already_run:
            sweep_results[family, rate] = already_run[family, rate]
            continue
        print(f"--- {family} η={rate:g}")
        sweep_results[family, rate] = run(cls(rate))

figure, axes = plt.subplots(1, 2, figsize=(13, 4.5), sharey=True)
for ax, (family, (_, rates)) in zip(axes, sweeps.items()):
    for rate, label in zip(rates, ("too small", "about right", "too large")):
        r = sweep_results[family, rate]
        losses = np.where(np.isfinite(r["losses"]), r["losses"], np.nan)
        ax.plot(smooth(np.minimum(losses, 1e3)), label=f"η={rate:g} ({label}): test acc {r['accuracy']:.2f}")
    ax.axhline(math.log(10), color="gray", ls=":", lw=1)       # the loss of guessing: ln 10
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_title(f"{family}: three learning rates")
    ax.legend(fontsize=9)
axes[0].set_ylabel("training loss (running mean; dotted: ln 10, a uniform guess)")
lesson.save(figure, "learning_rates")

# %% Tables
print(f"\n{'optimizer':<24} {'first loss':>10} {'last epoch':>10} {'test acc':>8}")
for name, r in list(results.items()) + [(f"{f} η={rate:g}", r) for (f, rate), r in sweep_results.items()
                                         if (f, rate) not in already_run]:
    last = r["history"]["loss"][-1]
    print(f"{name:<24} {r['losses'][0]:>10.4f} {last:>10.4g} {r['accuracy']:>8.3f}")

# %% The result
adam = results["Adam η=1e-3"]["losses"]
tail = max(1, min(10, len(adam) // 3))
lesson.finish(adam[0], float(np.mean(adam[-tail:])),
              "test accuracy " + ", ".join(f"{name} {r['accuracy']:.3f}" for name, r in results.items())
              + "; SGD η=1e-3 {:.3f}, η=1.0 {:.3f}".format(sweep_results["SGD", 1e-3]["accuracy"],
                                                          sweep_results["SGD", 1.0]["accuracy"])
              + f"; valley f after {steps} steps: " + ", ".join(f"{name.split()[0]} {f:.1e}"
                                                                for name, f in valley_f.items()))


# %% Exercises
# The questions are in the last cell; the functions here check your answers (run this cell first). Each prints
# whether the answer is right and returns True or False.
def check_exercise_1(rate):
    """Exercise 1: the learning rate above which plain SGD diverges across the valley f = x²/20 + y²."""
    right = 1.0                             # y ← y − η·2y = (1 − 2η)·y shrinks while |1 − 2η| < 1, i.e. η < 1
    if abs(rate - right) <= 1e-6:
        print("right: y ← (1 − 2η)·y, and |1 − 2η| < 1 needs η < 1; at η = 0.9 y flips sign and shrinks by 0.8 "
              "each step (the zig-zag), at η > 1 it flips and grows")
        return True
    print(f"wrong: not {rate:g}; write one SGD step for y alone (∂f/∂y = 2y) and ask when it shrinks |y|")
    return False


def check_exercise_2(point):
    """Exercise 2: where Adam (η = 0.3) puts w = (−7, 2) after its first step on the valley."""
    import math
    x, y, rate = -7.0, 2.0, 0.3
    gradient = (x / 10, 2 * y)              # ∂f/∂x = x/10, ∂f/∂y = 2y
    # the first step: m̂ = g and v̂ = g² once the zero start is corrected, so w moves by η·g / (|g| + ε) ≈ η·sign(g)
    right = tuple(w - rate * g / (abs(g) + 1e-8) for w, g in zip((x, y), gradient))
    if len(point) == 2 and all(math.isclose(p, r, abs_tol=1e-4) for p, r in zip(point, right)):
        print(f"right: ({right[0]:.1f}, {right[1]:.1f}): Adam's first step is η in every coordinate, whatever the "
              "size of the gradient — so it heads diagonally, as the valley figure shows")
        return True
    print(f"wrong: not {tuple(point)}; after one step m̂ = g and v̂ = g² (the bias correction undoes the zero start): "
          "what is η·m̂ / (√v̂ + ε)?")
    return False


# %% [markdown]
# **Exercise 1 — the largest rate for SGD on the valley.** On f(x, y) = x²/20 + y², one SGD step multiplies y by
# a fixed factor. Above which learning rate η does the path move away from the valley floor instead of towards it?
# Check with `check_exercise_1(rate)`, then try it: put `"SGD η=1.05": optim.SGD(1.05)` in `valley_optimizers`.
#
# **Exercise 2 — Adam's first step.** From w = (−7, 2), where does Adam with η = 0.3 put w after one step? (Its
# bias correction matters here.) Check with `check_exercise_2((x, y))`, and compare with the first point of Adam's
# path in the valley figure.
#
# **Exercise 3 — momentum (no checker: look).** Run the valley with momentum μ = 0.5 and μ = 0.99 instead of 0.9
# (`optim.Momentum(0.1, momentum=...)`). Which one overshoots the minimum most, and which one is closest to it
# after 60 steps?
