"""No import cycle anywhere in src/: every module is parsed (imports inside functions included,
relative imports resolved) and the graph of imports between src modules must be acyclic. A cycle
hidden by a function-level import still ties two modules into one; this test names it."""
from __future__ import annotations

import ast
import os
from typing import Dict, List, Set

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def module_files(root: str, package: str = "src") -> Dict[str, str]:
    """``{dotted module name: file}`` for every .py file of ``package`` under ``root``
    (a package is named by its ``__init__.py``)."""
    out = {}
    for dirpath, dirnames, files in os.walk(os.path.join(root, package)):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "__pycache__")))
        for name in sorted(files):
            if name.endswith(".py"):
                rel = os.path.relpath(os.path.join(dirpath, name), root)[:-3].replace(os.sep, ".")
                out[rel[: -len(".__init__")] if rel.endswith(".__init__") else rel] = os.path.join(dirpath, name)
    return out


def _known(name: str, modules: Dict[str, str]) -> str:
    """The longest prefix of ``name`` that is a module of ours ('' if none)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name


def import_graph(modules: Dict[str, str]) -> Dict[str, Set[str]]:
    """``{module: modules of ours it imports}``, from every import statement wherever it stands.
    ``from pkg import name`` depends on ``pkg.name`` when that is a module, else on ``pkg``."""
    graph = {}
    for mod, path in modules.items():
        package = mod if path.endswith("__init__.py") else mod.rpartition(".")[0]
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
        deps: Set[str] = set()
        for node in ast.walk(tree):
            targets: List[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    parts = package.split(".")
                    base = ".".join(parts[: len(parts) - node.level + 1])
                    full = f"{base}.{node.module}" if node.module else base
                else:
                    full = node.module or ""
                targets = [f"{full}.{a.name}" if f"{full}.{a.name}" in modules else full for a in node.names]
            for target in targets:
                dep = _known(target, modules)
                if dep and dep != mod:
                    deps.add(dep)
        graph[mod] = deps
    return graph


def find_cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """One cycle (``[a, b, ..., a]``) per strongly connected group of modules that import each other."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    groups: List[List[str]] = []

    def visit(v: str) -> None:  # Tarjan's algorithm
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    cycles = []
    for group in groups:  # a path from the group's first module back to itself, inside the group
        start, members = group[0], set(group)
        path, seen = [start], {start}
        while True:
            nxt = sorted(graph[path[-1]] & members)
            if start in nxt and len(path) > 1:
                cycles.append(path + [start])
                break
            step = next((n for n in nxt if n not in seen), None)
            if step is None:  # dead end: fall back to naming the group
                cycles.append(group + [group[0]])
                break
            path.append(step)
            seen.add(step)
    return cycles


def test_src_has_no_import_cycle():
    modules = module_files(REPO)
    assert "src.data.datasets" in modules and "src.config" in modules
    cycles = find_cycles(import_graph(modules))
    assert not cycles, "import cycles in src/:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_check_catches_a_cycle_hidden_in_a_function(tmp_path):
    pkg = tmp_path / "src" / "data"
    pkg.mkdir(parents=True)
    (tmp_path / "src" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("from .a import A\n")
    (pkg / "a.py").write_text("from . import b\nA = 1\n")
    (pkg / "b.py").write_text("def f():\n    from .a import A\n    return A\n")
    (pkg / "c.py").write_text("from ..data import b\nimport src.data.a\n")
    modules = module_files(str(tmp_path))
    graph = import_graph(modules)
    assert graph["src.data.c"] == {"src.data.b", "src.data.a"} and graph["src.data"] == {"src.data.a"}
    assert find_cycles(graph) == [["src.data.a", "src.data.b", "src.data.a"]]
    (pkg / "b.py").write_text("def f():\n    return 1\n")
    assert find_cycles(import_graph(module_files(str(tmp_path)))) == []
