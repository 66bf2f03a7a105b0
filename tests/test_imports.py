"""The import graph of the project's own modules (pipeline, benchmark, models) has no cycle, and its arrows point
down the floors: pipeline → models → benchmark (benchmark imports neither; models does not import pipeline).
Every import counts, function-local ones included: an import moved into a function dodges a cycle, it does not
remove it."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("benchmark", "models", "pipeline")
FLOOR = {"benchmark": 1, "models": 2, "pipeline": 3}


def project_modules(root: Path = REPO) -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for p in sorted((root / pkg).rglob("*.py")):
            name = ".".join(p.relative_to(root).with_suffix("").parts)
            out[name.removesuffix(".__init__")] = p
    return out


def import_graph(mods: dict[str, Path]) -> dict[str, set[str]]:
    """{module: project modules it imports anywhere in its file}; `from a.b import c` counts a.b.c when it is a module."""
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for m, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
            else:
                continue
            for name in names:
                while name and name not in mods:
                    name = name.rpartition(".")[0]
                if name and name != m and not m.startswith(name + "."):  # a package's own __init__ is no edge
                    graph[m].add(name)
    return graph


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components with more than one module (each one holds a cycle)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

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
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_checker_finds_a_planted_cycle(tmp_path):
    (tmp_path / "benchmark").mkdir()
    (tmp_path / "benchmark" / "a.py").write_text("def f():\n    from benchmark.b import g\n")
    (tmp_path / "benchmark" / "b.py").write_text("from benchmark import a\n")
    (tmp_path / "benchmark" / "c.py").write_text("import benchmark.a\n")
    for pkg in ("models", "pipeline"):
        (tmp_path / pkg).mkdir()
    graph = import_graph(project_modules(tmp_path))
    assert graph["benchmark.c"] == {"benchmark.a"}
    assert strongly_connected(graph) == [["benchmark.a", "benchmark.b"]]


def test_no_import_cycle_among_project_modules():
    mods = project_modules()
    assert len(mods) > 50
    cycles = strongly_connected(import_graph(mods))
    assert cycles == [], "import cycles: " + "; ".join(" ↔ ".join(c) for c in cycles)


def test_imports_point_down_the_floors():
    graph = import_graph(project_modules())
    upward = sorted(f"{m} → {d}" for m, deps in graph.items() for d in deps
                    if FLOOR[d.split(".")[0]] > FLOOR[m.split(".")[0]])
    assert upward == []
