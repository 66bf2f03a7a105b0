"""Span labels of the detector, retrieval order on a tiny index, the index stage, loud model-loading failures."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from benchmark.errors import InputError, ModelLoadError
from models.retrieval import AudioIndex, recall_at_k
from models.span_detector import SpanConfig, SpanDetector, _decode, label_tokens, span_char_ranges, span_scores

from .conftest import sine


def _detector(tiny_lm_dir) -> SpanDetector:
    return SpanDetector.from_pretrained_encoder(SpanConfig(encoder=str(tiny_lm_dir), max_length=48))


def test_span_labels_are_bio_over_word_pieces(tiny_lm_dir):
    det = _detector(tiny_lm_dir)
    sent = "The sound of a violin is typically [MASK] in pitch than a bass drum."
    enc = det.encode([sent], [["a violin", "a bass drum"]])
    toks = det.tokenizer.convert_ids_to_tokens(enc["input_ids"][0])
    labels = enc["labels"][0].tolist()
    tagged = [(t, tag) for t, tag in zip(toks, labels) if tag in (1, 2)]
    words = det.tokenizer.convert_tokens_to_string([t for t, _ in tagged]).split()
    assert words == ["a", "violin", "a", "bass", "drum"]
    assert [tag for _, tag in tagged][0] == 1 and labels[toks.index("[CLS]")] == -100
    # two spans -> exactly two B tags; everything else in the sentence is O
    assert sum(1 for tag in labels if tag == 1) == 2
    assert all(tag == 0 for t, tag in zip(toks, labels) if t in ("the", "[MASK]", "pitch"))
    # the labels decode back to the gold spans
    spans = _decode(sent, labels, enc["offsets"][0].tolist(), enc["attention_mask"][0].tolist())
    assert spans == ["a violin", "a bass drum"]
    # a detector that tags the answer's slot ('a [MASK]', seen from a one-epoch detector) gives no span there
    mask_tok = toks.index("[MASK]")
    over_mask = list(labels)
    over_mask[mask_tok - 1], over_mask[mask_tok] = 1, 2  # 'typically [MASK]' as one span, beside the two gold ones
    assert _decode(sent, over_mask, enc["offsets"][0].tolist(), enc["attention_mask"][0].tolist()) == ["a violin", "a bass drum"]


def test_span_ranges_case_insensitive_and_repeated():
    assert span_char_ranges("Woof woof, said the [MASK].", ["woof woof"]) == [(0, 9)]
    # the same text twice: the second span takes the second occurrence
    assert span_char_ranges("a drum or a drum", ["a drum", "a drum"]) == [(0, 6), (10, 16)]
    with pytest.raises(InputError):
        span_char_ranges("no such thing", ["violin"])
    # a span inside a longer word is not taken first: "pig" is not the start of "pigeon" (it broke a demo build)
    pig = "Compared with the sound of a pigeon, the sound of a pig usually lasts [MASK]."
    assert span_char_ranges(pig, ["pig", "pigeon"]) == [(29, 35), (52, 55)]
    assert span_char_ranges("two violins and a cello", ["violin"]) == [(4, 10)]  # no whole word: any occurrence
    assert label_tokens([(0, 0), (0, 4), (5, 9), (10, 13), (0, 0)], [(0, 9)]) == [-100, 1, 2, 0, -100]


def test_span_scores():
    s = span_scores([["woof woof"], ["a violin", "a tuba"]], [["woof woof"], ["a violin", "a flute"]])
    assert (s["precision"], s["recall"]) == (2 / 3, 2 / 3)
    assert s["f1"] == pytest.approx(2 / 3)


def test_detector_save_load_predicts_the_same(tiny_lm_dir, tmp_path):
    det = _detector(tiny_lm_dir)
    sents = ["The sound of meow comes from a [MASK].", "A [MASK] usually goes moo at night."]
    det.save(tmp_path / "det")
    back = SpanDetector.load(tmp_path / "det")
    det.eval()
    enc = det.encode(sents)
    with torch.no_grad():
        a = det(enc["input_ids"], enc["attention_mask"])
        b = back(enc["input_ids"], enc["attention_mask"])
    assert torch.allclose(a, b)
    assert det.predict(sents) == back.predict(sents)


def _tiny_index() -> AudioIndex:
    r = np.array([[1, 0, 0], [0.8, 0.6, 0], [0, 0, 1], [0, 1, 0]], dtype=np.float32)
    r /= np.linalg.norm(r, axis=1, keepdims=True)
    inject = np.arange(8, dtype=np.float32).reshape(4, 2)
    return AudioIndex(["c/a", "c/b", "c/c", "c/d"], ["a", "b", "c", "d"], r, inject, {"retrieval": "test", "inject": "test", "text_side": {}})


def test_retrieval_order_and_similarity_on_a_tiny_index(tmp_path):
    index = _tiny_index()
    hits = index.search_embeddings(np.array([[2.0, 0.1, 0.0], [0.0, 1.0, 0.05]]), k=3)
    assert [h.clip_id for h in hits[0]] == ["c/a", "c/b", "c/d"]
    assert [h.clip_id for h in hits[1]] == ["c/d", "c/b", "c/c"]
    q = np.array([2.0, 0.1, 0.0]) / np.linalg.norm([2.0, 0.1, 0.0])
    assert hits[0][0].similarity == pytest.approx(float(q @ index.retrieval_embeddings[0]), rel=1e-5)
    assert hits[0][0].similarity > hits[0][1].similarity > hits[0][2].similarity
    # queries through a text side (any callable texts -> vectors)
    index.set_query_encoder(lambda texts: np.array([[0.0, 0.0, 1.0] if "rain" in t else [1.0, 0.0, 0.0] for t in texts]))
    assert [h[0].clip_id for h in index.search(["rain sound", "dog sound"], k=1)] == ["c/c", "c/a"]
    index.save(tmp_path / "idx")
    back = AudioIndex.load(tmp_path / "idx")
    assert back.clip_ids == index.clip_ids and np.array_equal(back.inject_embeddings, index.inject_embeddings)
    assert recall_at_k(index.retrieval_embeddings, index.retrieval_embeddings, (1,)) == {"recall@1": 1.0}


def test_demo_index_is_built_from_audio_and_reloads(demo_index_dir):
    index = AudioIndex.load(demo_index_dir)
    meta = json.loads((demo_index_dir / "index.json").read_text())
    assert meta["models"]["retrieval"].startswith("demo-contrastive")
    assert meta["models"]["inject"] == "aisfx"
    assert index.inject_embeddings.shape == (len(index), 512)
    assert np.allclose(np.linalg.norm(index.retrieval_embeddings, axis=1), 1.0, atol=1e-5)
    assert index.metrics["n_heldout"] + index.metrics["n_train"] == len(index)
    assert 0.0 <= index.metrics["recall@1"] <= index.metrics["recall@5"] <= 1.0
    hits = index.search(["dog sound", "cat sound"], k=2)
    assert all(len(h) == 2 and h[0].similarity >= h[1].similarity for h in hits)


def test_loading_fails_loudly(tmp_path, tiny_lm_dir):
    from models.loading import load_masked_lm, load_tokenizer

    with pytest.raises(ModelLoadError, match="cannot load"):
        load_tokenizer(str(tmp_path / "no_such_model"))
    with pytest.raises(ModelLoadError, match="entries"):
        load_tokenizer(str(tiny_lm_dir), min_vocab=10**6)  # a tokenizer too small to be the real one
    with pytest.raises(ModelLoadError, match="no masked-LM head"):
        load_masked_lm(str(tiny_lm_dir), allow_new_head=False)
    assert load_masked_lm(str(tiny_lm_dir), allow_new_head=True)[1] is True


def test_index_stage_builds_skips_rejects_and_is_fresh(tmp_path, tiny_lm_dir):
    from pipeline.stages.index import index_stage

    corpus, build = tmp_path / "corpus", tmp_path / "build"
    corpus.mkdir()
    rows = []
    for i, (name, f) in enumerate([("dog", 300), ("cat", 700), ("cow", 150), ("bird", 2000), ("duck", 500), ("sheep", 250)]):
        p = corpus / f"{i}.flac"
        sf.write(p, sine(f, sr=48000, dur_s=1.0, noise=0.02, seed=i), 48000)
        rows.append({"clip_id": f"t/{i}", "shard": "", "member": p.name, "offset": 0, "size": p.stat().st_size,
                     "captions": [f"a {name} making noise"], "title": name})
    (corpus / "bad.flac").write_bytes(b"not audio at all")
    rows.append({"clip_id": "t/bad", "shard": "", "member": "bad.flac", "offset": 0, "size": 16, "captions": ["x"], "title": "x"})
    (build / "read").mkdir(parents=True)
    pd.DataFrame(rows).to_parquet(build / "read" / "clips.parquet")
    (build / "extract").mkdir()
    pd.DataFrame({"clip_id": ["t/0"], "source_name": ["dog"]}).to_parquet(build / "extract" / "categories.parquet")
    params = {"retrieval": "demo", "inject": "aisfx", "text_encoder": str(tiny_lm_dir), "epochs": 20, "holdout_frac": 0.34, "ks": [1, 2]}
    m = index_stage(build, corpus, params, quiet=True)
    assert m["counts"]["kept"] == 6 and sum(m["counts"]["rejected"].values()) == 1
    index = AudioIndex.load(build / "index" / "audio_index")
    assert "t/bad" not in index.clip_ids and index.captions[0] == "a dog making noise\ndog sound"
    assert pd.read_parquet(build / "index" / "rejects.parquet")["key"].tolist() == ["t/bad"]
    assert index_stage(build, corpus, params, quiet=True) == m  # fresh: nothing recomputed


def test_melstats_embedding_keeps_pitch_and_level():
    from models.audio_encoders import AISFX_MELS, load_audio_encoder
    from tests.models.conftest import sine

    enc = load_audio_encoder("melstats")
    low, high, quiet = enc.encode([sine(300.0), sine(2000.0), 0.1 * sine(300.0)], 16000)
    assert low.shape == (enc.dim,) == (2 * AISFX_MELS + 2,)
    band = lambda e: int(np.argmax(e[:AISFX_MELS]))  # noqa: E731 - the loudest mel band
    assert band(high) > band(low) + 10
    assert np.allclose(quiet[:-1], low[:-1], atol=1e-4)  # the spectrum is level-free (peak-normalised) ...
    assert low[-1] - quiet[-1] == pytest.approx(20 / 60, abs=0.01)  # ... and the level is its own feature: 20 dB / 60
