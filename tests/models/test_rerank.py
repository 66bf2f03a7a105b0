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


def test_one_index_shares_its_caption_encodings_across_retrieval_calls_and_another_index_has_its_own():
    index = _index()
    hits = [Hit("c/3", 0.9, 3), Hit("c/0", 0.8, 0), Hit("c/1", 0.7, 1), Hit("c/2", 0.1, 2)]
    shared = CaptionReranker.of(index)
    first = shared.rerank(index, ["heehaw sound"], [hits], k=1)
    assert set(shared._lines) == {0, 1, 2, 3}  # every hit's caption lines, encoded once
    cached = {r: v.copy() for r, v in shared._lines.items()}
    again = CaptionReranker.of(index).rerank(index, ["chirp sound"], [hits], k=1)  # a later call (the next task)
    assert CaptionReranker.of(index) is shared and all(np.array_equal(shared._lines[r], cached[r]) for r in cached)
    assert first[0][0].clip_id == "c/1" and again[0][0].clip_id == "c/2"
    other = AudioIndex(["x"], ["dog sound"], np.eye(1, dtype=np.float32), np.eye(1, dtype=np.float32),
                       {"retrieval": "toy", "inject": "toy"}, {}, None)
    assert CaptionReranker.of(other) is not shared  # rows of another index are other clips
