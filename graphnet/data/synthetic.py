"""Generated data sets for the first lessons: nothing to download, the same arrays for the same seed."""
import numpy as np

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
