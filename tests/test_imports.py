"""No import cycles among the first-party modules: a cycle, even through an import inside a function,
makes what a module may use depend on who imported it first."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("trainables", "sweeper", "analysis")


def module_files(root: Path, packages: tuple[str, ...]) -> dict[str, Path]:
    """Dotted module name -> file, for every module of the packages (a package is its __init__.py)."""
    found = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _known(name: str, known: dict[str, Path]) -> str | None:
    """The longest first-party module that `name` is or lies in (`a.b.C` -> `a.b`)."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in known:
            return ".".join(parts[:end])
    return None


def imports_of(module: str, path: Path, known: dict[str, Path]) -> set[str]:
    """First-party modules that `module` imports anywhere: at module level, in functions, in branches."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    targets: set[str | None] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            targets.update(_known(alias.name, known) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            for alias in node.names:  # `from pkg import module` imports the module itself
                submodule = f"{base}.{alias.name}"
                targets.add(submodule if submodule in known else _known(base, known))
    return {t for t in targets if t is not None and t != module}


def import_graph(root: Path, packages: tuple[str, ...]) -> dict[str, set[str]]:
    known = module_files(root, packages)
    return {module: imports_of(module, path, known) for module, path in known.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (first module repeated at the end) per strongly connected group of modules."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's algorithm; the graph has a few dozen nodes
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_cycle_in(graph, group) for group in sorted(groups)]


def _cycle_in(graph: dict[str, set[str]], group: list[str]) -> list[str]:
    """A shortest path from the group's first module back to itself, inside the group."""
    start, members = group[0], set(group)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for target in sorted(graph[node] & members):
                if target == start:
                    return [*paths[node], start]
                if target not in paths:
                    paths[target] = [*paths[node], target]
                    following.append(target)
        frontier = following
    raise AssertionError(f"no cycle through {start} in {group}")


def test_no_import_cycles_between_first_party_modules():
    found = cycles(import_graph(ROOT, PACKAGES))
    assert not found, "import cycle(s): " + "; ".join(" -> ".join(cycle) for cycle in found)


def test_the_graph_sees_every_package_and_the_imports_inside_functions():
    graph = import_graph(ROOT, PACKAGES)
    assert {"trainables.spec", "sweeper.schema", "analysis.aggregate"} <= set(graph)
    assert "sweeper.plan" in graph["sweeper.run"]  # `from sweeper import plan as planning`
    assert "trainables.prepare" in graph["sweeper.run"]  # imported inside prepare_data_once
    assert not any(target.startswith("sweeper") for module, targets in graph.items()
                   if module.startswith("analysis") for target in targets)  # analysis stands alone


def write_package(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


@pytest.mark.parametrize("files, expected", [
    pytest.param({"pkg/__init__.py": "", "pkg/a.py": "from pkg import b\n",
                  "pkg/b.py": "def late():\n    from pkg.a import thing\n"},
                 [["pkg.a", "pkg.b", "pkg.a"]], id="through-a-function-level-import"),
    pytest.param({"pkg/__init__.py": "", "pkg/sub/__init__.py": "from .c import x\n",
                  "pkg/sub/c.py": "import pkg.d\n", "pkg/d.py": "from .sub import c\n"},
                 [["pkg.d", "pkg.sub.c", "pkg.d"]], id="relative-imports"),
    pytest.param({"pkg/__init__.py": "", "pkg/a.py": "import pkg.b\n", "pkg/b.py": "import pkg.c\n",
                  "pkg/c.py": "if True:\n    from pkg import a\n"},
                 [["pkg.a", "pkg.b", "pkg.c", "pkg.a"]], id="three-modules"),
    pytest.param({"pkg/__init__.py": "from pkg.a import f\n", "pkg/a.py": "import json\nfrom pkg import b\n",
                  "pkg/b.py": "import os\n"}, [], id="no-cycle"),
])
def test_a_cycle_is_found_and_named(tmp_path, files, expected):
    write_package(tmp_path, files)
    assert cycles(import_graph(tmp_path, ("pkg",))) == expected
