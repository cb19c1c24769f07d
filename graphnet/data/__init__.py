"""Data sets that need no download: generated here, or shipped inside installed packages."""
from .synthetic import shape_images

__all__ = ["shape_images"]
