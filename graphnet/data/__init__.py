"""Data sets that need no download (generated here, shipped inside installed packages, or read from files already
on disk), the DataLoader and its augmentations.

Every labelled loader returns (x_train, y_train), (x_test, y_test): x float32 in NCHW layout (images scaled to
[0, 1]), y int64. Nothing here ever downloads anything."""
from .augment import GaussianNoise, RandomCrop, RandomFlip, RandomRotation, RandomShift
from .datasets import load_digits, load_mnist1d, load_mnist_5k, sample_image, stratified_split
from .loader import DataLoader
from .readers import (CIFAR10_CLASSES, FASHION_MNIST_CLASSES, load_cifar10, load_fashion_mnist, load_idx_pair,
                      read_cifar10_batch, read_idx)
from .synthetic import (COLOUR_SHAPE_CLASSES, SHAPE_CLASSES, blobs, circles, colour_shape_images, noisy_sinusoid,
                        shape_images, to_grayscale, two_moons)

__all__ = ["shape_images", "SHAPE_CLASSES", "colour_shape_images", "COLOUR_SHAPE_CLASSES", "to_grayscale",
           "noisy_sinusoid", "two_moons", "circles", "blobs",
           "load_digits", "load_mnist_5k", "load_mnist1d", "sample_image", "stratified_split",
           "read_idx", "load_idx_pair", "load_fashion_mnist", "FASHION_MNIST_CLASSES",
           "read_cifar10_batch", "load_cifar10", "CIFAR10_CLASSES",
           "DataLoader", "RandomFlip", "RandomShift", "RandomCrop", "RandomRotation", "GaussianNoise"]
