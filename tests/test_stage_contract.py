"""The stage contract (pipeline/contract.py): one declaration per stage drives the CLI and is what the Makefile is
checked against; the freshness key holds inputs, settings, backend identity and the code a stage imports; builds
resume from kill -9 to the same bytes; corpora of the same folder name build side by side; `status` says why.

The tests that need a built pipeline copy the session's demo build (tests/conftest.py) instead of building again."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from benchmark.errors import UnknownNameError
from pipeline.contract import STAGES, Context, code_hash, corpus_id, get_stage, stage_order, status
from tests.conftest import REPO
from tests.laion_format import clip_members, write_shard
from tests.openai_server import FakeModel, OpenAIServer

AB = str(REPO / ".venv" / "bin" / "auditorybench")
CORPUS_STAGES = ["read", "extract", "measure", "split", "pairs", "write", "filter", "index", "release"]


def _digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def _manifest_bytes(build: Path) -> dict[str, bytes]:
    return {s: (build / "demo" / s / "manifest.json").read_bytes() for s in CORPUS_STAGES}


@pytest.fixture()
def build_copy(contract: dict, tmp_path: Path) -> dict:
    """A private copy of the session's demo build (and its release), to change settings in."""
    shutil.copytree(contract["tmp"] / "build", tmp_path / "build", symlinks=True)
    shutil.copytree(contract["after"].parent, tmp_path / "releases")
    common = [f"BUILD_ROOT={tmp_path / 'build'}", f"DEMO_ROOT={contract['tmp'] / 'demo_corpus'}", f"RELEASES={tmp_path / 'releases'}", "QUIET=1"]
    return {"tmp": tmp_path, "build": tmp_path / "build", "env": dict(contract["env"]), "common": common}


def make(env: dict, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["make", "--no-print-directory", *args], cwd=REPO, env=env, capture_output=True, text=True)
    if check:
        assert proc.returncode == 0, f"make {' '.join(args)}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def planned(env: dict, common: list[str], target: str = "release") -> list[str]:
    """The stages `make -n <target>` would run, in order."""
    out = make(env, "-n", target, *common).stdout
    return re.findall(r"auditorybench (\w+) --corpus", out)


# ---- 1. one declaration per stage -------------------------------------------------------------------------------

def test_declarations_drive_the_cli_and_match_the_makefile() -> None:
    from pipeline.cli import build_parser

    commands = build_parser()._subparsers._group_actions[0].choices  # noqa: SLF001
    text = (REPO / "Makefile").read_text()
    targets = {}
    for m in re.finditer(r"^\$\((B|BUILD_ROOT)\)/(\w+)/manifest\.json: \$\(call force,(\w+)\)\s*(?:\| ([^#]*))?##.*\n\t(.*)$", text, re.M):
        folder, name, forced, order_only, recipe = m.group(1), m.group(2), m.group(3), m.group(4) or "", m.group(5)
        assert forced == name and recipe.strip() == f"$(call STAGE,{name})", m.group(0)
        deps = {d for d in order_only.split() if d != "$(CORPUS_DEP)"}
        targets[name] = (folder, {re.match(r"\$\((?:B|BUILD_ROOT)\)/(\w+)/manifest\.json", d).group(1) for d in deps})
    assert sorted(targets) == sorted(s.name for s in STAGES), "every declared stage has one Makefile target, no other"
    for stage in STAGES:
        import importlib

        assert callable(importlib.import_module(stage.module).run), stage.module
        assert stage.name in commands, f"no CLI subcommand for stage {stage.name}"
        folder, deps = targets[stage.name]
        assert deps == set(stage.upstream), f"Makefile prerequisites of {stage.name}: {sorted(deps)} != declared {sorted(stage.upstream)}"
        assert (folder == "BUILD_ROOT") == stage.shared, stage.name
    assert stage_order().index("read") < stage_order().index("pairs") < stage_order().index("release")


def test_code_hash_follows_the_imports() -> None:
    split, pairs, extract = (set(code_hash(f"pipeline.stages.{n}")) for n in ("split", "pairs", "extract"))
    assert {"benchmark/hashing.py", "pipeline/split.py", "pipeline/stages/split.py"} <= split
    assert {"benchmark/hashing.py", "pipeline/pairs.py", "benchmark/tasks/sound_pitch_comparison.yaml"} <= pairs
    assert "pipeline/pairs.py" not in split and "models/retrieval.py" not in pairs
    assert {"pipeline/extract/prompts/categorise.v1.md", "pipeline/extract/llm.py"} <= extract  # prompts: data its code declares


# ---- 2. the key holds settings, backend identity and code; make and the CLI agree ------------------------------------

def test_nothing_changed_plans_nothing_and_a_setting_reruns_what_it_reaches(build_copy: dict) -> None:
    env, common = build_copy["env"], build_copy["common"]
    assert planned(env, common) == []
    # the index learns from the train split (its demo retrieval model), so a new split reruns it too; the card follows
    assert planned(env, common + ["SET=split.seed=1"]) == ["split", "pairs", "write", "filter", "index", "release", "card"]
    assert planned(env, common + ["SET=measure.max_analysis_s=3.0"])[:2] == ["measure", "split"]


def test_llm_switch_sends_requests_and_a_model_change_reruns_extract_and_write(build_copy: dict) -> None:
    build, common = build_copy["build"], build_copy["common"]
    write_target = f"{build}/demo/write/manifest.json"
    with OpenAIServer(FakeModel()) as srv:
        env = {**build_copy["env"], "OPENAI_BASE_URL": srv.base_url, "OPENAI_API_KEY": "sk-test-secret",
               "AUDITORYBENCH_LLM_MODEL": "model-a", "AUDITORYBENCH_EXTRACT_MAX_REJECT_FRAC": "0.99",
               "AUDITORYBENCH_WRITE_MAX_REJECT_FRAC": "0.99"}
        before = _manifest_bytes(build)
        make(env, write_target, *common, "LLM=openai")
        assert srv.count > 0, "LLM=openai after a rules build sent no request"
        models = {r["model"] for r in srv.requests}
        assert models == {"model-a"}
        after_a = _manifest_bytes(build)
        assert [s for s in ("read", "measure") if after_a[s] != before[s]] == []  # split follows extract (held-out names)
        key = json.loads(after_a["extract"])["key"]
        assert key["backend"]["model"] == "model-a" and key["backend"]["endpoint_host"].startswith("127.0.0.1:")
        assert "sk-test-secret" not in json.dumps(key)

        n = srv.count
        env["AUDITORYBENCH_LLM_MODEL"] = "model-b"
        assert planned(env, common + ["LLM=openai"], write_target)[:1] == ["extract"]
        make(env, write_target, *common, "LLM=openai")
        assert {r["model"] for r in srv.requests[n:]} == {"model-b"}
        after_b = _manifest_bytes(build)
        rerun = [s for s in ("read", "extract", "measure", "split", "pairs", "write") if after_b[s] != after_a[s]]
        assert rerun == ["extract", "split", "write"]  # split reads extract's names (held-out names); its output is the same


def test_a_change_to_hashing_reruns_split_and_pairs(build_copy: dict) -> None:
    """benchmark/hashing.py decides split and pairs: a build made with another hashing.py is stale there, by cause."""
    build, env, common = build_copy["build"], build_copy["env"], build_copy["common"]
    for stage in ("split", "pairs"):  # as if these stages had been built with an older benchmark/hashing.py
        path = build / "demo" / stage / "manifest.json"
        m = json.loads(path.read_text())
        m["key"]["code"]["benchmark/hashing.py"] = "0" * 16
        path.write_text(json.dumps(m, indent=2, sort_keys=True) + "\n")
    plan = planned(env, common)
    assert plan[:2] == ["split", "pairs"] and "read" not in plan and "measure" not in plan
    lines = make(env, "status", *common).stdout
    assert re.search(r"split\s+stale\s+code changed: benchmark/hashing\.py", lines), lines
    assert re.search(r"pairs\s+stale\s+upstream split is not fresh; code changed: benchmark/hashing\.py", lines), lines


def _planned_in(copy: Path, env: dict, common: list[str], target: str = "release") -> list[str]:
    proc = subprocess.run(["make", "--no-print-directory", "-n", target, *common], cwd=copy, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return re.findall(r"auditorybench (\w+) --corpus", proc.stdout)


def test_card_wording_reaches_only_the_card_and_ui_code_reaches_no_stage(build_copy: dict, repo_copy) -> None:
    """Keys hold what can change outputs and nothing else: an edit of the card template plans only the card step
    (not the release's data, nor anything that reads it); an edit of the review app plans nothing."""
    copy, code_env = repo_copy
    env = {**build_copy["env"], "PYTHONPATH": code_env["PYTHONPATH"]}
    common = build_copy["common"]
    assert _planned_in(copy, env, common) == []
    with open(copy / "benchmark" / "card_template.md", "a", encoding="utf-8") as f:
        f.write("\nReworded.\n")
    assert _planned_in(copy, env, common) == ["card"]
    for stage in ("release", "span_detector", "audiobert", "text_twin", "results"):
        assert "benchmark/card_template.md" not in code_hash(f"pipeline.stages.{stage}"), stage
    (copy / "benchmark" / "card_template.md").write_bytes((REPO / "benchmark" / "card_template.md").read_bytes())
    with open(copy / "pipeline" / "review" / "app.py", "a", encoding="utf-8") as f:
        f.write("\n# an edit of the review page\n")
    assert _planned_in(copy, env, common) == []
    assert not any("pipeline/review/app.py" in code_hash(s.module) for s in STAGES)


def test_every_data_file_is_declared_by_one_module() -> None:
    """Data files reach a key only through the module that declares it reads them (DATA_FILES): each one in the
    packages is declared by exactly one module, so none is hashed by accident or missed."""
    from pipeline.code_hash import DATA_SUFFIXES, declared_data

    found = {p for pkg in ("pipeline", "benchmark", "models") for p in (REPO / pkg).rglob("*")
             if p.is_file() and p.suffix in DATA_SUFFIXES and "__pycache__" not in p.parts}
    owners: dict[Path, list[str]] = {}
    for py in (REPO / pkg for pkg in ("pipeline", "benchmark", "models")):
        for module in py.rglob("*.py"):
            for data in declared_data(module):
                owners.setdefault(data, []).append(str(module.relative_to(REPO)))
    assert {p: o for p, o in owners.items() if len(o) > 1} == {}
    assert sorted(str(p.relative_to(REPO)) for p in found - set(owners)) == []


def test_the_demo_profile_is_declared_once_and_the_cli_by_hand_computes_makes_keys(build_copy: dict) -> None:
    """make adds no settings: the demo's profile (pipeline.params.DEMO_PROFILE) applies whenever the corpus id is demo,
    so the CLI run by hand, without a flag, finds the build make made fresh; other corpora keep the defaults."""
    from pipeline.params import DEMO_PROFILE

    args = (REPO / "Makefile").read_text().split("ARGS =", 1)[1].split("STAGE =", 1)[0]
    # only what the user passes through: SET=..., and VERSION=... as release.version
    for passed in ("$(foreach s,$(SET),--set '$(s)')", "$(if $(VERSION),--set release.version=$(VERSION))"):
        assert passed in args
        args = args.replace(passed, "")
    assert "--set" not in args
    demo = Context(corpus=str(build_copy["tmp"] / "x" / "demo_corpus" / "freesound"), corpus_id="demo", build_root=build_copy["build"])
    other = Context(corpus="elsewhere", corpus_id="elsewhere-1", build_root=build_copy["build"])
    assert demo.section("train")["preset"] == "demo" and other.section("train")["preset"] == "published"
    for section, values in DEMO_PROFILE.items():
        assert {k: demo.section(section)[k] for k in values} == values
    corpus = [a.split("=", 1)[1] for a in build_copy["common"] if a.startswith("DEMO_ROOT=")][0] + "/freesound"
    proc = subprocess.run([AB, "status", "--corpus", corpus, "--build-root", str(build_copy["build"]),
                           "--releases", str(build_copy["tmp"] / "releases")], env=build_copy["env"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    for stage in CORPUS_STAGES + ["card"]:
        assert re.search(rf"^\s+{stage}\s+fresh", proc.stdout, re.M), proc.stdout


# ---- 4. corpus identity -----------------------------------------------------------------------------------------

def _corpus(root: Path, ids: list[int]) -> Path:
    for i, cid in enumerate(ids):
        write_shard(root / "freesound" / f"train_{i}.tar", clip_members(cid, 220.0 + 10 * i))
    return root / "freesound"


def test_same_named_corpora_build_side_by_side_and_an_added_shard_is_read(tmp_path: Path) -> None:
    a, b = _corpus(tmp_path / "x", [1, 2]), _corpus(tmp_path / "y", [3, 4, 5])
    ida, idb = corpus_id(a), corpus_id(b)
    assert ida != idb and ida.startswith("freesound-") and idb.startswith("freesound-")
    build = tmp_path / "build"
    for corpus in (a, b):
        subprocess.run([AB, "read", "--corpus", str(corpus), "--build-root", str(build), "--quiet"], check=True, capture_output=True)
    assert json.loads((build / ida / "read" / "manifest.json").read_text())["counts"]["kept"] == 2
    assert json.loads((build / idb / "read" / "manifest.json").read_text())["counts"]["kept"] == 3

    write_shard(a / "train_9.tar", clip_members(9, 330.0))  # an added shard: another corpus, unless the id is pinned
    assert corpus_id(a) != ida
    ctx = Context(corpus=str(a), corpus_id=ida, build_root=build)
    read = status(ctx, ["read"])[0]
    assert read.state == "stale" and "input changed: shard:train_9.tar" in read.line()
    subprocess.run([AB, "read", "--corpus", str(a), "--corpus-id", ida, "--build-root", str(build), "--quiet"], check=True, capture_output=True)
    assert json.loads((build / ida / "read" / "manifest.json").read_text())["counts"]["kept"] == 3
    assert status(Context(corpus=str(a), corpus_id=ida, build_root=build), ["read"])[0].state == "fresh"


# ---- 5. status ---------------------------------------------------------------------------------------------------

def test_status_says_fresh_stale_why_and_missing(build_copy: dict) -> None:
    env, common = build_copy["env"], build_copy["common"]
    out = make(env, "status", *common, "SET=filter.min_per_answer=3").stdout
    assert re.search(r"read\s+fresh", out) and re.search(r"audiobert\s+missing", out)
    assert re.search(r"filter\s+stale\s+setting changed: filter\.min_per_answer", out), out
    assert re.search(r"release\s+stale\s+upstream filter is not fresh", out), out
    with pytest.raises(UnknownNameError, match="did you mean 'release'"):
        get_stage("relase")


# ---- 6. a release that exists with other content ----------------------------------------------------------------

def test_the_demo_release_is_rebuilt_in_place_and_others_are_immutable(build_copy: dict) -> None:
    """The embedded demo's release follows its build (a newcomer reruns make demo after every pull), with one line
    saying what changed; a release of any other corpus is immutable: the error names the files, the cause and the flag."""
    from benchmark.errors import ReleaseIntegrityError
    from pipeline.stages.release import release_stage

    env, common = build_copy["env"], build_copy["common"]
    release = build_copy["tmp"] / "releases" / "demo-1.0.0"
    before = json.loads((release / "manifest.json").read_text())
    proc = make(env, "release", *common, "SET=filter.review_gap=1.5")
    assert "demo-1.0.0 rebuilt in place" in proc.stderr and "setting changed: filter.review_gap 1.25 -> 1.5" in proc.stderr, proc.stderr
    after = json.loads((release / "manifest.json").read_text())
    assert after["provenance"]["params"]["filter"]["review_gap"] == 1.5 != before["provenance"]["params"]["filter"]["review_gap"]
    assert (release / "README.md").is_file() and not (build_copy["tmp"] / "releases" / ".demo-1.0.0").exists()

    # any other corpus: the same build under another release name is published once, then immutable
    build, wiki = build_copy["build"] / "demo", build_copy["build"] / "wiki"
    params = {"version": "1.0.0", "exclude_nc": False}
    release_stage(build, build_copy["tmp"] / "releases", "other", params, wiki, quiet=True)
    filter_manifest = build / "filter" / "manifest.json"
    m = json.loads(filter_manifest.read_text())
    m["params"]["review_gap"] = 2.0  # as if the filter had run with another setting
    filter_manifest.write_text(json.dumps(m, indent=2, sort_keys=True) + "\n")
    with pytest.raises(ReleaseIntegrityError) as e:
        release_stage(build, build_copy["tmp"] / "releases", "other", params, wiki, quiet=True)
    assert "already exists with different content" in str(e.value) and "manifest.json" in str(e.value)
    assert "setting changed: filter.review_gap 1.5 -> 2.0" in str(e.value) and "--version 1.0.1" in str(e.value)


# ---- 3. kill -9 anywhere, rerun, same bytes ---------------------------------------------------------------------

def _run_until(env: dict, args: list[str], ready, timeout_s: float = 1200) -> bool:
    """Start make; kill -9 its whole process group as soon as ready() holds. True if it was killed."""
    proc = subprocess.Popen(["make", "--no-print-directory", *args], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    t0 = time.monotonic()
    while proc.poll() is None and time.monotonic() - t0 < timeout_s:
        if ready():
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.05)
    proc.wait()
    return False


def test_kill_9_anywhere_then_rerun_gives_the_same_release(contract: dict, tmp_path: Path) -> None:
    env = contract["env"]
    build = tmp_path / "build" / "demo"
    common = [f"BUILD_ROOT={tmp_path / 'build'}", f"DEMO_ROOT={contract['tmp'] / 'demo_corpus'}", f"RELEASES={tmp_path / 'releases'}", "QUIET=1"]

    def running(stage: str, marker: str):
        return lambda: (build / stage / marker).exists() and not (build / stage / "manifest.json").exists()

    killed = []
    for stage, marker in (("read", "progress.sqlite"), ("measure", "cache.sqlite"), ("index", "")):
        if _run_until(env, ["release", *common], running(stage, marker)):
            killed.append(stage)
    assert {"measure", "index"} <= set(killed), f"killed only during {killed}"
    make(env, "release", *common)
    release = tmp_path / "releases" / "demo-1.0.0"
    assert _digests(release) == _digests(contract["after"])

    # killed while training: the rerun has nothing to redo up to the release, and the release is the same
    seen: list[float] = []

    def training() -> bool:  # a few seconds into the audiobert stage
        if (build / "audiobert").is_dir() and not seen:
            seen.append(time.monotonic())
        return bool(seen) and time.monotonic() - seen[0] > 5

    assert _run_until(env, [f"{build}/audiobert/manifest.json", *common], training)
    assert not (build / "audiobert" / "manifest.json").exists()
    proc = make(env, "release", *common)
    assert "] done in" not in proc.stderr
    assert _digests(release) == _digests(contract["after"])
