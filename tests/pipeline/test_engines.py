"""Engines (pipeline/engines.py): the local process pool and Ray Data map the same per-clip functions and the
stages write the same bytes, so the engine is a run option, outside every freshness key."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmark.errors import ConfigError
from pipeline.contract import Context, run_stage
from pipeline.demo.corpus import build_demo_corpus
from pipeline.engines import PerUnit, map_units

ray = pytest.importorskip("ray")

PER_CLIP = ("read", "extract", "measure", "index")
RUN = ("read", "extract", "measure", "split", "index")  # the index reads the split (its demo projection fits on train clips)


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray for the module (its start-up is the slow part), two CPUs and one logical GPU (declared: Ray
    schedules it like a real one, no CUDA needed), no dashboard."""
    ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def builds(tmp_path_factory, local_ray) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("engines")
    corpus = build_demo_corpus(tmp / "demo_corpus", seed=7, n_clips=30, n_shards=3, quiet=True)
    out = {}
    for engine, workers in (("local", 2), ("ray", 2)):
        ctx = Context(corpus=str(corpus), corpus_id="demo", build_root=tmp / engine, quiet=True,
                      options={"engine": engine, "workers": workers}, overrides={"index": {"epochs": 20}})
        for stage in RUN:
            run_stage(stage, ctx)
        out[engine] = ctx.build_dir
    return out


def _files(build: Path) -> dict[str, bytes]:
    """Every output and manifest of the per-clip stages (run.json and result stores hold run facts, not outputs)."""
    return {str(p.relative_to(build)): p.read_bytes() for s in PER_CLIP for p in sorted((build / s).rglob("*"))
            if p.is_file() and p.name != "run.json" and p.suffix not in (".sqlite", ".sqlite-wal", ".sqlite-shm")}


def test_local_and_ray_write_the_same_bytes(builds):
    local, ray_ = _files(builds["local"]), _files(builds["ray"])
    assert sorted(local) == sorted(ray_)
    for name in ("read/clips.parquet", "measure/measurements.parquet", "index/audio_index/retrieval_embeddings.npy",
                 "index/audio_index/inject_embeddings.npy", "index/audio_index/index.json"):
        assert name in local, name
    differ = [n for n in local if local[n] != ray_[n]]
    assert differ == [], f"outputs differ between engines: {differ}"  # manifests too: the engine is not in any key


def test_a_stage_built_by_one_engine_is_fresh_for_the_other(builds):
    from pipeline.contract import status

    ctx = Context(corpus=str(builds["local"].parent.parent / "demo_corpus" / "freesound"), corpus_id="demo",
                  build_root=builds["local"].parent, options={"engine": "ray"}, overrides={"index": {"epochs": 20}})
    assert [s.state for s in status(ctx, list(PER_CLIP))] == ["fresh"] * len(PER_CLIP)


def test_llm_extract_asks_from_ray_workers_and_writes_the_same_bytes(tmp_path, local_ray, monkeypatch):
    """extract with the openai backend against a loopback OpenAI-protocol server: on Ray every request the cache
    lacks is asked by the workers (at most `concurrency` in flight each), the answers cached by the driver; the
    outputs are those of the local engine, and a rerun on either engine replays the cache with no request."""
    import pandas as pd

    from tests.openai_server import FakeModel, OpenAIServer, Reply

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    corpus = build_demo_corpus(tmp_path / "demo_corpus", seed=3, n_clips=24, n_shards=2, quiet=True)
    outputs, sent, manifests = {}, {}, {}
    model = FakeModel()
    with OpenAIServer(lambda body, i: Reply(content=model.answer(body))) as srv:
        llm = {"backend": "openai", "model": "fake-model", "base_url": srv.base_url, "batch_size": 4, "concurrency": 2,
               "max_reject_frac": 0.9}
        for engine in ("local", "ray"):
            ctx = Context(corpus=str(corpus), corpus_id="demo", build_root=tmp_path / engine, quiet=True,
                          options={"engine": engine, "workers": 2}, overrides={"extract": llm})
            before = srv.count
            run_stage("read", ctx)
            manifests[engine] = run_stage("extract", ctx)
            sent[engine] = srv.count - before
            outputs[engine] = {p.name: pd.read_parquet(p) for p in sorted((ctx.build_dir / "extract").glob("*.parquet"))}
            ctx.options["engine"] = "ray" if engine == "local" else "local"
            (ctx.build_dir / "extract" / "manifest.json").unlink()  # not fresh: every request asked again, of the cache
            before = srv.count
            run_stage("extract", ctx)
            assert srv.count == before, f"{engine}: a rerun on the other engine sent requests"
    assert sent["local"] == sent["ray"] > 0
    assert manifests["ray"]["llm_stats"]["answered"] == sent["ray"]
    assert manifests["ray"]["llm_stats"]["peak_concurrency"] <= 2  # per worker: each worker's own limit
    assert sorted(outputs["local"]) == ["animal_items.parquet", "categories.parquet", "rejects.parquet"]
    assert len(outputs["local"]["categories.parquet"]) >= 20
    for name, df in outputs["local"].items():
        pd.testing.assert_frame_equal(df, outputs["ray"][name], obj=name)


def _square(x: int) -> int:
    return x * x


@pytest.mark.parametrize("engine,workers", [("local", 1), ("local", 2), ("ray", 2)])
def test_map_units_returns_every_result_once(local_ray, engine, workers):
    got = dict(map_units(PerUnit(_square), [(i,) for i in range(23)], engine=engine, workers=workers, batch_size=3))
    assert got == {i: i * i for i in range(23)}


def _gpu_ids(x: int) -> tuple[int, list[str]]:
    return x, [str(g) for g in ray.get_gpu_ids()]


def test_a_gpu_stage_gets_a_gpu_per_ray_worker(local_ray):
    """num_gpus=1 (what index and measure pass with device: cuda) makes every Ray actor hold one of the cluster's
    GPUs (Ray sets CUDA_VISIBLE_DEVICES for it); without it an actor holds none."""
    with_gpu = dict(map_units(PerUnit(_gpu_ids), [(i,) for i in range(6)], engine="ray", workers=1, batch_size=2, num_gpus=1))
    assert sorted(with_gpu) == list(range(6)) and {tuple(ids) for _, ids in with_gpu.values()} == {("0",)}
    without = dict(map_units(PerUnit(_gpu_ids), [(i,) for i in range(6)], engine="ray", workers=1, batch_size=2))
    assert {tuple(ids) for _, ids in without.values()} == {()}


def test_unknown_engine_is_a_clear_error():
    with pytest.raises(ConfigError, match="engine 'spark'"):
        list(map_units(PerUnit(_square), [(1,)], engine="spark"))
