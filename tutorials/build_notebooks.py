"""Build a Jupyter notebook from each lesson with jupytext: tutorials/NN_name.py -> NN_name.ipynb.

A lesson is a script in jupytext's "percent" format: each `# %%` line starts a cell. In its notebook
  * the module docstring is the first cell, in markdown: the lesson's title as a heading, then its text;
  * a cell's title (`# %% Data: ...`), with the comment lines right under it, becomes a markdown cell above the code;
  * `# %% [markdown]` cells stay markdown, and the code is the script's, line for line.

The notebooks import _lesson.py as the scripts do, so each is written beside it: into tutorials/, or into --out-dir
along with a copy of _lesson.py. They run unchanged in Jupyter or VS Code: kernel arguments are ignored, figures show
inline (and are written to <folder>/figures), and GRAPHNET_QUICK=1 in the kernel's environment selects the quick run.

    python tutorials/build_notebooks.py                           # every lesson -> tutorials/NN_name.ipynb
    python tutorials/build_notebooks.py 05_lenet5_mnist.py        # one lesson
    python tutorials/build_notebooks.py --out-dir notebooks       # elsewhere, with a copy of _lesson.py
    GRAPHNET_QUICK=1 python tutorials/build_notebooks.py --execute    # run each too, and keep its outputs
"""
import argparse
import ast
import pathlib
import re
import shutil

import jupytext
import nbformat

HERE = pathlib.Path(__file__).resolve().parent
HELPER = HERE / "_lesson.py"
KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
TITLED_CELL = re.compile(r"^# %% (?!\[)(?P<title>.+)$")        # `# %% Data: ...`, not `# %% [markdown]`


LESSON_PATTERN = "[0-9][0-9]*_*.py"        # 05_lenet5_mnist.py; a lesson inserted after 05 is 05a_....py


def lessons():
    """Every numbered lesson, in order (the course's order: 05_, then 05a_, then 06_)."""
    return sorted(HERE.glob(LESSON_PATTERN))


def markdown_from_docstring(doc):
    """The docstring as markdown: its first line a heading, the rest as written — except that lines indented deeper
    than the text they follow (a formula, a table, a command) become a code block, which keeps their line breaks
    where markdown would run them into one paragraph. A blank line ends a list."""
    title, *lines = doc.splitlines()
    markdown, block, text_indent = [f"# {title}"], [], 0
    for line in lines + [""]:
        indent = len(line) - len(line.lstrip())
        list_item = line.lstrip().startswith("* ")
        if line.strip() and indent > text_indent and not list_item:
            block.append(line)
            continue
        if block:
            markdown += code_block(block, text_indent)
            block = []
        if line.strip():
            text_indent = indent + 2 if list_item else indent      # the column this line's text starts at
        else:
            text_indent = 0                                         # a blank line ends a list
        markdown.append(line)
    return "\n".join(markdown).strip()


def code_block(lines, indent):
    """`lines` as a fenced code block starting at column `indent`, dedented to their least indented line."""
    least = min(len(line) - len(line.lstrip()) for line in lines)
    return [" " * indent + "```", *(" " * indent + line[least:] for line in lines), " " * indent + "```"]


def as_comments(text):
    """Markdown as jupytext writes it in a script: each line a comment."""
    return "\n".join(f"# {line}".rstrip() for line in text.splitlines())


def percent_script(source):
    """The lesson's source rewritten for jupytext: its docstring and its cell titles as `# %% [markdown]` cells."""
    tree = ast.parse(source)
    lines, out = source.splitlines(), []
    doc = ast.get_docstring(tree)
    if doc is not None:
        out.append("# %% [markdown]\n" + as_comments(markdown_from_docstring(doc)) + "\n")
        lines = lines[tree.body[0].end_lineno:]                    # the code after the docstring
    i = 0
    while i < len(lines):
        title = TITLED_CELL.match(lines[i])
        i += 1
        if not title:
            out.append(lines[i - 1])
            continue
        text = [f"## {title['title']}", ""]
        while i < len(lines) and lines[i].startswith("#") and not lines[i].startswith("# %%"):
            text.append(re.sub(r"^# ?", "", lines[i]))              # the comments under the title: its prose
            i += 1
        out += ["# %% [markdown]", as_comments("\n".join(text).strip()), "", "# %%"]
    return "\n".join(out) + "\n"


def notebook_from_script(script):
    """The notebook of one lesson, without outputs."""
    notebook = jupytext.reads(percent_script(pathlib.Path(script).read_text()), fmt="py:percent")
    notebook.metadata = {"kernelspec": dict(KERNELSPEC), "language_info": {"name": "python"}}
    for number, cell in enumerate(notebook.cells):
        cell.metadata, cell.id = {}, f"cell-{number}"        # the same notebook from the same script, every time
    return notebook


def write_notebook(script, out_dir=HERE):
    """Write <out_dir>/<lesson>.ipynb (and a copy of _lesson.py beside it, where it is not there); return its path."""
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if out_dir.resolve() != HERE:
        shutil.copy(HELPER, out_dir / HELPER.name)
    path = out_dir / f"{pathlib.Path(script).stem}.ipynb"
    nbformat.write(notebook_from_script(script), path)
    return path


def execute(notebook, folder, timeout=600):
    """Run a notebook from `folder` in a fresh kernel of the Python running this; its outputs fill it in place.

    `timeout` is per cell, in seconds. A cell that fails raises nbclient's CellExecutionError."""
    from jupyter_client import KernelManager
    from jupyter_client.kernelspec import KernelSpecManager
    from nbclient import NotebookClient

    # Jupyter's built-in "python3" kernel is this very interpreter. kernel_dirs=[] looks nowhere else: a "python3"
    # kernel installed elsewhere (for the user, say) may be another Python, without graphnet.
    kernel = KernelManager(kernel_name="python3", kernel_spec_manager=KernelSpecManager(kernel_dirs=[]))
    NotebookClient(notebook, km=kernel, timeout=timeout, resources={"metadata": {"path": str(folder)}}).execute()
    return notebook


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lessons", nargs="*", type=pathlib.Path, help="lesson scripts (default: every lesson)")
    parser.add_argument("--out-dir", type=pathlib.Path, default=HERE, help="where to write the notebooks "
                                                                           "(default: tutorials/, beside the lessons)")
    parser.add_argument("--execute", action="store_true", help="run each notebook and keep its outputs "
                                                               "(GRAPHNET_QUICK=1 for the quick runs)")
    args = parser.parse_args()
    for script in args.lessons or lessons():
        script = script if script.exists() else HERE / script.name
        path = write_notebook(script, args.out_dir)
        print(f"wrote {path}")
        if args.execute:
            nbformat.write(execute(nbformat.read(path, as_version=4), path.parent), path)
            print(f"ran {path}")


if __name__ == "__main__":
    main()
