"""Every lesson works as a notebook, as a student opens it in Jupyter or VS Code.

tutorials/build_notebooks.py turns each lesson script into a notebook with jupytext: the docstring and the cell
titles become markdown, the code stays the script's. Each notebook is then run headless the way Jupyter runs it
(nbformat -> nbclient -> an ipykernel kernel of this Python), in quick mode through GRAPHNET_QUICK=1 — the only
way to ask for it, since a kernel takes no flags of ours — and must end with its RESULT line and show every figure
it writes inline, as the very PNG file written.
"""
import base64
import importlib
import pathlib
import re
import subprocess
import sys

import nbformat
import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
TUTORIALS = ROOT / "tutorials"
sys.path.insert(0, str(TUTORIALS))
build_notebooks = importlib.import_module("build_notebooks")
lesson_helper = importlib.import_module("_lesson")

LESSONS = build_notebooks.lessons()
KERNEL_ARGV = ["/venv/lib/python3/site-packages/ipykernel_launcher.py", "-f", "/tmp/kernel-1234.json",
               "--HistoryManager.hist_file=:memory:"]          # what sys.argv holds inside a Jupyter kernel


def code_lines(text):
    """The lines of Python code in `text`: no blank lines, no comments (cell markers and prose)."""
    return [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


# --- the helper every lesson imports: flags in a kernel --------------------------------------------------------

@pytest.mark.parametrize("quick", ["1", "0", None])
def test_in_a_kernel_its_arguments_are_ignored_and_GRAPHNET_QUICK_selects_the_quick_run(quick, monkeypatch, tmp_path):
    monkeypatch.setattr(lesson_helper, "IN_NOTEBOOK", True)
    monkeypatch.setattr(sys, "argv", KERNEL_ARGV)
    if quick is None:
        monkeypatch.delenv("GRAPHNET_QUICK", raising=False)
    else:
        monkeypatch.setenv("GRAPHNET_QUICK", quick)
    monkeypatch.setattr(lesson_helper, "HERE", tmp_path)        # the default --out folder: <HERE>/figures
    args = lesson_helper.parse_args("A lesson.", epochs=7, shots=(int, 50, "examples per class"))
    assert args.quick is (quick == "1")
    assert (args.device, args.epochs, args.shots, args.out) == ("cpu", 7, 50, tmp_path / "figures")
    assert args.out.is_dir()


def test_in_a_kernel_flags_given_to_run_still_count(monkeypatch, tmp_path):
    """`%run 05_lenet5_mnist.py --epochs 3 --device reference` in a notebook: sys.argv is the script's."""
    monkeypatch.setattr(lesson_helper, "IN_NOTEBOOK", True)
    monkeypatch.setattr(sys, "argv", ["05_lenet5_mnist.py", "--epochs", "3", "--device", "reference",
                                      "--out", str(tmp_path)])
    monkeypatch.delenv("GRAPHNET_QUICK", raising=False)
    args = lesson_helper.parse_args("A lesson.", epochs=20)
    assert (args.epochs, args.device, args.quick, args.out) == (3, "reference", False, tmp_path)


def test_a_script_still_refuses_arguments_it_does_not_know(monkeypatch, capsys):
    monkeypatch.setattr(lesson_helper, "IN_NOTEBOOK", False)
    monkeypatch.setattr(sys, "argv", KERNEL_ARGV)
    with pytest.raises(SystemExit):
        lesson_helper.parse_args("A lesson.", epochs=7)
    assert "unrecognized arguments: -f" in capsys.readouterr().err


def test_a_script_is_not_taken_for_a_notebook():
    import ipykernel  # noqa: F401  (loaded, as jupyter_client loads it to find the kernel, but no kernel runs)
    assert lesson_helper.in_a_kernel() is False


# --- building: jupytext, with the lesson's text as markdown -----------------------------------------------------

def test_the_builder_makes_markdown_of_the_docstring_the_titles_and_markdown_cells(tmp_path):
    script = tmp_path / "99_example.py"
    script.write_text('''"""Lesson 99 — an example.

What this teaches:
  * a rule, written as a formula:
        w ← w − η·g
  * a second point.

    python tutorials/99_example.py --quick
"""
# %%
import numpy as np

# %% Data: two numbers
# They are small.
x = np.arange(2)

# %% [markdown]
# Some *markdown* of the lesson's own.

# %%
print(x)
''')
    cells = build_notebooks.notebook_from_script(script).cells
    assert [cell.cell_type for cell in cells] == ["markdown", "code", "markdown", "code", "markdown", "code"]
    assert cells[0].source == ("# Lesson 99 — an example.\n\nWhat this teaches:\n  * a rule, written as a formula:\n"
                               "    ```\n    w ← w − η·g\n    ```\n  * a second point.\n\n"
                               "```\npython tutorials/99_example.py --quick\n```")
    assert cells[1].source == "import numpy as np"
    assert cells[2].source == "## Data: two numbers\n\nThey are small."
    assert cells[3].source == "x = np.arange(2)"
    assert cells[4].source == "Some *markdown* of the lesson's own."
    assert cells[5].source == "print(x)"


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda path: path.stem)
def test_each_notebook_reads_as_the_lesson_with_the_scripts_code(lesson):
    notebook = build_notebooks.notebook_from_script(lesson)
    nbformat.validate(notebook)
    source = lesson.read_text()
    title = source.split('"""')[1].splitlines()[0]
    assert notebook.cells[0].cell_type == "markdown" and notebook.cells[0].source.startswith(f"# {title}\n")
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert not any(cell.source.lstrip().startswith(('"""', "'''")) for cell in code), "a docstring left as code"
    assert code_lines("\n".join(cell.source for cell in code)) == code_lines(source.split('"""', 2)[2])
    headings = [cell.source.splitlines()[0] for cell in notebook.cells
                if cell.cell_type == "markdown" and cell.source.startswith("## ")]
    assert headings == [f"## {t}" for t in re.findall(r"^# %% (?!\[)(.+)$", source, flags=re.M)]
    assert notebook.metadata.kernelspec.name == "python3"


def test_the_builder_writes_notebooks_beside_a_copy_of_the_helper(tmp_path):
    result = subprocess.run([sys.executable, str(TUTORIALS / "build_notebooks.py"), "02_mlp_regression.py",
                             "--out-dir", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == ["02_mlp_regression.ipynb", "_lesson.py"]
    assert (tmp_path / "_lesson.py").read_text() == (TUTORIALS / "_lesson.py").read_text()
    nbformat.validate(nbformat.read(tmp_path / "02_mlp_regression.ipynb", as_version=4))


# --- running: every lesson as a notebook, headless --------------------------------------------------------------

@pytest.mark.parametrize("lesson", LESSONS, ids=lambda path: path.stem)
def test_lesson_runs_as_a_notebook_and_shows_its_figures_inline(lesson, tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHNET_QUICK", "1")                   # the kernel inherits this process's environment
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.delenv("MPLBACKEND", raising=False)            # the kernel picks its own backend, as in Jupyter
    path = build_notebooks.write_notebook(lesson, tmp_path)    # with _lesson.py: figures go to tmp_path/figures
    notebook = nbformat.read(path, as_version=4)
    notebook.cells.append(nbformat.v4.new_code_cell("print('QUICK', args.quick)"))    # a probe, after the lesson
    build_notebooks.execute(notebook, tmp_path, timeout=300)  # a failing cell raises CellExecutionError

    *lesson_cells, probe = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert [o.text for o in probe.outputs] == ["QUICK True\n"], "GRAPHNET_QUICK=1 did not select the quick run"
    outputs = [output for cell in lesson_cells for output in cell.outputs]
    stdout = "".join(o.text for o in outputs if o.output_type == "stream" and o.name == "stdout")
    assert stdout.strip().splitlines()[-1].startswith("RESULT "), \
        f"{lesson.name} did not end with its RESULT line:\n{stdout[-2000:]}"

    figures = [pathlib.Path(p) for p in re.findall(r"^FIGURE (.+)$", stdout, flags=re.M)]
    shown = [base64.b64decode(o.data["image/png"]) for o in outputs if "image/png" in o.get("data", {})]
    assert figures, f"{lesson.name} wrote no figure"
    assert all(figure.parent == tmp_path / "figures" for figure in figures), figures
    assert shown == [figure.read_bytes() for figure in figures], \
        f"{lesson.name}: the figures shown inline are not the {len(figures)} PNG files it wrote"
