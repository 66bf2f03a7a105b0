"""One resolver of the model name `auto` (models.retrieval.resolve_auto): the index stage's freshness key and the
index build's plan read the same answer, so a key never names a model the build did not use."""

from __future__ import annotations

from pathlib import Path

import huggingface_hub.constants
import pytest

from models.retrieval import PUBLISHED_AST, PUBLISHED_CLAP, IndexConfig, plan_index
from pipeline.contract import Context, _index_identity


def _cache(root: Path, repo: str) -> None:
    """A hub cache entry of repo holding its config.json, in the layout huggingface_hub reads."""
    folder = root / f"models--{repo.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text("0" * 40)
    snap = folder / "snapshots" / ("0" * 40)
    snap.mkdir(parents=True)
    (snap / "config.json").write_text("{}")


@pytest.mark.parametrize("cached", [(), (PUBLISHED_CLAP,), (PUBLISHED_CLAP, PUBLISHED_AST)])
def test_the_key_and_the_build_resolve_auto_alike(tmp_path, monkeypatch, cached) -> None:
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    for repo in cached:
        _cache(tmp_path / "hub", repo)
    ctx = Context(build_root=tmp_path / "build", overrides={"index": {"retrieval": "auto", "inject": "auto"}})
    identity = _index_identity(ctx)  # what the index stage's freshness key holds (its "backend" part)
    plan = plan_index(IndexConfig.from_params(ctx.section("index")))
    want_retrieval = f"clap:{PUBLISHED_CLAP}" if PUBLISHED_CLAP in cached else "demo"
    want_inject = f"ast:{PUBLISHED_AST}" if PUBLISHED_AST in cached else "aisfx"
    assert identity == {"retrieval": want_retrieval, "inject": want_inject}
    assert (plan.retrieval_spec if plan.retrieval == "clap" else "demo") == identity["retrieval"]
    assert plan.inject_spec == identity["inject"]
    # what auto chose from the cache is loaded from the cache only: a failing load is an error, not another model
    assert set(plan.local_only) == {s for s in identity.values() if ":" in s}
