"""Lesson 6a — full-batch, mini-batch and stochastic gradient descent: how many samples per step, and the rate.

What this teaches:
  * every variant takes the same step, w ← w − η·g; they differ in g, the gradient of the loss averaged over a
    batch of B of the n training samples:
        full batch   B = n       the exact gradient: one step per epoch ("gradient descent")
        mini-batch   1 < B < n   an estimate from B samples: n/B steps per epoch
        stochastic   B = 1       one sample per step: n steps per epoch, each gradient very noisy
  * per epoch, the smaller the batch the more the network learns: it takes more steps;
  * per second it is another race: a step costs a fixed overhead (running the program, Python around it) plus
    work proportional to B, so a sample costs far less inside a large batch than alone. Part 1 gives each variant
    the same seconds and plots the loss against both clocks. In four runs on the course's busy machine, whose
    step times differed up to fourfold with the load, stochastic descent led after one epoch and mini-batches
    had the lowest loss after 3 seconds; full batch and stochastic swapped second place. A sample cost 17–25
    times more alone than in a batch of 32, and 2–3 times more in a batch of 32 than in the full batch.
    Seconds depend on the machine and on what else runs on it: the printed lines say what yours measured;
  * a rate near the largest that works does not give a smooth curve: full-batch descent at η = 1 sits at the edge
    of stability — its loss jumps up now and then and recovers — and the single-sample gradients of stochastic
    descent make its loss rise in some epochs;
  * the linear scaling rule (Goyal et al., 2017): multiply the batch size by k and multiply η by k, and the same
    number of epochs gives about the same loss — k times fewer steps, each k times longer. In the measured run
    the loss after 10 epochs stayed within 0.088–0.101 from B = 2 to B = 128 with η scaled. Keep η fixed
    instead and a larger batch learns less per epoch: from B = 4 on, the loss grew with every doubling of B
    (0.003 at B = 4, 0.94 at B = 256). The rule holds while η stays small enough to be stable; past that it
    breaks: at B = 256 (η = 0.8) the loss was three times B = 32's, and the full batch (η = 4.2) learned nothing.

Data: scikit-learn's 8×8 digits (1,346 training, 451 test images); the MLP 64 → 128 → 128 → 10 of lesson 7, with
the same initial weights in every run, trained with plain SGD. Every epoch drops its last, partial batch
(`drop_last=True`): a batch of 2 left over after 42 batches of 32 gives a gradient so noisy that one step at a
rate tuned for 32 samples can undo an epoch's work.

    python tutorials/06a_batch_minibatch_sgd.py               # 3 s of training per variant, then the sweep: ~20 s
    python tutorials/06a_batch_minibatch_sgd.py --budget 10   # give each variant more time
    python tutorials/06a_batch_minibatch_sgd.py --quick       # a tiny run (CI)
"""
# %%
import numpy as np

from _lesson import Lesson, parse_args, plt
from graphnet import nn, optim, train
from graphnet.data import load_digits

args = parse_args(__doc__, epochs=10, budget=(float, 3.0, "seconds of training per variant in part 1 (default 3)"))
lesson = Lesson(args, "06a_batch_minibatch_sgd")
budget = 0.3 if args.quick else args.budget
epochs = 1 if args.quick else args.epochs              # part 2: epochs per batch size

# %% Data and model
(x_train, y_train), (x_test, y_test) = load_digits(test_size=0.25, seed=0)
if args.quick:
    x_train, y_train, x_test, y_test = x_train[:256], y_train[:256], x_test[:200], y_test[:200]
n = len(x_train)
print(f"digits: {n} training and {len(x_test)} test images of {x_train.shape[1:]}")


def mlp():
    """The same network, with the same initial weights (seed 0), for every run."""
    return nn.Sequential([nn.Flatten(), nn.Dense(128, activation="relu"), nn.Dense(128, activation="relu"),
                          nn.Dense(10)], name="mlp", seed=0)


class TrainingLoss(train.Callback):
    """After each epoch: the loss over the whole training set (inference mode) and the seconds spent training so
    far. The clock counts the epochs' own training time (the trainer's `seconds`), not this evaluation; once it
    passes `budget`, training stops."""

    def __init__(self, budget=float("inf")):
        self.budget, self.epochs, self.seconds, self.losses = budget, [], [], []

    def on_train_begin(self, logs=None):
        self.record(0, 0.0)

    def on_epoch_end(self, epoch, logs):
        self.record(epoch, self.seconds[-1] + logs["seconds"])
        if self.seconds[-1] >= self.budget:
            self.trainer.stop_training = True

    def record(self, epoch, seconds):
        self.epochs.append(epoch)
        self.seconds.append(seconds)
        self.losses.append(self.trainer.evaluate(x_train, y_train)["loss"])


def run(batch_size, rate, epochs, budget=float("inf"), optimizer=optim.SGD):
    """Train a fresh MLP with optimizer(rate) on batches of `batch_size` for `epochs` epochs or `budget` seconds."""
    trainer = train.Trainer(mlp(), optimizer(rate), device=args.device, seed=0)
    curve = TrainingLoss(budget)
    trainer.fit(x_train, y_train, epochs=epochs, batch_size=batch_size, drop_last=True, callbacks=[curve],
                progress=False)
    steps = len(trainer.loader) * (len(curve.epochs) - 1)
    return dict(epochs=np.array(curve.epochs), seconds=np.array(curve.seconds), losses=np.array(curve.losses),
                steps=steps, step_ms=1e3 * curve.seconds[-1] / steps,
                test=trainer.evaluate(x_test, y_test)["accuracy"])


# %% Part 1 — three ways to descend, each given the same seconds of training
# The rates: about the largest that trains well for each batch size; a rate two to four times larger fails or does
# worse (tried: full batch η = 2 and 4, mini-batch η = 1, stochastic η = 0.1).
variants = {
    f"full batch (B = {n}), η = 1": (n, 1.0),
    "mini-batch (B = 32), η = 0.3": (32, 0.3),
    "stochastic (B = 1), η = 0.03": (1, 0.03),
}
races = {}
for name, (batch_size, rate) in variants.items():
    races[name] = r = run(batch_size, rate, epochs=100_000, budget=budget)
    print(f"{name:<32} {len(r['epochs']) - 1:>5} epochs, {r['steps']:>6} steps of {r['step_ms']:.3f} ms "
          f"({1e3 * r['step_ms'] / batch_size:7.1f} µs per sample) in {r['seconds'][-1]:.2f} s: "
          f"training loss {r['losses'][-1]:.4f}, test accuracy {r['test']:.3f}")

# %% The two clocks: loss against epochs, and against seconds
figure, (left, right) = plt.subplots(1, 2, figsize=(13, 4.5), sharey=True)
for name, r in races.items():
    left.plot(r["epochs"][1:], r["losses"][1:], marker="." if len(r["epochs"]) < 30 else None, label=name)
    right.plot(r["seconds"], r["losses"], marker="." if len(r["epochs"]) < 30 else None, label=name)
left.set(xscale="log", yscale="log", xlabel="epoch (log scale)", ylabel="training loss (log scale)",
         title="per epoch: smaller batches take more steps")
right.set(yscale="log", xlabel="seconds of training (measured)",
          title=f"per second: each variant given {budget:g} s")
left.legend()
lesson.save(figure, "three_ways")

per_epoch = {name: r["losses"][1] for name, r in races.items()}
final = {name: r["losses"][-1] for name, r in races.items()}
print("loss after one epoch: " + ", ".join(f"{name.split(' (')[0]} {v:.4f}" for name, v in per_epoch.items()))
print(f"loss after {budget:g} s:   " + ", ".join(f"{name.split(' (')[0]} {v:.4f}" for name, v in final.items()))
print(f"lowest after one epoch: {min(per_epoch, key=per_epoch.get).split(' (')[0]}; "
      f"lowest after {budget:g} s: {min(final, key=final.get).split(' (')[0]}")
alone, in_32, in_full = (races[name]["step_ms"] / variants[name][0]               # milliseconds per sample
                         for name in ("stochastic (B = 1), η = 0.03", "mini-batch (B = 32), η = 0.3",
                                      f"full batch (B = {n}), η = 1"))
print(f"a sample costs {alone / in_32:.0f} times more alone than in a batch of 32, and {in_32 / in_full:.1f} times "
      f"more in a batch of 32 than in the full batch")

# %% Part 2 — the linear scaling rule: η = η₀ · B / B₀, with η₀ = 0.1 at B₀ = 32
# The base rate is a third of part 1's, so that the rule has room to scale up before η becomes too large.
base_rate, base_batch = 0.1, 32
batch_sizes = [4, 32, n] if args.quick else [2, 4, 8, 16, 32, 64, 128, 256, n]
scaled, fixed = {}, {}
for batch_size in batch_sizes:
    scaled[batch_size] = run(batch_size, base_rate * batch_size / base_batch, epochs)
    fixed[batch_size] = run(batch_size, base_rate, epochs)
print(f"\n{'batch':>6} {'steps':>6}  {'η scaled':>9} {'loss':>8} {'test acc':>8}   {'η fixed':>8} {'loss':>8} "
      f"{'test acc':>8}")
for b in batch_sizes:
    s, f = scaled[b], fixed[b]
    print(f"{b:>6} {s['steps']:>6}  {base_rate * b / base_batch:>9.4g} {s['losses'][-1]:>8.4f} {s['test']:>8.3f}   "
          f"{base_rate:>8.4g} {f['losses'][-1]:>8.4f} {f['test']:>8.3f}")

figure, (left, right) = plt.subplots(1, 2, figsize=(13, 4.5))
left.plot(batch_sizes, [scaled[b]["losses"][-1] for b in batch_sizes], "o-", label="η scaled: η₀·B/B₀")
left.plot(batch_sizes, [fixed[b]["losses"][-1] for b in batch_sizes], "s--", label=f"η fixed at {base_rate:g}")
left.axhline(np.log(10), color="gray", ls=":", lw=1, label="ln 10: a uniform guess")
left.set(xscale="log", yscale="log", xlabel="batch size B (log scale)",
         ylabel=f"training loss after {epochs} epoch(s) (log scale)", title=f"the same epochs, batch sizes {batch_sizes[0]} to {n}")
left.set_xticks(batch_sizes, [str(b) for b in batch_sizes])
left.legend()
for b in batch_sizes:
    right.plot(scaled[b]["epochs"], scaled[b]["losses"], marker=".",
               label=f"B = {b}, η = {base_rate * b / base_batch:.3g}")
right.set(yscale="log", xlabel="epoch", ylabel="training loss (log scale)", title="η scaled with B: loss per epoch")
right.legend(fontsize=8, ncol=2)
lesson.save(figure, "linear_scaling")

# %% Where the rule holds: scaled losses within a factor of 2 of the base batch's
reference = scaled[base_batch]["losses"][-1]
holds = [b for b in batch_sizes if scaled[b]["losses"][-1] <= 2 * reference]
breaks = [b for b in batch_sizes if b not in holds]
print(f"scaled: loss within 2x of B = {base_batch}'s {reference:.4f} for B = {holds}; not for B = {breaks}")
print(f"fixed η: loss from {fixed[batch_sizes[0]]['losses'][-1]:.4f} (B = {batch_sizes[0]}) to "
      f"{fixed[batch_sizes[-1]]['losses'][-1]:.4f} (B = {batch_sizes[-1]})")

# %% Result
mini = races["mini-batch (B = 32), η = 0.3"]
lesson.finish(mini["losses"][0], mini["losses"][-1],
              f"training loss after {budget:g} s: " + ", ".join(f"{name.split(' (')[0]} {v:.4f}"
                                                                for name, v in final.items())
              + f"; linear scaling holds (within 2x) for B = {min(holds)}..{max(holds)}, "
              f"fixed η: loss {fixed[batch_sizes[0]]['losses'][-1]:.3f} at B = {batch_sizes[0]} "
              f"to {fixed[batch_sizes[-1]]['losses'][-1]:.3f} at B = {batch_sizes[-1]}")

# %% Exercises
# The questions are in the last cell; the functions here check your answers (run this cell first). Each prints
# whether the answer is right and returns True or False.
def check_exercise_1(steps):
    """Exercise 1: the update steps in one epoch of 1,346 samples for B = 1, 32 and 1,346, with drop_last=True."""
    right = (1346 // 1, 1346 // 32, 1346 // 1346)
    if tuple(steps) == right:
        print(f"right: {right[0]}, {right[1]} and {right[2]} steps: ⌊n / B⌋ with drop_last")
        return True
    print(f"wrong: not {tuple(steps)}; a step takes B samples, and drop_last drops the last partial batch")
    return False


def check_exercise_2(rate):
    """Exercise 2: the rate the linear scaling rule gives for B = 8, from η = 0.3 at B = 32."""
    right = 0.3 * 8 / 32
    if abs(rate - right) <= 1e-6:
        print(f"right: η = 0.3 · 8 / 32 = {right:g}")
        return True
    print(f"wrong: not {rate:g}; the rule keeps η / B constant")
    return False


# %% [markdown]
# **Exercise 1 — steps per epoch.** One epoch of the 1,346 training digits with `drop_last=True`: how many update
# steps does it take at B = 1, B = 32 and B = 1,346 (full batch)? Check with
# `check_exercise_1((steps_1, steps_32, steps_full))`, then compare with the steps part 1 printed (over several
# epochs).
#
# **Exercise 2 — the linear scaling rule.** Part 1 trains mini-batches of 32 at η = 0.3. What rate does the rule
# give a batch of 8? Check with `check_exercise_2(rate)`, then run it: compare `run(8, rate, epochs=10)["losses"]`
# with `run(32, 0.3, epochs=10)["losses"]`.
#
# **Exercise 3 — where the rule ends (no checker: look).** From η = 0.3 at B = 32 the rule gives the full batch
# η = 0.3 · 1346 / 32 ≈ 12.6. Run `run(n, 12.6, epochs=50)`: what happens to the loss, and why? Then train Adam at
# B = 8, 32 and 256 with one rate, `run(B, 1e-3, epochs=10, optimizer=optim.Adam)`: does Adam need the rule?
