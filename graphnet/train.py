"""The fit loop: a Trainer compiles a model's training and inference programs once and runs them over the data.

    trainer = Trainer(model, optim.Adam(1e-3))              # loss: softmax cross-entropy, metric: accuracy
    history = trainer.fit(x, y, epochs=5, batch_size=32, validation_split=0.1,
                          callbacks=[EarlyStopping(patience=2)], csv_log="log.csv")
    trainer.evaluate(x_test, y_test)      # {'loss': ..., 'accuracy': ...}
    trainer.save("run.npz")               # weights, optimizer state, epoch, RNG state, history
    trainer.restore("run.npz"); trainer.fit(x, y, epochs=10)   # continues exactly where it stopped

What `build` puts in the model's graph (once):

    x, y                  placeholders (None, *sample shape) and the targets
    train/...             the model's training branch: dropout on, batch norm on batch statistics
    loss                  the data loss + L2/L1 penalties on the trainable kernels
    grad/..., adam/...    the backward pass and the optimizer's update (opt.minimize)
    eval/...              the inference branch on the same variables: dropout off, running statistics

and compiles three programs from it: train [loss, outputs, train op], eval [loss, outputs] and predict
[outputs]. One epoch = one pass of a DataLoader whose order and augmentations are functions of (seed, epoch);
before each step the learning rate is set from the optimizer's schedule. Metrics are computed on the host from
the fetched outputs.

What fit does with what you give it, so that nothing goes silently wrong:

    x of another float dtype   cast to the model's dtype batch by batch (float32 unless you built the model in
                               float64), as Keras does; a warning says so once
    x of another sample shape  refused, naming the shape the model was built for (and NCHW, if x looks NHWC)
    a last batch of 1 sample   folded into the batch before it (batch norm cannot train on one value per channel)
    a softmax (sigmoid) output with the cross-entropy (bce) loss, which takes logits: refused, as a double softmax

Resuming reproduces an uninterrupted run exactly because everything random is counter-based and saved: the
loader's (seed, epoch), each program's run counter (dropout masks are keyed by it), and the optimizer's step.

Data-parallel training (distributed=True, under `mpiexec -n N`; graphnet/distributed): every rank runs this loop
on its shard of each global batch of `batch_size` samples, and the train program all-reduces the gradients. The
epoch's logs and the validation numbers are summed over the ranks (each rank validates its shard); a batch's logs
(on_batch_end) are the rank's own shard's, with batch_size the global batch's. The progress bar, the CSV log and
the callbacks marked main_rank_only (TensorBoard) run on rank 0 only; save() is written by rank 0; restore() reads
on every rank. evaluate() and predict() called by you compute on the whole data on the rank that calls them.
"""
import csv
import numbers
import os
import time

import numpy as np

from . import checkpoint, optim
from .compiler import compile as compile_program
from .data.loader import DataLoader, augmentations
from .errors import FeedError, GraphError
from .graph import Graph, format_shape, placeholder
from .ops.activations import Sigmoid, Softmax
from .messages import logger, warn
from .nn.model import call_with_layout_hint, channels_last_hint
from .nn.normalization import BatchNorm
from . import ops

# ---------------------------------------------------------------------------------------------------------------
# Losses and metrics


def _accuracy(outputs, targets):
    """Fraction of samples whose highest output is the label (or, for one output per sample, whose sign
    matches a 0/1 target)."""
    if outputs.ndim == 2 and targets.ndim == 1:
        return float(np.mean(outputs.argmax(axis=1) == targets))
    return float(np.mean((outputs > 0) == (targets > 0.5)))


LOSSES = {
    "cross_entropy": ops.softmax_cross_entropy,     # outputs are logits, targets int64 class indices
    "mse": ops.mse,                                  # targets shaped like the outputs
    "bce": ops.binary_cross_entropy_with_logits,     # outputs are logits, targets in [0, 1]
}
METRICS = {"accuracy": _accuracy}

# The programs a trainer compiles (their run counters are saved by name).
PROGRAMS = ("train", "eval", "predict")

# The losses that take logits, and the activation that must not come before them (it would be applied twice).
SQUASHED_BY_THE_LOSS = {"cross_entropy": Softmax, "bce": Sigmoid}     # the op each loss applies itself


def _resolve_mode(owner, monitor, mode):
    """'min' (a loss) or 'max' (an accuracy) for `monitor`; 'auto' picks 'max' for names containing 'acc'."""
    if mode == "auto":
        mode = "max" if "acc" in monitor else "min"
    if mode not in ("min", "max"):
        raise GraphError(f"{owner}: mode must be 'min', 'max' or 'auto', got {mode!r}")
    return mode


# ---------------------------------------------------------------------------------------------------------------
# History and callbacks

class History:
    """What each epoch logged: history['loss'] is the list of epoch losses, history.epochs the epoch numbers."""

    def __init__(self, rows=None):
        self.rows = list(rows or [])

    def record(self, logs):
        self.rows.append(dict(logs))

    @property
    def epochs(self):
        return [row["epoch"] for row in self.rows]

    @property
    def history(self):
        keys = []
        for row in self.rows:
            keys += [k for k in row if k not in keys]
        return {k: [row.get(k) for row in self.rows] for k in keys}

    def __getitem__(self, key):
        return [row.get(key) for row in self.rows]

    def __len__(self):
        return len(self.rows)

    def __repr__(self):
        last = self.rows[-1] if self.rows else {}
        return f"<History {len(self.rows)} epochs, last {', '.join(f'{k}={v:.4g}' for k, v in last.items())}>"


class Callback:
    """Hooks the fit loop calls. Epoch numbers count from 1; `self.trainer` is set before training starts, and
    setting `trainer.stop_training = True` ends training after the current epoch. In distributed training a
    callback runs on every rank, unless it is main_rank_only (it writes for the whole job: rank 0 does that)."""
    trainer = None
    main_rank_only = False

    def set_trainer(self, trainer):
        self.trainer = trainer

    def on_train_begin(self, logs=None):
        pass

    def on_epoch_begin(self, epoch, logs=None):
        pass

    def on_batch_end(self, batch, logs):
        """logs: {'loss', metrics..., 'batch_size', 'learning_rate'} of this batch."""

    def on_epoch_end(self, epoch, logs):
        """logs: {'epoch', 'loss', metrics..., 'val_loss', ..., 'learning_rate', 'seconds', 'samples_per_s'}."""

    def on_train_end(self, logs=None):
        pass

    def wants_gradients(self, epoch):
        """Whether this callback reads `trainer.gradients` at the end of this epoch: the trainer then fetches the
        gradients of the epoch's last batch ({variable name: array})."""
        return False


class ProgressBar(Callback):
    """A tqdm bar per epoch, counting samples (so its rate reads samples/s), with the running mean loss: a widget
    in Jupyter, text on stderr elsewhere (tqdm.auto), or text on `file` if you give one."""
    main_rank_only = True

    def __init__(self, file=None, leave=True):
        self.file, self.leave = file, leave
        self.bar = None

    def on_epoch_begin(self, epoch, logs=None):
        try:
            if self.file is None:
                from tqdm.auto import tqdm
            else:
                from tqdm import tqdm
        except ImportError:
            raise GraphError("the progress bar needs tqdm: pip install tqdm (or fit(..., progress=False))") from None
        trainer = self.trainer
        self.bar = tqdm(total=trainer.loader.num_samples, unit="sample", unit_scale=False, leave=self.leave,
                        desc=f"epoch {epoch}/{trainer.target_epochs}", file=self.file, dynamic_ncols=True)
        self.loss_sum, self.seen = 0.0, 0

    def on_batch_end(self, batch, logs):
        n = logs["batch_size"]
        self.loss_sum += logs["loss"] * n
        self.seen += n
        self.bar.set_postfix(loss=f"{self.loss_sum / self.seen:.4f}", refresh=False)
        self.bar.update(n)

    def on_epoch_end(self, epoch, logs):
        shown = {k: f"{logs[k]:.4f}" for k in logs if k in ("loss", "val_loss") or k.endswith("accuracy")}
        shown["samples/s"] = f"{logs['samples_per_s']:.0f}"
        self.bar.set_postfix(shown)
        self.bar.close()


class CSVLogger(Callback):
    """One CSV row per epoch with everything the epoch logged. append=True continues an existing file (its
    header is kept), as a resumed run does."""
    main_rank_only = True

    def __init__(self, path, append=False):
        self.path, self.append = os.fspath(path), append
        self.file = self.columns = None

    def on_train_begin(self, logs=None):
        continuing = self.append and os.path.exists(self.path) and os.path.getsize(self.path) > 0
        if continuing:
            with open(self.path, newline="") as existing:
                self.columns = next(csv.reader(existing), None)
        self.file = open(self.path, "a" if continuing else "w", newline="")
        self.header_written = continuing

    def on_epoch_end(self, epoch, logs):
        if self.columns is None:
            self.columns = list(logs)
        writer = csv.DictWriter(self.file, fieldnames=self.columns, extrasaction="ignore")
        if not self.header_written:
            writer.writeheader()
            self.header_written = True
        writer.writerow({k: logs.get(k, "") for k in self.columns})
        self.file.flush()

    def on_train_end(self, logs=None):
        if self.file is not None:
            self.file.close()
            self.file = None


class EarlyStopping(Callback):
    """Stop when `monitor` has not improved by more than min_delta for `patience` epochs; with
    restore_best_weights, put back the weights of the best epoch when training ends. Both are logged (the
    `graphnet` logger, INFO: see graphnet.messages).

    mode 'min' (a loss) or 'max' (an accuracy); 'auto' picks 'max' for names containing 'acc'."""

    def __init__(self, monitor="val_loss", patience=3, min_delta=0.0, mode="auto", restore_best_weights=True):
        mode = _resolve_mode("EarlyStopping", monitor, mode)
        self.monitor, self.patience, self.min_delta, self.mode = monitor, int(patience), float(min_delta), mode
        self.restore_best_weights = restore_best_weights

    def on_train_begin(self, logs=None):
        self.best = self.best_epoch = self.best_weights = self.stopped_epoch = None
        self.wait, self.last_epoch, self.restored = 0, None, False

    def improves(self, value):
        if self.best is None:
            return True
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_epoch_end(self, epoch, logs):
        if self.monitor not in logs:
            raise GraphError(f"EarlyStopping: '{self.monitor}' is not among this epoch's logs ({', '.join(logs)}); "
                             "validation metrics need fit(..., validation_split=...) or validation_data=")
        value, self.last_epoch = logs[self.monitor], epoch
        if self.improves(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self.best_weights = self.trainer.model.get_weights()
        else:
            self.wait += 1
            if self.wait >= self.patience:
                self.stopped_epoch = epoch
                self.trainer.stop_training = True
                epochs = f"{self.wait} epoch{'s' if self.wait != 1 else ''}"
                logger.info(f"EarlyStopping: {self.monitor} has not improved for {epochs} (best {self.best:.4g} at "
                            f"epoch {self.best_epoch}); stopping after epoch {epoch}")

    def on_train_end(self, logs=None):
        if self.restore_best_weights and self.best_weights is not None and self.best_epoch != self.last_epoch:
            self.trainer.model.set_weights(self.best_weights)
            self.restored = True
            logger.info(f"EarlyStopping: restored the weights of epoch {self.best_epoch}, the best "
                        f"({self.monitor} {self.best:.4g}); training ended after epoch {self.last_epoch}")


class ModelCheckpoint(Callback):
    """Save the whole training state (trainer.save) after each epoch — or only when `monitor` improved. The
    path may contain {epoch} and log keys, e.g. 'run-{epoch:03d}.npz'.

    mode 'min' (a loss) or 'max' (an accuracy); 'auto' (the default, as in EarlyStopping and Keras) picks 'max'
    for names containing 'acc'."""

    def __init__(self, path, monitor=None, mode="auto"):
        self.path, self.monitor = os.fspath(path), monitor
        self.mode = _resolve_mode("ModelCheckpoint", monitor or "", mode)
        self.best = None

    def on_epoch_end(self, epoch, logs):
        if self.monitor is not None:
            if self.monitor not in logs:
                raise GraphError(f"ModelCheckpoint: '{self.monitor}' is not among this epoch's logs "
                                 f"({', '.join(logs)}); validation metrics need fit(..., validation_split=...) or "
                                 "validation_data=")
            value = logs[self.monitor]
            if self.best is not None and (value >= self.best if self.mode == "min" else value <= self.best):
                return
            self.best = value
        self.trainer.save(self.path.format(**logs))


class TensorBoard(Callback):
    """Logs for TensorBoard, written with tensorboardX into `logdir` (then: tensorboard --logdir <its parent>):

        scalars     every number an epoch logs (loss, accuracy, val_loss, ..., learning_rate, seconds) as
                    'epoch/<key>' at step = the epoch; with update_freq="batch" also each batch's loss, metrics
                    and learning rate as 'batch/<key>' at step = the optimizer's step count
        histograms  every histogram_freq epochs: each model variable ('weights/<name>') and, with write_grads,
                    each trained variable's gradient on the epoch's last batch ('gradients/<name>'); the trainer
                    fetches those through its gradient program (Trainer.gradient_program)
        images      with write_images, the first convolution's filters as a grid ('filters/<name>'), each epoch
        graph       with write_graph, the training program's graph, once (the Graphs tab; hover a node to see
                    the line that created it)
    """
    main_rank_only = True

    def __init__(self, logdir, histogram_freq=1, write_grads=True, write_images=True, write_graph=True,
                 update_freq="epoch"):
        try:
            from tensorboardX import SummaryWriter
        except ImportError:
            raise GraphError("train.TensorBoard writes its logs with tensorboardX: pip install "
                             "'graphnet[tensorboard]' (or pip install tensorboardX)") from None
        if update_freq not in ("epoch", "batch"):
            raise GraphError(f"TensorBoard: update_freq must be 'epoch' or 'batch', got {update_freq!r}")
        self._writer_class = SummaryWriter
        self.logdir = os.fspath(logdir)
        self.histogram_freq, self.write_grads = int(histogram_freq), bool(write_grads)
        self.write_images, self.write_graph, self.update_freq = bool(write_images), bool(write_graph), update_freq
        self.writer = None
        self.graph_written = False

    def on_train_begin(self, logs=None):
        from .summaries import graph_def
        if self.writer is None:
            self.writer = self._writer_class(logdir=self.logdir)
        self.step = self.trainer.optimizer.steps_done()
        if self.write_graph and not self.graph_written:
            # tensorboardX's public add_graph traces a PyTorch model; its file writer takes a GraphDef as it is
            self.writer._get_file_writer().add_onnx_graph(graph_def(self.trainer.train_program.nodes))
            self.graph_written = True

    def wants_gradients(self, epoch):
        return self.write_grads and self._histograms_due(epoch)

    def _histograms_due(self, epoch):
        return self.histogram_freq > 0 and epoch % self.histogram_freq == 0

    def on_batch_end(self, batch, logs):
        self.step += 1
        if self.update_freq == "batch":
            for key, value in logs.items():
                if key != "batch_size" and isinstance(value, numbers.Real):
                    self.writer.add_scalar(f"batch/{key}", value, self.step)

    def on_epoch_end(self, epoch, logs):
        from .summaries import filter_grid
        writer = self.writer
        for key, value in logs.items():
            if key != "epoch" and isinstance(value, numbers.Real):
                writer.add_scalar(f"epoch/{key}", value, epoch)
        variables = self.trainer.model.variables()
        if self._histograms_due(epoch):
            for name, var in variables.items():
                writer.add_histogram(f"weights/{name}", var.numpy(), epoch)
            if self.write_grads:
                for name, gradient in self.trainer.gradients.items():
                    writer.add_histogram(f"gradients/{name}", gradient, epoch)
        if self.write_images:
            first_conv = next(((n, v) for n, v in variables.items() if v.ndim == 4), None)   # (K, C, R, S)
            if first_conv is not None:
                writer.add_image(f"filters/{first_conv[0]}", filter_grid(first_conv[1].numpy()), epoch,
                                 dataformats="HWC")
        writer.flush()

    def on_train_end(self, logs=None):
        if self.writer is not None:
            self.writer.close()
            self.writer = None


# ---------------------------------------------------------------------------------------------------------------
# The trainer

class Trainer:
    """Trains `model` with `optimizer` on `loss` ('cross_entropy', 'mse', 'bce' or a function
    loss(outputs, targets) -> scalar tensor), adding (l2/2)·Σw² and l1·Σ|w| over the trainable kernels.

    device: where the programs run (None: compile's default). seed: the data order and augmentations.
    check_numerics: every training and evaluation step stops at the first op that writes NaN or Inf, naming it
    (compile's check_numerics: slow, for debugging).
    distributed: data-parallel training over the ranks of `mpiexec -n N` (graphnet/distributed; a single process
    when not started by mpiexec): batch_size is the global batch, split across the ranks."""

    def __init__(self, model, optimizer="adam", loss="cross_entropy", metrics=None, l2=0.0, l1=0.0, device=None,
                 seed=0, check_numerics=False, distributed=False):
        self.model = model
        self.optimizer = optim.get(optimizer)
        if isinstance(loss, str):
            if loss not in LOSSES:
                raise GraphError(f"unknown loss {loss!r}; choose one of {', '.join(LOSSES)} or pass a function "
                                 "loss(outputs, targets) -> scalar tensor")
            self.loss_name, self.loss_fn = loss, LOSSES[loss]
        else:
            self.loss_name, self.loss_fn = getattr(loss, "__name__", "loss"), loss
        if metrics is None:
            metrics = ["accuracy"] if self.loss_name in ("cross_entropy", "bce") else []
        self.metrics = {}
        for metric in metrics:
            if isinstance(metric, str):
                if metric not in METRICS:
                    raise GraphError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)} or pass a "
                                     "function metric(outputs, targets) -> float")
                self.metrics[metric] = METRICS[metric]
            else:
                self.metrics[metric.__name__] = metric
        self.l2, self.l1 = float(l2), float(l1)
        self.device = device
        self.check_numerics = bool(check_numerics)
        self.seed = int(seed)
        self.epoch = 0                  # epochs completed
        self.target_epochs = 0
        self.history = History()
        self.stop_training = False
        self.loader = None
        self.built = False
        self._casts_warned = set()      # (data dtype, model dtype) pairs already warned about
        self.gradients = {}             # {variable name: gradient} of an epoch's last batch, when a callback asks
        self._gradient_program = None
        self.data_parallel = None       # distributed=True: what the fit loop does across the ranks
        if distributed:
            from .distributed.data_parallel import DataParallel
            self.data_parallel = DataParallel(self)

    @property
    def is_main(self):
        """Whether this process prints and writes for the job: rank 0, or the only process."""
        return self.data_parallel is None or self.data_parallel.is_main

    # -- building --------------------------------------------------------------------------------------------------
    def build(self, sample_shape, input_dtype="float32", target_shape=None, target_dtype=None):
        """Build the training and inference branches and compile the programs (fit does this on first use)."""
        if self.built:
            return
        model = self.model
        graph = model.graph if model.graph is not None else Graph()
        classification = self.loss_name == "cross_entropy"
        with graph:
            if self.data_parallel is not None:
                self.data_parallel.build(graph, input_dtype)
            self.x = placeholder((None,) + tuple(sample_shape), input_dtype, name="x")
            with graph.name_scope("train"):
                self.train_outputs = call_with_layout_hint(model, self.x, True, sample_shape)
            self._refuse_a_squashed_output()
            if target_shape is None:
                target_shape = () if classification else tuple(self.train_outputs.shape[1:])
            if target_dtype is None:
                target_dtype = "int64" if classification else self.train_outputs.dtype
            self.y = placeholder((None,) + tuple(target_shape), target_dtype, name="y")
            with graph.name_scope("train"):
                self.train_loss = self.total_loss(self.train_outputs, self.y)
            self.train_op = self.optimizer.minimize(self.train_loss,
                                                    var_list=list(model.trainable_variables().values()))
            with graph.name_scope("eval"):
                self.eval_outputs = model(self.x, training=False)
                self.eval_loss = self.total_loss(self.eval_outputs, self.y)
        options = self._compile_options()
        self.train_program = compile_program([self.train_loss, self.train_outputs, self.train_op], **options)
        self.eval_program = compile_program([self.eval_loss, self.eval_outputs], **options)
        self.predict_program = compile_program(self.eval_outputs, **options)
        self.shapes = {"sample": list(sample_shape), "input_dtype": str(np.dtype(input_dtype)),
                       "target": list(target_shape), "target_dtype": str(np.dtype(target_dtype))}
        self.built = True

    def _compile_options(self):
        options = {"check_numerics": self.check_numerics}
        if self.device is not None:
            options["device"] = self.device
        return options

    def _refuse_a_squashed_output(self):
        """The cross-entropy loss takes logits: a softmax before it would be applied twice (likewise a sigmoid
        before bce). Keras's default takes probabilities, so a Keras model ends in one: say how to translate."""
        squash = SQUASHED_BY_THE_LOSS.get(self.loss_name)
        output = self.train_outputs
        if squash is not None and isinstance(output.op, squash):
            squash = squash.name
            name = output.name[len("train/"):] if output.name.startswith("train/") else output.name
            raise GraphError(f"Trainer: the model's output '{name}' ({output.site}) is a {squash}, and the "
                             f"'{self.loss_name}' loss takes logits and applies the {squash} itself: it would be "
                             f"applied twice, and training would learn slowly or not at all. Remove "
                             f"activation='{squash}' from the last layer (predict() then returns logits; a {squash} "
                             "of them gives the probabilities)")

    def total_loss(self, outputs, targets):
        """The data loss plus the weight penalties (on the trainable kernels: dense and conv weights)."""
        loss = self.loss_fn(outputs, targets)
        kernels = self.model.penalized_variables()
        if self.l2 and kernels:
            loss = ops.add(loss, optim.l2_penalty(kernels, self.l2), name="loss")
        if self.l1 and kernels:
            loss = ops.add(loss, optim.l1_penalty(kernels, self.l1), name="loss")
        return loss

    def _model_input(self):
        """(sample shape, dtype) the model was built for: from model.build, or (None, its variables' dtype) for a
        model built another way, or (None, float32) for a model not built yet."""
        model = self.model
        if getattr(model, "input", None) is not None:
            return tuple(model.input.shape[1:]), np.dtype(model.input.dtype)
        dtypes = {np.dtype(v.dtype) for v in model.variables().values() if np.dtype(v.dtype).kind == "f"}
        return None, dtypes.pop() if len(dtypes) == 1 else np.dtype("float32")

    def _build_for(self, x, y, where):
        x = np.asarray(x)
        if not self.built:
            built_shape, dtype = self._model_input()
            if built_shape is not None:
                self._check_sample_shape(x, built_shape, "the model was built for", where)
            if self.loss_name == "cross_entropy":                 # int64 class indices, whatever y holds
                self.build(x.shape[1:], dtype)
            else:
                self.build(x.shape[1:], dtype, np.shape(y)[1:])
        self._check_input(x, where)
        trained = set(self.optimizer.var_list)
        now = set(self.model.trainable_variables().values())
        if trained != now:
            changed = sorted(v.name for v in trained ^ now)
            raise GraphError(f"the trainable variables changed after the train program was built ({', '.join(changed)}"
                             "); freeze, unfreeze or replace layers before the first fit, or make a new Trainer")

    # -- training --------------------------------------------------------------------------------------------------
    def fit(self, x, y, epochs=1, batch_size=32, shuffle=True, validation_split=0.0, validation_data=None,
            augment=None, callbacks=(), progress=True, csv_log=None, drop_last=False):
        """Train until `epochs` epochs are done in all (a restored trainer continues from its epoch).

        validation_split: the last fraction of (x, y) is held out (before any shuffling), or give
        validation_data=(x_val, y_val). augment: an augmentation, or a list of them applied in order.
        Batches: ⌈n / batch_size⌉ per epoch, except that a last batch of a single sample joins the batch before it
        (batch norm cannot train on one sample); drop_last=True drops a partial last batch instead. Float x of
        another dtype than the model's is cast as it is fed (a warning says so once). Returns the History (of
        every epoch this trainer ran)."""
        x, y = np.asarray(x), np.asarray(y)
        if validation_split:
            if validation_data is not None:
                raise GraphError("fit: give validation_split or validation_data, not both")
            n_val = int(round(len(x) * validation_split))
            if not 0 < n_val < len(x):
                raise GraphError(f"fit: validation_split={validation_split} of {len(x)} samples leaves no "
                                 "validation or no training data")
            validation_data = (x[-n_val:], y[-n_val:])
            x, y = x[:-n_val], y[:-n_val]
        self._build_for(x, y, "fit")
        self.check_data(x, y, "fit")
        if validation_data is not None:
            self._check_input(np.asarray(validation_data[0]), "fit(validation_data=...)")
            self.check_data(*validation_data, "fit(validation_data=...)")
        if self.data_parallel is not None:
            self.data_parallel.start(x, y, validation_data, dict(
                epochs=epochs, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last,
                augment=[type(a).__name__ for a in augmentations(augment)]))
        self.loader = DataLoader(x, y, batch_size, shuffle=shuffle, seed=self.seed, drop_last=drop_last,
                                 augment=augment, fold_single=True)
        if self.data_parallel is not None:
            self.data_parallel.check_batches(self.loader, batch_size)
        for layer in self.model.walk() if hasattr(self.model, "walk") else [self.model]:
            if isinstance(layer, BatchNorm):
                layer.check_training_batch(self.loader.smallest_batch, f"fit(batch_size={batch_size})")
        callbacks = [c for c in callbacks if self.is_main or not getattr(c, "main_rank_only", False)]
        if csv_log is not None and self.is_main:
            callbacks.append(CSVLogger(csv_log, append=self.epoch > 0))
        if progress and self.is_main:
            callbacks.append(ProgressBar())
        for callback in callbacks:
            callback.set_trainer(self)
        self.target_epochs, self.stop_training = epochs, False
        for callback in callbacks:
            callback.on_train_begin()
        try:
            step = self.optimizer.steps_done()
            for epoch in range(self.epoch, epochs):
                step = self._run_epoch(epoch, step, callbacks, validation_data)
                if self.stop_training:
                    break
        finally:
            for callback in callbacks:
                callback.on_train_end()
        return self.history

    def _run_epoch(self, epoch, step, callbacks, validation_data):
        self.loader.set_epoch(epoch)
        for callback in callbacks:
            callback.on_epoch_begin(epoch + 1)
        totals, seen, started = {}, 0, time.perf_counter()
        learning_rate = self.optimizer.current_learning_rate()
        fetch_gradients = any(getattr(c, "wants_gradients", lambda epoch: False)(epoch + 1) for c in callbacks)
        last_batch = len(self.loader) - 1
        for batch, (xb, yb) in enumerate(self.loader):
            batch_size = len(xb)                        # the global batch's
            if self.data_parallel is not None:
                xb, yb = self.data_parallel.shard(xb, yb)
            learning_rate = self.optimizer.update_learning_rate(step)
            if fetch_gradients and batch == last_batch:
                loss, outputs, _, *grads = self.gradient_program().run({self.x: xb, self.y: yb})
                self.gradients = dict(zip(self._trained_names(), grads))
            else:
                loss, outputs, _ = self.train_program.run({self.x: xb, self.y: yb})
            step += 1
            logs = {"loss": float(loss)}
            logs.update({name: fn(outputs, yb) for name, fn in self.metrics.items()})
            for key, value in logs.items():
                totals[key] = totals.get(key, 0.0) + value * len(xb)
            seen += len(xb)
            logs.update(batch_size=batch_size, learning_rate=learning_rate)
            for callback in callbacks:
                callback.on_batch_end(batch, logs)
        seconds = time.perf_counter() - started
        if self.data_parallel is not None:
            totals, seen = self.data_parallel.sum_over_ranks(totals, seen, f"epoch {epoch + 1}'s training logs")
        logs = {"epoch": epoch + 1}
        logs.update({key: total / seen for key, total in totals.items()})
        if validation_data is not None:
            validation = self._evaluate(*validation_data, sharded=self.data_parallel is not None)
            logs.update({f"val_{k}": v for k, v in validation.items()})
        logs.update(learning_rate=learning_rate, seconds=seconds, samples_per_s=seen / seconds if seconds else 0.0)
        self.epoch = epoch + 1
        self.history.record(logs)
        for callback in callbacks:
            callback.on_epoch_end(epoch + 1, logs)
        return step

    def _check_input(self, x, where):
        """x must hold samples of the shape the programs were built for. Float data of another dtype is cast as
        it is fed (batch by batch); a cast that loses precision (float64 -> float32) is warned about once."""
        self._check_sample_shape(x, tuple(self.shapes["sample"]), "the trainer was built for", where)
        dtype = np.dtype(self.shapes["input_dtype"])
        lossy = x.dtype.kind == "f" and dtype.kind == "f" and x.dtype.itemsize > dtype.itemsize
        if lossy and (x.dtype, dtype) not in self._casts_warned:
            self._casts_warned.add((x.dtype, dtype))
            warn(f"{where}: x is {x.dtype} but the model computes in {dtype}: x is cast to {dtype} as it is fed "
                 f"(as Keras does). Pass x.astype('{dtype}') to say so yourself, or build the model with "
                 f"model.build({tuple(self.shapes['sample'])}, dtype='{x.dtype}') before fit to compute in "
                 f"{x.dtype}")

    @staticmethod
    def _check_sample_shape(x, expected, built_for, where):
        got = tuple(x.shape[1:])
        if len(got) == len(expected) and all(e is None or e == g for e, g in zip(expected, got)):
            return
        hint = ""
        if len(expected) == 3 and got == (expected[1], expected[2], expected[0]):
            hint = "; x looks channels-last (N, H, W, C), but graphnet is NCHW: pass x.transpose(0, 3, 1, 2)"
        elif channels_last_hint(expected):
            hint = "\n" + channels_last_hint(expected)
        raise FeedError(f"{where}: x holds samples of shape {format_shape(got)} (x is {format_shape(x.shape)}), "
                        f"but {built_for} samples of shape {format_shape(tuple(expected))}{hint}")

    def check_data(self, x, y, where):
        """Refuse, before any batch runs, targets that cannot pair with the inputs or the model's outputs."""
        x, y = np.asarray(x), np.asarray(y)
        if len(x) != len(y):
            raise FeedError(f"{where}: x has {len(x)} samples but y has {len(y)}; they must pair up, one target "
                            "per sample")
        if self.loss_name != "cross_entropy":
            return
        classes = self.train_outputs.shape[-1]
        if y.ndim == 2 and y.shape[1] == classes:
            raise FeedError(f"{where}: y has shape {y.shape}, which looks one-hot; the cross-entropy loss takes "
                            f"class indices of shape ({len(y)},): pass y.argmax(1)")
        if y.ndim != 1 or (y.size and y.dtype.kind not in "iu" and not np.all(y == np.round(y))):
            raise FeedError(f"{where}: y has shape {y.shape} and dtype {y.dtype}; the cross-entropy loss takes one "
                            f"integer class index per sample, shape ({len(y)},)")
        if y.size and (y.min() < 0 or y.max() >= classes):
            raise FeedError(f"{where}: the labels go from {y.min()} to {y.max()}, but the model's last layer has "
                            f"{classes} outputs (classes 0..{classes - 1}); give the last layer "
                            f"{int(y.max()) + 1} units, or relabel the classes")

    def evaluate(self, x, y, batch_size=256):
        """The loss and metrics over (x, y) in inference mode, averaged over samples (on this rank alone)."""
        return self._evaluate(x, y, batch_size)

    def _evaluate(self, x, y, batch_size=256, sharded=False):
        """evaluate; sharded (fit's validation in distributed training): each rank its share of the samples, the
        totals summed over the ranks."""
        self._build_for(x, y, "evaluate")
        self.check_data(x, y, "evaluate")
        x, y = np.asarray(x), np.asarray(y)
        if sharded:
            rows = self.data_parallel.rows(len(x))
            x, y = x[rows], y[rows]
        totals, seen = {key: 0.0 for key in ["loss", *self.metrics]}, 0
        for xb, yb in (DataLoader(x, y, batch_size) if len(x) or not sharded else ()):   # a rank may have none
            loss, outputs = self.eval_program.run({self.x: xb, self.y: yb})
            values = {"loss": float(loss)}
            values.update({name: fn(outputs, yb) for name, fn in self.metrics.items()})
            for key, value in values.items():
                totals[key] += value * len(xb)
            seen += len(xb)
        if sharded:
            totals, seen = self.data_parallel.sum_over_ranks(totals, seen, "the validation logs")
        return {key: total / seen for key, total in totals.items()}

    def predict(self, x, batch_size=256):
        """The model's outputs for x in inference mode."""
        if not self.built:
            raise GraphError("predict: the trainer is not built yet; fit, evaluate or restore first")
        self._check_input(np.asarray(x), "predict")
        return np.concatenate([self.predict_program.run({self.x: xb}) for xb in DataLoader(x, None, batch_size)])

    def gradient_program(self):
        """The train program with the gradients fetched too (compiled on first use). It is the same training step
        — it shares the train program's variables and run counter, so dropout draws the same masks — and runs in
        its place on the batches whose gradients a callback asked for (Callback.wants_gradients)."""
        if self._gradient_program is None:
            program = compile_program([self.train_loss, self.train_outputs, self.train_op]
                                      + list(self.optimizer.gradients), **self._compile_options())
            program.rng = self.train_program.rng
            self._gradient_program = program
        return self._gradient_program

    def _trained_names(self):
        """The model's names of the trained variables, in the optimizer's order (that of its gradients)."""
        names = {var: name for name, var in self.model.variables().items()}
        return [names.get(var, var.name) for var in self.optimizer.var_list]

    # -- checkpoints -------------------------------------------------------------------------------------------------
    def programs(self):
        """{name: program} of the three programs, named as PROGRAMS."""
        return dict(zip(PROGRAMS, (self.train_program, self.eval_program, self.predict_program)))

    def _state_variables(self):
        model_vars = self.model.variables()
        names = {var: name for name, var in model_vars.items()}
        return model_vars, self.optimizer.state_variables(names)

    def save(self, path):
        """Save everything a resumed run needs: the model's variables, the optimizer's state, the epoch, the
        programs' run counters (dropout's RNG), the loader's (seed, epoch), the history. Atomic. In distributed
        training rank 0 writes, and every rank returns once the file is complete."""
        if not self.built:
            raise GraphError("save: the trainer is not built yet; fit first (or model.save_weights for weights)")
        if self.data_parallel is not None:
            return self.data_parallel.save(path, lambda: self._write(path))
        return self._write(path)

    def _write(self, path):
        model_vars, optimizer_vars = self._state_variables()
        arrays = {f"model/{n}": v for n, v in checkpoint.values_of(model_vars).items()}
        arrays.update({f"optimizer/{n}": v for n, v in checkpoint.values_of(optimizer_vars).items()})
        state = {"kind": "training", "epoch": self.epoch,
                 "rng_counters": {name: p.rng.counter for name, p in self.programs().items()},
                 "loader": {"seed": self.seed, "epoch": self.epoch},
                 "optimizer": type(self.optimizer).__name__, "shapes": self.shapes,
                 "history": self.history.rows}
        return checkpoint.save(path, arrays, state)

    def restore(self, path):
        """Load a training checkpoint: every check passes before anything (variable, epoch, counter) changes —
        the state's structure and the names, shapes and dtypes of its arrays before any array is decompressed."""
        where = f"checkpoint '{os.fspath(path)}'"

        def fits_this_trainer(specs, state):
            check_training_state(state, where, type(self.optimizer).__name__, set(PROGRAMS))
            if not self.built:
                shapes = state["shapes"]
                self.build(shapes["sample"], shapes["input_dtype"], shapes["target"], shapes["target_dtype"])
            model_vars, optimizer_vars = self._state_variables()
            checkpoint.check_specs(model_vars, checkpoint.group_specs(specs, "model"), where)
            checkpoint.check_specs(optimizer_vars, checkpoint.group_specs(specs, "optimizer"),
                                   f"{where} (optimizer state)")

        saved = checkpoint.read(path, expect=fits_this_trainer)
        state = saved.state
        model_vars, optimizer_vars = self._state_variables()
        pairs = checkpoint.match(model_vars, saved.group("model"), where)
        pairs += checkpoint.match(optimizer_vars, saved.group("optimizer"), f"{where} (optimizer state)")
        checkpoint.write(pairs)
        counters = state["rng_counters"]
        for name, program in self.programs().items():
            program.rng.counter = int(counters[name])
        self.epoch, self.seed = int(state["epoch"]), int(state["loader"]["seed"])
        self.history = History(state["history"])
        return self


def check_training_state(state, where, optimizer, programs):
    """The `state` of a training checkpoint has the structure Trainer.save writes, or CheckpointError says what
    differs (before anything is built or loaded)."""
    error = checkpoint.CheckpointError
    if state.get("kind") != "training":
        raise error(f"{where} holds weights only, not a training run; load it with model.load_weights")
    required = ("epoch", "loader", "rng_counters", "shapes", "history", "optimizer")
    missing = [k for k in required if k not in state]
    if missing:
        raise error(f"{where}: the training state lacks {', '.join(missing)}")
    if state["optimizer"] != optimizer:
        raise error(f"{where} was written by a {state['optimizer']} optimizer; this trainer has a {optimizer}")

    def count(value):
        return type(value) is int and value >= 0

    def sizes(value):
        return isinstance(value, list) and all(type(d) is int and d > 0 for d in value)

    def dtype(value):
        try:
            return isinstance(value, str) and np.dtype(value).kind in "biuf"
        except Exception:
            return False

    shapes, loader, counters = state["shapes"], state["loader"], state["rng_counters"]
    checks = [("epoch", state["epoch"], count(state["epoch"]), "a count >= 0"),
              ("loader", loader, isinstance(loader, dict) and count(loader.get("seed")),
               "an object with a seed >= 0"),
              ("rng_counters", counters, isinstance(counters, dict) and set(counters) == programs
               and all(count(v) for v in counters.values()), f"counts >= 0 for {sorted(programs)}"),
              ("shapes", shapes, isinstance(shapes, dict) and sizes(shapes.get("sample"))
               and sizes(shapes.get("target")) and dtype(shapes.get("input_dtype"))
               and dtype(shapes.get("target_dtype")),
               "an object with the sample and target shapes and dtypes"),
              ("history", state["history"], isinstance(state["history"], list)
               and all(isinstance(row, dict) for row in state["history"]), "a list of objects, one per epoch")]
    for key, value, good, expected in checks:
        if not good:
            shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
            raise error(f"{where}: the training state is malformed: '{key}' is {shown}, expected {expected}")


def fit(model, x, y, optimizer="adam", loss="cross_entropy", metrics=None, l2=0.0, l1=0.0, device=None, seed=0,
        **fit_arguments):
    """Train `model` on (x, y) with a new Trainer; returns the History (its `.trainer` is the Trainer)."""
    trainer = Trainer(model, optimizer, loss, metrics, l2, l1, device, seed)
    history = trainer.fit(x, y, **fit_arguments)
    history.trainer = trainer
    return history
