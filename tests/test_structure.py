"""The shape of the package itself: which graphnet module imports which.

Only *module-level* imports count (those that run when the module is imported: at the top, or in an `if`, `try`
or class body there). An import inside a function runs when the function is called, after every module is loaded:
that is how a circle is broken on purpose, so it is not an edge here. An edge goes to the module an import names:
`from .graph import Graph` and `from . import graph` both point at graphnet.graph, `from .ops import *` at the
package graphnet.ops (its __init__); the parent packages Python loads on the way are not counted.
"""
import ast
import pathlib

import graphnet

ROOT = pathlib.Path(graphnet.__file__).parent


def module_name(path):
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def module_level_imports(tree):
    """The Import and ImportFrom statements that run at import time (not those inside a function)."""
    stack = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            stack.extend(ast.iter_child_nodes(node))


def import_graph():
    """{module: {graphnet modules it imports at module level}} for every graphnet/**/*.py."""
    files = {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}
    modules = set(files)
    graph = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = set()
        for statement in module_level_imports(ast.parse(path.read_text(), str(path))):
            if isinstance(statement, ast.Import):
                targets = [alias.name for alias in statement.names]
            else:
                base = package
                for _ in range(statement.level - 1):
                    base = base.rpartition(".")[0]
                if statement.level:
                    base = ".".join(filter(None, [base, statement.module]))
                else:
                    base = statement.module
                # `from base import x`: the submodule base.x where there is one, else base itself
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                           for alias in statement.names]
            edges.update(t for t in targets if t in modules and t != name)
        graph[name] = edges
    return graph


def find_cycle(graph):
    """One import circle as [a, b, ..., a], or None (a depth-first search for a back edge)."""
    state, path = {}, []

    def visit(node):
        state[node] = "open"
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                return path[path.index(target):] + [target]
            if target not in state:
                found = visit(target)
                if found:
                    return found
        state[node] = "done"
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_import_graph_sees_the_package():
    graph = import_graph()
    assert "graphnet.graph" in graph["graphnet.compiler"]
    assert "graphnet.program" in graph["graphnet.compiler"]
    assert "graphnet.ops" in graph["graphnet"]                      # from .ops import *
    assert "graphnet.checkpoint" in graph["graphnet.nn.model"]      # from .. import checkpoint
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_module_level_import_circle_inside_graphnet():
    """A circle of module-level imports works or fails by the order modules are first imported in; break one by
    moving the shared piece to a third module, passing it as an argument, or importing inside the function."""
    cycle = find_cycle(import_graph())
    assert cycle is None, "module-level import circle: " + " -> ".join(cycle)
