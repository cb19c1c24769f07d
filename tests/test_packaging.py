"""The package as a user receives it: the source distribution holds the Cython sources and nothing built, and a
wheel built from it alone has the cpu kernels and graphnet's OpenMP runtime, which load and run."""
import os
import subprocess
import sys
import tarfile
import textwrap
import zipfile

import pytest

import graphnet

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def build(*arguments, cwd=REPOSITORY):
    """python -m build / pip wheel without isolation: the build tools come from the test environment."""
    done = subprocess.run([sys.executable, "-m", *arguments], cwd=cwd, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


@pytest.fixture(scope="module")
def sdist(tmp_path_factory):
    out = tmp_path_factory.mktemp("sdist")
    build("build", "--sdist", "--no-isolation", "--outdir", str(out))
    (path,) = out.glob("graphnet-*.tar.gz")
    return path


def test_the_sdist_ships_the_kernel_sources_the_license_and_nothing_built(sdist):
    names = tarfile.open(sdist).getnames()
    kernels = sorted(os.path.basename(n) for n in names if "/graphnet/_ext/" in n and n.endswith(".pyx"))
    sources = sorted(n for n in os.listdir(os.path.join(REPOSITORY, "graphnet", "_ext")) if n.endswith(".pyx"))
    assert kernels == sources
    assert any(n.endswith("/graphnet/_ext/_buffers.pxd") for n in names)
    assert any(n.endswith("/LICENSE") for n in names)
    built = [n for n in names if n.endswith((".so", ".so.1", ".c"))]
    assert built == []
    assert os.path.basename(sdist) == f"graphnet-{graphnet.__version__}.tar.gz"       # one version


@pytest.mark.slow
def test_a_wheel_built_from_the_sdist_alone_has_working_cpu_kernels(sdist, tmp_path):
    unpacked = tmp_path / "source"
    with tarfile.open(sdist) as archive:
        archive.extractall(unpacked, filter="data")
    (source,) = unpacked.iterdir()
    build("pip", "wheel", "--no-deps", "--no-build-isolation", "--wheel-dir", str(tmp_path / "wheel"), str(source),
          cwd=tmp_path)
    (wheel,) = (tmp_path / "wheel").glob("graphnet-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "graphnet/_ext/libgraphnet_gomp.so.1" in names
    assert {"graphnet/pretrained/lenet5_mnist.npz", "graphnet/pretrained/lenet5_mnist.json"} <= set(names)
    assert sum(n.startswith("graphnet/_ext/") and n.endswith(".so") for n in names) == len(
        [n for n in os.listdir(os.path.join(REPOSITORY, "graphnet", "_ext")) if n.endswith(".pyx")])
    installed = tmp_path / "installed"
    zipfile.ZipFile(wheel).extractall(installed)
    for name in names:              # zipfile drops the execute bits a shared library needs on some systems
        if ".so" in name:
            os.chmod(installed / name, 0o755)
    check = textwrap.dedent("""
        import numpy as np, graphnet as gn
        assert gn.__file__.startswith(INSTALLED), gn.__file__
        from graphnet.backends import auto_device, get_backend
        assert get_backend("cpu").kernels and auto_device() == "cpu"
        with gn.Graph():
            x = gn.placeholder((None, 3))
            prog = gn.compile(gn.sum(gn.relu(x)), device="cpu")
        print(prog.run({x: np.array([[1.0, -2.0, 3.0]], np.float32)}))
    """).replace("INSTALLED", repr(str(installed)))
    env = dict(os.environ, PYTHONPATH=str(installed), NUMBA_ENABLE_CUDASIM="0")
    done = subprocess.run([sys.executable, "-c", check], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-1] == "4.0"


def test_setup_refuses_a_source_tree_without_the_kernel_sources(tmp_path):
    """A tree missing graphnet/_ext/*.pyx would build a package without kernels: setup.py stops and says why."""
    (tmp_path / "graphnet" / "_ext").mkdir(parents=True)
    with open(os.path.join(REPOSITORY, "setup.py")) as original:
        (tmp_path / "setup.py").write_text(original.read())
    done = subprocess.run([sys.executable, "setup.py", "--name"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode != 0
    assert "no Cython sources in graphnet/_ext" in done.stderr
