"""pyrt's import graph: no cycles, counting the imports inside functions too (a cycle hidden in a
function is still a knot in the design: a module that needs another that needs it back), and
the command line's table names modules that exist."""

from __future__ import annotations

import ast
from pathlib import Path

PYRT = Path(__file__).resolve().parent.parent.parent / "pyrt"


def module_name(path: Path) -> str:
    parts = path.relative_to(PYRT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PYRT.rglob("*.py")}


def _type_checking_only(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def imports(path: Path, known: dict[str, Path]) -> set[str]:
    """The pyrt modules one module imports, anywhere in it (not under `if TYPE_CHECKING:`: never run)."""
    out: set[str] = set()
    todo = [ast.parse(path.read_text(), str(path))]
    while todo:
        node = todo.pop()
        if _type_checking_only(node):
            continue
        todo += ast.iter_child_nodes(node)
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        out.update(n for n in names if n in known and n != "pyrt")
    if path.is_relative_to(PYRT):
        out.discard(module_name(path))
    return out


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles():
    known = modules()
    graph = {name: imports(path, known) for name, path in known.items()}
    knots = cycles(graph)
    detail = ["  " + " <-> ".join(c) + ": " + "; ".join(f"{m} imports {', '.join(sorted(graph[m] & set(c)))}"
                                                          for m in c) for c in knots]
    assert not knots, "import cycles:\n" + "\n".join(detail)


def test_the_walk_sees_imports_inside_functions(tmp_path):
    """The walker itself: function-level imports count, TYPE_CHECKING ones do not."""
    (tmp_path / "m.py").write_text("TYPE_CHECKING = False\nif TYPE_CHECKING:\n    from pyrt import b\n\n\n"
                                   "def f():\n    from pyrt import a\n    import pyrt.c\n")
    known = {"pyrt.a": Path(), "pyrt.b": Path(), "pyrt.c": Path()}
    assert imports(tmp_path / "m.py", known) == {"pyrt.a", "pyrt.c"}
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_every_command_has_its_module():
    """cli.py's table names a module and function for each command (imported when it runs)."""
    from pyrt import cli

    known = modules()
    for cmd in cli.COMMANDS.values():
        module, _, func = cmd.handler.partition(":")
        assert module in known, cmd.name
        tree = ast.parse(known[module].read_text())
        assert func in {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}, cmd.handler
