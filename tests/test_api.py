"""The package's shape: the public API under ``hftlab.__all__``, and no import cycle in ``src/hftlab``."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from types import ModuleType

import hftlab
from tests.conftest import PROJECT_ROOT

SRC = PROJECT_ROOT / "src"


def test_all_lists_exactly_the_public_names():
    """Every name ``__all__`` lists resolves (to a class or function of hftlab of that name), and after
    they all did, the package holds no other public name (its sub-modules aside)."""
    for name in set(hftlab.__all__) - {"__version__"}:
        value = getattr(hftlab, name)
        assert value.__name__ == name, name  # the object itself, not a module of that name
        assert value.__module__.startswith("hftlab."), (name, value.__module__)
    public = {n for n, v in vars(hftlab).items() if not n.startswith("_") and not isinstance(v, ModuleType)}
    assert public == set(hftlab.__all__) - {"__version__"}
    assert set(hftlab.__all__) <= set(dir(hftlab))
    assert set(hftlab._EXPORTS) == set(hftlab.__all__) - {"__version__"}


def test_import_hftlab_loads_nothing_heavy():
    code = (
        "import sys, hftlab; print(sorted(m for m in ('numba', 'hydra', 'pyarrow', 'hftbacktest') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "[]" == out.stdout.strip()


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the hftlab modules it imports (at module level or inside functions, type-only ones too).
    The root ``hftlab`` facade (lazy re-exports of the public API) is left out."""
    modules = {_module_name(p): p for p in (SRC / "hftlab").rglob("*.py")}
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in modules.items():
        if name == "hftlab":
            continue
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(
                        package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                    )
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            for target in targets:
                while target and target not in modules:  # hftlab.x.y.name -> the module hftlab.x.y
                    target = target.rpartition(".")[0]
                if target and target != "hftlab" and target != name:
                    graph[name].add(target)
    return graph


def cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` (as a path), or None (iterative DFS, nodes in sorted order)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for root in sorted(graph):
        if state.get(root):
            continue
        stack = [(root, iter(sorted(graph[root])))]
        state[root] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[node] = 2
                stack.pop()
            elif state.get(child) == 1:
                path = [n for n, _ in stack]
                return [*path[path.index(child) :], child]
            elif not state.get(child):
                state[child] = 1
                stack.append((child, iter(sorted(graph.get(child, ())))))
    return None


def package_of(module: str) -> str:
    """The node a module counts as at package level: its sub-package (``hftlab.run``), or itself when it
    sits directly in ``hftlab`` (``hftlab.feed``)."""
    parts = module.split(".")
    return ".".join(parts[:2])


def test_no_import_cycle_between_modules_or_packages():
    graph = import_graph()
    assert len(graph) > 40 and "hftlab.runtime.runner" in graph["hftlab.run.execute"]
    assert cycle(graph) is None, f"module import cycle: {' -> '.join(cycle(graph) or [])}"
    packages: dict[str, set[str]] = defaultdict(set)
    for module, targets in graph.items():
        packages[package_of(module)] |= {package_of(t) for t in targets} - {package_of(module)}
    found = cycle(packages)
    assert found is None, f"package import cycle: {' -> '.join(found or [])}"


def test_cycle_finder_finds_a_planted_cycle():
    assert ["b", "c", "b"] == cycle({"a": {"b"}, "b": {"c"}, "c": {"b"}})
    assert cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None
