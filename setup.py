"""Builds the Cython kernels in graphnet/_ext (OpenMP, -O3); everything else is in pyproject.toml."""
import glob

import numpy
from Cython.Build import cythonize
from setuptools import Extension, find_packages, setup

extensions = [
    Extension(path[:-len(".pyx")].replace("/", "."), [path],
              include_dirs=[numpy.get_include()],
              define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
              extra_compile_args=["-O3", "-fopenmp"],
              extra_link_args=["-fopenmp"])
    for path in sorted(glob.glob("graphnet/_ext/*.pyx"))
]

setup(
    packages=find_packages(include=["graphnet", "graphnet.*"]),
    ext_modules=cythonize(extensions, compiler_directives={"language_level": 3}, build_dir="build"),
)
