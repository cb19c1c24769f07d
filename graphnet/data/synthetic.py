"""Generated data sets for the first lessons: nothing to download, the same arrays for the same seed."""
import numpy as np

from ..errors import DatasetError

SHAPE_CLASSES = ("horizontal bar", "vertical bar", "diagonal", "anti-diagonal", "ring", "cross", "square")


def shape_images(n, size=28, noise=0.6, seed=0):
    """n grayscale images (n, 1, size, size) float32 of seven kinds of stroke, and their int64 labels 0..6.

    Each image draws one shape of `SHAPE_CLASSES` at a random place, length and thickness, then adds Gaussian
    pixel noise of standard deviation `noise`. A small CNN learns them in a few epochs; an MLP needs longer,
    because the position varies."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(SHAPE_CLASSES), size=n)
    rows, cols = np.mgrid[0:size, 0:size]
    images = np.zeros((n, 1, size, size), dtype=np.float32)
    for i, label in enumerate(labels):
        centre = rng.uniform(size * 0.3, size * 0.7, size=2)
        half_length = rng.uniform(size * 0.2, size * 0.35)
        thickness = rng.uniform(1.0, 2.5)
        dy, dx = rows - centre[0], cols - centre[1]
        if label == 0:
            mask = (np.abs(dy) < thickness) & (np.abs(dx) < half_length)
        elif label == 1:
            mask = (np.abs(dx) < thickness) & (np.abs(dy) < half_length)
        elif label == 2:
            mask = (np.abs(dx - dy) < thickness * 1.4) & (np.abs(dx + dy) < half_length * 1.4)
        elif label == 3:
            mask = (np.abs(dx + dy) < thickness * 1.4) & (np.abs(dx - dy) < half_length * 1.4)
        elif label == 4:
            mask = np.abs(np.hypot(dx, dy) - half_length * 0.7) < thickness
        elif label == 5:
            arm = half_length * 0.7
            mask = ((np.abs(dy) < thickness) & (np.abs(dx) < arm)) | ((np.abs(dx) < thickness) & (np.abs(dy) < arm))
        else:
            side = half_length * 0.7
            mask = (np.maximum(np.abs(dx), np.abs(dy)) < side) & (np.maximum(np.abs(dx), np.abs(dy)) > side - thickness)
        images[i, 0][mask] = 1.0
    images += rng.normal(0, noise, size=images.shape).astype(np.float32)
    return images, labels.astype(np.int64)


def _check(name, n, **nonnegative):
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise DatasetError(f"{name}: n must be a positive int, got {n!r}")
    for key, value in nonnegative.items():
        if not value >= 0:
            raise DatasetError(f"{name}: {key} must be >= 0, got {value!r}")


def noisy_sinusoid(n=200, noise=0.1, seed=0):
    """A 1-D regression problem: x ~ U(−π, π) and y = sin(x) + noise · ε with ε ~ N(0, 1), each float32 (n, 1),
    in random order. A small MLP with a nonlinearity fits it; a linear model cannot."""
    _check("noisy_sinusoid", n, noise=noise)
    rng = np.random.default_rng(seed)
    x = rng.uniform(-np.pi, np.pi, size=(n, 1))
    y = np.sin(x) + noise * rng.standard_normal((n, 1))
    return x.astype(np.float32), y.astype(np.float32)


def two_moons(n=400, noise=0.1, seed=0):
    """Two interleaved half circles in 2-D, float32 x (n, 2) and int64 labels y (n,) in {0, 1}, in random order.
    With t ~ U(0, π) and ε ~ N(0, noise² I):

        class 0 (⌈n/2⌉ points):  (cos t, sin t) + ε                   the upper moon
        class 1 (⌊n/2⌋ points):  (1 − cos t, 0.5 − sin t) + ε         the lower moon, shifted right

    No straight line separates them; one hidden layer does."""
    _check("two_moons", n, noise=noise)
    rng = np.random.default_rng(seed)
    y = (np.arange(n) >= (n + 1) // 2).astype(np.int64)
    t = rng.uniform(0, np.pi, size=n)
    x = np.where(y[:, None] == 0, np.stack([np.cos(t), np.sin(t)], axis=1),
                 np.stack([1 - np.cos(t), 0.5 - np.sin(t)], axis=1))
    x = x + noise * rng.standard_normal((n, 2))
    order = rng.permutation(n)
    return x[order].astype(np.float32), y[order]


def circles(n=400, noise=0.05, factor=0.5, seed=0):
    """A circle inside a circle in 2-D, float32 x (n, 2) and int64 labels y (n,) in {0, 1}, in random order.
    With θ ~ U(0, 2π) and ε ~ N(0, noise² I):

        class 0 (⌈n/2⌉ points):  (cos θ, sin θ) + ε                    radius 1
        class 1 (⌊n/2⌋ points):  factor · (cos θ, sin θ) + ε           radius factor, 0 < factor < 1

    Separable by the radius ‖x‖, not by any line: a feature x₁² + x₂² (or a hidden layer) is needed."""
    _check("circles", n, noise=noise)
    if not 0 < factor < 1:
        raise DatasetError(f"circles: factor is the inner radius over the outer one and must lie in (0, 1), "
                           f"got {factor!r}")
    rng = np.random.default_rng(seed)
    y = (np.arange(n) >= (n + 1) // 2).astype(np.int64)
    theta = rng.uniform(0, 2 * np.pi, size=n)
    radius = np.where(y == 0, 1.0, factor)
    x = radius[:, None] * np.stack([np.cos(theta), np.sin(theta)], axis=1) + noise * rng.standard_normal((n, 2))
    order = rng.permutation(n)
    return x[order].astype(np.float32), y[order]


def blobs(n=300, centers=3, std=1.0, seed=0):
    """Gaussian clusters in 2-D, float32 x (n, 2) and int64 labels y (n,) in 0..centers−1 (as equal in number as
    n allows), in random order. Cluster k (K = centers) has its centre on a circle,

        c_k = R · (cos(2πk/K), sin(2πk/K)),   R = 4 / sin(π/K)   (R = 0 when K = 1)

    so neighbouring centres lie 2R·sin(π/K) = 8 apart, and x = c_y + std · ε with ε ~ N(0, I). All centres have
    the same norm, so the nearest centre is argmax_k c_k · x — a linear classifier. With the default std = 1 a
    centre lies 4 standard deviations from the boundary with each neighbour, so a point crosses it with
    probability P(N(0, 1) > 4) ≈ 3·10⁻⁵: the default data set is linearly separable (softmax regression can
    reach 100 %). Raise std to make the clusters overlap."""
    _check("blobs", n, std=std)
    if not isinstance(centers, (int, np.integer)) or centers < 1:
        raise DatasetError(f"blobs: centers must be a positive int, got {centers!r}")
    rng = np.random.default_rng(seed)
    radius = 4 / np.sin(np.pi / centers) if centers > 1 else 0.0
    angles = 2 * np.pi * np.arange(centers) / centers
    means = radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    y = rng.permutation(np.arange(n) % centers).astype(np.int64)
    x = means[y] + std * rng.standard_normal((n, 2))
    return x.astype(np.float32), y
