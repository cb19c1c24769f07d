"""What every lesson shares: its command-line flags, where figures go, and the lines it prints at the end.

Each lesson prints, as its last lines,

    LOSS <first> -> <last>          the training loss at the start and at the end
    FIGURE <path>                   one line per PNG written
    RESULT <what was measured>      the lesson's result, e.g. "test accuracy 0.973"

so that a reader sees the outcome at a glance and the test suite can check that each lesson learned something and
wrote its figures.
"""
import argparse
import pathlib

import matplotlib

matplotlib.use("Agg")                      # figures go to PNG files; no window is ever opened
import matplotlib.pyplot as plt            # noqa: E402  (after choosing the backend)

HERE = pathlib.Path(__file__).resolve().parent


def parse_args(doc, epochs, **extra):
    """The flags every lesson takes: --device, --epochs, --quick (a tiny run for CI) and --out (figure folder).

    `extra` adds lesson-specific flags as name=(type, default, help)."""
    parser = argparse.ArgumentParser(description=doc.strip().splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto", "reference"),
                        help="backend: cpu (default), cuda, auto (cuda where a GPU is usable, else cpu) or reference")
    parser.add_argument("--epochs", type=int, default=epochs, help=f"training epochs (default {epochs})")
    parser.add_argument("--quick", action="store_true", help="a tiny run: little data, one short epoch (CI)")
    parser.add_argument("--out", type=pathlib.Path, default=HERE / "figures", help="folder for the PNG figures")
    for name, (kind, default, text) in extra.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=kind, default=default, help=text)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    return args


class Lesson:
    """Collects the figures a lesson writes and prints the closing LOSS / FIGURE / RESULT lines."""

    def __init__(self, args, name):
        self.args, self.name, self.figures = args, name, []

    def save(self, figure, stem):
        """Save a matplotlib figure as <out>/<lesson name>_<stem>.png and close it."""
        path = self.args.out / f"{self.name}_{stem}.png"
        figure.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(figure)
        self.figures.append(path)
        print(f"wrote {path}")
        return path

    def finish(self, first_loss, last_loss, result):
        print(f"LOSS {first_loss:.6f} -> {last_loss:.6f}")
        for path in self.figures:
            print(f"FIGURE {path}")
        print(f"RESULT {result}")
