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
    shuffle      a new order every epoch (seeded); else the arrays' order
    augment      augmentations applied to each batch of x, in order: aug(x_batch, rng) -> x_batch
    Iterating starts the loader's current epoch and then advances it; set_epoch(e) chooses it."""

    def __init__(self, x, y=None, batch_size=32, shuffle=False, seed=0, drop_last=False, augment=None):
        self.x = np.asarray(x)
        self.y = None if y is None else np.asarray(y)
        if self.y is not None and len(self.y) != len(self.x):
            raise GraphError(f"DataLoader: x has {len(self.x)} samples but y has {len(self.y)}; they must pair up")
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise GraphError(f"DataLoader: batch_size must be a positive int, got {batch_size!r}")
        if not isinstance(seed, (int, np.integer)) or seed < 0:
            raise GraphError(f"DataLoader: seed must be an int >= 0, got {seed!r}")
        self.batch_size, self.shuffle, self.seed, self.drop_last = int(batch_size), bool(shuffle), int(seed), drop_last
        self.augment = list(augment or [])
        self.epoch = 0
        if len(self) == 0:
            raise GraphError(f"DataLoader: {len(self.x)} samples make no batch of {batch_size} with drop_last=True")

    def __len__(self):
        """Batches per epoch: ⌊n / B⌋ with drop_last, else ⌈n / B⌉."""
        n = len(self.x)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

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
        for b in range(len(self)):
            index = order[b * self.batch_size:(b + 1) * self.batch_size]
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
