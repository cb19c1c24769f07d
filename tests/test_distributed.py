"""Data-parallel training (graphnet.distributed): alone in this process, and as jobs of 2 ranks under mpiexec.

The jobs are tests/distributed_job.py, started with the mpiexec of this Python's environment (the `mpich` wheel
puts it beside the interpreter: pip install 'graphnet[distributed]', which the `test` extra includes), each with
a timeout, so that a job that hangs fails the test instead of the suite.

What a job of 2 ranks must show: 20 steps of SGD with momentum and of Adam, on an MLP with dropout and a CNN with
batch norm, reach the single process's weights (float32 rounding: the sums are taken in another order) and the
same weights on both ranks; validation numbers of the whole set; checkpoints written by rank 0, complete, loaded
by one process; mismatched models refused on both ranks; a rank that raises, dies or stops taking part ends the
job within seconds.
"""
import json
import os
import pathlib
import re
import subprocess
import sys
import time

import numpy as np
import pytest

import graphnet as gn
from graphnet import distributed, nn, optim, train
from graphnet.distributed.world import SingleProcess

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import distributed_job as job  # noqa: E402  (the models the jobs train)

MPIEXEC = pathlib.Path(sys.executable).parent / "mpiexec"
TOLERANCE = 1e-5                  # max |Δw| after 20 steps, float32 (measured: below 2e-7)


def run_job(scenario, out, timeout=120):
    """mpiexec -n 2 python tests/distributed_job.py SCENARIO OUT: (return code, output, seconds)."""
    assert MPIEXEC.is_file(), (f"no mpiexec beside {sys.executable}: pip install 'graphnet[distributed]' (mpi4py "
                               "and the mpich wheel; the test extra has them)")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE.parent), os.environ.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="1")
    started = time.monotonic()
    done = subprocess.run([str(MPIEXEC), "-n", "2", sys.executable, str(HERE / "distributed_job.py"), scenario,
                           str(out)], env=env, capture_output=True, text=True, timeout=timeout, cwd=HERE.parent)
    return done.returncode, done.stdout + done.stderr, time.monotonic() - started


# --- alone: not started by mpiexec ------------------------------------------------------------------------------

def test_alone_the_process_is_rank_0_of_1_and_every_collective_returns_its_input():
    assert distributed.init() == (0, 1)
    assert (distributed.rank(), distributed.size(), distributed.is_main()) == (0, 1, True)
    assert isinstance(distributed.world(), SingleProcess)
    values = np.array([[1.5, -2.0], [3.0, 4.0]], "float32")
    for op in ("sum", "mean", "max", "min"):
        result = distributed.allreduce(values, op)
        assert result.dtype == values.dtype and np.array_equal(result, values)
    assert distributed.allreduce(3, "mean") == 3.0
    distributed.barrier()
    with pytest.raises(distributed.DistributedError, match=r"op='average' is not one of 'sum', 'mean'"):
        distributed.allreduce(values, "average")


def test_broadcast_variables_checks_what_it_is_given_and_alone_changes_nothing():
    model = job.mlp()
    model.build((1, 6, 6))
    before = model.get_weights()
    distributed.broadcast_variables(model)
    assert all(np.array_equal(before[k], v) for k, v in model.get_weights().items())
    with pytest.raises(distributed.DistributedError, match="'w' is .*not a variable"):
        distributed.broadcast_variables({"w": model.output})
    with pytest.raises(distributed.DistributedError, match="root=1 is not a rank; the ranks are 0..0"):
        distributed.broadcast_variables(model, root=1)


def test_alone_a_distributed_trainer_is_bit_identical_to_the_single_process_one_and_shows_its_allreduce():
    """One rank: the shard is the batch, w = 1 (exact), the all-reduce a copy — so without batch norm (whose
    synchronized form is a composition of ops, not the fused kernel) every bit agrees."""
    x, y = job.data()
    weights = {}
    for distributed_ in (False, True):
        trainer = train.Trainer(job.mlp(), optim.SGD(0.05, momentum=0.9), distributed=distributed_)
        trainer.fit(x, y, epochs=1, batch_size=job.BATCH, progress=False)
        weights[distributed_] = trainer.model.get_weights()
    assert all(np.array_equal(weights[False][k], weights[True][k]) for k in weights[False])
    schedule = str(trainer.train_program)
    rows = [line for line in schedule.splitlines() if "allreduce_sum" in line]
    assert len(rows) == 1, schedule                                # one all-reduce for all the gradients
    assert "backward" in rows[0] and "allreduce/gradients" in rows[0] and f"({sum(w.size for w in weights[True].values())},)" in rows[0]
    assert "cpu.allreduce_sum[1 process: a copy]" in rows[0]


def test_alone_synchronized_batch_norm_trains_as_batch_norm_does():
    x, y = job.data()
    weights = []
    for distributed_ in (False, True):
        trainer = train.Trainer(job.cnn(), optim.Adam(1e-2), distributed=distributed_)
        trainer.fit(x, y, epochs=1, batch_size=job.BATCH, progress=False)
        weights.append(trainer.model.get_weights())
    assert type(trainer.model.get_layer("batchnorm1")).__name__ == "SyncBatchNorm2D"
    assert max(np.abs(weights[0][k] - weights[1][k]).max() for k in weights[0]) < TOLERANCE


@pytest.mark.parametrize("device", ["reference", "cpu", "cuda"])
def test_the_allreduce_op_runs_on_every_backend_and_its_gradient_is_an_allreduce(device):
    with gn.Graph():
        x = gn.placeholder((None, 3), "float64")
        w = gn.variable(np.arange(6.0).reshape(2, 3), name="w")
        total = distributed.allreduce_sum(x * w, what="a test's values")
        (dw,) = gn.gradients(gn.sum(total * total), [w])
        program = gn.compile([total, dw], device=device)
    value = np.array([[1.0, 2.0, 3.0], [-1.0, 0.5, 2.0]])
    got, gradient = program.run({x: value})
    assert np.array_equal(got, value * np.arange(6.0).reshape(2, 3))
    assert np.allclose(gradient, 2 * got * value)                  # alone: Σ over one rank is the identity
    assert "allreduce_sum" in str(program)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")    # the simulator's splitmix64 wraps
@pytest.mark.parametrize("device", ["reference", "cpu", "cuda"])
def test_dropout_shards_draw_the_masks_the_whole_batch_draws(device):
    """RngState.first_sample: a rank running samples [s, s + n) of the batch draws those samples' numbers."""
    with gn.Graph():
        x = gn.placeholder((None, 2, 3))
        whole = gn.compile(gn.dropout(x, 0.5, seed=11), device=device)
        shards = gn.compile(gn.dropout(x, 0.5, seed=11), device=device)
    batch = np.ones((7, 2, 3), "float32")
    expected = whole.run({x: batch})
    parts = []
    for start, stop in ((0, 3), (3, 7)):
        shards.rng.counter, shards.rng.first_sample = 0, start
        parts.append(shards.run({x: batch[start:stop]}))
    assert np.array_equal(np.concatenate(parts), expected)
    assert 0 < np.count_nonzero(expected) < expected.size


def test_what_a_user_can_get_wrong_is_named():
    optimizer = optim.SGD(0.1)
    with gn.Graph():
        w = gn.variable(np.ones(2, "float32"), name="w")
        optimizer.minimize(gn.sum(w * w))
    with pytest.raises(distributed.DistributedError, match="already minimizes .*make it distributed before"):
        distributed.DistributedOptimizer(optimizer)
    model = nn.Sequential([nn.Dense(4), distributed.SyncBatchNorm1D(), nn.Dense(2)], seed=0)
    with pytest.raises(gn.GraphError, match="SyncBatchNorm trains in a distributed Trainer"):
        train.Trainer(model, "sgd").fit(np.ones((8, 3), "float32"), np.zeros(8, "int64"), progress=False)


# --- jobs of 2 ranks under mpiexec ---------------------------------------------------------------------------------

def test_two_ranks_reach_the_single_process_weights_and_write_as_one(tmp_path):
    code, output, _ = run_job("equivalence", tmp_path)
    assert code == 0, output[-4000:]
    results = json.loads((tmp_path / "results.json").read_text())
    for case in ("mlp_dropout/sgd_momentum", "mlp_dropout/adam", "cnn_batchnorm_dropout/sgd_momentum",
                 "cnn_batchnorm_dropout/adam"):
        row = results[case]
        assert row["steps"] == 20, case
        assert row["max_abs_dw"] < TOLERANCE, (case, row["max_dw"])
        assert row["ranks_spread"] == 0.0, case                   # every rank holds the very same weights
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):   # logs and validation of the whole job
            assert abs(row["logs"][key] - row["single_logs"][key]) < 1e-5, (case, key)
    schedule = results["schedule"]
    gradients = [line for line in schedule.splitlines() if "allreduce/gradients" in line]
    assert len(gradients) == 1 and "cpu.allreduce_sum[MPI_Allreduce, 2 ranks]" in gradients[0], schedule
    assert sum("allreduce_sum" in line for line in schedule.splitlines()) == 5   # + batch norm's μ, σ² and grads
    # the checkpoint: written by rank 0 during training, restored on both ranks, trained on as one process does
    assert results["restored_equal_on_every_rank"] and results["resumed_epoch"] == 2
    assert results["resumed_ranks_spread"] == 0.0 and results["resumed_max_abs_dw"] < TOLERANCE
    alone = train.Trainer(job.cnn(), "adam").restore(tmp_path / "checkpoint.npz")
    saved = np.load(tmp_path / "saved.npz")
    assert alone.epoch == 1 and all(np.array_equal(saved[k], v) for k, v in alone.model.get_weights().items())
    # the progress bar, the CSV log and graphnet's news: rank 0's only
    assert "epoch 1/1" in (tmp_path / "stderr-0.txt").read_text()
    assert "news from rank 0" in (tmp_path / "stderr-0.txt").read_text()
    assert (tmp_path / "stderr-1.txt").read_text() == ""
    assert len((tmp_path / "log.csv").read_text().splitlines()) == 2


def test_ranks_that_disagree_are_refused_on_every_rank_before_training(tmp_path):
    code, output, _ = run_job("disagree", tmp_path)
    assert code == 0, output[-4000:]
    for rank in (0, 1):
        model, batches = (tmp_path / f"disagree-{rank}.txt").read_text().splitlines()
        assert model.startswith("Trainer.fit: the ranks disagree on the model's variables: rank 0 has 'dense1/bias' "
                                "(3,) float32 where rank 1 has 'dense1/bias' (4,) float32"), model
        assert "fit(batch_size=1) on 2 ranks: an epoch's smallest batch has 1 sample(s)" in batches


@pytest.mark.parametrize("scenario, says", [
    ("raise", "RuntimeError: rank 1 fails on purpose in batch 4"),
    ("die", "BAD TERMINATION"),
    ("hang", "the all-reduce of a batch norm's mean did not complete within 3 s: another rank stopped taking part"),
])
def test_a_rank_that_raises_dies_or_stops_ends_the_job_within_seconds(scenario, says, tmp_path):
    code, output, seconds = run_job(scenario, tmp_path, timeout=90)
    assert code != 0 and says in output, output[-4000:]
    assert seconds < 60
    if scenario == "raise":
        assert "rank 1 of 2 stopped on an uncaught RuntimeError; aborting all 2 ranks" in output
    if scenario == "die":               # killed in epoch 2: epoch 1's checkpoint is whole, and one process loads it
        resumed = train.Trainer(job.cnn(), "adam").restore(tmp_path / "epoch-1.npz")
        assert resumed.epoch == 1 and resumed.optimizer.steps_done() == 20


def test_the_lesson_runs_under_mpiexec_with_two_ranks(tmp_path):
    """tutorials/12_data_parallel_sgd.py: as a single process it runs with the other lessons (test_tutorials.py);
    here with 2 ranks, rank 0 alone printing and writing the figures."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    done = subprocess.run([str(MPIEXEC), "-n", "2", sys.executable, "tutorials/12_data_parallel_sgd.py", "--quick",
                           "--out", str(tmp_path)], env=env, capture_output=True, text=True, timeout=120,
                          cwd=HERE.parent)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.count("RESULT 2 rank(s): validation accuracy") == 1
    difference = float(re.search(r"2 ranks vs one process after \d+ steps: max \|Δw\| = (\S+) ", done.stdout).group(1))
    assert difference < TOLERANCE
    assert "cpu.allreduce_sum[MPI_Allreduce, 2 ranks]" in done.stdout
    assert len(list(tmp_path.glob("*.png"))) == 3
