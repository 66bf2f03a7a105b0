"""The `index` stage: embed the corpus clips once for text-to-audio retrieval and for AudioBERT's injection.

Inputs under build_dir (= build/<corpus_id>): read/clips.parquet; extract/categories.parquet (optional: the
clip's sound source becomes an extra caption, "<source> sound"); measure/rejects.parquet (optional: clips rejected
there are skipped). Output: build_dir/index/audio_index/ (the folder a release ships as audio_index/:
index.json, retrieval_embeddings.npy, inject_embeddings.npy, text_head.npy for the demo model) + manifest.json.
Clips whose audio cannot be read or decoded become reject rows (index/rejects.parquet), never a crash.
The index records what built it: its models (retrieval, injection, text side, settings) and the corpus (id,
fingerprint of the read stage's inputs, clip count), so a checkpoint can refuse an index of other models.

`index_corpus(corpus, out_dir)` is the standalone form (`auditorybench index CORPUS --out DIR`): read + index over
any corpus (LAION tar shards, an extracted folder, the demo corpus) into out_dir, the index folder itself (its
stage outputs under out_dir/build/, so a rerun does nothing).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd

from benchmark.errors import InputError
from benchmark.hashing import atomic_path, stable_hash
from benchmark.schema import COLUMNS, Reject
from pipeline.stage import StageRun, log

__all__ = ["index_stage", "index_corpus", "clip_texts", "run"]

def _decode_sr_hz(config) -> int:
    """Decode once, at the rate of the encoder that sees the most audio: 48 kHz for CLAP, else aisfx's 44.1 kHz."""
    return 48000 if str(config.retrieval).startswith("clap") else 44100


def clip_texts(row: dict, source_name: str = "") -> str:
    """The texts that describe a clip, one per line: its captions, then '<source> sound' when known."""
    caps = row.get("captions")
    texts = [str(c).strip() for c in (list(caps) if caps is not None else []) if str(c).strip()]
    if not texts and str(row.get("title") or "").strip():
        texts.append(str(row["title"]).strip())
    if source_name:
        texts.append(f"{source_name} sound")
    return "\n".join(texts)


def index_stage(build_dir: Path, corpus_root: Path, params: dict, quiet: bool = False, key: dict | None = None) -> dict:
    """Build build_dir/index/audio_index/ from the clips of the read stage; return the stage manifest."""
    from tqdm import tqdm

    from models.retrieval import IndexConfig, build_index
    from pipeline.measure.audio import load_audio_bytes
    from pipeline.reader import read_clip_bytes

    build_dir, corpus_root = Path(build_dir), Path(corpus_root)
    clips_path = build_dir / "read" / "clips.parquet"
    if not clips_path.exists():
        raise InputError(f"{clips_path}: missing; run the read stage first")
    inputs = {"clips": clips_path}
    cats_path = build_dir / "extract" / "categories.parquet"
    rej_path = build_dir / "measure" / "rejects.parquet"
    if cats_path.exists():
        inputs["categories"] = cats_path
    if rej_path.exists():
        inputs["measure_rejects"] = rej_path
    run = StageRun("index", build_dir / "index", params, inputs, key=key, quiet=quiet)
    if run.fresh():
        return run.previous()

    config = IndexConfig.from_params(params)
    sr_hz = _decode_sr_hz(config)
    clips = pd.read_parquet(clips_path)
    source = {}
    if cats_path.exists():
        cats = pd.read_parquet(cats_path)
        source = dict(zip(cats["clip_id"], cats["source_name"].fillna("").astype(str)))
    skip = set()
    if rej_path.exists():
        skip = set(pd.read_parquet(rej_path)["key"].astype(str))
    rejects: list[dict] = []
    batch = []
    for row in tqdm(clips.to_dict(orient="records"), desc="index: decode", disable=quiet):
        cid = row["clip_id"]
        if cid in skip:
            rejects.append(Reject(stage="index", key=cid, reason="rejected_by_measure").model_dump())
            continue
        try:
            data = read_clip_bytes(corpus_root, row["shard"], row["member"], int(row["offset"]), int(row["size"]))
            audio, _, _ = load_audio_bytes(data, sr_hz, max_duration_s=None)
        except (InputError, OSError, ValueError, RuntimeError) as e:  # one clip's failure is a reject row, with its reason
            reason = getattr(e, "reason", None) or type(e).__name__
            rejects.append(Reject(stage="index", key=cid, reason=str(reason), detail=str(e)[:200]).model_dump())
            continue
        batch.append((cid, audio[: int(config.max_audio_s * sr_hz)], sr_hz, clip_texts(row, source.get(cid, ""))))
    if not batch:
        raise InputError(f"{clips_path}: no clip could be decoded for the index")
    index = build_index(batch, config, quiet=quiet)
    read = json.loads((build_dir / "read" / "manifest.json").read_text(encoding="utf-8")) if (build_dir / "read" / "manifest.json").exists() else {}
    index.models["corpus"] = {"id": build_dir.name, "fingerprint": stable_hash(read.get("inputs") or {}, n=64), "clips": len(index)}
    out = run.path("audio_index")
    index.save(out)
    for f in sorted(out.iterdir()):
        run.record_output(f"audio_index/{f.name}")
    run.write_table("rejects.parquet", pd.DataFrame(rejects, columns=COLUMNS["rejects"]))
    counts = {"kept": len(index), "rejected": _by_reason(rejects)}
    if not quiet:
        log(f"[index] retrieval {index.models['retrieval']}, inject {index.models['inject']}: {index.metrics}")
    return run.finish(counts, extra={"models": index.models, "retrieval_metrics": index.metrics})


def _by_reason(rejects: list[dict]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in rejects:
        out[r["reason"]] = out.get(r["reason"], 0) + 1
    return dict(sorted(out.items()))


def run(ctx) -> dict:
    """The build's index stage; with --out, a standalone index of any corpus (`auditorybench index CORPUS --out DIR`)."""
    if ctx.options.get("out"):
        out = index_corpus(ctx.options.get("source") or ctx.corpus, Path(ctx.options["out"]), ctx.section("read"),
                           ctx.section("index"), meta=ctx.meta, quiet=ctx.quiet)
        print(out)
        return json.loads((out / "index.json").read_text(encoding="utf-8"))
    if ctx.options.get("source"):
        raise InputError("index CORPUS needs --out DIR (without --out, the build's index stage indexes --corpus)")
    return index_stage(ctx.build_dir, ctx.corpus_root(), ctx.section("index"), quiet=ctx.quiet, key=ctx.key("index"))


def index_corpus(corpus: str | Path, out_dir: str | Path, read_params: dict, index_params: dict,
                 meta: str | Path | None = None, corpus_id: str | None = None, quiet: bool = False) -> Path:
    """Build an audio index over any corpus into out_dir (index.json, the embeddings; loadable by
    `models.retrieval.AudioIndex.load`). The read and index stages run under out_dir/build/<corpus id>/."""
    from pipeline.contract import corpus_id as fingerprinted_id
    from pipeline.reader import read_stage

    out = Path(out_dir)
    build_dir = out / "build" / (corpus_id or fingerprinted_id(corpus))
    read_stage(corpus, build_dir, read_params, meta=meta, quiet=quiet)
    root = Path(json.loads((build_dir / "read" / "manifest.json").read_text(encoding="utf-8"))["corpus"]["root"])
    index_stage(build_dir, root, index_params, quiet=quiet)
    for f in sorted((build_dir / "index" / "audio_index").iterdir()):
        if f.is_file():
            with atomic_path(out / f.name) as tmp:
                shutil.copyfile(f, tmp)
    return out
