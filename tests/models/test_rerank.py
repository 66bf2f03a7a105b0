"""Caption re-ranking of retrieval hits (models.rerank) with the shipped MiniLM sentence encoder."""

from __future__ import annotations

import numpy as np

from models.rerank import CaptionReranker
from models.retrieval import AudioIndex, Hit


def _index() -> AudioIndex:
    caps = ["Door knock 2.wav\ndoor sound", "Heehaw heehaw - donkey in the barn.\ndonkey sound",
            "Tweet tweet - birds chirp.\nbird sound", "hammer_73.wav\nhammer sound"]
    a = np.eye(4, dtype=np.float32)
    return AudioIndex([f"c/{i}" for i in range(4)], caps, a, a, {"retrieval": "toy", "inject": "toy"}, {}, None)


def test_hits_are_reordered_by_their_best_caption_line():
    index = _index()
    rr = CaptionReranker("minilm")
    wrong_first = [Hit("c/3", 0.9, 3), Hit("c/0", 0.8, 0), Hit("c/1", 0.7, 1), Hit("c/2", 0.1, 2)]
    got = rr.rerank(index, ["heehaw sound", "chirp sound"], [wrong_first, wrong_first], k=2)
    assert [h.clip_id for h in got[0]][0] == "c/1" and [h.clip_id for h in got[1]][0] == "c/2"
    assert all(len(g) == 2 for g in got)
    assert got[0][0].similarity > got[0][1].similarity  # the similarity is now the caption's
    again = rr.rerank(index, ["heehaw sound"], [wrong_first], k=4)  # cached caption lines give the same order
    assert [h.clip_id for h in again[0]][:2] == [h.clip_id for h in got[0]]


def test_equal_captions_keep_the_retrieval_order():
    caps = ["dog sound"] * 3
    a = np.eye(3, dtype=np.float32)
    index = AudioIndex(["a", "b", "c"], caps, a, a, {"retrieval": "toy", "inject": "toy"}, {}, None)
    hits = [Hit("c", 0.9, 2), Hit("a", 0.5, 0), Hit("b", 0.1, 1)]
    assert [h.clip_id for h in CaptionReranker("minilm").rerank(index, ["dog sound"], [hits], k=3)[0]] == ["c", "a", "b"]
