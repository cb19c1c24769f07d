"""Random augmentations of a batch of NCHW images, each drawn from a generator the caller seeds.

An augmentation is called as `aug(images, rng)` with a NumPy `Generator` and returns a new array of the same
dtype; every sample gets its own random draw. The `DataLoader` seeds `rng` from (seed, epoch, batch), so an
augmented epoch is reproducible — and a resumed run sees the very same images.

    RandomFlip(p)            mirror left-right with probability p
    RandomShift(max_shift)   move by up to max_shift pixels in each direction, filling with zeros
    RandomCrop(size, padding) pad by `padding`, then cut a size×size window at a random place
    RandomRotation(degrees)  rotate by an angle in [−degrees, degrees] about the centre (bilinear, zero fill)
    GaussianNoise(std)       add N(0, std²) to every pixel
"""
import math

import numpy as np

from ..errors import GraphError


def _require_images(images, what):
    if images.ndim != 4:
        raise GraphError(f"{what}: expects a batch of images (N, C, H, W), got shape {images.shape}")


class Augmentation:
    def __call__(self, images, rng):
        raise NotImplementedError

    def __repr__(self):
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in vars(self).items())})"


class RandomFlip(Augmentation):
    """Mirror each image along `axis` (−1: left-right, −2: up-down) with probability p."""

    def __init__(self, p=0.5, axis=-1):
        self.p, self.axis = float(p), axis

    def __call__(self, images, rng):
        _require_images(images, "RandomFlip")
        flip = rng.random(len(images)) < self.p
        out = images.copy()
        out[flip] = np.flip(images[flip], axis=self.axis)
        return out


class RandomShift(Augmentation):
    """Move each image by (dy, dx), each uniform in {−max_shift, ..., max_shift}; uncovered pixels become 0.
    (The same as padding by max_shift and cropping the original size at a random place.)"""

    def __init__(self, max_shift=2):
        self.max_shift = int(max_shift)

    def __call__(self, images, rng):
        _require_images(images, "RandomShift")
        k = self.max_shift
        n, _, h, w = images.shape
        padded = np.pad(images, ((0, 0), (0, 0), (k, k), (k, k)))
        offsets = rng.integers(0, 2 * k + 1, size=(n, 2))
        out = np.empty_like(images)
        for i, (top, left) in enumerate(offsets):
            out[i] = padded[i, :, top:top + h, left:left + w]
        return out


class RandomCrop(Augmentation):
    """Pad each image by `padding` zeros, then cut a size×size window at a random place."""

    def __init__(self, size, padding=0):
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        self.padding = int(padding)

    def __call__(self, images, rng):
        _require_images(images, "RandomCrop")
        p, (ch, cw) = self.padding, self.size
        padded = np.pad(images, ((0, 0), (0, 0), (p, p), (p, p)))
        n, c, h, w = padded.shape
        if ch > h or cw > w:
            raise GraphError(f"RandomCrop: a {ch}x{cw} window does not fit the padded {h}x{w} images")
        tops = rng.integers(0, h - ch + 1, size=n)
        lefts = rng.integers(0, w - cw + 1, size=n)
        out = np.empty((n, c, ch, cw), dtype=images.dtype)
        for i in range(n):
            out[i] = padded[i, :, tops[i]:tops[i] + ch, lefts[i]:lefts[i] + cw]
        return out


class RandomRotation(Augmentation):
    """Rotate each image by θ ~ U(−degrees, degrees) about its centre. Each output pixel p reads the input at
    R(−θ)·(p − c) + c, interpolated bilinearly from its four neighbours; points outside read 0."""

    def __init__(self, degrees=10.0):
        self.degrees = float(degrees)

    def __call__(self, images, rng):
        _require_images(images, "RandomRotation")
        n, c, h, w = images.shape
        angles = np.deg2rad(rng.uniform(-self.degrees, self.degrees, size=n))
        rows, cols = np.mgrid[0:h, 0:w].astype(np.float64)
        cy, cx = (h - 1) / 2, (w - 1) / 2
        out = np.empty_like(images)
        for i, theta in enumerate(angles):
            cos, sin = math.cos(theta), math.sin(theta)
            src_y = cos * (rows - cy) - sin * (cols - cx) + cy        # R(−θ) applied to (y, x) − centre
            src_x = sin * (rows - cy) + cos * (cols - cx) + cx
            out[i] = bilinear(images[i], src_y, src_x)
        return out


def bilinear(image, y, x):
    """image (C, H, W) sampled at real coordinates (y, x) (each H'×W'), zero outside."""
    _, h, w = image.shape
    y0, x0 = np.floor(y).astype(int), np.floor(x).astype(int)
    fy, fx = y - y0, x - x0
    result = np.zeros((image.shape[0],) + y.shape, dtype=np.float64)
    for dy, wy in ((0, 1 - fy), (1, fy)):
        for dx, wx in ((0, 1 - fx), (1, fx)):
            yy, xx = y0 + dy, x0 + dx
            inside = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
            values = image[:, np.clip(yy, 0, h - 1), np.clip(xx, 0, w - 1)]
            result += values * (wy * wx * inside)
    return result.astype(image.dtype)


class GaussianNoise(Augmentation):
    """x + ε with ε ~ N(0, std²) per pixel."""

    def __init__(self, std=0.1):
        self.std = float(std)

    def __call__(self, images, rng):
        return (images + rng.normal(0.0, self.std, size=images.shape)).astype(images.dtype)
