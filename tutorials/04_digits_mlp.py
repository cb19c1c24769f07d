"""Lesson 4 — the "hello world" of deep learning: a multi-class MLP reads handwritten digits.

What this teaches:
  * ten classes: the network outputs ten logits, softmax turns them into probabilities, and the loss is the
    cross-entropy −log p(correct class), averaged over the batch;
  * the high-level API: layers (`nn.Dense`, `nn.Flatten`, `nn.Dropout`) in an `nn.Sequential`, `model.summary()`
    with the parameter count of every layer, and `train.Trainer(...).fit(...)` — mini-batches, Adam, a progress bar
    and a validation score after every epoch;
  * reading the result: test accuracy, and a confusion matrix that shows which digits are mistaken for which.

The data are scikit-learn's 1,797 handwritten digits, 8x8 pixels with 17 grey levels (no download needed).

    python tutorials/04_digits_mlp.py            # 60 epochs, a few seconds on one core
    python tutorials/04_digits_mlp.py --quick    # a few hundred images, one epoch (CI)
"""
# %%
import numpy as np

from graphnet import nn, optim, train
from graphnet.data import load_digits
from _lesson import Lesson, parse_args, plt

args = parse_args(__doc__, epochs=60)
lesson = Lesson(args, "04_digits_mlp")

# %% Data: (N, 1, 8, 8) images in [0, 1], labels 0..9
(x_train, y_train), (x_test, y_test) = load_digits(test_size=0.25, seed=0)
if args.quick:
    x_train, y_train = x_train[:300], y_train[:300]
epochs = 1 if args.quick else args.epochs
print(f"data: {len(x_train)} training and {len(x_test)} test images of {x_train.shape[1:]}, "
      f"{len(np.unique(y_train))} classes")

# %% The model: 64 pixels -> 512 -> 256 -> 10 logits
model = nn.Sequential([
    nn.Flatten(),                              # (N, 1, 8, 8) -> (N, 64)
    nn.Dense(512, activation="relu"),
    nn.Dropout(0.3),                           # during training only: zero 30% of the units at random
    nn.Dense(256, activation="relu"),
    nn.Dropout(0.3),
    nn.Dense(10),                              # logits; the loss applies the softmax
], name="digits_mlp")
model.build(x_train.shape[1:])
model.summary()

# %% Training: Adam, mini-batches of 32; the last 10% of the training images are held out to validate each epoch
trainer = train.Trainer(model, optim.Adam(1e-3), loss="cross_entropy", device=args.device, seed=0)
before = trainer.evaluate(x_train, y_train)            # builds and compiles the programs on first use
print(f"before training: loss {before['loss']:.4f} (log 10 = {np.log(10):.4f}: a uniform guess), "
      f"accuracy {before['accuracy']:.3f}")
history = trainer.fit(x_train, y_train, epochs=epochs, batch_size=16 if args.quick else 32, validation_split=0.1)
after = trainer.evaluate(x_train, y_train)
test = trainer.evaluate(x_test, y_test)
print(f"test: loss {test['loss']:.4f}, accuracy {test['accuracy']:.4f}")

# %% The confusion matrix: row = true digit, column = predicted digit
predicted = trainer.predict(x_test).argmax(axis=1)
confusion = np.zeros((10, 10), dtype=int)
np.add.at(confusion, (y_test, predicted), 1)
print("confusion matrix (rows: true digit, columns: predicted):\n", confusion)

figure, axes = plt.subplots(1, 3, figsize=(16, 4.5))
axes[0].imshow(confusion, cmap="Blues")
for (r, c), count in np.ndenumerate(confusion):
    if count:
        axes[0].text(c, r, count, ha="center", va="center", color="white" if count > confusion.max() / 2 else "k")
axes[0].set(title=f"confusion matrix (test accuracy {test['accuracy']:.3f})", xlabel="predicted", ylabel="true",
            xticks=range(10), yticks=range(10))
axes[1].plot(history.epochs, history["loss"], label="training loss")
axes[1].plot(history.epochs, history["val_loss"], label="validation loss")
axes[1].set(title="cross-entropy", xlabel="epoch", yscale="log")
axes[1].legend()
axes[2].plot(history.epochs, history["accuracy"], label="training accuracy")
axes[2].plot(history.epochs, history["val_accuracy"], label="validation accuracy")
axes[2].set(title="accuracy", xlabel="epoch")
axes[2].legend()
lesson.save(figure, "confusion_and_curves")

wrong = np.flatnonzero(predicted != y_test)[:10]
if len(wrong):
    figure, axes = plt.subplots(1, len(wrong), figsize=(1.4 * len(wrong), 1.8), squeeze=False)
    for ax, i in zip(axes[0], wrong):
        ax.imshow(x_test[i, 0], cmap="gray_r")
        ax.set_title(f"{y_test[i]} as {predicted[i]}", fontsize=9)
        ax.axis("off")
    figure.suptitle("mistakes: true as predicted", y=1.05)
    lesson.save(figure, "mistakes")

# %% Result
lesson.finish(before["loss"], after["loss"], f"test accuracy {test['accuracy']:.4f} after {len(history)} epoch(s)")


# %% Exercises
# The questions are in the last cell; the functions here check your answers (run this cell first). Each prints
# whether the answer is right and returns True or False.
def check_exercise_1(parameters):
    """`parameters`: how many trainable numbers the model 64 -> 512 -> 256 -> 10 has (dropout has none)."""
    from graphnet import nn
    model = nn.Sequential([nn.Flatten(), nn.Dense(512, activation="relu"), nn.Dropout(0.3),
                           nn.Dense(256, activation="relu"), nn.Dropout(0.3), nn.Dense(10)])
    model.build((1, 8, 8))
    expected = model.count_params()
    right = parameters == expected
    print(f"right: {expected:,} parameters, as model.summary() says" if right else
          f"wrong: not {parameters}; a dense layer has (n_in + 1)·n_out")
    return right


def check_exercise_2(loss):
    """`loss`: the cross-entropy of a uniform guess over the 10 classes."""
    import numpy as np
    import graphnet as gn
    with gn.Graph():
        uniform = gn.softmax_cross_entropy(gn.constant(np.zeros((10, 10))), gn.constant(np.arange(10)))
    expected = float(gn.compile(uniform, device="reference").run({}))
    right = abs(float(loss) - expected) < 1e-3
    print(f"right: −log(1/10) = ln 10 = {expected:.4f}" if right else
          f"wrong: not {loss}; a uniform guess gives each class probability 1/10")
    return right


# %% [markdown]
# **Exercise 1 — parameters.** How many weights and biases does the model hold? Work it out layer by layer and
# check: `check_exercise_1(count)` — then compare with `model.summary()`.
#
# **Exercise 2 — the loss before training.** A network that has learned nothing gives every digit the same
# probability. What is its cross-entropy? Check: `check_exercise_2(value)`, and compare with the loss printed
# "before training".
#
# **Exercise 3 — reading the confusion matrix (no checker: look).** Which two digits are mistaken for each other
# most often in your run? Remove the two `nn.Dropout` layers and train again: what happens to the training and the
# validation curves, and to the test accuracy?
