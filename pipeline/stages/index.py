"""The `index` stage: embed the corpus clips once for text-to-audio retrieval and for AudioBERT's injection.

Inputs (declared in pipeline.contract): the clip table; the categories (optional: the clip's sound source becomes an
extra caption, "<source> sound"); the measure stage's rejects (optional: clips rejected there are skipped); the read
stage's manifest gives the corpus fingerprint the index records (provenance, not in the key); the split stage's
clip_splits (optional: with it, the demo retrieval model is fitted on train clips only); and, for
`clap:<file.pt>` (a laion-clap checkpoint, models.clap_checkpoint), that file and a local clap_tokenizer folder.
Output: build_dir/index/audio_index/ (the folder a release ships as audio_index/: index.json,
retrieval_embeddings.npy, inject_embeddings.npy, text_head.npy for the demo model) + manifest.json.
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
from pipeline.contract import open_stage, stage_file
from pipeline.stage import log

__all__ = ["index_stage", "index_corpus", "clip_texts", "EmbedClips", "run"]

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


class EmbedClips:
    """The factory of the index's batch function (pipeline.engines): a worker builds the plan's encoders once, then
    maps clips (clip_id, shard, member, offset, size, texts) to {"emb": {spec: float32[d]}, "text": float32[len(texts),
    h] or None} or {"reject", "detail"}: the audio side and the demo model's text side, clip by clip.
    One torch thread per worker while embedding, whatever the engine, so the floats do not depend on it."""

    def __init__(self, corpus_root: str, sr_hz: int, plan, config):
        self.corpus_root, self.sr_hz, self.plan, self.config = corpus_root, sr_hz, plan, config

    def __call__(self):
        from models.retrieval import ClipEmbedder

        embedder = ClipEmbedder(self.plan, self.config)
        return lambda units: [self._one(embedder, *u) for u in units]

    def _one(self, embedder, clip_id: str, shard: str, member: str, offset: int, size: int, texts: tuple) -> dict:
        import torch

        from pipeline.measure.audio import load_audio_bytes
        from pipeline.reader import read_clip_bytes

        try:
            data = read_clip_bytes(self.corpus_root, shard, member, int(offset), int(size))
            audio, _, _ = load_audio_bytes(data, self.sr_hz, max_duration_s=None)
        except (InputError, OSError, ValueError, RuntimeError) as e:  # one clip's failure is a reject row, with its reason
            return {"reject": str(getattr(e, "reason", None) or type(e).__name__), "detail": str(e)[:200]}
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return {"emb": embedder.embed(audio, self.sr_hz), "text": embedder.embed_texts(texts)}
        finally:
            torch.set_num_threads(threads)


def index_stage(build_dir: Path, corpus_root: Path, params: dict, quiet: bool = False, key: dict | None = None,
                engine: str = "local", workers: int | None = None) -> dict:
    """Build build_dir/index/audio_index/ from the clips of the read stage; return the stage manifest.

    The per-clip work (read, decode, embed: `EmbedClips`) is mapped by the engine (local process pool or Ray Data,
    workers: processes or actors; a Ray actor asks for a GPU with device: cuda); no clip's audio outlives its
    embedding. Embeddings arrive in any order and are written in place, a row at a time, into scratch files
    (models._io.RowFile: through the file, never mapped); the index is assembled from them in clip order, so its bytes
    do not depend on the engine. The demo model's text side is embedded by the workers too (a clip's texts with its
    audio), into rows of its own scratch file. The driver reads them back a block of rows at a time and writes the
    index's embeddings the same way (finish_index with out_dir): its memory does not grow with the corpus.
    With the split stage's clip_splits.parquet in the build, the demo retrieval model learns from the train split's
    clips only (every clip stays retrievable); without it (`index_corpus`: an index of a foreign corpus), from a
    hash-chosen share."""
    import numpy as np
    from tqdm import tqdm

    from models._io import RowFile, RowSubset
    from models.retrieval import IndexConfig, caption_texts, finish_index, plan_index
    from pipeline.engines import map_units

    build_dir, corpus_root = Path(build_dir), Path(corpus_root)
    from models.clap_checkpoint import checkpoint_inputs

    run = open_stage(build_dir, "index", params, key=key, quiet=quiet, external=checkpoint_inputs(params),
                     optional=("categories", "measure_rejects", "clip_splits"))
    clips_path, cats_path, rej_path = (run.inputs.get(r) for r in ("clips", "categories", "measure_rejects"))
    fit_ids = None
    if "clip_splits" in run.inputs:
        splits = pd.read_parquet(run.inputs["clip_splits"], columns=["clip_id", "split"])
        fit_ids = set(splits.loc[splits["split"] == "train", "clip_id"].astype(str))
    if run.fresh():
        return run.previous()

    config = IndexConfig.from_params(params)
    plan = plan_index(config)
    sr_hz = _decode_sr_hz(config)
    clips = pd.read_parquet(clips_path, columns=["clip_id", "shard", "member", "offset", "size", "captions", "title"])
    source = {}
    if cats_path is not None:
        cats = pd.read_parquet(cats_path, columns=["clip_id", "source_name"])
        source = dict(zip(cats["clip_id"], cats["source_name"].fillna("").astype(str)))
    skip = set()
    if rej_path is not None:
        skip = set(pd.read_parquet(rej_path, columns=["key"])["key"].astype(str))
    rejects: dict[int, dict] = {}
    units = []
    captions = [clip_texts(row, source.get(row["clip_id"], "")) for row in clips.to_dict("records")]
    n_texts = np.array([len(caption_texts(c)) for c in captions], dtype=np.int64)
    text_row = np.cumsum(n_texts) - n_texts  # clip i's texts are rows text_row[i] ... + n_texts[i] of the text scratch
    for i, row in enumerate(clips.itertuples(index=False)):
        if row.clip_id in skip:
            rejects[i] = Reject(stage="index", key=row.clip_id, reason="rejected_by_measure").model_dump()
        else:
            units.append((i, (row.clip_id, row.shard, row.member, int(row.offset), int(row.size),
                              tuple(caption_texts(captions[i])))))
    scratch = run.path(".scratch")
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    arrays: dict[str, RowFile] = {}
    text_rows: RowFile | None = None
    ok = np.zeros(len(clips), dtype=bool)
    num_gpus = 1.0 if config.device == "cuda" else 0.0
    bar = tqdm(total=len(units), desc=f"index: embed ({engine})", unit="clip", disable=quiet)
    try:
        for j, res in map_units(EmbedClips(str(corpus_root), sr_hz, plan, config), [u for _, u in units], engine=engine,
                                workers=workers, batch_size=4, num_gpus=num_gpus):
            i = units[j][0]
            bar.update()
            if "reject" in res:
                rejects[i] = Reject(stage="index", key=clips["clip_id"].iat[i], reason=res["reject"], detail=res["detail"]).model_dump()
                continue
            for spec, vec in res["emb"].items():
                if spec not in arrays:
                    arrays[spec] = RowFile.create(scratch / f"{len(arrays)}.npy", len(clips), len(vec))
                arrays[spec][i:i + 1] = vec
            if res["text"] is not None:
                if text_rows is None:
                    text_rows = RowFile.create(scratch / "text.npy", int(n_texts.sum()), res["text"].shape[1])
                text_rows[text_row[i]:text_row[i] + n_texts[i]] = res["text"]
            ok[i] = True
        bar.close()
        kept = np.flatnonzero(ok)
        if not len(kept):
            raise InputError(f"{clips_path}: no clip could be decoded for the index")
        ids = clips["clip_id"].to_numpy()[kept].tolist()
        kept_texts = None
        if text_rows is not None:
            kept_texts = RowSubset(text_rows, np.concatenate([np.arange(text_row[i], text_row[i] + n_texts[i]) for i in kept]))
        out = run.path("audio_index")
        index = finish_index(ids, [captions[i] for i in kept], {s: RowSubset(a, kept) for s, a in arrays.items()}, plan,
                             config, kept_texts, out_dir=out, fit_ids=fit_ids)
    finally:
        for f in [*arrays.values(), *([text_rows] if text_rows is not None else [])]:
            f.discard()
        shutil.rmtree(scratch, ignore_errors=True)
    # provenance, not an input: the read stage's input fingerprints, which change only with clips.parquet's content
    # (keying the index on read's whole manifest would rerun it, the costly stage, after every edit of reader.py)
    read_manifest = stage_file(build_dir, "read/manifest.json")
    read = json.loads(read_manifest.read_text(encoding="utf-8")) if read_manifest.exists() else {}
    index.models["corpus"] = {"id": build_dir.name, "fingerprint": stable_hash(read.get("inputs") or {}, n=64), "clips": len(index)}
    index.save(out)
    for f in sorted(out.iterdir()):
        run.record_output(f"audio_index/{f.name}")
    rej_rows = [rejects[i] for i in sorted(rejects)]
    run.write_table("rejects.parquet", pd.DataFrame(rej_rows, columns=COLUMNS["rejects"]))
    counts = {"kept": len(index), "rejected": _by_reason(rej_rows)}
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
    return index_stage(ctx.build_dir, ctx.corpus_root(), ctx.section("index"), quiet=ctx.quiet, key=ctx.key("index"),
                       engine=ctx.options.get("engine") or "local", workers=ctx.options.get("workers"))


def index_corpus(corpus: str | Path, out_dir: str | Path, read_params: dict, index_params: dict,
                 meta: str | Path | None = None, corpus_id: str | None = None, quiet: bool = False) -> Path:
    """Build an audio index over any corpus into out_dir (index.json, the embeddings; loadable by
    `models.retrieval.AudioIndex.load`). The read and index stages run under out_dir/build/<corpus id>/."""
    from pipeline.contract import corpus_id as fingerprinted_id
    from pipeline.stages.read import read_stage

    out = Path(out_dir)
    build_dir = out / "build" / (corpus_id or fingerprinted_id(corpus))
    read = read_stage(corpus, build_dir, read_params, meta=meta, quiet=quiet)
    index_stage(build_dir, Path(read["corpus"]["root"]), index_params, quiet=quiet)
    for f in sorted(stage_file(build_dir, "index/audio_index").iterdir()):
        if f.is_file():
            with atomic_path(out / f.name) as tmp:
                shutil.copyfile(f, tmp)
    return out
