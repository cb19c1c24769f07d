"""DataLoader: mini-batches of NumPy arrays, shuffled and augmented reproducibly.

    loader = DataLoader(x, y, batch_size=32, shuffle=True, seed=0, augment=[RandomFlip(), GaussianNoise(0.1)])
    for epoch in range(epochs):
        loader.set_epoch(epoch)
        for xb, yb in loader:
            ...

Randomness is counter-based, like dropout's: nothing is carried from one epoch to the next, every draw is a
pure function of the seed and where it happens.

    order of epoch e            numpy.random.default_rng([seed, e, 0]).permutation(n)
    augmentations of batch b    numpy.random.default_rng([seed, e, 1, b])

So the loader's whole random state is (seed, epoch): a checkpoint that stores them resumes with the very same
batches, and epoch 7 is the same whether or not epochs 0–6 ran in this process.
"""
import math

import numpy as np

from ..errors import GraphError


class DataLoader:
    """Iterate over (x, y) — or x alone — in mini-batches.

    batch_size   samples per batch; the last batch may be smaller unless drop_last=True
    fold_single  a last batch of a single sample joins the batch before it (which then has batch_size + 1);
                 Trainer.fit does this, since batch norm cannot train on one sample
    shuffle      a new order every epoch (seeded); else the arrays' order
    augment      an augmentation, or a list of them applied to each batch of x in order: aug(x_batch, rng) -> x_batch
    Iterating starts the loader's current epoch and then advances it; set_epoch(e) chooses it."""

    def __init__(self, x, y=None, batch_size=32, shuffle=False, seed=0, drop_last=False, augment=None,
                 fold_single=False):
        self.x = np.asarray(x)
        self.y = None if y is None else np.asarray(y)
        if self.y is not None and len(self.y) != len(self.x):
            raise GraphError(f"DataLoader: x has {len(self.x)} samples but y has {len(self.y)}; they must pair up")
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise GraphError(f"DataLoader: batch_size must be a positive int, got {batch_size!r}")
        if not isinstance(seed, (int, np.integer)) or seed < 0:
            raise GraphError(f"DataLoader: seed must be an int >= 0, got {seed!r}")
        self.batch_size, self.shuffle, self.seed, self.drop_last = int(batch_size), bool(shuffle), int(seed), drop_last
        self.fold_single = bool(fold_single)
        self.augment = augmentations(augment)
        self.epoch = 0
        if len(self) == 0:
            raise GraphError(f"DataLoader: {len(self.x)} samples make no batch of {batch_size} with drop_last=True")

    def __len__(self):
        """Batches per epoch: ⌊n / B⌋ with drop_last, else ⌈n / B⌉ — one fewer when fold_single folds a last
        batch of one sample (n mod B = 1, n > 1) into the one before it."""
        n, b = len(self.x), self.batch_size
        if self.drop_last:
            return n // b
        if self.fold_single and n > 1 and n % b == 1:
            return n // b
        return math.ceil(n / b)

    @property
    def smallest_batch(self):
        """The number of samples in the smallest batch of an epoch."""
        last = self.batch_size if self.drop_last else len(self.x) - (len(self) - 1) * self.batch_size
        return last if len(self) == 1 else min(self.batch_size, last)

    @property
    def num_samples(self):
        """Samples per epoch (fewer than len(x) when drop_last drops a partial batch)."""
        return len(self) * self.batch_size if self.drop_last else len(self.x)

    def set_epoch(self, epoch):
        self.epoch = int(epoch)

    def order(self, epoch):
        """The sample order of `epoch`."""
        if not self.shuffle:
            return np.arange(len(self.x))
        return np.random.default_rng([self.seed, epoch, 0]).permutation(len(self.x))

    def __iter__(self):
        epoch = self.epoch
        self.epoch += 1
        return self.batches(epoch)

    def batches(self, epoch):
        """The batches of `epoch` (does not change the loader's epoch)."""
        order = self.order(epoch)
        last = len(self) - 1
        for b in range(len(self)):
            end = len(order) if b == last and not self.drop_last else (b + 1) * self.batch_size
            index = order[b * self.batch_size:end]
            xb = self.x[index]
            if self.augment:
                rng = np.random.default_rng([self.seed, epoch, 1, b])
                for augmentation in self.augment:
                    xb = augmentation(xb, rng)
            yield xb if self.y is None else (xb, self.y[index])

    def state_dict(self):
        """The loader's random state: {'seed': s, 'epoch': e}."""
        return {"seed": self.seed, "epoch": self.epoch}

    def load_state_dict(self, state):
        self.seed, self.epoch = int(state["seed"]), int(state["epoch"])

    def __repr__(self):
        return (f"<DataLoader {len(self.x)} samples, batch {self.batch_size}, {len(self)} batches, "
                f"shuffle={self.shuffle} seed={self.seed} epoch={self.epoch}>")


def augmentations(augment):
    """`augment` as a list: None -> [], one augmentation -> [it], a list or tuple -> itself; each must be callable
    as aug(images, rng)."""
    if augment is None:
        return []
    chosen = [augment] if callable(augment) else list(augment) if isinstance(augment, (list, tuple)) else None
    if chosen is None or not all(callable(a) for a in chosen):
        bad = augment if chosen is None else next(a for a in chosen if not callable(a))
        raise GraphError(f"augment: expected an augmentation (called as aug(images, rng), e.g. RandomShift(2)) or a "
                         f"list of them, got {bad!r}")
    return chosen
