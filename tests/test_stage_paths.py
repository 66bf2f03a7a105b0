"""The contract (pipeline/contract.py) is the only module that joins a stage's name into a path: every other module of
pipeline/ and models/ gets a stage's files from it (`ctx.input_paths`, `open_stage`, `stage_file`), so a stage's
declared inputs and outputs are its real ones.

The check reads the code's syntax tree (docstrings and comments may name stage folders): a path join is `a / "read"`,
`"read" / b`, an f-string `f"{build}/read/..."`, `.joinpath("read")`, `os.path.join(..., "read")` or
`Path(..., "read")`, for every declared stage name."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from pipeline.contract import STAGES, declared_inputs, open_stage, stage_dir, stage_file

REPO = Path(__file__).resolve().parent.parent
NAMES = sorted(s.name for s in STAGES)
_FIRST = re.compile(rf"^({'|'.join(NAMES)})(/|$)")  # "read", "read/clips.parquet"
_LAST = re.compile(rf"(^|/)({'|'.join(NAMES)})$")  # "build/demo/read"
_INSIDE = re.compile(rf"(^|/)({'|'.join(NAMES)})(/|$)")  # after an f-string field: "/read/clips.parquet"

# joins of a stage's name that are not a build's stage folder, each with its reason
ALLOWED = {
    ("models/leakage.py", "audiobert"): "the leakage check's own scratch runs (work/<variant>/audiobert), not a build",
    ("models/sweep.py", "text_twin"): "the sweep's own checkpoint folder (<out>/text_twin), not a build",
}


def _text(node: ast.AST) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def stage_joins(source: str) -> list[tuple[int, str]]:
    """(line, stage name) of every path join of a stage's name in a module's source."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            right, left = _text(node.right), _text(node.left)
            if right is not None and (m := _FIRST.match(right)):
                found.append((node.lineno, m.group(1)))
            elif left is not None and (m := _LAST.search(left)):
                found.append((node.lineno, m.group(2)))
        elif isinstance(node, ast.JoinedStr):
            after_field = False
            for part in node.values:
                if isinstance(part, ast.FormattedValue):
                    after_field = True
                elif after_field and (text := _text(part)) is not None and text.startswith("/") and (m := _INSIDE.search(text)):
                    found.append((node.lineno, m.group(2)))
        elif isinstance(node, ast.Call):
            fn = node.func
            name = fn.attr if isinstance(fn, ast.Attribute) else fn.id if isinstance(fn, ast.Name) else ""
            args = {"joinpath": node.args, "join": node.args[1:], "Path": node.args[1:]}.get(name, [])
            for a in args:
                if (text := _text(a)) is not None and (m := _FIRST.match(text)):
                    found.append((node.lineno, m.group(1)))
    return found


def test_the_check_finds_every_form_of_join() -> None:
    src = '''
a = build_dir / "read" / "clips.parquet"
b = Path("build") / "read/clips.parquet"
c = "build/demo/measure" / Path("x")
d = f"{build_dir}/filter/items.parquet"
e = root.joinpath("index", "audio_index")
f = os.path.join(root, "write")
g = Path(root, "pairs")
ok = run.out_dir / "reads.parquet", f"{x}-read", Path("read"), "demo" / Path("readme")
'''
    assert sorted(stage_joins(src)) == [(2, "read"), (3, "read"), (4, "measure"), (5, "filter"), (6, "index"),
                                        (7, "write"), (8, "pairs")]


def test_no_module_but_the_contract_joins_a_stage_name_into_a_path() -> None:
    offenders = []
    for path in sorted([*(REPO / "pipeline").rglob("*.py"), *(REPO / "models").rglob("*.py")]):
        rel = path.relative_to(REPO).as_posix()
        if rel == "pipeline/contract.py":
            continue
        for line, name in stage_joins(path.read_text(encoding="utf-8")):
            if (rel, name) not in ALLOWED:
                offenders.append(f"{rel}:{line}: joins {name!r} (ask pipeline.contract for the stage's paths)")
    assert not offenders, "\n".join(offenders)


def test_stage_paths_come_from_the_declarations(tmp_path: Path) -> None:
    build = tmp_path / "build" / "demo"
    assert stage_dir(build, "read") == build / "read"
    assert stage_dir(build, "wiki") == tmp_path / "build" / "wiki"  # shared by every corpus
    assert declared_inputs(build, "split")["clips"] == build / "read" / "clips.parquet"
    assert stage_file(build, "index/audio_index/index.json") == build / "index" / "audio_index" / "index.json"
    with pytest.raises(Exception, match="not an output of stage read"):
        stage_file(build, "read/clip.parquet")
    with pytest.raises(Exception, match=r"clips\.parquet: missing; run the read stage first"):
        open_stage(build, "split", {})
    (build / "read").mkdir(parents=True)
    (build / "read" / "clips.parquet").write_bytes(b"x")
    run = open_stage(build, "index", {}, optional=("categories", "measure_rejects", "clip_splits"))
    assert run.out_dir == build / "index" and run.inputs == {"clips": build / "read" / "clips.parquet"}
