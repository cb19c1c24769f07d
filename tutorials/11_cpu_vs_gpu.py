"""Lesson 11 — CPU versus GPU: the same LeNet-5, the same data, timed on every device graphnet can run here.

What this teaches:
  * one graph, several backends: `Trainer(..., device=...)` compiles the very same schedule for NumPy
    ("reference"), for the compiled Cython kernels ("cpu") and, where an NVIDIA GPU is present, for the Numba CUDA
    kernels ("cuda") — they compute the same thing: the first epoch's losses agree to about four digits (later,
    training amplifies the differences in float rounding, as it would between two GPUs);
  * how to time fairly: the first epoch also makes the plans (and, on a GPU, compiles the kernels), so it is
    timed apart; the seconds per epoch are the mean of the epochs after it;
  * the batch size matters: a GPU only pays off when each kernel has enough work, so try both 32 and 256.

Without a real GPU the lesson says so and times the CPU devices only: Numba's CUDA simulator runs the GPU kernels
thread by thread in Python — fine to test them, meaningless to time them.

    python tutorials/11_cpu_vs_gpu.py            # 4,000 MNIST images, 1 + 3 epochs per device and batch size
    python tutorials/11_cpu_vs_gpu.py --quick    # 256 images, 1 + 1 epochs (CI)
"""
# %%
import numpy as np

from graphnet import nn, optim, train
from graphnet.backends import auto_device
from graphnet.backends.cuda import cuda_status, simulated
from graphnet.data import load_mnist_5k
from _lesson import Lesson, parse_args, plt

args = parse_args(__doc__, epochs=3)
lesson = Lesson(args, "11_cpu_vs_gpu")
timed_epochs = 1 if args.quick else args.epochs
batch_sizes = (32, 256)

# %% Which devices can run here?
usable, reason = cuda_status()
devices = ["reference", "cpu"]
if usable and not simulated():
    devices.append("cuda")
    print(f"GPU found: {reason}")
elif usable:
    print(f"no real GPU: cuda here is {reason}; the simulator is far too slow to time, so only cpu and reference "
          "are timed")
else:
    print(f"no GPU to time ({reason}): timing cpu, and the NumPy reference for comparison")
print(f"device='auto' would choose '{auto_device()}'")
if args.device not in devices + ["auto"]:
    print(f"(--device {args.device} is not timed here: this lesson times every device it can)")

# %% Data
(x_train, y_train), _ = load_mnist_5k(test_size=0.2, seed=0)
n = 256 if args.quick else len(x_train)
x, y = x_train[:n], y_train[:n]
print(f"data: {n} MNIST images of {x.shape[1:]}; per device and batch size: 1 warm-up epoch + {timed_epochs} timed")


def lenet5():
    return nn.Sequential([
        nn.Conv2D(6, 5, padding=2, activation="relu"), nn.MaxPool2D(2),
        nn.Conv2D(16, 5, activation="relu"), nn.MaxPool2D(2), nn.Flatten(),
        nn.Dense(120, activation="relu"), nn.Dense(84, activation="relu"), nn.Dense(10),
    ], name="lenet5")


# %% Train the same network (same initial weights: models are seeded) on each device
results = []     # (device, batch size, seconds per epoch, samples/s, first-epoch seconds, epoch-1 loss, final loss)
losses_of_cpu = None
for batch_size in batch_sizes:
    for device in devices:
        print(f"\n--- {device}, batch size {batch_size} ---")
        model = lenet5()
        model.build(x.shape[1:])
        trainer = train.Trainer(model, optim.Adam(1e-3), device=device, seed=0)
        before = trainer.evaluate(x, y)["loss"]
        history = trainer.fit(x, y, epochs=1 + timed_epochs, batch_size=batch_size)
        seconds = float(np.mean(history["seconds"][1:]))       # epoch 1 also made the plans: left out
        after = trainer.evaluate(x, y)["loss"]
        results.append((device, batch_size, seconds, n / seconds, history["seconds"][0], history["loss"][0], after))
        if device == "cpu" and losses_of_cpu is None:
            losses_of_cpu = (before, after)

# %% The table
print(f"\n{'device':<10} {'batch':>5} {'s/epoch':>9} {'samples/s':>10} {'1st epoch':>10} {'epoch-1 loss':>13} "
      f"{'final loss':>11}")
for device, batch_size, seconds, rate, first, loss1, loss in results:
    print(f"{device:<10} {batch_size:>5} {seconds:>9.3f} {rate:>10.0f} {first:>9.3f}s {loss1:>13.6f} {loss:>11.5f}")
per_epoch = {(d, b): s for d, b, s, *_ in results}
for batch_size in batch_sizes:
    speedups = ", ".join(f"{d} {per_epoch[('reference', batch_size)] / per_epoch[(d, batch_size)]:.1f}x"
                         for d in devices if d != "reference")
    print(f"batch {batch_size}: faster than the NumPy reference by: {speedups}")

# %% Bar chart: seconds per epoch, per device, for each batch size
figure, ax = plt.subplots(figsize=(8, 4))
width = 0.8 / len(devices)
for i, device in enumerate(devices):
    heights = [per_epoch[(device, b)] for b in batch_sizes]
    bars = ax.bar(np.arange(len(batch_sizes)) + (i - (len(devices) - 1) / 2) * width, heights, width, label=device)
    ax.bar_label(bars, labels=[f"{n / h:.0f}/s" for h in heights], fontsize=8)
ax.set_xticks(np.arange(len(batch_sizes)), [f"batch size {b}" for b in batch_sizes])
ax.set(ylabel="seconds per epoch", title=f"LeNet-5, one epoch of {n} images (labels: samples per second)")
ax.legend()
lesson.save(figure, "seconds_per_epoch")

# %% Result
cpu, ref = per_epoch[("cpu", 32)], per_epoch[("reference", 32)]
gpu = (f"cuda {per_epoch[('cuda', 32)]:.3f} s/epoch" if "cuda" in devices else "no GPU here")
lesson.finish(*losses_of_cpu, f"batch 32: cpu {cpu:.3f} s/epoch, reference {ref:.3f} s/epoch "
                              f"({ref / cpu:.1f}x slower), {gpu}")

# %% Exercises
# Call them with your answers, e.g. check_exercise_1(100, 10).
def check_exercise_1(steps_at_32, steps_at_256):
    """Exercise 1: training steps (mini-batches) in one epoch of 4,000 images at batch sizes 32 and 256."""
    import numpy as np
    from graphnet.data import DataLoader
    images = np.zeros((4000, 1), dtype=np.float32)
    right = tuple(len(DataLoader(images, None, batch_size=b, fold_single=True)) for b in (32, 256))
    if (steps_at_32, steps_at_256) == right:
        print(f"right: ⌈4000 / 32⌉ = {right[0]} and ⌈4000 / 256⌉ = {right[1]} steps")
        return True
    print(f"not yet ({steps_at_32}, {steps_at_256}): a last, smaller batch is a step too")
    return False


def check_exercise_2(gflop_per_epoch):
    """Exercise 2: about how many GFLOP one training epoch of LeNet-5 on 4,000 images costs, taking a training step
    as 3 times the forward pass (forward, then two products per layer backward). Within 10 % is right."""
    from graphnet import nn
    model = nn.Sequential([
        nn.Conv2D(6, 5, padding=2, activation="relu"), nn.MaxPool2D(2),
        nn.Conv2D(16, 5, activation="relu"), nn.MaxPool2D(2), nn.Flatten(),
        nn.Dense(120, activation="relu"), nn.Dense(84, activation="relu"), nn.Dense(10)])
    model.build((1, 28, 28))
    right = 3 * model.flops * 4000 / 1e9
    if abs(gflop_per_epoch - right) <= 0.1 * right:
        print(f"right: 3 · {model.flops:,} FLOPs · 4,000 images ≈ {right:.1f} GFLOP per epoch")
        return True
    print(f"not yet ({gflop_per_epoch}): the summary gives the forward FLOPs per image; times 3, times 4,000")
    return False

# %% [markdown]
# **Exercise 1.** How many training steps (mini-batches) does one epoch of the 4,000 images take at batch size 32, and
# at 256? Check: `check_exercise_1(steps_at_32, steps_at_256)`. Each step costs a fixed overhead on top of its
# arithmetic — more so on a GPU, where each kernel launch costs microseconds: which batch size suits a GPU?
#
# **Exercise 2.** `model.summary()` (or `model.flops`) gives LeNet-5's forward FLOPs per image. Counting a training
# step as three forward passes, about how many GFLOP does one epoch of 4,000 images cost? Check:
# `check_exercise_2(gflop)`. Divide by the seconds per epoch in the table above: how many GFLOP/s did each device
# reach, and how far is that from your CPU's peak?
#
# **Exercise 3.** Add a batch size of 1024 to `batch_sizes` and run again (with `--device auto` on a machine with an
# NVIDIA GPU, the GPU is timed too). Where does a larger batch stop paying off?
