"""The engine's imports follow the pipeline: cli → runner → stages → shared base, never back.

Every import in ``core/``, ``plugins/`` and ``connectors/`` (function-level ones included: a
lazy import is still a dependency) is parsed with :mod:`ast` and checked against the layer
order below, and the module graph must have no cycle. A reversed import fails here with the
file, the line and the two layers, before it can grow into a circle.
"""

from __future__ import annotations

import ast
import subprocess
import textwrap
from pathlib import Path

import pytest
from conftest import REPO

FOLDERS = {"core": "segsync.core", "plugins": "segsync.plugins", "connectors": "segsync.connectors"}

#: The shared base: what every stage may import. The connector kit belongs here because
#: connectors (plugins) may import nothing else of the engine.
BASE = {
    "segsync.core", "segsync.core.errors", "segsync.core.settings", "segsync.core.store",
    "segsync.core.migrations", "segsync.core.connector", "segsync.core.records",
    "segsync.core.http", "segsync.core.retry", "segsync.core.jobs", "segsync.core.files",
    "segsync.core.runs", "segsync.core.alerts",
}
#: Later layers may import earlier ones, never the reverse.
LAYERS = [
    ("base", lambda m: m in BASE or m.startswith("segsync.plugins")),
    ("connectors", lambda m: m.startswith("segsync.connectors")),
    ("ingest", lambda m: m.startswith("segsync.core.ingest")),
    ("measure", lambda m: m.startswith("segsync.core.measure")),
    ("segment", lambda m: m.startswith("segsync.core.segment")),
    ("sync", lambda m: m.startswith("segsync.core.sync")),
    ("report", lambda m: m.startswith("segsync.core.report")),
    ("runner", lambda m: m in ("segsync.core.runner", "segsync.core.testing")),
    ("cli", lambda m: m.startswith("segsync.core.cli")),
    ("main", lambda m: m == "segsync.core.__main__"),
]
#: The old-path shim imports the moved modules by name only, at the caller's request.
EXEMPT = {"segsync.core._moved"}


def module_name(path: Path, root: Path) -> str:
    rel = path.relative_to(root)
    parts = [FOLDERS[rel.parts[0]], *rel.parts[1:]]
    parts[-1] = parts[-1].removesuffix(".py")
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> int:
    for i, (_, test) in enumerate(LAYERS):
        if test(module):
            return i
    raise AssertionError(f"{module} belongs to no layer; add it to LAYERS in {__file__}")


def parse_tree(root: Path) -> tuple[dict[str, Path], dict[str, list[tuple[str, int]]]]:
    """Every module under ``root``'s folders and, per module, ``(imported module, line)``."""
    paths = {
        module_name(p, root): p
        for folder in FOLDERS if (root / folder).is_dir()
        for p in sorted((root / folder).rglob("*.py"))
        if "build" not in p.relative_to(root).parts
    }
    imports: dict[str, list[tuple[str, int]]] = {}
    for module, path in paths.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        found = []
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found += [(a.name, node.lineno) for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                # ``from pkg import mod`` depends on the submodule; on the package itself only
                # when it also takes names the package defines.
                submodules = [f"{target}.{a.name}" for a in node.names
                              if f"{target}.{a.name}" in paths]
                if len(submodules) < len(node.names):
                    found.append((target, node.lineno))
                found += [(m, node.lineno) for m in submodules]
        imports[module] = [(t, line) for t, line in found if t in paths and t != module]
    return paths, imports


def layer_violations(root: Path) -> list[str]:
    paths, imports = parse_tree(root)
    problems = []
    for module, targets in imports.items():
        if module in EXEMPT:
            continue
        here = layer_of(module)
        for target, line in targets:
            if target in EXEMPT:  # installed by segsync.core itself, imported by nobody else
                if module != "segsync.core":
                    problems.append(f"{paths[module].relative_to(root)}:{line}: {module} "
                                    "imports the old-path shim")
                continue
            there = layer_of(target)
            # Packages of one layer are peers only within themselves (connectors never import
            # each other; a stage package is one layer).
            peers = here == there and (
                LAYERS[here][0] != "connectors"
                or target.split(".")[:3] == module.split(".")[:3]
                or target == "segsync.connectors"
            )
            if there > here or (here == there and not peers):
                problems.append(
                    f"{paths[module].relative_to(root)}:{line}: {module} ({LAYERS[here][0]}) "
                    f"imports {target} ({LAYERS[there][0]})"
                )
    return problems


def import_cycles(root: Path) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), i.e. import circles.

    A package's ``__init__`` importing its own submodules is not a circle by itself; one only
    forms when a submodule also imports back through the package's front door.
    """
    _, imports = parse_tree(root)
    graph = {m: sorted({t for t, _ in targets if t not in EXEMPT})
             for m, targets in imports.items() if m not in EXEMPT}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
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
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def test_imports_follow_the_pipeline():
    assert layer_violations(REPO) == []


def test_no_import_circles():
    assert import_cycles(REPO) == []


def test_nothing_imports_the_cli_but_the_cli():
    _, imports = parse_tree(REPO)
    offenders = [m for m, targets in imports.items()
                 if not m.startswith("segsync.core.cli") and m != "segsync.core.__main__"
                 and any(t.startswith("segsync.core.cli") for t, _ in targets)]
    assert offenders == []


def test_no_bare_folder_imports():
    """``core``, ``plugins`` and ``connectors`` are packages only as ``segsync.*``: ``import
    core`` works by accident under ``python -m pytest`` and loads every module twice."""
    offenders = []
    tracked = subprocess.run(["git", "ls-files", "*.py"], cwd=REPO, capture_output=True,
                             text=True, check=True).stdout.split()
    for rel in map(Path, tracked):
        path = REPO / rel
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) and not node.level
                     else [])
            offenders += [f"{rel}:{node.lineno}: {n}" for n in names
                          if n and n.split(".")[0] in FOLDERS]
    assert offenders == []


# The checks above must be able to fail: on a small tree with a deliberately reversed import
# and a circle, they report exactly those.

def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return tmp_path


@pytest.fixture
def small_tree(tmp_path):
    return _tree(tmp_path, {
        "core/__init__.py": "",
        "core/errors.py": "",
        "core/ingest/__init__.py": "from .pull import pull\n",
        "core/ingest/pull.py": "from ..errors import X\n",
        "core/sync/__init__.py": "",
        "core/sync/push.py": "from ..ingest import pull\n",
        "core/cli/__init__.py": "from ..sync import push\n",
    })


def test_the_checker_accepts_a_tree_in_order(small_tree):
    assert layer_violations(small_tree) == []
    assert import_cycles(small_tree) == []


def test_the_checker_reports_a_reversed_import(small_tree):
    (small_tree / "core/ingest/pull.py").write_text(
        "from ..errors import X\n\ndef later():\n    from ..sync.push import push\n")
    assert layer_violations(small_tree) == [
        "core/ingest/pull.py:4: segsync.core.ingest.pull (ingest) imports "
        "segsync.core.sync.push (sync)"
    ]


def test_the_checker_reports_an_import_of_the_cli(small_tree):
    (small_tree / "core/runner.py").write_text("from .cli import main\n")
    assert layer_violations(small_tree) == [
        "core/runner.py:1: segsync.core.runner (runner) imports segsync.core.cli (cli)"
    ]


def test_the_checker_reports_a_circle(small_tree):
    (small_tree / "core/ingest/writer.py").write_text("from . import pull\n")
    (small_tree / "core/ingest/pull.py").write_text("from .writer import W\n")
    assert import_cycles(small_tree) == [
        ["segsync.core.ingest.pull", "segsync.core.ingest.writer"]
    ]


def test_connectors_do_not_import_each_other(small_tree):
    _tree(small_tree, {
        "connectors/__init__.py": "",
        "connectors/a/__init__.py": "from segsync.connectors.b import thing\n",
        "connectors/b/__init__.py": "",
    })
    assert layer_violations(small_tree) == [
        "connectors/a/__init__.py:1: segsync.connectors.a (connectors) imports "
        "segsync.connectors.b (connectors)"
    ]
