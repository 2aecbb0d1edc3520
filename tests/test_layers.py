"""Package layering: no import cycle between hundi's top-level subpackages and modules.

Every ``import`` in every module (function-level and ``TYPE_CHECKING`` ones included: a lazy
import is still a dependency) is mapped to the top-level unit it reaches, ``hundi.X`` (a
subpackage such as ``connection`` or a module such as ``config``). The graph of those units must
be acyclic, so the intended layering (exchanges → connection → pipeline → stores →
research/api/cli) cannot quietly grow a back edge again.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import hundi

ROOT = Path(hundi.__file__).parent


def _module_name(path: Path) -> tuple[str, bool]:
    """(dotted module name, is a package ``__init__``)."""
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), True
    return ".".join(parts), False


def _imported(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    """Absolute names of every module this tree imports (relative imports resolved)."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join(base)
                if node.module:
                    found.add(f"{prefix}.{node.module}")
                else:
                    found.update(f"{prefix}.{alias.name}" for alias in node.names)
            elif node.module:
                found.add(node.module)
    return found


def import_graph() -> dict[str, dict[str, set[str]]]:
    """unit → {imported unit: files making that import}; units are ``hundi.X`` names' ``X``."""
    graph: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for path in sorted(ROOT.rglob("*.py")):
        module, is_package = _module_name(path)
        parts = module.split(".")
        if len(parts) < 2:
            continue  # hundi/__init__.py: the public facade may import anything
        unit = parts[1]
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for name in _imported(tree, module, is_package):
            target = name.split(".")
            if target[0] != "hundi" or len(target) < 2 or target[1] == unit:
                continue
            graph[unit][target[1]].add(str(path.relative_to(ROOT.parent)))
    return graph


def cycles(graph: dict[str, dict[str, set[str]]]) -> list[list[str]]:
    """The strongly connected components with more than one unit (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in graph.get(node, {}):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def _describe(graph: dict[str, dict[str, set[str]]], component: list[str]) -> str:
    lines = [" <-> ".join(component)]
    for unit in component:
        for target, files in sorted(graph[unit].items()):
            if target in component:
                lines.append(f"  {unit} -> {target}: {', '.join(sorted(files))}")
    return "\n".join(lines)


def test_the_graph_sees_known_edges() -> None:
    graph = import_graph()
    assert "exchanges" in graph["connection"]
    assert "connection" in graph["pipeline"]


def test_cycle_finder_reports_a_back_edge() -> None:
    graph: dict[str, dict[str, set[str]]] = {
        "a": {"b": {"a.py"}},
        "b": {"c": {"b.py"}},
        "c": {"a": {"c.py"}},
        "d": {"a": {"d.py"}},
    }
    assert cycles(graph) == [["a", "b", "c"]]


def test_no_import_cycle_between_subpackages() -> None:
    graph = import_graph()
    found = cycles(graph)
    assert not found, "package-level import cycles:\n" + "\n".join(
        _describe(graph, component) for component in found
    )


# The collecting layers, lowest first: each imports only from layers before it (and from the
# shared modules: records, config, series, accounting, capture...). Stores sit below the
# pipeline that writes into them and the research/api that read them.
LAYERS: list[set[str]] = [
    {"exchanges"},
    {"connection"},
    {"pipeline"},
    {"research", "api", "cli", "dashboards"},
]
STORES_MUST_NOT_IMPORT = {"exchanges", "connection", "pipeline", "research", "api", "cli"}


def test_layers_import_downwards_only() -> None:
    graph = import_graph()
    upward = []
    for level, layer in enumerate(LAYERS):
        higher = set().union(*LAYERS[level + 1 :])
        for unit in sorted(layer):
            for target, files in sorted(graph.get(unit, {}).items()):
                if target in higher:
                    upward.append(f"{unit} -> {target}: {', '.join(sorted(files))}")
    for target, files in sorted(graph.get("stores", {}).items()):
        if target in STORES_MUST_NOT_IMPORT:
            upward.append(f"stores -> {target}: {', '.join(sorted(files))}")
    assert not upward, "imports against the layering:\n" + "\n".join(upward)
