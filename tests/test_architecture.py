"""The architecture as a test: no import cycles, imports only in the allowed direction, no
file too long to hold without a reason.

The rules (docs/architecture.md):

- No import cycle among the modules of the product's packages (every top-level directory
  with an ``__init__.py`` except ``tests``). Every import counts: those inside functions
  and under ``TYPE_CHECKING`` tie two modules together for the reader as much as any.
  ``import a.b`` counts as importing ``a.b`` (the deepest module named), not ``a``: a
  package's ``__init__`` that re-exports its own modules is not a cycle.
- ``adapters`` import neither ``hub`` nor ``simulators``; ``simulators`` import neither
  ``hub`` nor ``adapters``.
- A ``.py`` file over ``MAX_LINES`` lines says why in its module docstring, in a sentence
  starting "Long because".

The checker is this module's own ``ast`` code; the tests at the end prove on small trees in
``tmp_path`` that it finds each kind of breach.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOT_PRODUCT = frozenset({"tests"})
MAX_LINES = 600
LONG_REASON = "Long because"
FORBIDDEN: dict[str, frozenset[str]] = {
    "adapters": frozenset({"hub", "simulators"}),
    "simulators": frozenset({"hub", "adapters"}),
}
"""Top-level package → the top-level packages it must not import."""

KNOWN_LONG: frozenset[str] = frozenset()
"""The one list of files allowed over MAX_LINES without a reason, until they are split."""


@dataclass(frozen=True, slots=True)
class Module:
    name: str
    path: Path
    tree: ast.Module
    lines: int


def packages(root: Path) -> list[str]:
    """The product's top-level packages under ``root``."""
    return sorted(
        p.name
        for p in root.iterdir()
        if p.is_dir() and (p / "__init__.py").is_file() and p.name not in NOT_PRODUCT
    )


def modules(root: Path, pkgs: Iterable[str]) -> dict[str, Module]:
    out: dict[str, Module] = {}
    for pkg in pkgs:
        for path in sorted((root / pkg).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            text = path.read_text(encoding="utf-8")
            name = ".".join(parts)
            out[name] = Module(name, path, ast.parse(text, str(path)), len(text.splitlines()))
    return out


def _resolve(name: str, known: dict[str, Module]) -> str | None:
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def imports(mod: Module, known: dict[str, Module]) -> set[str]:
    """The modules of ``known`` that ``mod`` imports, wherever the import statement is."""
    is_package = mod.path.name == "__init__.py"
    package = mod.name if is_package else mod.name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(mod.tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            # ``from pkg import mod`` imports the module pkg.mod when there is one.
            names = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names
            ]
        for n in names:
            target = _resolve(n, known)
            if target is not None and target != mod.name:
                found.add(target)
    return found


def graph(root: Path, pkgs: Iterable[str]) -> tuple[dict[str, Module], dict[str, set[str]]]:
    known = modules(root, pkgs)
    return known, {name: imports(m, known) for name, m in known.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Groups of modules that import each other, directly or around a loop (Tarjan's
    strongly connected components of more than one module), iteratively."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    for start in sorted(edges):
        if start in index:
            continue
        work: list[tuple[str, list[str]]] = [(start, sorted(edges[start]))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            v, todo = work[-1]
            if todo:
                w = todo.pop()
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, sorted(edges.get(w, ()))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[v])
            if low[v] == index[v]:
                group = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    group.append(w)
                    if w == v:
                        break
                if len(group) > 1:
                    out.append(sorted(group))
    return out


def layer_breaches(edges: dict[str, set[str]]) -> list[str]:
    out = []
    for src, targets in sorted(edges.items()):
        banned = FORBIDDEN.get(src.split(".")[0], frozenset())
        out += [f"{src} imports {t}" for t in sorted(targets) if t.split(".")[0] in banned]
    return out


def unexplained_long_files(
    root: Path, known: dict[str, Module], allowed: frozenset[str] = frozenset()
) -> list[str]:
    out = []
    for m in known.values():
        rel = m.path.relative_to(root).as_posix()
        if m.lines <= MAX_LINES or rel in allowed:
            continue
        doc = ast.get_docstring(m.tree) or ""
        if LONG_REASON not in " ".join(doc.split()):
            out.append(f"{rel}: {m.lines} lines and no '{LONG_REASON} …' in its docstring")
    return out


# --- the product's tree ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def tree() -> tuple[dict[str, Module], dict[str, set[str]]]:
    return graph(ROOT, packages(ROOT))


def test_the_product_packages_are_found() -> None:
    assert {"hub", "adapters", "simulators", "patrol"} <= set(packages(ROOT))


def test_no_import_cycles(tree: tuple[dict[str, Module], dict[str, set[str]]]) -> None:
    _, edges = tree
    assert cycles(edges) == []


def test_imports_go_one_way(tree: tuple[dict[str, Module], dict[str, set[str]]]) -> None:
    _, edges = tree
    assert layer_breaches(edges) == []


def test_long_files_say_why(tree: tuple[dict[str, Module], dict[str, set[str]]]) -> None:
    known, _ = tree
    assert unexplained_long_files(ROOT, known, KNOWN_LONG) == []


def test_known_long_files_are_still_long(
    tree: tuple[dict[str, Module], dict[str, set[str]]],
) -> None:
    """An entry of KNOWN_LONG whose file was split (or explained) must leave the list."""
    known, _ = tree
    by_path = {m.path.relative_to(ROOT).as_posix(): m for m in known.values()}
    stale = [
        p
        for p in sorted(KNOWN_LONG)
        if p not in by_path
        or by_path[p].lines <= MAX_LINES
        or LONG_REASON in (ast.get_docstring(by_path[p].tree) or "")
    ]
    assert stale == []


# --- the checker finds what it should: small trees in tmp_path ---------------------------------


def write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def test_checker_finds_a_cycle_through_type_checking_and_a_function(tmp_path: Path) -> None:
    root = write(
        tmp_path,
        {
            "app/__init__.py": "",
            "app/a.py": (
                "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from app.b import B\n"
            ),
            "app/b.py": "def f():\n    from . import c\n",
            "app/c.py": "import app.a\n",
            "app/d.py": "from app import a\n",
        },
    )
    _, edges = graph(root, packages(root))
    assert cycles(edges) == [["app.a", "app.b", "app.c"]]


def test_checker_finds_a_two_module_cycle_and_ignores_package_reexports(tmp_path: Path) -> None:
    root = write(
        tmp_path,
        {
            "lib/__init__.py": "from lib.x import X\n",
            "lib/x.py": "from lib.y import helper\nX = 1\n",
            "lib/y.py": "def helper():\n    import lib.x\n",
            "other/__init__.py": "from lib import x\n",
        },
    )
    _, edges = graph(root, packages(root))
    assert edges["other"] == {"lib.x"}
    assert cycles(edges) == [["lib.x", "lib.y"]]


def test_checker_finds_forbidden_directions(tmp_path: Path) -> None:
    root = write(
        tmp_path,
        {
            "hub/__init__.py": "",
            "hub/app.py": "import adapters.drv\n",
            "adapters/__init__.py": "",
            "adapters/drv.py": "def f():\n    from hub import app\n",
            "adapters/ok.py": "import json\n",
            "simulators/__init__.py": "",
            "simulators/cam.py": "from adapters.ok import *\nimport simulators.other\n",
            "simulators/other.py": "",
            "tests/__init__.py": "import hub.app\n",
        },
    )
    assert packages(root) == ["adapters", "hub", "simulators"]
    _, edges = graph(root, packages(root))
    assert layer_breaches(edges) == [
        "adapters.drv imports hub.app",
        "simulators.cam imports adapters.ok",
    ]


def test_checker_finds_long_files_without_a_reason(tmp_path: Path) -> None:
    body = "x = 1\n" * MAX_LINES
    root = write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/short.py": '"""Short."""\n' + "x = 1\n" * (MAX_LINES - 1),
            "pkg/silent.py": '"""A module."""\n' + body,
            "pkg/explained.py": '"""A module.\n\nLong because it is one state machine.\n"""\n'
            + body,
            "pkg/wrapped.py": '"""A module. Long\nbecause one parser."""\n' + body,
            "pkg/allowed.py": body + "y = 2\n",
        },
    )
    known, _ = graph(root, packages(root))
    assert unexplained_long_files(root, known, frozenset({"pkg/allowed.py"})) == [
        f"pkg/silent.py: {MAX_LINES + 1} lines and no '{LONG_REASON} …' in its docstring"
    ]
