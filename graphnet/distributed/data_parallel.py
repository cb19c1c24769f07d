"""Data-parallel training: the same compiled program on every rank, each on its shard of every batch.

Why averaging the shards' gradients is one step on the global batch. One process trains on a batch of B samples
with the mean loss L = (1/B)·Σ_i ℓ_i and steps along g = ∂L/∂θ. N ranks split the batch into shards of n_r samples
(Σ_r n_r = B); rank r computes its own mean loss L_r = (1/n_r)·Σ_{i in shard r} ℓ_i. Since

    L = Σ_r (n_r / B) · L_r,        g = Σ_r w_r · ∂L_r/∂θ,        w_r = n_r / B,

each rank differentiates w_r·L_r, and one all-reduce (a sum over the ranks) gives every rank g itself: every rank
then takes the very update step the one process takes, and the weights stay identical. With equal shards
w_r = 1/N and g is the mean of the ranks' gradients; an uneven last batch (33 samples on 2 ranks: 17 and 16)
weighs each rank's gradient by its samples. Weight penalties are in every L_r and Σ_r w_r = 1, so they count once.

One all-reduce per step, over one flat buffer. The gradients of all variables are packed, reduced, unpacked:

    pack     concat(reshape(∂(w_r·L_r)/∂θ_k, -1) over the variables k)       one copy of P numbers
    reduce   allreduce_sum                                                  one step of the printed schedule
    unpack   reshape(g[a_k : b_k], shape of θ_k)                            each variable's slice

(one buffer per dtype, so normally one). A call per variable would pay the network's latency once per variable —
10 times per step for LeNet-5, 161 for ResNet-50.

What else the ranks must share to reach the single process's weights:

    the initial values   fit checks that every rank built the same variables, data and arguments, then
                         broadcasts rank 0's variables and optimizer state (broadcast_variables)
    dropout              each rank draws, for its shard, the numbers the global batch draws for those samples
                         (the program's RngState.first_sample: graphnet/random.py), so the ranks' masks
                         together are the single process's mask
    batch norm           synchronized: the statistics of the global batch, as PyTorch's SyncBatchNorm
                         (SyncBatchNorm below); per-rank statistics would normalize each shard by its own
                         B/N samples — another model — and let the running statistics drift apart between ranks
"""
import os
import zlib

import numpy as np

from .. import ops
from ..autodiff import gradients
from ..errors import GraphError
from ..graph import Tensor, format_shape, get_default_graph, variable
from ..nn.normalization import BatchNorm, BatchNorm1D, BatchNorm2D
from ..op import numel
from ..ops.regularization import channel_axes
from ..ops.state import assign
from ..ops.collective import allreduce_sum
from .world import DistributedError, world


# ---------------------------------------------------------------------------------------------------------------
# This rank's share of the batch, as two scalar variables of the graph

class Shards:
    """w_r = n_r / B (this rank's share of the global batch) and B, as scalar variables the fit loop sets before
    each step (`assign_value`, like the learning rate: nothing is recompiled). Until set: w_r = 1/N (equal shards),
    B unknown (0)."""

    def __init__(self, graph, dtype, size):
        with graph, graph.name_scope("distributed"):
            self.weight = variable(np.array(1.0 / size, dtype), name="shard_weight", trainable=False)
            self.batch = variable(np.zeros((), dtype), name="global_batch", trainable=False)
        self.current = None

    def set(self, samples, batch):
        """This rank runs `samples` of the global batch's `batch` samples."""
        if (samples, batch) != self.current:
            self.weight.assign_value(samples / batch)
            self.batch.assign_value(batch)
            self.current = (samples, batch)


def shard_bounds(count, rank, size):
    """[start, stop) of rank's shard of `count` samples: ⌊r·n/N⌋ to ⌊(r+1)·n/N⌋ (shards differ by at most 1)."""
    return rank * count // size, (rank + 1) * count // size


# ---------------------------------------------------------------------------------------------------------------
# The gradients: ∂(w_r·L_r)/∂θ on each rank, summed over the ranks by one all-reduce

class AllReduceGradients:
    """An optimizer's `all_reduce`: (loss, var_list) -> the gradients of the global batch's loss, as graph tensors
    (the module's docstring derives them). Set by DistributedOptimizer; its Shards say this rank's share."""

    def __init__(self, this_world):
        self.world = this_world
        self.shards = None

    def shards_for(self, graph, dtype):
        if self.shards is None:
            dtype = np.dtype(dtype) if np.dtype(dtype).kind == "f" else np.dtype("float32")
            self.shards = Shards(graph, dtype, self.world.size)
        return self.shards

    def __call__(self, loss, var_list):
        graph = loss.graph
        shards = self.shards_for(graph, loss.dtype)
        with graph, graph.name_scope("distributed"):
            share = ops.mul(loss, shards.weight, name="weighted_loss")      # w_r·L_r
        local = gradients(share, var_list)
        averaged = [None] * len(var_list)
        with graph, graph.phase("backward"), graph.name_scope("allreduce"):
            for dtype in sorted({v.dtype for v in var_list}, key=str):
                chosen = [k for k, v in enumerate(var_list) if v.dtype == dtype]
                flats = [ops.reshape(local[k], (-1,)) for k in chosen]
                packed = ops.concat(flats, name="pack") if len(flats) > 1 else flats[0]
                count = sum(numel(var_list[k].shape) for k in chosen)
                total = allreduce_sum(packed, what=f"the gradients ({count} {dtype} numbers)", name="gradients")
                start = 0
                for k in chosen:
                    var = var_list[k]
                    size = numel(var.shape)
                    averaged[k] = ops.reshape(total[start:start + size], var.shape, name=var.name)
                    start += size
        return averaged


def DistributedOptimizer(optimizer, this_world=None):
    """Make `optimizer` (an Optimizer or a name) train data-parallel, as Horovod's DistributedOptimizer: its
    gradients become those of the global batch, summed over the ranks by one all-reduce step of the compiled
    program. Returns the optimizer (its class, and so its checkpoints, are unchanged). Call before minimize.

    In your own loop, every rank runs the program on its shard; the shards are taken as equal (w_r = 1/N)
    unless you say otherwise with `optimizer.all_reduce.shards.set(samples, batch)` before a step. Trainer(...,
    distributed=True) does all of that for you."""
    from .. import optim
    optimizer = optim.get(optimizer)
    if optimizer.train_op is not None:
        raise DistributedError(f"DistributedOptimizer: {optimizer.name} already minimizes '{optimizer.loss.name}'; "
                               "make it distributed before minimize builds its update")
    if optimizer.all_reduce is None:
        optimizer.all_reduce = AllReduceGradients(this_world or world())
    return optimizer


# ---------------------------------------------------------------------------------------------------------------
# Batch norm over the global batch

def synchronized_batch_norm(x, gamma, beta, running_mean, running_var, shards, momentum, eps):
    """Batch norm (training) with the statistics of the global batch over every rank, per channel c:

        μ  = Σ_r w_r · mean_r(x)                 one all-reduce of C numbers
        σ² = Σ_r w_r · mean_r((x − μ)²)          another (two passes, as np.var: no cancellation)
        y  = γ · (x − μ) / √(σ² + ε) + β
        running_mean ← (1 − m)·running_mean + m·μ,   running_var ← (1 − m)·running_var + m·σ²·M/(M − 1)

    with M = B·H·W values per channel in the global batch. Autodiff differentiates it through the all-reduces
    (their gradient is an all-reduce of dy), so the backward pass exchanges its two per-channel sums as well."""
    axes = channel_axes(x.shape)
    if None in x.shape[2:]:
        raise GraphError(f"SyncBatchNorm: input '{x.name}' {format_shape(x.shape)} has unknown spatial sizes; "
                         "build the model for a fixed sample shape")
    per_channel = (1, -1) + (1,) * (x.ndim - 2)
    weight = shards.weight
    mean = allreduce_sum(ops.mul(ops.mean(x, axis=axes), weight), what="a batch norm's mean", name="mean")
    centred = ops.sub(x, ops.reshape(mean, per_channel))
    variance = allreduce_sum(ops.mul(ops.mean(ops.mul(centred, centred), axis=axes), weight),
                             what="a batch norm's variance", name="variance")
    scale = ops.div(gamma, ops.sqrt(ops.add(variance, eps)))
    y = ops.add(ops.mul(centred, ops.reshape(scale, per_channel)), ops.reshape(beta, per_channel), name="batch_norm")
    with x.graph.phase("update"):
        values = ops.mul(shards.batch, float(numel(x.shape[2:])))                       # M
        unbiased = ops.div(ops.mul(variance, values), ops.sub(values, 1.0))
        y.side_effects = list(y.side_effects) + [
            assign(running_mean, running_mean * (1 - momentum) + mean * momentum),
            assign(running_var, running_var * (1 - momentum) + unbiased * momentum),
        ]
    return y


class SyncBatchNorm(BatchNorm):
    """Batch normalization whose training statistics are the global batch's, over every rank (PyTorch's
    SyncBatchNorm; formulas in synchronized_batch_norm). Inference is BatchNorm's. A distributed Trainer turns
    every BatchNorm of its model into one (synchronize_batch_norm) and tells it the shards."""
    shards = None

    def call(self, x, training):
        if not training:
            return super().call(x, training)
        if self.shards is None:
            raise GraphError(f"{self.describe()}: a SyncBatchNorm trains in a distributed Trainer (Trainer(..., "
                             "distributed=True)), which tells it each rank's share of the batch")
        return synchronized_batch_norm(x, self.gamma, self.beta, self.running_mean, self.running_var, self.shards,
                                       self.momentum, self.eps)


class SyncBatchNorm1D(SyncBatchNorm, BatchNorm1D):
    """SyncBatchNorm of (N, C) input."""


class SyncBatchNorm2D(SyncBatchNorm, BatchNorm2D):
    """SyncBatchNorm of (N, C, H, W) input."""


SYNCHRONIZED = {BatchNorm: SyncBatchNorm, BatchNorm1D: SyncBatchNorm1D, BatchNorm2D: SyncBatchNorm2D}


def synchronize_batch_norm(model, shards):
    """Turn every BatchNorm of `model` into its SyncBatchNorm, in place (the layer keeps its name and variables,
    as PyTorch's convert_sync_batchnorm keeps the parameters), and give each one the shards."""
    layers = list(model.walk()) if hasattr(model, "walk") else [model]
    for layer in layers:
        if isinstance(layer, BatchNorm) and not isinstance(layer, SyncBatchNorm):
            synchronized = SYNCHRONIZED.get(type(layer))
            if synchronized is None:
                raise DistributedError(f"{layer.describe()} is a {type(layer).__name__}, a BatchNorm of your own: "
                                       "distributed training synchronizes BatchNorm, BatchNorm1D and BatchNorm2D "
                                       "only; derive yours from SyncBatchNorm")
            layer.__class__ = synchronized
        if isinstance(layer, SyncBatchNorm):
            layer.shards = shards


# ---------------------------------------------------------------------------------------------------------------
# The ranks agree: the same variables, data and arguments; the same values

def describe_variables(variables):
    """["'name' (shape) dtype", ...] in name order."""
    return [f"'{name}' {format_shape(v.shape)} {v.dtype}" for name, v in sorted(variables.items())]


def describe_array(what, array):
    """'x (1000, 1, 28, 28) float32, CRC-32 0x1a2b3c4d': enough to tell two data sets apart."""
    array = np.ascontiguousarray(array)
    return f"{what} {format_shape(array.shape)} {array.dtype}, CRC-32 {zlib.crc32(array.data) & 0xFFFFFFFF:#010x}"


def check_ranks_agree(this_world, facts, where, hint):
    """Every rank's `facts` ({topic: [str, ...]}) equal rank 0's, or DistributedError on every rank naming the
    first topic and entry where some rank differs (each rank raises the same message)."""
    everyone = this_world.allgather(facts, f"what every rank has for {where}")
    main = everyone[0]
    for rank, theirs in enumerate(everyone[1:], start=1):
        for topic, mine in main.items():
            other = theirs.get(topic)
            if other == mine:
                continue
            other = other or []
            index = next((i for i, (a, b) in enumerate(zip(mine, other)) if a != b), min(len(mine), len(other)))
            ours = mine[index] if index < len(mine) else "nothing more"
            yours = other[index] if index < len(other) else "nothing more"
            counts = f" ({len(mine)} entries vs {len(other)})" if len(mine) != len(other) else ""
            raise DistributedError(f"{where}: the ranks disagree on {topic}: rank 0 has {ours} where rank {rank} "
                                   f"has {yours}{counts}. {hint}")


def variables_of(variables):
    """{name: variable} from a Model (its variables), a dict, a list or tuple (by graph name), or None (every
    variable of the default graph)."""
    if variables is None:
        variables = get_default_graph().variables()
    elif hasattr(variables, "variables") and callable(variables.variables):
        variables = variables.variables()
    if isinstance(variables, Tensor):
        variables = [variables]
    if not isinstance(variables, dict):
        variables = {v.name: v for v in variables}
    for name, var in variables.items():
        if not (isinstance(var, Tensor) and var.op.is_variable):
            raise DistributedError(f"broadcast_variables: '{name}' is {var!r}, not a variable")
    return variables


def broadcast_variables(variables=None, root=0, this_world=None):
    """Give every rank rank `root`'s values of `variables` (a Model, a {name: variable} dict, a list, or None for
    every variable of the default graph), after checking that every rank has the same names, shapes and dtypes:
    mismatched models are an error naming the first variable that differs, on every rank, before any value
    moves."""
    this_world = this_world or world()
    variables = variables_of(variables)
    check_ranks_agree(this_world, {"the variables": describe_variables(variables)}, "broadcast_variables",
                      "Every rank must build the same model (the same code and arguments)")
    for name in sorted(variables):
        var = variables[name]
        value = np.array(var.numpy(), order="C")          # a 0-d array stays 0-d
        this_world.broadcast(value, root, f"'{name}'")
        if this_world.rank != root:
            var.assign_value(value)


# ---------------------------------------------------------------------------------------------------------------
# What Trainer(..., distributed=True) does beyond the single-process fit loop

class DataParallel:
    """The distributed part of a Trainer, called at five places of its fit loop:

        build        the shards' variables, BatchNorm synchronized, the optimizer's gradients all-reduced
        start        the ranks agree (variables, data, arguments, epoch, RNG counters); rank 0's values broadcast
        each batch   this rank's rows of the global batch; its share w_r and where its dropout streams start
        each epoch   the logged totals summed over the ranks, so every rank logs the global batch's numbers
        save         rank 0 writes; every rank waits until the file is complete
    """

    def __init__(self, trainer):
        self.trainer = trainer
        self.world = world()
        self.averaging = DistributedOptimizer(trainer.optimizer, self.world).all_reduce

    @property
    def is_main(self):
        return self.world.is_main

    def build(self, graph, dtype):
        """Inside `with graph:`, before the training branch is built."""
        synchronize_batch_norm(self.trainer.model, self.averaging.shards_for(graph, dtype))

    def start(self, x, y, validation_data, arguments):
        """At the start of fit: every rank has the same model, optimizer, data, arguments, epoch and RNG counters
        (else DistributedError names the first difference); then rank 0's variables reach every rank."""
        trainer = self.trainer
        model_vars, optimizer_vars = trainer._state_variables()
        data = [describe_array("x", x), describe_array("y", y)]
        if validation_data is not None:
            data += [describe_array("validation x", validation_data[0]),
                     describe_array("validation y", validation_data[1])]
        facts = {
            "the model's variables": describe_variables(model_vars),
            "the optimizer": [type(trainer.optimizer).__name__] + describe_variables(optimizer_vars),
            "the loss and metrics": [trainer.loss_name] + sorted(trainer.metrics),
            "the dropout seeds": [f"'{node.name}' seed {node.attrs['seed']}"
                                  for node in trainer.train_program.nodes if node.op.uses_rng],
            "the data": data,
            "fit's arguments": [f"{k}={v!r}" for k, v in sorted(arguments.items())],
            "the training state": [f"epoch {trainer.epoch}", f"seed {trainer.seed}"]
                                  + [f"{name} run {program.rng.counter}"
                                     for name, program in sorted(trainer.programs().items())],
        }
        check_ranks_agree(self.world, facts, "Trainer.fit",
                          "Every rank must build the same model (with the same seed) and call fit with the whole "
                          "data set and the same arguments — each takes its shard of every batch itself — and "
                          "restore the same checkpoint, if any")
        broadcast_variables({**{f"model/{k}": v for k, v in model_vars.items()},
                             **{f"optimizer/{k}": v for k, v in optimizer_vars.items()}}, 0, self.world)

    def check_batches(self, loader, batch_size):
        """Every batch must give every rank a sample."""
        if loader.smallest_batch < self.world.size:
            raise DistributedError(f"Trainer.fit(batch_size={batch_size}) on {self.world.size} ranks: an epoch's "
                                   f"smallest batch has {loader.smallest_batch} sample(s), fewer than the ranks, so "
                                   "a rank would have none. Pass drop_last=True, or a batch size that leaves at "
                                   f"least {self.world.size} samples in the last batch")

    def shard(self, x_batch, y_batch):
        """This rank's rows of the global batch; sets its share w_r and the first sample its dropout draws for."""
        count = len(x_batch)
        start, stop = shard_bounds(count, self.world.rank, self.world.size)
        self.averaging.shards.set(stop - start, count)
        self.trainer.train_program.rng.first_sample = start
        return x_batch[start:stop], y_batch[start:stop]

    def rows(self, count):
        """This rank's share of `count` samples (evaluation), as a slice."""
        return slice(*shard_bounds(count, self.world.rank, self.world.size))

    def sum_over_ranks(self, totals, seen, what):
        """({key: Σ over every rank's samples}, samples of every rank): the epoch's numbers for the global batch."""
        keys = list(totals)                 # one order on every rank: the same code made them
        vector = np.array([seen] + [totals[k] for k in keys], dtype=np.float64)
        self.world.allreduce(vector, vector, what)
        return dict(zip(keys, vector[1:].tolist())), int(round(vector[0]))

    def save(self, path, write):
        """Rank 0 writes (`write()`); every rank returns when the file is complete."""
        result = write() if self.is_main else os.fspath(path)
        self.world.barrier(f"writing the checkpoint '{os.fspath(path)}'")
        return result
