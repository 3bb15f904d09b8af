"""The layout is the architecture: each runtime file imports only files below it, the
runtime knows nothing of modules or the command line, and modules know nothing of Ray."""

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _imports(path: Path) -> set[str]:
    """Every top-level package.module a file imports, anywhere in it (functions too)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def _runtime_graph() -> dict[str, set[str]]:
    files = {p.stem for p in (ROOT / "runtime").glob("*.py") if p.stem != "__init__"}
    return {
        stem: {n.split(".")[1] for n in _imports(ROOT / "runtime" / f"{stem}.py")
               if n.startswith("runtime.") and n.split(".")[1] in files} - {stem}
        for stem in files
    }  # fmt: skip


def test_runtime_files_import_only_files_below_them():
    graph = _runtime_graph()
    try:
        order = list(TopologicalSorter(graph).static_order())
    except CycleError as cycle:
        pytest.fail(f"runtime files import each other in a circle: {cycle.args[1]}")
    # The module API and the codec at the bottom, the driver's session on top.
    assert order.index("module") < order.index("host") < order.index("coordinator")
    assert order.index("coordinator") < order.index("session")
    assert not graph["module"] & {"session", "coordinator", "host"}
    assert not graph["codec"] - {"errors"}


@pytest.mark.parametrize(
    ("folder", "forbidden"), [("runtime", ("actors", "launch")), ("actors", ("launch", "ray"))]
)
def test_layers_do_not_reach_up(folder, forbidden):
    for path in (ROOT / folder).glob("*.py"):
        reached = {n for n in _imports(path) if n.split(".")[0] in forbidden}
        assert not reached, f"{path.name} imports {sorted(reached)}"
