"""Every numbered lesson runs to the end in its quick mode, learns something, and writes its figures.

Each lesson tutorials/NN_*.py is run as a user would run it (`python tutorials/NN_name.py --quick --out DIR`) and
must end with the lines of tutorials/_lesson.py:

    LOSS <first> -> <last>      with last < first: the training loss fell
    FIGURE <path>               at least one, each a non-empty PNG inside DIR
    RESULT <text>

New lessons are picked up by their file name. tests/test_notebooks.py runs the same lessons as notebooks.
"""
import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
LESSONS = sorted((ROOT / "tutorials").glob("[0-9][0-9]*_*.py"))
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|nan|inf"


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda path: path.stem)
def test_lesson_runs_quickly_learns_and_writes_its_figures(lesson, tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MPLBACKEND="Agg")
    result = subprocess.run([sys.executable, str(lesson), "--quick", "--out", str(tmp_path)], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    output = result.stdout
    assert result.returncode == 0, f"{lesson.name} failed:\n{output[-3000:]}\n{result.stderr[-5000:]}"

    loss = re.search(rf"^LOSS ({NUMBER}) -> ({NUMBER})$", output, flags=re.M)
    assert loss, f"{lesson.name} printed no 'LOSS first -> last' line:\n{output[-2000:]}"
    first, last = float(loss.group(1)), float(loss.group(2))
    assert last < first, f"{lesson.name}: the loss did not fall ({first} -> {last})"

    figures = [pathlib.Path(p) for p in re.findall(r"^FIGURE (.+)$", output, flags=re.M)]
    assert figures, f"{lesson.name} wrote no figure"
    for figure in figures:
        assert figure.resolve().is_relative_to(tmp_path.resolve()), f"{figure} is not under --out {tmp_path}"
        assert figure.is_file() and figure.stat().st_size > 0, f"{figure} is missing or empty"
        assert figure.read_bytes()[:8] == PNG_MAGIC, f"{figure} is not a PNG"

    assert re.search(r"^RESULT \S", output, flags=re.M), f"{lesson.name} printed no RESULT line"


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda path: path.stem)
def test_every_lesson_ends_with_two_or_three_exercises_that_name_its_checkers(lesson):
    """One form for the whole course: the checkers in a cell titled "Exercises", then a last markdown cell of
    **Exercise N** paragraphs that say how to call each checker (tests/test_exercises_*.py try the checkers)."""
    from lesson_source import checkers, last_cell
    assert "\n# %% Exercises\n" in lesson.read_text(), f"{lesson.name}: no cell titled Exercises"
    text = last_cell(lesson.name)
    assert re.findall(r"^\*\*Exercise (\d)\b", text, flags=re.M) in (["1", "2"], ["1", "2", "3"]), text[:300]
    defined, named = set(checkers(lesson.name)), set(re.findall(r"`(check_exercise_\d+)\(", text))
    assert defined and defined == named, (defined, named)
