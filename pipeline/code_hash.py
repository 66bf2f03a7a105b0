"""The code part of a stage's freshness key: the project modules a module really imports (followed through the
AST import graph over pipeline/, benchmark/ and models/, function-level imports included) and the data files those
modules declare they read (`DATA_FILES`, globs beside the module: prompts, task YAMLs, snapshots, the card
template), each by sha256. Editing any of them changes the key; editing another module or a file no imported module
declares does not.

Two rules keep the key to what can change outputs: a data file reaches only the stages that import the module
declaring it (the card template reaches the card step, not every stage that imports `benchmark.errors`), and the
imports inside a package's lazy `__getattr__` are not followed (they run only when that attribute is asked for, and a
module that asks for it names the module in its own import)."""

from __future__ import annotations

import ast
import hashlib
from functools import cache
from pathlib import Path

__all__ = ["code_hash", "module_file", "declared_data", "REPO_ROOT", "DATA_SUFFIXES"]

REPO_ROOT = Path(__file__).resolve().parent.parent
_PACKAGES = ("pipeline", "benchmark", "models")
DATA_SUFFIXES = (".yaml", ".yml", ".json", ".md", ".txt", ".csv")  # what counts as data in the packages (a test: each is declared)
# the machinery that runs stages and computes their keys: not part of what a stage computes, so its imports are
# not followed (it imports every stage's identity function lazily)
_MACHINERY = ("pipeline.contract", "pipeline.cli")


def module_file(name: str) -> Path | None:
    base = REPO_ROOT.joinpath(*name.split("."))
    for p in (base.with_suffix(".py"), base / "__init__.py"):
        if p.is_file():
            return p
    return None


def _imports_of(name: str, path: Path) -> set[str]:
    """Project modules named by the import statements of one file (function-level imports included)."""
    tree = ast.parse(path.read_bytes(), filename=str(path))
    is_pkg = path.name == "__init__.py"
    out: set[str] = set()
    lazy = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "__getattr__"]
    skip = {id(x) for n in lazy for x in ast.walk(n)}
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = name.split(".")
                base = parts[: len(parts) - node.level + (1 if is_pkg else 0)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.add(mod)
            out.update(f"{mod}.{a.name}" for a in node.names)  # `from pkg import module`
    found = set()
    for m in out:
        if m.split(".")[0] not in _PACKAGES:
            continue
        parts = m.split(".")
        for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__ and a/b/__init__ too
            if module_file(".".join(parts[:i])):
                found.add(".".join(parts[:i]))
    return found


@cache
def _closure(module: str) -> tuple[str, ...]:
    seen: set[str] = set()
    todo = [module]
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        p = module_file(m)
        if p is None or m in _MACHINERY:
            continue
        seen.add(m)
        todo.extend(_imports_of(m, p) - seen)
    return tuple(sorted(seen))


@cache
def declared_data(path: Path) -> tuple[Path, ...]:
    """The data files a module declares it reads: its module-level `DATA_FILES = ("card_template.md", "prompts/*.md")`
    (globs relative to the module's folder; a literal tuple, read from the AST without importing the module)."""
    tree = ast.parse(path.read_bytes(), filename=str(path))
    globs: list[str] = []
    for node in tree.body:
        target = node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else getattr(node, "target", None)
        if isinstance(target, ast.Name) and target.id == "DATA_FILES" and node.value is not None:
            globs = list(ast.literal_eval(node.value))
    return tuple(sorted({p for g in globs for p in path.parent.glob(g) if p.is_file()}))


def code_hash(module: str) -> dict[str, str]:
    """{repo-relative file: sha256[:16]} for the module, every project module it imports (transitively) and the
    data files beside them. Editing any of them changes the stage's key; editing another module does not."""
    files: set[Path] = set()
    for m in _closure(module):
        p = module_file(m)
        files.add(p)
        files.update(declared_data(p))
    return {str(p.relative_to(REPO_ROOT)): hashlib.sha256(p.read_bytes()).hexdigest()[:16] for p in sorted(files)}
