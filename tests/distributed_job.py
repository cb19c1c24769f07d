"""The jobs tests/test_distributed.py starts under `mpiexec -n 2`: python tests/distributed_job.py SCENARIO OUT.

    equivalence   20 steps of SGD with momentum and of Adam, on an MLP with dropout and a CNN with batch norm and
                  dropout, on 2 ranks and (on rank 0) in one process with the same global batches; a last batch
                  of 9 split 4/5; validation; a checkpoint written by rank 0, restored on both ranks, trained on;
                  the progress bar, the CSV log and the INFO messages on rank 0 only. Writes OUT/results.json
                  and OUT/final.npz (rank 0).
    disagree      rank 1 builds another model, then a batch leaves a rank without samples: both ranks must
                  raise DistributedError at the start of fit; each writes the message to OUT/disagree-<rank>.txt
    raise         rank 1 raises in its fifth step (not caught): the job must end, rank 0 included
    die           rank 1 is killed (SIGKILL) in its fifth step of epoch 2, after rank 0 wrote the checkpoint
                  OUT/epoch-1.npz at the end of epoch 1: the job must end, the checkpoint be complete
    hang          rank 1 catches its error and stops taking part: rank 0 must raise DistributedError within the
                  3 s timeout (and the job end)
"""
import json
import logging
import os
import signal
import sys
import time

import numpy as np

from graphnet import distributed, nn, optim, train

BATCH = 16
STEPS = 20


def data(samples=STEPS * BATCH - 7, seed=0):
    """19 full batches of 16 and a last one of 9 (split 4 and 5 on 2 ranks): 20 steps per epoch."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((samples, 1, 6, 6)).astype("float32")
    y = (x[:, 0, :3].mean((1, 2)) > 0).astype(np.int64) + (x[:, 0, 3:].mean((1, 2)) > 0)
    return x, y


def mlp():
    return nn.Sequential([nn.Flatten(), nn.Dense(32, activation="relu"), nn.Dropout(0.5), nn.Dense(3)],
                         name="mlp", seed=1)


def cnn(units=3):
    """No bias before batch norm: its exact gradient is 0 (the norm subtracts the mean), and Adam would turn the
    rounding noise of that 0 into steps of ±η, which no two summation orders share."""
    return nn.Sequential([nn.Conv2D(4, 3, padding=1, use_bias=False), nn.BatchNorm2D(), nn.ReLU(), nn.MaxPool2D(2), nn.Flatten(),
                          nn.Dropout(0.25), nn.Dense(units)], name="cnn", seed=2)


OPTIMIZERS = {"sgd_momentum": lambda: optim.SGD(0.05, momentum=0.9), "adam": lambda: optim.Adam(1e-2)}


def flat(weights):
    return np.concatenate([np.ravel(w) for _, w in sorted(weights.items())])


def equivalence():
    x, y = data()
    x_val, y_val = data(41, seed=1)
    results = {}
    for model_name, make in (("mlp_dropout", mlp), ("cnn_batchnorm_dropout", cnn)):
        for optimizer_name, optimizer in OPTIMIZERS.items():
            trainer = train.Trainer(make(), optimizer(), distributed=True)
            history = trainer.fit(x, y, epochs=1, batch_size=BATCH, progress=False, validation_data=(x_val, y_val))
            weights = trainer.model.get_weights()
            spread = distributed.allreduce(flat(weights), "max") - distributed.allreduce(flat(weights), "min")
            row = {"steps": trainer.optimizer.steps_done(), "ranks_spread": float(np.abs(spread).max()),
                   "logs": history.rows[-1]}
            if rank == 0:
                alone = train.Trainer(make(), optimizer())
                single = alone.fit(x, y, epochs=1, batch_size=BATCH, progress=False, validation_data=(x_val, y_val))
                reference = alone.model.get_weights()
                row["max_dw"] = {name: float(np.abs(weights[name] - reference[name]).max()) for name in weights}
                row["max_abs_dw"] = max(row["max_dw"].values())
                row["bit_identical"] = all(np.array_equal(weights[n], reference[n]) for n in weights)
                row["single_logs"] = single.rows[-1]
            results[f"{model_name}/{optimizer_name}"] = row
    results["schedule"] = str(trainer.train_program)          # the last one: CNN with batch norm, Adam
    results.update(checkpoints_and_rank_zero_output(x, y))
    if rank == 0:
        with open(os.path.join(OUT, "results.json"), "w") as file:
            json.dump(results, file, indent=1)


def checkpoints_and_rank_zero_output(x, y):
    """A checkpoint written during training by rank 0 only, restored on every rank and trained on; the progress
    bar, CSV log and INFO messages of rank 0 only (each rank's stderr goes to OUT/stderr-<rank>.txt meanwhile)."""
    path = os.path.join(OUT, "checkpoint.npz")
    stderr, sys.stderr = sys.stderr, open(os.path.join(OUT, f"stderr-{rank}.txt"), "w")
    try:
        trainer = train.Trainer(cnn(), OPTIMIZERS["adam"](), distributed=True)
        trainer.fit(x, y, epochs=1, batch_size=BATCH, progress=True, csv_log=os.path.join(OUT, "log.csv"),
                    callbacks=[train.ModelCheckpoint(path)])
        logging.getLogger("graphnet").info(f"news from rank {rank}")
    finally:
        sys.stderr.close()
        sys.stderr = stderr
    saved = trainer.model.get_weights()
    resumed = train.Trainer(cnn(), OPTIMIZERS["adam"](), distributed=True).restore(path)
    restored_equal = all(np.array_equal(saved[n], w) for n, w in resumed.model.get_weights().items())
    resumed.fit(x, y, epochs=2, batch_size=BATCH, progress=False)
    weights = resumed.model.get_weights()
    spread = distributed.allreduce(flat(weights), "max") - distributed.allreduce(flat(weights), "min")
    found = {"restored_equal_on_every_rank": bool(distributed.allreduce(int(restored_equal), "min")),
             "resumed_epoch": resumed.epoch, "resumed_ranks_spread": float(np.abs(spread).max())}
    if rank == 0:
        np.savez(os.path.join(OUT, "final.npz"), **weights)
        np.savez(os.path.join(OUT, "saved.npz"), **saved)
        alone = train.Trainer(cnn(), OPTIMIZERS["adam"]()).restore(path)
        alone.fit(x, y, epochs=2, batch_size=BATCH, progress=False)
        found["resumed_max_abs_dw"] = float(np.abs(flat(weights) - flat(alone.model.get_weights())).max())
    return found


def disagree():
    x, y = data()
    messages = []
    trainer = train.Trainer(cnn(units=3 if rank == 0 else 4), "adam", distributed=True)
    try:
        trainer.fit(x, y % 3, epochs=1, batch_size=BATCH, progress=False)
    except distributed.DistributedError as error:
        messages.append(str(error))
    trainer = train.Trainer(cnn(), "adam", distributed=True)
    try:
        trainer.fit(x[:33], y[:33], epochs=1, batch_size=32, drop_last=False, progress=False)   # 32, then 1: folded
        trainer.fit(x, y, epochs=2, batch_size=1, progress=False)
    except distributed.DistributedError as error:
        messages.append(str(error))
    with open(os.path.join(OUT, f"disagree-{rank}.txt"), "w") as file:
        file.write("\n".join(messages))


class Fault(train.Callback):
    """On rank 1, at batch 4 (the fifth) of epoch `epoch`: raise, or die."""

    def __init__(self, how, epoch=1):
        self.how, self.epoch_to_fail = how, epoch

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_batch_end(self, batch, logs):
        if rank != 1 or batch != 4 or self.epoch != self.epoch_to_fail:
            return
        if self.how == "die":
            os.kill(os.getpid(), signal.SIGKILL)
        raise RuntimeError(f"rank {rank} fails on purpose in batch {batch}")


def fault(how):
    x, y = data()
    trainer = train.Trainer(cnn(), "adam", distributed=True)
    epoch = 2 if how == "die" else 1
    callbacks = [Fault(how, epoch), train.ModelCheckpoint(os.path.join(OUT, "epoch-{epoch}.npz"))]
    if how == "hang":
        try:
            trainer.fit(x, y, epochs=3, batch_size=BATCH, progress=False, callbacks=callbacks)
        except RuntimeError as error:
            if rank != 1 or isinstance(error, distributed.DistributedError):
                raise                                   # rank 0's timeout: not caught, so the job ends
            print(f"rank {rank} caught '{error}' and stops taking part", flush=True)
            time.sleep(60)
        return
    trainer.fit(x, y, epochs=3, batch_size=BATCH, progress=False, callbacks=callbacks)


if __name__ == "__main__":
    SCENARIO, OUT = sys.argv[1], sys.argv[2]
    rank, size = distributed.init(timeout=3.0 if SCENARIO == "hang" else 60.0)
    {"equivalence": equivalence, "disagree": disagree, "raise": lambda: fault("raise"),
     "die": lambda: fault("die"), "hang": lambda: fault("hang")}[SCENARIO]()
    print(f"rank {rank} of {size}: {SCENARIO} done", flush=True)
