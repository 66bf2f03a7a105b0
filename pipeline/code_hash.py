"""The code part of a stage's freshness key: the project modules a module really imports (followed through the
AST import graph over pipeline/, benchmark/ and models/, function-level imports included) and the data files beside
them (prompts, task YAMLs, snapshots), each by sha256. Editing any of them changes the key; editing another module
does not."""

from __future__ import annotations

import ast
import hashlib
from functools import cache
from pathlib import Path

__all__ = ["code_hash", "module_file", "REPO_ROOT"]

REPO_ROOT = Path(__file__).resolve().parent.parent
_PACKAGES = ("pipeline", "benchmark", "models")
_DATA_SUFFIXES = (".yaml", ".yml", ".json", ".md", ".txt", ".csv")
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
    for node in ast.walk(tree):
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


def _data_files(folder: Path) -> list[Path]:
    """Data beside a module: files in its folder and in sub-folders that hold no Python (prompts/, data/)."""
    out = [p for p in folder.iterdir() if p.is_file() and p.suffix in _DATA_SUFFIXES]
    for sub in folder.iterdir():
        if sub.is_dir() and not sub.name.startswith((".", "__")) and not any(sub.rglob("*.py")):
            out += [p for p in sub.rglob("*") if p.is_file() and p.suffix in _DATA_SUFFIXES]
    return out


def code_hash(module: str) -> dict[str, str]:
    """{repo-relative file: sha256[:16]} for the module, every project module it imports (transitively) and the
    data files beside them. Editing any of them changes the stage's key; editing another module does not."""
    files: set[Path] = set()
    for m in _closure(module):
        p = module_file(m)
        files.add(p)
        files.update(_data_files(p.parent))
    return {str(p.relative_to(REPO_ROOT)): hashlib.sha256(p.read_bytes()).hexdigest()[:16] for p in sorted(files)}
