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


# --------------------------------------------------------------------------------------------- colour and shape
LUMA_WEIGHTS = (0.299, 0.587, 0.114)        # ITU-R BT.601: grey = 0.299·R + 0.587·G + 0.114·B (as PIL's "L")
COLOUR_SHAPE_COLOURS = {"red": (0.9, 0.25, 0.25), "green": (0.2, 0.6, 0.2), "blue": (0.2, 0.3, 0.8)}
COLOUR_SHAPE_SHAPES = ("disc", "square", "triangle")
COLOUR_SHAPE_CLASSES = tuple(f"{colour} {shape}" for colour in COLOUR_SHAPE_COLOURS for shape in COLOUR_SHAPE_SHAPES)
OBJECT_LUMA, BACKGROUND_LUMA = 0.4, 0.1


def _shape_mask(shape, rows, cols, centre, radius, angle):
    """Pixels inside a disc, square or triangle about `centre`, turned by `angle`, all three of area ≈ 2·radius²
    (a disc of radius 0.8·radius, a square of circumradius `radius`, a triangle of circumradius 1.24·radius)."""
    dy, dx = rows - centre[0], cols - centre[1]
    if shape == "disc":
        return np.hypot(dy, dx) < radius * 0.8                 # about the area of the square and the triangle
    u = np.cos(angle) * dx + np.sin(angle) * dy                 # coordinates in the shape's own frame
    v = -np.sin(angle) * dx + np.cos(angle) * dy
    if shape == "square":
        return np.maximum(np.abs(u), np.abs(v)) < radius / np.sqrt(2)
    inside = np.ones_like(u, dtype=bool)                        # triangle: three half-planes
    for k in range(3):
        a = angle + 2 * np.pi * k / 3
        inside &= np.cos(a) * dx + np.sin(a) * dy < 1.24 * radius / 2    # its inradius: half the circumradius
    return inside


def colour_shape_images(n, size=32, noise=0.08, seed=0):
    """n colour images (n, 3, size, size) float32 in [0, 1] and int64 labels 0..8 (`COLOUR_SHAPE_CLASSES`): a red,
    green or blue disc, square or triangle, label = 3 · colour + shape, on a dark grey background.

    Both colour and shape decide the class, so neither alone is enough:
      * colour alone: each colour comes in all three shapes (and the sizes vary, so the amount of colour in an
        image does not give the shape away);
      * shape alone: the three colours have the same brightness (luma 0.299·R + 0.587·G + 0.114·B = 0.4; each
        image's colour is jittered and shifted back to that luma), so the grayscale images of a red square and a
        blue square are drawn from the same distribution: a grayscale model can tell at most the shape, 3 of the
        9 classes, and no better than 1/3 of the images on average.
    Each shape has a random place, size (`radius` 5 to 10 pixels at size 32) and rotation, and the three shapes have
    the same area on average; every pixel gets Gaussian noise of standard deviation `noise` in each channel, then
    is clipped to [0, 1]."""
    _check("colour_shape_images", n, noise=noise)
    if not isinstance(size, (int, np.integer)) or size < 16:
        raise DatasetError(f"colour_shape_images: size must be an int of at least 16, got {size!r}")
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(COLOUR_SHAPE_CLASSES), size=n)
    luma = np.asarray(LUMA_WEIGHTS)
    colours = np.asarray(list(COLOUR_SHAPE_COLOURS.values()))
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float64)
    scale = size / 32
    images = np.empty((n, 3, size, size), dtype=np.float64)
    for i, label in enumerate(labels):
        colour_index, shape_index = divmod(int(label), len(COLOUR_SHAPE_SHAPES))
        colour = colours[colour_index] + rng.uniform(-0.05, 0.05, size=3)
        colour += OBJECT_LUMA - luma @ colour                   # the weights sum to 1: this sets the luma exactly
        radius = rng.uniform(5, 10) * scale
        centre = rng.uniform(radius * 0.8, size - 1 - radius * 0.8, size=2)
        mask = _shape_mask(COLOUR_SHAPE_SHAPES[shape_index], rows, cols, centre, radius, rng.uniform(0, 2 * np.pi))
        images[i] = BACKGROUND_LUMA
        images[i][:, mask] = colour[:, None]
    images += rng.normal(0, noise, size=images.shape)
    return np.clip(images, 0, 1).astype(np.float32), labels.astype(np.int64)


def to_grayscale(images):
    """(N, 3, H, W) colour images -> (N, 1, H, W) grey ones: 0.299·R + 0.587·G + 0.114·B (ITU-R BT.601 luma)."""
    weights = np.asarray(LUMA_WEIGHTS, dtype=images.dtype).reshape(1, 3, 1, 1)
    return (images * weights).sum(axis=1, keepdims=True)
