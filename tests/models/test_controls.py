"""The evidence's controls: learned parts fit on train clips only (a word planted in a test clip's caption reaches no
learned weight), the caption twin reads retrieved captions after the sentence (truncated before the sentence ever
is), and the eval's control table and seen / unseen split."""

from __future__ import annotations

import json

import numpy as np
import torch

from models.audiobert import AudioBERT, AudioBertConfig, encode_items
from models.loading import load_masked_lm, load_tokenizer
from models.retrieval import AudioIndex, IndexConfig


def _demo_heads(fit_ids, t_raw):
    from models.retrieval import _train_demo

    rng = np.random.default_rng(0)
    ids = [f"c{i}" for i in range(12)]
    captions = [f"a sound of thing {i}\nthing {i} sound" for i in range(12)]
    audio = rng.normal(size=(12, 8)).astype(np.float32)
    t_head, a_head, _ = _train_demo(ids, captions, audio, t_raw, IndexConfig(epochs=20, proj_dim=4, seed=0), fit_ids)
    return torch.cat([t_head.weight.flatten(), a_head.weight.flatten()])


def test_a_word_planted_in_a_test_clips_caption_reaches_no_retrieval_weight():
    """The demo retrieval model learns from the fit clips only: changing what a held-out clip's captions say (their
    text embeddings) leaves its heads identical; fitted on every clip, the same plant moves them."""
    t_raw = np.random.default_rng(1).normal(size=(24, 6)).astype(np.float32)  # two caption lines per clip
    planted = t_raw.copy()
    planted[[10, 11]] += 3.0  # clip c5's two caption lines now say something else
    train_clips = {f"c{i}" for i in range(12) if i != 5}
    assert torch.equal(_demo_heads(train_clips, t_raw), _demo_heads(train_clips, planted))
    every = train_clips | {"c5"}
    assert not torch.equal(_demo_heads(every, t_raw), _demo_heads(every, planted))  # the test would catch a leak


def _index(captions: list[str]) -> AudioIndex:
    rng = np.random.default_rng(0)
    n = len(captions)
    r = rng.normal(size=(n, 4)).astype(np.float32)
    return AudioIndex([f"c{i}" for i in range(n)], captions, r / np.linalg.norm(r, axis=1, keepdims=True),
                      rng.normal(size=(n, 6)).astype(np.float32), {"retrieval": "test", "inject": "test"})


def test_alignment_learns_from_fit_rows_only():
    from models.align import align_projection

    tok = load_tokenizer("minilm")

    def aligned(captions, rows):
        mlm, _ = load_masked_lm("minilm", allow_new_head=True)
        torch.manual_seed(0)
        model = AudioBERT(mlm, AudioBertConfig(lm="minilm", inject_dim=6, lora_r=2, lora_alpha=4, injection="insert"), train_head=True)
        align_projection(model, _index(captions), tok, steps=5, lr=1e-2, batch=8, seed=0, rows=rows)
        return torch.cat([p.detach().flatten() for p in model.proj.parameters()])

    captions = ["cow sound\nmoo", "dog sound\nwoof", "cat sound\nmeow", "duck sound\nquack", "owl sound\nhoot"]
    planted = list(captions)
    planted[4] = "owl sound\nzebra trumpet violin"  # the test clip's caption, reworded
    fit = [0, 1, 2, 3]
    assert torch.equal(aligned(captions, fit), aligned(planted, fit))
    assert not torch.equal(aligned(captions, None), aligned(planted, None))  # fitted on every row: it would leak


def test_fit_rows_leave_out_every_clip_of_a_dev_or_test_group(tmp_path):
    from benchmark.release_io import load_release
    from models.data import fit_rows
    from tests.benchmark.test_release import build, make_items

    rel = load_release(build(tmp_path))
    items = make_items()
    held = {c for cs, s in zip(items["clip_ids"], items["split"]) if s != "train" for c in cs}
    trained = {c for cs, s in zip(items["clip_ids"], items["split"]) if s == "train" for c in cs}
    ids = sorted(held | trained) + ["unused"]
    index = _index(ids)
    index.clip_ids = ids
    rows = fit_rows(rel, index)
    fitted = {ids[r] for r in rows}
    assert "unused" in fitted and not fitted & held and fitted - {"unused"} == trained - held


def test_the_caption_twin_reads_captions_after_the_sentence_and_they_are_cut_first():
    tok = load_tokenizer("minilm")
    s = "The sound of a violin is typically [MASK] than the sound of a tuba."
    long = " ; ".join(["violin sound, a bowed string instrument playing a high note"] * 40)
    b = encode_items(tok, [s, s], [1, 1], [["violin", "tuba"], ["violin", "tuba"]], max_length=48, contexts=[long, "tuba sound"])
    assert b.input_ids.shape[1] == 48  # the long context was cut to fit
    for row in range(2):
        ids = b.input_ids[row].tolist()
        assert ids.count(tok.mask_token_id) == 1
        assert [tok.convert_ids_to_tokens(ids[int(p)]) for p in b.span_pos[row]] == ["violin", "tuba"]  # in the sentence
    sentence = tok(s)["input_ids"][:-1]
    assert b.input_ids[0].tolist()[: len(sentence)] == sentence  # the sentence whole, before any context


def test_caption_context_goes_rank_by_rank_across_spans_so_a_cut_keeps_every_span():
    from types import SimpleNamespace

    from models.data import SpanHits
    from models.retrieval import Hit

    index = SimpleNamespace(captions=["violin sound\nbowed", "viola sound", "tuba sound\nbrass", "violin sound\nhigh"])
    hits = SpanHits({"violin": [Hit("c0", 0.9, 0), Hit("c1", 0.8, 1), Hit("c3", 0.7, 3)],
                     "tuba": [Hit("c2", 0.9, 2), Hit("c0", 0.5, 0), Hit("c1", 0.4, 1)]}, k=2)
    # each span's best hit before either span's second; a line already given is not repeated
    assert hits.captions(index, [["violin", "tuba"]]) == ["violin sound ; bowed ; tuba sound ; brass ; viola sound"]
    assert hits.captions(index, [["violin", "tuba"]], exclude=[{"c0"}]) == ["viola sound ; tuba sound ; brass ; violin sound ; high"]


def test_seen_unseen_split_and_the_pairs_compared():
    from models.eval import compared_pairs, seen_unseen

    out = seen_unseen(["dog", "cat", "owl", "owl"], ["dog", "dog", "owl", "cat"], {"dog", "cat"})
    assert out == {"n_seen": 2, "accuracy_seen": 0.5, "n_unseen": 2, "accuracy_unseen": 0.5}
    modes = {"AudioBERT(m)": {"mode": "audiobert", "lm": "m", "checkpoint": True},
             "text-only(m)": {"mode": "text", "lm": "m", "checkpoint": True},
             "caption twin(m)": {"mode": "captions", "lm": "m", "checkpoint": True},
             "AudioBERT(m) · excluded audio": {"mode": "audiobert", "lm": "m", "checkpoint": True, "variant_of": "AudioBERT(m)", "audio": "excluded"},
             "caption twin(m) · excluded captions": {"mode": "captions", "lm": "m", "checkpoint": True, "variant_of": "caption twin(m)", "audio": "excluded"}}
    pairs = compared_pairs(modes)
    assert ("AudioBERT(m)", "text-only(m)") in pairs and ("caption twin(m)", "text-only(m)") in pairs
    assert ("AudioBERT(m)", "caption twin(m)") in pairs
    assert ("AudioBERT(m) · excluded audio", "caption twin(m) · excluded captions") in pairs


def test_caption_twin_trains_and_the_control_table_and_report_say_what_the_controls_support(tiny_lm_dir, demo_index_dir, official_release, tmp_path):
    from models.config import RunOptions, TrainConfig
    from models.eval import evaluate
    from models.report import BEGIN, END, headline, sync_readme
    from models.train import train

    base = dict(lm=str(tiny_lm_dir), epochs=1, batch_size=8, detector_epochs=1, lora_r=4, lora_alpha=8, max_length=48, align_steps=0)
    opts = RunOptions(index_dir=str(demo_index_dir))
    audio = train(official_release, TrainConfig.demo(**base), tmp_path / "audiobert", opts)
    det = RunOptions(index_dir=str(demo_index_dir), detector_dir=str(audio / "detector"))
    text = train(official_release, TrainConfig.demo(**base, mode="text"), tmp_path / "text", det)
    captions = train(official_release, TrainConfig.demo(**base, mode="captions", context_tokens=32), tmp_path / "captions", det)
    assert json.loads((captions / "config.json").read_text())["name"].startswith("caption twin")
    # a reused detector brings its span scores along (every model's results name the spans it read)
    scores = lambda ckpt: json.loads((ckpt / "config.json").read_text())["span_detector"]["scores"]  # noqa: E731
    assert scores(text) == scores(captions) == scores(audio) and scores(audio)
    res = evaluate(official_release, [text, captions, audio], tmp_path / "eval", splits=("test",), ablation=("test",))
    # the models scored in two processes at once: the same bytes
    evaluate(official_release, [text, captions, audio], tmp_path / "eval2", splits=("test",), ablation=("test",), workers=2)
    for name in ("results.json", "predictions.jsonl"):
        assert (tmp_path / "eval2" / name).read_bytes() == (tmp_path / "eval" / name).read_bytes(), name
    names = {r["model"] for r in res["rows"]}
    assert any(n.startswith("caption twin") and n.endswith("excluded captions") for n in names)
    for a in res["ablation"]:
        for col in ("text twin", "caption twin", "caption twin · excluded", "retrieved audio", "excluded audio"):
            assert 0.0 <= a[col]["accuracy"] <= 1.0 and a[col]["n_seen"] + a[col]["n_unseen"] == a["n"], col
    block = headline(res)
    assert "What the controls support" in block and "with item clips excluded" in block and "caption twin" in block
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n{BEGIN}\nold\n{END}\ntail\n")
    assert not sync_readme(tmp_path / "eval" / "results.json", readme, check=True)
    assert sync_readme(tmp_path / "eval" / "results.json", readme) and sync_readme(tmp_path / "eval" / "results.json", readme, check=True)
    assert readme.read_text().endswith(f"{END}\ntail\n") and block in readme.read_text()


def test_sweep_chooses_on_dev_and_never_reads_test(tiny_lm_dir, demo_index_dir, official_release, tmp_path):
    from models.config import RunOptions, TrainConfig
    from models.sweep import sweep

    base = TrainConfig.demo(lm=str(tiny_lm_dir), epochs=1, batch_size=8, detector_epochs=1, lora_r=4, lora_alpha=8, max_length=48, align_steps=0)
    res = sweep(official_release, base, {"the recipe": {}, "no copy": {"audio_copy": False}}, tmp_path / "sweep",
                RunOptions(index_dir=str(demo_index_dir)))
    assert [r["variant"] for r in res["rows"]] == ["the recipe", "no copy"]
    assert res["chosen"] == max(res["rows"], key=lambda r: r["mean"])["variant"]
    for folder in ("the_recipe", "no_copy"):
        rows = json.loads((tmp_path / "sweep" / folder / "eval" / "results.json").read_text())["rows"]
        assert {r["split"] for r in rows} == {"dev"}
    assert "(**chosen**)" in (tmp_path / "sweep" / "sweep.md").read_text()
    # the variants trained two at once, each in its own process: the same rows
    again = sweep(official_release, base, {"the recipe": {}, "no copy": {"audio_copy": False}}, tmp_path / "sweep2",
                  RunOptions(index_dir=str(demo_index_dir)), workers=2)
    assert again["rows"] == res["rows"] and again["chosen"] == res["chosen"]
