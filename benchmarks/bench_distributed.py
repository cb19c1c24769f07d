#!/usr/bin/env python
"""Data-parallel training on one machine: samples per second with 1 and 2 ranks, and what the all-reduce costs.

    python benchmarks/bench_distributed.py              # 3 rounds of every configuration (about 3 minutes)
    python benchmarks/bench_distributed.py --quick      # 1 round, fewer steps

Needs `pip install 'graphnet[distributed]'` (mpi4py and the mpich wheel, whose mpiexec sits beside this Python).
The script starts itself as the workers, once per configuration and round, the rounds interleaved so that other
work on the machine hits every configuration alike:

    1 rank x 2 threads     python (no mpiexec): one process, graphnet's kernels on both cores
    1 rank x 1 thread      the same at OMP_NUM_THREADS=1
    2 ranks x 1 thread     mpiexec -n 2: each rank on its half of every global batch, at 1 thread each
                           (distributed.init shares the cores among the ranks of a machine)

Each worker trains LeNet-5 (61,706 parameters; MNIST-shaped random data, global batch 128) and the CIFAR CNN of
benchmarks/bench_cpu.py (1,116,970 parameters; 3x32x32, global batch 64) with Trainer(distributed=True) and SGD
with momentum, and reports, from rank 0:

    samples/s             the global batch's samples per second of one timed epoch (after one to warm up)
    all-reduce bytes      the packed gradients, sent and received by each rank every step
    all-reduce in step    the median time of the all-reduce step within a training step (Program.profile):
                          the transfer plus the wait for the slower rank
    all-reduce alone      the median of 30 all-reduces of that buffer with nothing else running: the transfer
With 1 rank the "all-reduce" is a copy. The table is the median over the rounds.
"""
import argparse
import contextlib
import io
import json
import os
import pathlib
import subprocess
import sys
import time

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
CONFIGURATIONS = (("1 rank x 2 threads", 1, "2"), ("1 rank x 1 thread", 1, "1"), ("2 ranks x 1 thread", 2, None))


def networks():
    from graphnet import nn
    from graphnet.nn import zoo
    lenet5 = lambda: zoo.lenet5(num_classes=10, input_size=28)                  # noqa: E731
    cifar = lambda: nn.Sequential([                                              # noqa: E731
        nn.Conv2D(32, 3, padding=1, activation="relu"), nn.Conv2D(32, 3, padding=1, activation="relu"),
        nn.MaxPool2D(2), nn.Conv2D(64, 3, padding=1, activation="relu"), nn.Conv2D(64, 3, padding=1,
                                                                                  activation="relu"),
        nn.MaxPool2D(2), nn.Flatten(), nn.Dense(256, activation="relu"), nn.Dense(10)], name="cifar_cnn", seed=0)
    return (("LeNet-5", lenet5, (1, 28, 28), 128), ("CIFAR CNN", cifar, (3, 32, 32), 64))


def worker(steps):
    """One configuration: train each network, time it, and print RESULT {json} on rank 0."""
    from graphnet import distributed, optim, train
    rank, size = distributed.init()
    world = distributed.world()
    found = {}
    for name, make, shape, batch in networks():
        rng = np.random.default_rng(0)
        x = rng.standard_normal((batch * steps,) + shape).astype("float32")
        y = rng.integers(0, 10, len(x)).astype("int64")
        trainer = train.Trainer(make(), optim.SGD(0.01, momentum=0.9), distributed=True)
        trainer.fit(x[:2 * batch], y[:2 * batch], epochs=1, batch_size=batch, progress=False)     # warm-up
        history = trainer.fit(x, y, epochs=2, batch_size=batch, progress=False)                  # timed
        values = sum(int(np.prod(v.shape)) for v in trainer.optimizer.var_list)      # numbers all-reduced
        start, stop = (rank * batch) // size, ((rank + 1) * batch) // size
        with contextlib.redirect_stdout(io.StringIO()):
            timed = trainer.train_program.profile({trainer.x: x[start:stop], trainer.y: y[start:stop]}, repeat=10)
        in_step = next(seconds for step, seconds in timed if step.node.name == "allreduce/gradients")
        buffer, total = np.ones(values, "float32"), np.empty(values, "float32")
        alone = []
        for _ in range(30):
            world.barrier("timing")
            began = time.perf_counter()
            world.allreduce(buffer, total, "timing")
            alone.append(time.perf_counter() - began)
        found[name] = {"batch": batch, "samples_per_s": history.rows[-1]["samples_per_s"], "bytes": 4 * values,
                       "allreduce_in_step_ms": 1e3 * in_step, "allreduce_alone_ms": 1e3 * float(np.median(alone))}
    if rank == 0:
        print("RESULT " + json.dumps(found), flush=True)


def launch(ranks, threads, steps):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE.parent), os.environ.get("PYTHONPATH", "")]))
    env.pop("OMP_NUM_THREADS", None)
    if threads is not None:
        env["OMP_NUM_THREADS"] = threads
    command = [sys.executable, __file__, "--worker", "--steps", str(steps)]
    if ranks > 1:
        command = [str(pathlib.Path(sys.executable).parent / "mpiexec"), "-n", str(ranks)] + command
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    line = next((line for line in done.stdout.splitlines() if line.startswith("RESULT ")), None)
    if done.returncode != 0 or line is None:
        sys.exit(f"{' '.join(command)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    return json.loads(line[len("RESULT "):])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one round, fewer steps")
    parser.add_argument("--rounds", type=int, default=None, help="rounds of every configuration (default 3)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.steps)
    rounds = args.rounds or (1 if args.quick else 3)
    steps = 8 if args.quick else 24
    runs = {label: [] for label, _, _ in CONFIGURATIONS}
    for round_ in range(rounds):
        order = CONFIGURATIONS[round_ % 3:] + CONFIGURATIONS[:round_ % 3]
        for label, ranks, threads in order:
            runs[label].append(launch(ranks, threads, steps))
            print(f"round {round_ + 1}/{rounds}: {label} done", file=sys.stderr, flush=True)
    load = os.getloadavg()[0]
    print(f"\n{os.cpu_count()} cores, load average {load:.1f}; {steps} steps per timed epoch; median of {rounds} "
          f"round{'s' if rounds > 1 else ''}\n")
    print("| network | configuration | global batch | samples/s | vs 1 rank x 2 threads | all-reduce bytes/step "
          "| all-reduce in step (ms) | all-reduce alone (ms) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    names = [name for name, _, _, _ in networks()]
    for name in names:
        base = np.median([run[name]["samples_per_s"] for run in runs[CONFIGURATIONS[0][0]]])
        for label, _, _ in CONFIGURATIONS:
            rows = [run[name] for run in runs[label]]

            def median(key):
                return float(np.median([row[key] for row in rows]))

            print(f"| {name} | {label} | {rows[0]['batch']} | {median('samples_per_s'):,.0f} | "
                  f"{median('samples_per_s') / base:.2f} | {rows[0]['bytes'] / 2 ** 20:.2f} MiB | "
                  f"{median('allreduce_in_step_ms'):.2f} | {median('allreduce_alone_ms'):.2f} |")


if __name__ == "__main__":
    main()
