"""What every lesson shares: its command-line flags, where figures go, and the lines it prints at the end.

A lesson runs as a script (`python tutorials/05_lenet5_mnist.py --quick`) or as a notebook (Jupyter, VS Code, or
one built by build_notebooks.py). The two differ in two places, both handled here:

  * flags: a notebook has no command line of its own. The kernel's arguments (`-f kernel-1234.json`) are ignored,
    and GRAPHNET_QUICK=1 in the environment stands for --quick (it does in a script too);
  * figures: both write them to --out as PNG files; a notebook also shows each one inline, below its cell.

Each lesson prints, as its last lines,

    LOSS <first> -> <last>          the training loss at the start and at the end
    FIGURE <path>                   one line per PNG written
    RESULT <what was measured>      the lesson's result, e.g. "test accuracy 0.973"

so that a reader sees the outcome at a glance and the test suite can check that each lesson learned something and
wrote its figures.
"""
import argparse
import os
import pathlib
import sys

import matplotlib


def in_a_kernel():
    """True when a Jupyter kernel runs this code (Jupyter, VS Code, nbclient): IPython's shell there has a kernel."""
    ipython = sys.modules.get("IPython")
    return ipython is not None and getattr(ipython.get_ipython(), "kernel", None) is not None


IN_NOTEBOOK = in_a_kernel()
if not IN_NOTEBOOK:
    matplotlib.use("Agg")                          # a script writes PNG files and never opens a window
import matplotlib.pyplot as plt                    # noqa: E402  (after choosing the backend)

HERE = pathlib.Path(__file__).resolve().parent


def quick_from_environment():
    """GRAPHNET_QUICK=1 (any value but empty or 0) asks for the quick run where --quick cannot be passed."""
    return os.environ.get("GRAPHNET_QUICK", "") not in ("", "0")


def parse_args(doc, epochs, **extra):
    """The flags every lesson takes: --device, --epochs, --quick (a tiny run for CI) and --out (figure folder).

    `extra` adds lesson-specific flags as name=(type, default, help). In a notebook, the arguments the kernel was
    started with are not ours and are ignored (flags given to `%run lesson.py --quick` still count)."""
    parser = argparse.ArgumentParser(description=doc.strip().splitlines()[0],
                                     allow_abbrev=False)          # a kernel's flag never passes for one of ours
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto", "reference"),
                        help="backend: cpu (default), cuda, auto (cuda where a GPU is usable, else cpu) or reference")
    parser.add_argument("--epochs", type=int, default=epochs, help=f"training epochs (default {epochs})")
    parser.add_argument("--quick", action="store_true", default=quick_from_environment(),
                        help="a tiny run: little data, one short epoch (CI); GRAPHNET_QUICK=1 does the same")
    parser.add_argument("--out", type=pathlib.Path, default=HERE / "figures", help="folder for the PNG figures")
    for name, (kind, default, text) in extra.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=kind, default=default, help=text)
    if IN_NOTEBOOK:
        args, _kernel_arguments = parser.parse_known_args()
    else:
        args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    return args


class Lesson:
    """Collects the figures a lesson writes and prints the closing LOSS / FIGURE / RESULT lines."""

    def __init__(self, args, name):
        self.args, self.name, self.figures = args, name, []

    def save(self, figure, stem):
        """Save a matplotlib figure as <out>/<lesson name>_<stem>.png and close it; a notebook shows that PNG."""
        path = self.args.out / f"{self.name}_{stem}.png"
        figure.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(figure)
        self.figures.append(path)
        print(f"wrote {path}")
        if IN_NOTEBOOK:
            from IPython.display import Image, display
            display(Image(filename=str(path)))

    def finish(self, first_loss, last_loss, result):
        print(f"LOSS {first_loss:.6f} -> {last_loss:.6f}")
        for path in self.figures:
            print(f"FIGURE {path}")
        print(f"RESULT {result}")
