"""Data sets that need no download (generated here, or shipped inside installed packages), the DataLoader and
its augmentations."""
from .augment import GaussianNoise, RandomCrop, RandomFlip, RandomRotation, RandomShift
from .loader import DataLoader
from .synthetic import shape_images

__all__ = ["shape_images", "DataLoader", "RandomFlip", "RandomShift", "RandomCrop", "RandomRotation",
           "GaussianNoise"]
