"""The index's aisfx fast path (batch norms folded into the convolutions, channels-last, optionally bfloat16) against
the published network as the checkpoint defines it: same embeddings to float rounding in fp32, 1 - cosine < 1e-4
in bf16; and the precision is part of the index's freshness key. Speed: `make bench-scale` (same-run ratio)."""

from __future__ import annotations

import numpy as np
import pytest

from benchmark.errors import InputError
from models.audio_encoders import AISFX_SR_HZ, AisfxEncoder, FastAisfxNet


@pytest.fixture(scope="module")
def clips() -> list[np.ndarray]:
    """Shorter than one block (zero-padded), one block, several overlapping blocks; tones in noise."""
    rng = np.random.default_rng(3)
    out = []
    for seconds, hz in ((0.5, 440.0), (3.0, 1200.0), (7.3, 180.0)):
        t = np.arange(int(seconds * AISFX_SR_HZ)) / AISFX_SR_HZ
        out.append((0.3 * np.sin(2 * np.pi * hz * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32))
    return out


@pytest.fixture(scope="module")
def reference(clips) -> np.ndarray:
    return AisfxEncoder.from_checkpoint(reference=True).encode(clips, AISFX_SR_HZ)


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_fast_fp32_path_gives_the_reference_embeddings(clips, reference):
    fast = AisfxEncoder.from_checkpoint().encode(clips, AISFX_SR_HZ)
    assert fast.shape == reference.shape == (3, 512)
    assert np.abs(fast - reference).max() <= 1e-5 * np.abs(reference).max()  # measured: ~6e-7 of the largest value
    assert not np.array_equal(fast, np.zeros_like(fast))


def test_bf16_path_stays_within_a_cosine_of_1e_3(clips, reference):
    bf16 = AisfxEncoder.from_checkpoint(precision="bf16").encode(clips, AISFX_SR_HZ)
    cos = _cosine(bf16, reference)
    assert cos.min() > 0.999, cos  # measured: 1 - cos ~ 6e-5
    assert not np.array_equal(bf16, reference)  # it is another computation, hence its own key


def test_unknown_precision_is_a_clear_error():
    enc = AisfxEncoder.from_checkpoint(reference=True)
    with pytest.raises(InputError, match="aisfx precision 'fp8'"):
        FastAisfxNet(enc.net, "fp8")


def test_precision_is_in_the_index_key(tmp_path):
    from pipeline.contract import Context, run_stage
    from pipeline.demo.corpus import build_demo_corpus

    corpus = build_demo_corpus(tmp_path / "corpus", seed=5, n_clips=20, n_shards=2, quiet=True)
    keys = []
    for precision in ("fp32", "bf16"):
        ctx = Context(corpus=str(corpus), corpus_id="k", build_root=tmp_path / "build", quiet=True,
                      options={"workers": 1}, overrides={"index": {"precision": precision}})
        for stage in ("read", "extract", "measure", "split"):  # the index's inputs (fresh the second time)
            run_stage(stage, ctx)
        keys.append(ctx.key("index"))
    assert keys[0] != keys[1]
