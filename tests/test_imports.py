"""The layout holds (DESIGN.md, "Layout"): no part imports what its row of the layout table says it
must never import, the rooms of onboard/, ground/ and hil/ import only rooms below them, and no part
has an import cycle. Every import counts: at the top, inside a function, or for type checking only."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tests.conftest import ROOT

DESIGN = ROOT.parent / "shared" / "DESIGN.md"
PARTS = ("onboard", "ground", "models", "hil")
# What a name in the table's "must never import" column stands for, as top-level modules.
MODULES_OF = {"tensorflow": ("tensorflow", "tf_keras", "tensorflow_model_optimization")}

# The rooms of a part from the bottom up: a module imports only modules of its own room or of a room
# below it. A module's room is its first name under the part (onboard.run.plan: run); the part's
# __init__ sits at the bottom.
ROOMS = {
    "onboard": [
        {"__init__", "errors", "files", "schema", "progress", "_native"},
        {"contracts"},  # manifest, product, tile grid, bundle, CCSDS
        {"scenes"},  # the scene and a reader per format
        {"inference"},  # model loading, TFLite file, pre-processing, screening, scoring kernels, bench
        {"run"},  # budgets, boards, the plan, the strip loop
        {"store"},
        {"service"},  # config, spool, telemetry, loop
        {"link"},  # the payload's end: framing, sealing, port, endpoint, files, slots, commands
        {"cli"},
    ],
    "ground": [
        {"__init__", "errors", "tf"},
        {"cluster"},  # jobs that write one folder each, run by a process pool or as SLURM job arrays
        {"datasets"},  # loaders, patch sets, synthetic patches and scenes
        {"training"},  # architectures, train, prune, distil, QAT
        {"conversion", "downlink"},  # convert, metrics, evaluate, preflight; decode, render, packets
        {"simulator"},  # config, orbit, geometry, payload, report
        {"pipeline"},  # steps, study, demo
        {"zoo", "nas"},  # model zoos; the NAS database and its landscape
        {"cli"},
    ],
    "hil": [
        {"__init__", "errors", "table"},
        {"link"},  # the ground's end: client, transfers
        {"boards"},  # profiles, transports (local, SSH, serial), power meters
        {"emulated"},  # the emulated arm64 board: its root filesystem, its sshd, `hil emulate`
        {"deploy"},  # bundles with the runtime's wheels, deploy into A/B slots on trial, rollback
        {"bench"},  # benchmarks on a board through its transport, energy, reports, compare
        {"cli", "pytest_plugin"},  # the entry points: the commands, and the HIL tests' pytest plugin
    ],
}


def _layout_table() -> dict[str, set[str]]:
    """Part -> the top-level modules it must never import, read from DESIGN.md's layout table."""
    assert DESIGN.exists(), f"{DESIGN} is missing: the layout test reads the design in ../shared"
    never: dict[str, set[str]] = {}
    header = None
    for line in DESIGN.read_text().splitlines():
        if not line.startswith("|"):
            header = None if not line.strip() else header
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if header is None:
            header = [c.lower() for c in cells]
            continue
        if set("".join(cells)) <= set("-: "):
            continue
        row = dict(zip(header, cells))
        folder = re.fullmatch(r"`(\w+)/`", row.get("folder", ""))
        if not folder or folder.group(1) not in PARTS:
            continue
        names = set()
        for item in row["must never import"].split(","):
            word = re.sub(r"\(.*?\)", "", item).strip().strip("`").lower()
            if word and word not in ("—", "-"):
                names.update(MODULES_OF.get(word, (word,)))
        never[folder.group(1)] = names
    return never


def _modules(part: str) -> dict[str, Path]:
    """Module name -> file, for every module of a part."""
    found = {}
    for path in sorted((ROOT / part).rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The modules `name` imports: a known module where the import names one, else its full name."""
    is_package = path.name == "__init__.py"
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")[: len(name.split(".")) - node.level + is_package]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            for alias in node.names:
                child = f"{module}.{alias.name}"
                out.add(child if child in known else module)
    return out


def _graph() -> dict[str, set[str]]:
    modules = {name: path for part in PARTS for name, path in _modules(part).items()}
    known = set(modules)
    return {name: _imports(name, path, known) for name, path in modules.items()}


GRAPH = _graph()


def _room(part: str, module: str) -> int:
    rest = module.split(".")[1:] or ["__init__"]
    for level, rooms in enumerate(ROOMS[part]):
        if rest[0] in rooms:
            return level
    raise AssertionError(f"{module} lies in no room of {part}: add its room to ROOMS in {__file__}")


def test_the_layout_table_is_read():
    never = _layout_table()
    assert never["onboard"] >= {"tensorflow", "ground", "hil", "models"}
    assert never["hil"] >= {"tensorflow"}
    assert never["models"] >= {"onboard", "ground", "hil"}
    assert never["ground"] >= {"hil"}


@pytest.mark.parametrize("part", PARTS)
def test_no_part_imports_what_it_must_never_import(part):
    never = _layout_table()[part]
    if part == "hil":
        never = never | {"ground"}  # the link's ground end stands on onboard alone, never on the training side
    found = sorted(f"{module} imports {imported}" for module, imports in GRAPH.items()
                   if module.split(".")[0] == part for imported in imports if imported.split(".")[0] in never)
    assert not found, f"{part} must never import {sorted(never)}:\n" + "\n".join(found)


@pytest.mark.parametrize("part", sorted(ROOMS))
def test_every_module_lies_in_a_room(part):
    for module in _modules(part):
        _room(part, module)


@pytest.mark.parametrize("part", sorted(ROOMS))
def test_rooms_import_only_rooms_below_them(part):
    upward = []
    for module, imports in GRAPH.items():
        if module.split(".")[0] != part:
            continue
        for imported in imports:
            if imported.split(".")[0] == part and _room(part, imported) > _room(part, module):
                upward.append(f"{module} imports {imported}, a room above it")
    assert not upward, "\n".join(sorted(upward))


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of the graph, as its modules in order, or None."""
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


@pytest.mark.parametrize("part", PARTS)
def test_no_import_cycle_inside_a_part(part):
    inside = {m: {i for i in imports if i in GRAPH and i.split(".")[0] == part and i != m}
              for m, imports in GRAPH.items() if m.split(".")[0] == part}
    cycle = _cycle(inside)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_one():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
