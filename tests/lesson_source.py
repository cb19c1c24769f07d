"""Reading a lesson's source without running it (its training takes seconds to minutes): the exercise checkers
and the last cell. Shared by the tests of the lessons' exercises."""
import ast
import math
import pathlib
import re

import numpy as np

TUTORIALS = pathlib.Path(__file__).resolve().parent.parent / "tutorials"


def lesson_path(lesson):
    """tutorials/<lesson>, given as '05_lenet5_mnist' or '05_lenet5_mnist.py'."""
    return TUTORIALS / (lesson if lesson.endswith(".py") else f"{lesson}.py")


def checkers(lesson):
    """{name: function} of the lesson's top-level check_exercise_* functions, compiled from its syntax tree alone,
    with NumPy and math as their only globals — so a checker that leaned on the lesson's state would fail here."""
    path = lesson_path(lesson)
    tree = ast.parse(path.read_text(), filename=str(path))
    chosen = [node for node in tree.body
              if isinstance(node, ast.FunctionDef) and node.name.startswith("check_exercise_")]
    namespace = {"np": np, "math": math}
    exec(compile(ast.Module(body=chosen, type_ignores=[]), str(path), "exec"), namespace)
    return {node.name: namespace[node.name] for node in chosen}


def last_cell(lesson):
    """The text of the lesson's last cell, which must be a markdown cell, without its comment marks."""
    source = lesson_path(lesson).read_text()
    last = source.rsplit("# %%", 1)[1]
    assert last.startswith(" [markdown]\n"), f"{lesson}: the last cell is not a markdown cell"
    return "\n".join(re.sub(r"^# ?", "", line) for line in last.splitlines()[1:])
