"""Lesson 12 — beyond one machine: data-parallel SGD over MPI, and what it costs.

What this teaches:
  * data parallelism: N processes ("ranks") run the same compiled program, each on its shard of every batch, and
    average their gradients before the update — so every rank takes the very step one process would take on the
    whole batch. Why: the loss of a batch of B samples is a weighted sum of the shards' losses,
        L = (1/B)·Σ_i ℓ_i = Σ_r w_r·L_r,   w_r = n_r / B,   so   ∂L/∂θ = Σ_r w_r·∂L_r/∂θ
    (n_r samples on rank r). With equal shards w_r = 1/N, the plain mean; with uneven shards the plain mean is
    wrong, and part 1 shows by how much;
  * graphnet does it with MPI (mpi4py): `Trainer(..., distributed=True)` shards each global batch, sums the
    weighted gradients with one all-reduce — a step of the compiled schedule, printed in part 2 — and checks that
    2 ranks reach the single process's weights;
  * the learning rate and the batch size: N ranks of b samples each train on a global batch of B = N·b, so adding
    ranks while keeping b makes the batch larger, and by the linear scaling rule of lesson 06a the rate must grow
    with it: η = η₀·N. Part 3 trains with η fixed and with η scaled;
  * what communication costs: an all-reduce of M bytes over N ranks (a ring: each rank sends and receives
    2·(N − 1)/N·M bytes in 2·(N − 1) messages) takes about t(N) = 2·(N − 1)·α + 2·(N − 1)/N·M/β, with α the
    latency of one message and β the bandwidth. A step of T seconds on one process becomes T/N + t(N) on N, a
    speed-up of T / (T/N + t(N)): it pays when the step has much arithmetic per byte of gradient — large batches,
    convolutions — and a fast network. Part 4 measures t here and predicts the speed-up on two networks.

In the measured run (2 ranks on a 2-core machine, 5 epochs): the weighted shards' gradient matched the whole
batch's to 4e-17 (float64), the plain mean missed by 1e-2; 2 ranks ended 2.7e-7 from the single process's weights
after 110 steps; with η scaled the loss stayed at 0.59–0.64 from k = 1 to k = 8 ranks of 32 samples, with η fixed
it grew from 0.60 to 1.88; the all-reduce of 4 MiB took 0.9 ms between two processes of one machine — a 1 Gbit/s
network would need about 35 ms — so the MLP's small step (0.3 ms at batch 64) would run slower on 2 machines than
on one, and only a batch of 1,024 would gain (1.9x at best, at 5 machines).

Data: scikit-learn's 8×8 digits (1,346 training images); an MLP 64 → 128 → 10 with dropout.

    mpiexec -n 2 python tutorials/12_data_parallel_sgd.py         # 2 ranks on this machine (about 5 s)
    python tutorials/12_data_parallel_sgd.py                      # one process: the same lesson, N = 1
    mpiexec -n 2 python tutorials/12_data_parallel_sgd.py --quick # a tiny run (CI runs it without mpiexec too)

mpiexec comes with `pip install 'graphnet[distributed]'` (the mpich wheel). Across machines, list them in a
hostfile (one host name per line, `host:4` for 4 ranks there) and run `mpiexec -f hostfile -n 8 python ...`:
every machine needs the same Python environment and the script at the same path. Only rank 0 prints and writes
the figures.
"""
# %%
import time

import numpy as np

import graphnet as gn
from _lesson import Lesson, parse_args, plt
from graphnet import distributed, nn, optim, train
from graphnet.data import load_digits

args = parse_args(__doc__, epochs=5)
lesson = Lesson(args, "12_data_parallel_sgd")
rank, size = distributed.init()
main = distributed.is_main()
epochs = 1 if args.quick else args.epochs


def say(*text):
    """print, on rank 0 only (every rank runs this script)."""
    if main:
        print(*text, flush=True)


def save(figure, stem):
    if main:
        lesson.save(figure, stem)
    else:
        plt.close(figure)


say(f"{size} rank{'s' if size > 1 else ''}" + ("" if size > 1 else " (not started by mpiexec: a single process; "
                                               "run `mpiexec -n 2 python tutorials/12_data_parallel_sgd.py` for 2)"))

# %% Data and model
(x_train, y_train), (x_test, y_test) = load_digits(test_size=0.25, seed=0)
if args.quick:
    x_train, y_train = x_train[:320], y_train[:320]
say(f"digits: {len(x_train)} training and {len(x_test)} test images of {x_train.shape[1:]}")


def mlp():
    """The same network, with the same initial weights (seed 0), on every rank and in every run."""
    return nn.Sequential([nn.Flatten(), nn.Dense(128, activation="relu"), nn.Dropout(0.2), nn.Dense(10)],
                         name="mlp", seed=0)


# %% Part 1 — the arithmetic: the shards' weighted gradients add up to the whole batch's
# In float64, in this process alone: the gradient of the mean loss over 48 samples, and over shards of 20 and 28.
model = mlp()
model.build(x_train.shape[1:], dtype="float64")
with model.graph:
    labels = gn.placeholder((None,), "int64", name="labels")
    loss = gn.softmax_cross_entropy(model.output, labels)
    gradient_program = gn.compile(gn.gradients(loss, list(model.trainable_variables().values())))


def gradient(xs, ys):
    """∂L/∂θ of the mean loss over (xs, ys), all variables as one vector."""
    return np.concatenate([g.ravel() for g in gradient_program.run({model.input: xs.astype("float64"),
                                                                     labels: ys})])


xb, yb = x_train[:48], y_train[:48]
whole = gradient(xb, yb)
shards = [(0, 20), (20, 48)]
parts = [gradient(xb[a:b], yb[a:b]) for a, b in shards]
weights = [(b - a) / len(xb) for a, b in shards]
weighted = sum(w * g for w, g in zip(weights, parts))
plain = sum(parts) / len(parts)
error_weighted, error_plain = np.abs(weighted - whole).max(), np.abs(plain - whole).max()
say(f"whole batch of 48 vs shards of 20 and 28 (w = {weights[0]:.4f}, {weights[1]:.4f}): "
    f"max |Σ w_r·g_r − g| = {error_weighted:.1e}, max |mean of g_r − g| = {error_plain:.1e} "
    f"(|g| up to {np.abs(whole).max():.2f})")

figure, ax = plt.subplots(figsize=(7, 3.5))
ax.bar(["Σ w_r·g_r\n(weighted by samples)", "(g_0 + g_1) / 2\n(plain mean)"], [error_weighted, error_plain])
ax.set(yscale="log", ylabel="max |difference| from the whole batch's gradient",
       title="shards of 20 and 28 of a batch of 48 (float64)")
ax.set_ylim(1e-18, 1)
save(figure, "weighted_average")

# %% Part 2 — data-parallel training: the same program on every rank, one all-reduce per step
batch = 64                                                        # the global batch: 64 / size per rank
trainer = train.Trainer(mlp(), optim.SGD(0.1, momentum=0.9), distributed=True, seed=0)
first_loss = trainer.evaluate(x_train, y_train)["loss"]           # on this rank, before any step
history = trainer.fit(x_train, y_train, epochs=epochs, batch_size=batch, validation_data=(x_test, y_test),
                      progress=False)
last = history.rows[-1]
say(f"{size} rank(s), global batch {batch}: loss {first_loss:.3f} -> {last['loss']:.4f}, validation accuracy "
    f"{last['val_accuracy']:.3f} (the same numbers on every rank: they are summed over the ranks)")
say("the gradients' all-reduce, a step of the training schedule:")
for line in str(trainer.train_program).splitlines():
    if "allreduce/gradients" in line:
        say("   " + " ".join(line.split()))
if size > 1:                     # rank 0 trains the same network alone, on the same global batches
    if main:
        alone = train.Trainer(mlp(), optim.SGD(0.1, momentum=0.9), seed=0)
        alone.fit(x_train, y_train, epochs=epochs, batch_size=batch, progress=False)
        reference = alone.model.get_weights()
        difference = max(float(np.abs(w - reference[name]).max()) for name, w in trainer.model.get_weights().items())
        say(f"{size} ranks vs one process after {trainer.optimizer.steps_done()} steps: max |Δw| = {difference:.1e} "
            "(float32: the sums are taken in another order)")
else:
    say("(with mpiexec -n 2, rank 0 would now train alone and compare the weights)")

# %% Part 3 — the learning rate and the batch size: N ranks of 32 samples are a global batch of 32·N
per_rank, base_rate = 32, 0.05
ranks_simulated = (1, 4) if args.quick else (1, 2, 4, 8)
losses = {}
for k in ranks_simulated:                # a global batch of 32·k: what k ranks of 32 samples train on
    for rule, rate in (("fixed", base_rate), ("scaled", base_rate * k)):
        run = train.Trainer(mlp(), optim.SGD(rate), distributed=True, seed=0)
        run.fit(x_train, y_train, epochs=epochs, batch_size=per_rank * k, progress=False)
        losses[rule, k] = run.evaluate(x_train, y_train)["loss"]
say(f"\nafter {epochs} epoch(s) of SGD, training loss with a global batch of 32·k:")
for k in ranks_simulated:
    say(f"  k = {k}: η fixed at {base_rate:g}: {losses['fixed', k]:.4f};   η scaled to {base_rate * k:g}: "
        f"{losses['scaled', k]:.4f}")

figure, ax = plt.subplots(figsize=(7, 4))
for rule, marker in (("fixed", "s--"), ("scaled", "o-")):
    ax.plot(ranks_simulated, [losses[rule, k] for k in ranks_simulated], marker,
            label=f"η {'= η₀·k' if rule == 'scaled' else 'fixed at η₀'}")
ax.set(xscale="log", yscale="log", xlabel="k: ranks of 32 samples (global batch 32·k)",
       ylabel=f"training loss after {epochs} epoch(s)", title=f"the linear scaling rule, η₀ = {base_rate:g}")
ax.set_xticks(ranks_simulated, [str(k) for k in ranks_simulated])
ax.xaxis.set_minor_locator(plt.NullLocator())
ax.legend()
save(figure, "learning_rate_and_batch")

# %% Part 4 — what communication costs: the all-reduce measured here, and a model of the speed-up
world = distributed.world()
sizes = [2 ** p for p in range(10, 21 if args.quick else 25, 2)]        # bytes: 1 KiB to 4 (16) MiB
seconds = []
for nbytes in sizes:
    send, receive = np.ones(nbytes // 4, "float32"), np.empty(nbytes // 4, "float32")
    times = []
    for _ in range(5 if args.quick else 20):
        world.barrier("timing")
        started = time.perf_counter()
        world.allreduce(send, receive, "timing")
        times.append(time.perf_counter() - started)
    seconds.append(float(np.median(times)))
parameters = sum(int(np.prod(v.shape)) for v in trainer.optimizer.var_list)
say(f"\nall-reduce on {size} rank(s) here: " + ", ".join(f"{b / 1024:.0f} KiB {t * 1e6:.0f} µs"
                                                          for b, t in zip(sizes, seconds)))
say(f"the MLP's gradients: {parameters:,} float32 = {4 * parameters / 1024:.0f} KiB per step")

# The step time T of one process, for a small and a large global batch
step_seconds = {}
large = min(1024, len(x_train))
for global_batch in (64, large):
    one = train.Trainer(mlp(), optim.SGD(0.1), seed=0)
    one.fit(x_train[:global_batch], y_train[:global_batch], epochs=2, batch_size=global_batch, progress=False)
    started = time.perf_counter()
    repeats = 5 if args.quick else 30
    for _ in range(repeats):
        one.train_program.run({one.x: x_train[:global_batch], one.y: y_train[:global_batch]})
    step_seconds[global_batch] = (time.perf_counter() - started) / repeats
say("one process, one step: " + ", ".join(f"batch {b}: {t * 1e3:.2f} ms" for b, t in step_seconds.items()))

NETWORKS = {"1 Gbit/s Ethernet (α = 50 µs, β = 125 MB/s)": (50e-6, 125e6),
            "10 Gbit/s (α = 10 µs, β = 1.25 GB/s)": (10e-6, 1.25e9)}        # assumed, typical values


def allreduce_seconds(ranks, nbytes, latency, bandwidth):
    """A ring all-reduce: 2(N − 1) messages, each rank sending 2(N − 1)/N of the buffer."""
    return 2 * (ranks - 1) * latency + 2 * (ranks - 1) / ranks * nbytes / bandwidth


ranks = np.arange(1, 33)
figure, (left, right) = plt.subplots(1, 2, figsize=(13, 4.5))
left.loglog(sizes, np.array(seconds) * 1e6, "o-", label=f"measured here, {size} rank(s)"
            + ("" if size > 1 else " (a copy)"))
for name, (latency, bandwidth) in NETWORKS.items():
    left.loglog(sizes, [allreduce_seconds(2, b, latency, bandwidth) * 1e6 for b in sizes], "--",
                label=f"model, 2 ranks, {name.split(' (')[0]}")
left.set(xlabel="bytes all-reduced", ylabel="µs", title="one all-reduce")
left.legend(fontsize=8)
speedups = {}
for name, (latency, bandwidth) in NETWORKS.items():
    for global_batch, step in step_seconds.items():
        comm = np.array([allreduce_seconds(n, 4 * parameters, latency, bandwidth) for n in ranks])
        speedups[name, global_batch] = step / (step / ranks + comm)
        right.plot(ranks, speedups[name, global_batch], label=f"batch {global_batch}, {name.split(' (')[0]}")
right.plot(ranks, ranks, ":", color="gray", label="perfect: N")
right.set(xlabel="ranks N", ylabel="predicted speed-up T / (T/N + t(N))", yscale="log", xscale="log",
          title=f"the MLP's step ({4 * parameters / 1024:.0f} KiB of gradients) over a network")
right.legend(fontsize=8)
save(figure, "communication")
for (name, global_batch), speedup in speedups.items():
    say(f"predicted speed-up, batch {global_batch}, {name}: {speedup[1]:.2f} at 2 ranks, {speedup[7]:.2f} at 8, "
        f"best {speedup.max():.2f} at {ranks[speedup.argmax()]}")

# %% Result
if main:
    lesson.finish(first_loss, last["loss"],
                  f"{size} rank(s): validation accuracy {last['val_accuracy']:.3f}; shards' weighted gradient within "
                  f"{error_weighted:.0e} of the whole batch's (plain mean: {error_plain:.0e}); predicted speed-up at 8 "
                  f"ranks on 1 Gbit/s, batch {large}: {speedups[next(iter(NETWORKS)), large][7]:.1f}")

# %% Exercises
# Call them with your answers, e.g. check_exercise_1((0.5, 0.5)).
def check_exercise_1(weights):
    """Exercise 1: the weights w_r of the gradients of 3 ranks holding 22, 21 and 21 samples of a batch of 64."""
    right = (22 / 64, 21 / 64, 21 / 64)
    if len(weights) == 3 and all(abs(a - b) < 1e-9 for a, b in zip(weights, right)):
        print(f"right: w_r = n_r / B = 22/64, 21/64, 21/64 — they add up to 1")
        return True
    print(f"not yet {tuple(weights)}: each rank's gradient counts as many times as it has samples")
    return False


def check_exercise_2(rate):
    """Exercise 2: the rate for 8 ranks of 32 samples each, when η = 0.05 suits one process with batches of 32."""
    right = 0.05 * 8
    if abs(rate - right) < 1e-9:
        print(f"right: the global batch is 8 · 32 = 256, 8 times larger, so η = 0.05 · 8 = {right:g}")
        return True
    print(f"not yet ({rate:g}): what is the global batch, and what does the linear scaling rule do with η?")
    return False


def check_exercise_3(nbytes):
    """Exercise 3: bytes each rank sends per step in a ring all-reduce of LeNet-5's 61,706 float32 gradients over
    4 ranks. Within 1 % is right."""
    right = 2 * (4 - 1) / 4 * 4 * 61_706
    if abs(nbytes - right) <= 0.01 * right:
        print(f"right: 2·(N − 1)/N · 4 bytes · 61,706 = {right:,.0f} bytes")
        return True
    print(f"not yet ({nbytes:,}): a ring sends 2·(N − 1)/N of the buffer, and a float32 is 4 bytes")
    return False


# %% [markdown]
# **Exercise 1 — uneven shards.** A global batch of 64 samples on 3 ranks is split into shards of 22, 21 and 21.
# With which weights must the ranks' gradients be added so that the sum is the whole batch's gradient? Check with
# `check_exercise_1((w0, w1, w2))`, then repeat part 1 with three shards.
#
# **Exercise 2 — the rate for more ranks.** One process trains well with batches of 32 at η = 0.05. You move to 8
# ranks, each still given 32 samples per step. Which η does the linear scaling rule give? Check with
# `check_exercise_2(rate)`, and compare with part 3's table.
#
# **Exercise 3 — bytes on the wire.** LeNet-5 has 61,706 float32 parameters. How many bytes does each of 4 ranks
# send per step in a ring all-reduce of its gradients? Check with `check_exercise_3(nbytes)`; then, with part 4's
# model, estimate at which step time 4 ranks on 1 Gbit/s Ethernet would break even.
