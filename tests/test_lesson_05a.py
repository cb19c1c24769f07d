"""Lesson 05a on CIFAR-10's path: given the binary batches (tiny ones written here, in the format load_cifar10
reads: records of 1 label byte + 3·32·32 pixel bytes), the lesson trains on them instead of the generated images —
found through the GRAPHNET_CIFAR10 environment variable or --cifar-root. Nothing is downloaded.
(tests/test_tutorials.py and tests/test_notebooks.py run the lesson on its generated data.)"""
import os
import pathlib
import re
import subprocess
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
LESSON = ROOT / "tutorials" / "05a_colour_images_cifar.py"
FILES = [f"data_batch_{k}.bin" for k in range(1, 6)] + ["test_batch.bin"]


def tiny_cifar(parent, per_file=12):
    """cifar-10-batches-bin/ with `per_file` records in each of the six files; each image a flat colour that
    depends on its label, plus noise."""
    folder = parent / "cifar-10-batches-bin"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in FILES:
        labels = rng.integers(0, 10, size=per_file).astype(np.uint8)
        colours = np.stack([labels * 25, 255 - labels * 25, (labels % 3) * 100], axis=1)       # (n, 3)
        pixels = np.repeat(colours, 1024, axis=1) + rng.integers(0, 20, size=(per_file, 3072))
        records = np.concatenate([labels[:, None], np.clip(pixels, 0, 255).astype(np.uint8)], axis=1)
        (folder / name).write_bytes(records.tobytes())
    return folder


def run_lesson(tmp_path, *flags, **environment):
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MPLBACKEND="Agg")
    env.pop("GRAPHNET_CIFAR10", None)                   # a CIFAR-10 of the tester's own must not change the test
    env.update(environment)
    return subprocess.run([sys.executable, str(LESSON), "--quick", "--out", str(tmp_path / "figures"), *flags],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_the_lesson_trains_on_cifar10_files_named_by_the_environment(tmp_path):
    folder = tiny_cifar(tmp_path)
    result = run_lesson(tmp_path, GRAPHNET_CIFAR10=str(tmp_path))          # the folder holding the batches
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"CIFAR-10: {5 * 12} training and 12 test images of (3, 32, 32), 10 classes" in result.stdout
    assert re.search(r"^RESULT CIFAR-10: test accuracy colour [\d.]+, grayscale [\d.]+", result.stdout, flags=re.M)
    assert "shape right" not in result.stdout                      # that measure is for the generated set only
    figures = re.findall(r"^FIGURE (.+)$", result.stdout, flags=re.M)
    assert len(figures) == 3 and all(pathlib.Path(f).is_file() for f in figures)
    assert folder.is_dir()


def test_cifar_root_names_the_folder_and_a_wrong_one_is_an_error_that_says_what_is_missing(tmp_path):
    result = run_lesson(tmp_path, "--cifar-root", str(tmp_path / "nowhere"))
    assert result.returncode != 0
    assert "load_cifar10: data_batch_1.bin" in result.stderr and "cifar-10-batches-bin" in result.stderr
