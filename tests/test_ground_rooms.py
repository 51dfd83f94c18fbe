"""ground/ is built in rooms, and every import points down: a room imports only the rooms
listed before it (and itself), and no module of ground imports the ground modules that import it."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# From the bottom up; one entry may name several rooms of the same level.
ROOMS = [{"errors", "tf"}, {"datasets"}, {"training"}, {"conversion", "downlink"}, {"simulator"}, {"pipeline"}, {"cli"}]


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    """Each ground module and the ground modules it imports (at any depth of its code)."""
    graph = {}
    for path in sorted((ROOT / "ground").rglob("*.py")):
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else [])
            found |= {n for n in names if n.split(".")[0] == "ground" and n != "ground"}
        graph[_module(path)] = found
    return graph


def _level(module: str) -> int:
    room = module.split(".")[1]
    return next(i for i, rooms in enumerate(ROOMS) if room in rooms)


def test_every_module_is_in_a_room():
    assert {m.split(".")[1] for m in _imports() if m != "ground"} == set().union(*ROOMS)


def test_imports_point_down():
    upward = [(m, i) for m, found in _imports().items() if m != "ground" for i in found if _level(i) > _level(m)]
    assert not upward, upward


def test_no_import_cycle():
    graph = _imports()
    graph = {m: {i for i in found if i in graph} for m, found in graph.items()}
    done: set[str] = set()

    def visit(m: str, path: list[str]) -> None:
        assert m not in path, " -> ".join(path[path.index(m):] + [m])
        if m not in done:
            for i in graph[m]:
                visit(i, path + [m])
            done.add(m)

    for m in graph:
        visit(m, [])
