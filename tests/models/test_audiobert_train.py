"""The LoRA gate, answers of several word pieces, training on an official-format release, resume, eval, baselines."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from benchmark.metrics import mcnemar_exact
from models.audiobert import AudioBERT, AudioBertConfig, answer_pieces, encode_items, score_choices, widen_mask
from models.infer import load_checkpoint
from models.loading import load_masked_lm, load_tokenizer
from models.retrieval import AudioIndex
from models.train import RunOptions, TrainConfig, train


def _model(tiny_lm_dir, inject_dim=4):
    mlm, new = load_masked_lm(str(tiny_lm_dir), allow_new_head=True)
    cfg = AudioBertConfig(lm=str(tiny_lm_dir), inject_dim=inject_dim, lora_r=4, lora_alpha=8, lora_dropout=0.0)
    torch.manual_seed(0)
    return AudioBERT(mlm, cfg, train_head=new), load_tokenizer(str(tiny_lm_dir))


def test_lora_is_gated_by_spans(tiny_lm_dir):
    model, tok = _model(tiny_lm_dir)
    model.eval()
    span_sent, plain = "The sound of woof woof comes from a [MASK].", "A [MASK] is an animal."
    batch = encode_items(tok, [span_sent, plain], [1, 1], [["woof woof"], []])
    audio = torch.randn(2, 1, 4)

    def off_logits():
        with model.lm.disable_adapter(), torch.no_grad():
            b = encode_items(tok, [span_sent, plain], [1, 1], [[], []])  # no span: no injection either
            return model.full_logits(b, None)

    # zero-initialised adapter: on and off agree, so this alone proves nothing
    with torch.no_grad():
        before = model.full_logits(batch, None)
    assert torch.allclose(before[0], off_logits()[0], atol=1e-5)
    # a few training steps on span inputs
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    train_b = encode_items(tok, [span_sent] * 4, [1] * 4, [["woof woof"]] * 4)
    target = torch.full((4, 1), tok.convert_tokens_to_ids("dog"))
    model.train()
    for _ in range(5):
        loss = model.loss(train_b, target, torch.randn(4, 1, 4))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        on = model.full_logits(batch, audio)
    off = off_logits()
    assert torch.equal(on[1], off[1])  # span-less input: exactly the LM without the adapter
    assert not torch.allclose(on[0], off[0], atol=1e-3)  # span input: the adapter (and audio) change the logits
    lora_b = [p for n, p in model.named_parameters() if "lora_B" in n]
    assert lora_b and any(float(p.detach().abs().sum()) > 0 for p in lora_b)


def test_answers_of_several_word_pieces(tiny_lm_dir):
    tok = load_tokenizer(str(tiny_lm_dir))
    pieces = answer_pieces(tok, "eagle owl")
    assert len(pieces) >= 2 and tok.decode(pieces) == "eagle owl"
    assert widen_mask("A [MASK] hoots.", 3) == "A [MASK] [MASK] [MASK] hoots."
    batch = encode_items(tok, ["A [MASK] goes hoo hoo.", "A [MASK] goes meow."], [len(pieces), 1], [["hoo hoo"], ["meow"]])
    assert (batch.mask_pos[0] >= 0).sum() == len(pieces) and (batch.mask_pos[1] >= 0).sum() == 1
    first = tok.convert_ids_to_tokens([int(batch.input_ids[0, batch.span_pos[0, 0]])])[0]
    assert first == tok.tokenize("hoo")[0]  # injection point: the span's first token, after the widened masks
    vocab = len(tok)
    choices = ["cat", "eagle owl", "dog"]
    want = {1: {tok.convert_tokens_to_ids("cat"): 2.0}, len(pieces): {p: 3.0 for p in pieces}}

    def logits_fn(b, audio):  # favours the pieces of 'eagle owl' when there are as many masks as its pieces
        n = int((b.mask_pos[0] >= 0).sum())
        out = torch.zeros(b.input_ids.shape[0], b.mask_pos.shape[1], vocab)
        for k in range(n):
            for tid, v in want[n].items():
                if n == 1 or tid == pieces[k]:
                    out[:, k, tid] = v
        return out

    scores = score_choices(logits_fn, tok, ["A [MASK] hoots."], [[]], choices)
    assert choices[int(scores.argmax())] == "eagle owl"
    lp = torch.log_softmax(logits_fn(encode_items(tok, ["A [MASK] hoots."], [len(pieces)], [[]]), None), -1)
    manual = float(np.mean([lp[0, k, pieces[k]] for k in range(len(pieces))]))
    assert scores[0, 1] == pytest.approx(manual, rel=1e-5)  # the mean log-probability of its pieces


def _cfg(tiny_lm_dir, **kw):
    base = dict(lm=str(tiny_lm_dir), epochs=2, batch_size=8, detector_epochs=1, lora_r=4, lora_alpha=8, max_length=48)
    return TrainConfig.demo(**(base | kw))


def _opts(index_dir, **kw):
    return RunOptions(index_dir=str(index_dir), **kw)


def test_train_resumes_from_the_last_checkpoint(tiny_lm_dir, demo_index_dir, official_release, tmp_path):
    full = train(official_release, _cfg(tiny_lm_dir), tmp_path / "full", _opts(demo_index_dir))
    part = tmp_path / "part"
    assert train(official_release, _cfg(tiny_lm_dir), part, _opts(demo_index_dir, stop_after_epoch=1)) == part
    assert not (part / "model.pt").exists() and (part / "last" / "state.pt").exists()
    train(official_release, _cfg(tiny_lm_dir), part, _opts(demo_index_dir))  # resumes at epoch 2
    a = torch.load(full / "model.pt", weights_only=True)
    b = torch.load(part / "model.pt", weights_only=True)
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    meta = json.loads((part / "config.json").read_text())
    assert meta["release"]["version"] == "0.0.1" and meta["release"]["name"] == "official"
    assert meta["config"]["injection"] == "insert" and meta["config"]["audio_copy"] and meta["config"]["rerank"] > 0
    assert math.isfinite(meta["align_loss"]) and "slot_embed.weight" in b and "copy_scale" in b  # the demo's additions
    assert [h["epoch"] for h in meta["history"]] == [1, 2]
    assert (part / "tokenizer" / "tokenizer_config.json").exists() and (part / "detector" / "span_detector.pt").exists()
    assert set(meta["span_detector"]["scores"]) <= {"dev", "test"} and meta["config"]["lm"] == str(tiny_lm_dir)


def test_train_and_eval_on_an_official_release(tiny_lm_dir, demo_index_dir, official_release, tmp_path):
    from benchmark.release_io import load_release
    from models.eval import evaluate

    audio = train(official_release, _cfg(tiny_lm_dir), tmp_path / "audiobert", _opts(demo_index_dir))
    text = train(official_release, _cfg(tiny_lm_dir, mode="text"), tmp_path / "text", _opts(demo_index_dir, detector_dir=str(audio / "detector")))
    m = load_checkpoint(audio)
    assert m.config.mode == "audiobert" and m.index is not None
    res = evaluate(official_release, [audio, text], tmp_path / "eval", ablation=("test",))
    rel = load_release(official_release)
    want = {(t, s) for t in rel.tasks for s in ("train", "dev", "test", "wiki") if len(rel.items(t, s))}
    for name in ("AudioBERT", "text-only"):
        got = {(r["task"], r["split"]) for r in res["rows"] if r["model"].startswith(name) and "·" not in r["model"]}
        assert got == want
    # the ablation: text twin · retrieved · excluded · oracle · shuffled audio on every task's test split
    assert {(a["task"], a["split"]) for a in res["ablation"]} == {(t, "test") for t in rel.tasks}
    for a in res["ablation"]:
        assert all(0.0 <= a[c]["accuracy"] <= 1.0 for c in ("text twin", "retrieved audio", "excluded audio", "oracle audio", "shuffled audio"))
        row = next(r for r in res["rows"] if r["model"] == a["model"] and r["task"] == a["task"] and r["split"] == "test")
        assert a["retrieved audio"]["accuracy"] == row["accuracy"]
    assert all(0.0 <= r["accuracy"] <= 1.0 and 0.0 <= r["macro_f1"] <= 1.0 for r in res["rows"])
    for r in res["rows"]:  # whole splits, each metric inside its own interval
        assert r["n"] == r["n_total"] == len(rel.items(r["task"], r["split"]))
        for k in ("accuracy", "macro_f1"):  # too few units: no interval at all, never a point
            assert (r["too_few_units"] and all(map(math.isnan, r[f"{k}_ci"]))) or r[f"{k}_ci"][0] <= r[k] + 1e-9 <= r[f"{k}_ci"][1] + 2e-9
    # AudioBERT paired against its text twin on every cell; the difference is that of the two rows
    acc = {(r["model"].split("(")[0], r["task"], r["split"]): r["accuracy"] for r in res["rows"] if "·" not in r["model"]}
    comps = [c for c in res["comparisons"] if c["metric"] == "accuracy" and "·" not in c["model"]]
    assert {(c["task"], c["split"]) for c in comps} == want
    assert all(c["model"].startswith("AudioBERT") and c["baseline"].startswith("text-only") for c in comps)
    for c in comps:
        assert c["diff"] == pytest.approx(acc[("AudioBERT", c["task"], c["split"])] - acc[("text-only", c["task"], c["split"])])
        if c["too_few_units"]:
            assert math.isnan(c["ci_low"]) and math.isnan(c["p"])
        else:
            assert c["ci_low"] <= c["diff"] + 1e-9 <= c["ci_high"] + 2e-9 and 0.0 < c["p"] <= 1.0
        assert c["mcnemar_p"] == pytest.approx(mcnemar_exact(c["b"], c["c"]))
    md = (tmp_path / "eval" / "results.md").read_text()
    assert "official-0.0.1" in md and "macro_f1" in md and "held-out clips" in md
    assert "Paired comparisons" in md and "Subsample" not in md and "## Controls" in md and "seen / unseen" in md
    assert json.loads((tmp_path / "eval" / "results.json").read_text())["release"]["version"] == "0.0.1"
    # predictions.jsonl: every model's answer to every scored item, what the accuracies were computed from
    preds = [json.loads(line) for line in (tmp_path / "eval" / "predictions.jsonl").read_text().splitlines()]
    gold = {(t, s): {it.id: str(it.answer) for it in rel.items(t, s).itertuples()} for t in rel.tasks for s in ("train", "dev", "test", "wiki")}
    for p in preds:
        row = next(r for r in res["rows"] if (r["model"], r["task"], r["split"]) == (p["model"], p["task"], p["split"]))
        assert np.mean([gold[(p["task"], p["split"])][i] == a for i, a in zip(p["ids"], p["pred"])]) == pytest.approx(row["accuracy"])
    assert len(preds) == len(res["rows"])


def test_seeds_table_averages_every_pairing_over_training_seeds(tiny_lm_dir, demo_index_dir, official_release, tmp_path):
    """Two training seeds of the text twin against one AudioBERT: mean ± sd per cell, each seed's difference, and
    the seed-averaged one with an interval at least as wide as the seeds' spread allows."""
    from models.eval import evaluate
    from models.seeds import main, summarise_seeds

    audio = train(official_release, _cfg(tiny_lm_dir, epochs=1), tmp_path / "audiobert", _opts(demo_index_dir))
    det = str(audio / "detector")
    runs = []
    for seed in (0, 1):
        text = train(official_release, _cfg(tiny_lm_dir, epochs=1, mode="text", seed=seed), tmp_path / f"text{seed}",
                     _opts(demo_index_dir, detector_dir=det))
        evaluate(official_release, [audio, text], tmp_path / f"run{seed}", splits=("test",), n_boot=200)
        runs.append(tmp_path / f"run{seed}")
    s = summarise_seeds(runs, tmp_path / "seeds", n_boot=200)
    assert len(s["cells"]) == 2 * len({c["task"] for c in s["cells"]})  # AudioBERT and the twin on each test split
    for c in s["cells"]:
        acc = c["accuracy"]
        assert len(acc["per_seed"]) == 2 and acc["mean"] == pytest.approx(np.mean(acc["per_seed"]))
        assert acc["sd"] == pytest.approx(np.std(acc["per_seed"], ddof=1))
    assert s["differences"]
    for d in s["differences"]:
        one = [json.loads((r / "results.json").read_text()) for r in runs]
        per = [next(c["diff"] for c in o["comparisons"] if (c["model"], c["task"], c["split"], c["metric"])
                    == (d["model"], d["task"], d["split"], "accuracy")) for o in one]
        assert [x["diff"] for x in d["per_seed"]] == pytest.approx(per) and d["diff"] == pytest.approx(np.mean(per))
        assert d["too_few_units"] or d["ci_low"] <= d["diff"] <= d["ci_high"]
    md = (tmp_path / "seeds" / "seeds.md").read_text()
    assert "| seed 0 | seed 0/1 |" in md and "**seed-averaged**" in md and " ± " in md
    assert main([str(r) for r in runs] + ["--out", str(tmp_path / "again")]) == 0


def test_retrieval_is_computed_once_and_excluding_clips_leaves_k_others(demo_index_dir):
    from benchmark.errors import InputError
    from models.data import EXCLUSION_DEPTH, SpanHits

    index = AudioIndex.load(demo_index_dir)
    hits = SpanHits.compute(index, ["a cat", "woof woof", "a cat"], k=2)
    assert sorted(hits.hits) == ["a cat", "woof woof"] and all(len(h) == min(len(index), 2 + EXCLUSION_DEPTH) for h in hits.hits.values())
    best = [h.clip_id for h in hits.ranked("a cat")]
    plain, _ = hits.audio(index, [["a cat"]])
    excluded, log = hits.audio(index, [["a cat"]], exclude=[set(best)])
    kept = [h["clip_id"] for h in log[0][0]["hits"]]
    assert len(kept) == 2 and not set(kept) & set(best)  # k others, none of the excluded
    assert not np.allclose(plain[0], excluded[0])
    if len(index) <= 2 + EXCLUSION_DEPTH:
        with pytest.raises(InputError, match="hits left once"):
            hits.ranked("a cat", set(index.clip_ids[:-1]))


def test_oracle_audio_is_the_items_own_clips_and_shuffled_is_seeded(demo_index_dir):
    from models.data import oracle_span_audio, shuffled_span_audio

    index = AudioIndex.load(demo_index_dir)
    row = {c: i for i, c in enumerate(index.clip_ids)}
    # captions are "<animal> sound\n<onomatopoeia>": a span naming the animal gets that clip, in span order
    got = oracle_span_audio(index, [["a cat", "the dog"], ["woof woof"], []], [["syn/0", "syn/1"], ["syn/6"], ["syn/2"]])
    assert np.array_equal(got[0], index.inject_embeddings[[row["syn/1"], row["syn/0"]]])
    assert np.array_equal(got[1], index.inject_embeddings[[row["syn/6"]]])  # no name: the item's only clip
    assert got[2].shape == (0, index.inject_dim)
    a, b = shuffled_span_audio(index, [["x", "y"], ["z"]], seed=1), shuffled_span_audio(index, [["x", "y"], ["z"]], seed=1)
    assert all(np.array_equal(x, y) for x, y in zip(a, b)) and [x.shape[0] for x in a] == [2, 1]
    assert all(any(np.array_equal(v, e) for e in index.inject_embeddings) for x in a for v in x)


def test_causal_and_masked_baselines(tiny_lm_dir, tmp_path):
    from transformers import BertConfig, BertForMaskedLM, LlamaConfig, LlamaForCausalLM

    from models.baselines import CausalLMBaseline, MaskedLMBaseline

    tok = load_tokenizer(str(tiny_lm_dir))
    torch.manual_seed(0)
    llama = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64))
    c = CausalLMBaseline("tiny-llama", model=llama, tokenizer=tok)
    items = [{"sentence": "A [MASK] goes woof woof."}, {"sentence": "A [MASK] goes meow."}]
    s = c.score(items, ["dog", "cat", "eagle owl"])
    assert s.shape == (2, 3) and np.isfinite(s).all()
    # every token of the sentence is scored, the first given the prefix token (here [CLS]: no BOS, no end-of-text)
    ids = torch.tensor([[tok.cls_token_id] + tok("A eagle owl goes meow.", add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        lp = torch.log_softmax(llama(ids).logits[0, :-1], -1)
    assert s[1, 2] == pytest.approx(float(lp[torch.arange(ids.shape[1] - 1), ids[0, 1:]].sum()), rel=1e-4)
    mlm = BertForMaskedLM(BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64))
    mlm.save_pretrained(str(tmp_path / "mlm"))
    tok.save_pretrained(str(tmp_path / "mlm"))
    m = MaskedLMBaseline(str(tmp_path / "mlm"))
    sm = m.score(items, ["dog", "cat", "eagle owl"])
    assert sm.shape == (2, 3) and np.isfinite(sm).all() and (sm <= 0).all()


def test_audio_starts_gated_off_and_at_token_scale(tiny_lm_dir):
    model, tok = _model(tiny_lm_dir)
    model.eval()
    batch = encode_items(tok, ["The sound of woof woof comes from a [MASK]."], [1], [["woof woof"]])
    audio = 1e3 * torch.randn(1, 1, 4)  # a huge raw embedding must not swamp the span's token
    with torch.no_grad():
        assert torch.equal(model.full_logits(batch, audio), model.full_logits(batch, None))  # gate 0: the text model
        vec = model.project_audio(audio[0])
        tok_norm = model._mlm.get_input_embeddings().weight.norm(dim=-1).mean()
        assert 0.5 < float(vec.norm() / tok_norm) < 2.0
        model.audio_gate.fill_(1.0)
        assert not torch.allclose(model.full_logits(batch, audio), model.full_logits(batch, None))


def test_table_says_too_few_units_and_shows_units_in_every_table():
    from models.eval import render_table

    row = {"model": "m", "task": "t", "split": "test", "n": 17, "n_total": 17, "accuracy": 0.5, "accuracy_ci": [float("nan")] * 2,
           "units": {"source": 3, "clip": 30}, "too_few_units": True}
    comp = {"model": "m", "baseline": "twin", "task": "t", "split": "test", "metric": "accuracy", "n": 17, "diff": 0.25,
            "ci_low": float("nan"), "ci_high": float("nan"), "p": float("nan"), "mcnemar_p": 0.0004,
            "units": {"source": 3, "clip": 30}, "too_few_units": True}
    abl = {"model": "m", "task": "t", "split": "test", "n": 17, "units": {"source": 3, "clip": 30}, "too_few_units": True,
           **{c: {"accuracy": 0.5, "ci": [float("nan")] * 2} for c in ("text twin", "retrieved audio", "oracle audio", "shuffled audio")}}
    res = {"release": {"name": "r", "version": "1"}, "seed": 0, "metrics": ["accuracy"], "rows": [row],
           "comparisons": [comp], "ablation": [abl], "uncertainty": {"ci_level": 0.95, "n_boot": 2000, "min_units": 10}}
    md = render_table(res)
    assert "| 17 | 3 sources, 30 clips | 0.500 (too few units) |" in md
    assert "| 17 | 3 sources, 30 clips | +0.250 | too few units | – | 0.0004 |" in md  # McNemar beside, labelled
    assert "p (McNemar, items as independent)" in md and "floor is 2 / (2000 + 1)" in md
    assert md.count("3 sources, 30 clips") == 3 and "[0.500, 0.500]" not in md
    ok = dict(row, accuracy_ci=[0.4, 0.6], units={"source": 12, "clip": 30}, too_few_units=False)
    md = render_table(dict(res, rows=[ok], comparisons=[], ablation=[]))
    assert "| 17 | 12 sources, 30 clips | 0.500 [0.400, 0.600] |" in md and "too few units |" not in md


def test_gate_init_opens_the_audio_path_from_the_start_and_insert_has_no_gate(tiny_lm_dir):
    mlm, _ = load_masked_lm(str(tiny_lm_dir), allow_new_head=True)
    model = AudioBERT(mlm, AudioBertConfig(lm=str(tiny_lm_dir), inject_dim=4, lora_r=2, lora_alpha=4, audio_gate_init=0.5), train_head=True)
    assert model.audio_share() == pytest.approx(math.tanh(0.5)) and "audio_gate" in model.audio_parameters()
    mlm, _ = load_masked_lm(str(tiny_lm_dir), allow_new_head=True)
    insert = AudioBERT(mlm, AudioBertConfig(lm=str(tiny_lm_dir), inject_dim=4, lora_r=2, lora_alpha=4, injection="insert"), train_head=True)
    assert insert.audio_share() is None and "audio_gate" not in insert.audio_parameters()  # no knob that does nothing
    assert set(insert.audio_parameters()) >= {"proj.0.weight", "audio_norm.weight"}
    assert not any(n.startswith("lm.") for n in insert.audio_parameters())


def test_choices_are_checked_and_old_checkpoints_refused(tmp_path):
    from benchmark.errors import ConfigError, ModelLoadError
    from models.config import TrainConfig
    from models.infer import load_checkpoint

    with pytest.raises(ConfigError, match="injection 'replace': expected one of add, insert"):
        TrainConfig(injection="replace")
    with pytest.raises(ConfigError, match="train_spans 'gld'"):
        TrainConfig.from_params({"preset": "demo", "train_spans": "gld"})
    with pytest.raises(ConfigError, match="device 'tpu'"):
        RunOptions(device="tpu")
    (tmp_path / "config.json").write_text(json.dumps({"format": 1, "config": {}}))
    with pytest.raises(ModelLoadError, match="checkpoint format 1, this version reads format 2; retrain"):
        load_checkpoint(tmp_path)
    assert TrainConfig.from_params({"preset": "demo", "device": "cuda", "index_dir": "/x"}) == TrainConfig.demo()


def test_name_dropout_replaces_each_span_with_its_own_made_up_word():
    import random

    from models.train import MADE_UP_WORDS, drop_names

    sentence = "The sound of a violin is typically [MASK] than the sound of a tuba."
    out, spans = drop_names(sentence, ["violin", "tuba"], random.Random(0))
    assert len(set(spans)) == 2 and set(spans) <= set(MADE_UP_WORDS)
    assert out == f"The sound of a {spans[0]} is typically [MASK] than the sound of a {spans[1]}."
    out, spans = drop_names("Woof is the sound a [MASK] makes.", ["Woof"], random.Random(1))
    assert out == f"{spans[0]} is the sound a [MASK] makes." and spans[0][0].isupper()
    tok_spans = encode_items(load_tokenizer("minilm"), [out], [1], [spans]).span_pos
    assert int(tok_spans[0, 0]) == 1  # the made-up word is where the audio goes in
    assert drop_names("A [MASK] barks.", ["woof"], random.Random(0)) == ("A [MASK] barks.", ["woof"])  # span not there


def test_name_dropout_touches_whole_words_only_and_never_the_mask():
    import random

    from models.train import drop_names

    sentence = "The sound of a flute is typically [MASK] in pitch than a violin."
    out, spans = drop_names(sentence, ["is", "in"], random.Random(3))  # detector spans can be any words
    assert out.count("[MASK]") == 1 and out.split()[5] == spans[0] and out.split()[8] == spans[1]
    assert drop_names(sentence, ["[MASK]"], random.Random(0)) == (sentence, ["[MASK]"])
    assert drop_names(sentence, ["flu"], random.Random(0)) == (sentence, ["flu"])  # not a whole word


def test_swap_spans_exchanges_the_two_sources_whatever_the_template():
    from models.train import swap_spans

    s = "The sound of a violin is typically [MASK] than the sound of a tuba."
    assert swap_spans(s, ["violin", "tuba"]) == ("The sound of a tuba is typically [MASK] than the sound of a violin.", ["tuba", "violin"])
    s = "Compared with the sound of a tuba, the sound of a Violin is typically [MASK]."  # span list not in sentence order
    assert swap_spans(s, ["violin", "tuba"]) == ("Compared with the sound of a Violin, the sound of a tuba is typically [MASK].", ["tuba", "violin"])
    assert swap_spans("Woof is the sound a [MASK] makes.", ["Woof"]) is None  # one span: nothing to exchange
    assert swap_spans(s, ["violin", "oboe"]) is None  # a span not in the sentence


def test_span_slots_follow_the_sentence_order_not_the_span_list(tiny_lm_dir):
    mlm, _ = load_masked_lm(str(tiny_lm_dir), allow_new_head=True)
    cfg = AudioBertConfig(lm=str(tiny_lm_dir), inject_dim=4, lora_r=2, lora_alpha=4, span_slots=2, audio_gate_init=1.0)
    torch.manual_seed(0)
    model = AudioBERT(mlm, cfg, train_head=True).eval()
    tok = load_tokenizer(str(tiny_lm_dir))
    with torch.no_grad():
        model.slot_embed.weight.normal_()  # trained slots differ (they start at zero: the published projection)
    s = "The sound of a violin is typically [MASK] than the sound of a tuba."
    audio = torch.randn(1, 2, 4)
    with torch.no_grad():
        a = model.embed(encode_items(tok, [s], [1], [["violin", "tuba"]]), audio)
        b = model.embed(encode_items(tok, [s], [1], [["tuba", "violin"]]), audio.flip(1))  # same spans, listed the other way
        assert torch.allclose(a, b)
        same_audio = torch.stack([audio[0, 0], audio[0, 0]])[None]  # one clip in both places: the slots tell them apart
        e = model.embed(encode_items(tok, [s], [1], [["violin", "tuba"]]), same_audio)
        pos = encode_items(tok, [s], [1], [["violin", "tuba"]]).span_pos[0]
        assert not torch.allclose(e[0, pos[0]], e[0, pos[1]])


def test_insert_puts_an_audio_token_before_each_span_in_span_order():
    tok = load_tokenizer("minilm")
    s = "Compared with the sound of a tuba, the sound of a violin is typically [MASK]."
    b = encode_items(tok, [s], [2], [["violin", "tuba"]], audio_token=tok.unk_token)
    ids = b.input_ids[0].tolist()
    for k, word in enumerate(["violin", "tuba"]):  # span k's audio token is right before span k's word
        p = int(b.span_pos[0, k])
        assert ids[p] == tok.unk_token_id and tok.convert_ids_to_tokens(ids[p + 1]) == word
    assert [ids[int(p)] for p in b.mask_pos[0]] == [tok.mask_token_id] * 2
    # a detector's fragment ('k' of 'cr oa k') is never placed inside the [MASK] (the mask would not survive)
    frag = encode_items(tok, ["A [MASK] makes a croak sound."], [1], [["cr", "oa", "k"]], audio_token=tok.unk_token)
    assert frag.input_ids[0].tolist().count(tok.mask_token_id) == 1
    plain = encode_items(tok, [s], [2], [["violin", "tuba"]])  # no audio token: the words themselves, as before
    assert tok.unk_token_id not in plain.input_ids[0].tolist()
    assert [tok.convert_ids_to_tokens(int(plain.input_ids[0, int(p)])) for p in plain.span_pos[0]] == ["violin", "tuba"]


def test_a_text_twin_reusing_a_detector_trains_the_same_whatever_came_before(tiny_lm_dir, demo_index_dir, official_release, tmp_path):
    audio = train(official_release, _cfg(tiny_lm_dir, epochs=1), tmp_path / "audiobert", _opts(demo_index_dir))
    cfg, opts = _cfg(tiny_lm_dir, epochs=1, mode="text"), _opts(demo_index_dir, detector_dir=str(audio / "detector"))
    a = torch.load(train(official_release, cfg, tmp_path / "text_a", opts) / "model.pt", weights_only=True)
    torch.rand(1000)  # the generator moved on (in make, the twin runs in a process of its own)
    b = torch.load(train(official_release, cfg, tmp_path / "text_b", opts) / "model.pt", weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # and the same bytes: torch names the archive inside a .pt after the path it writes to (once a random temp name)
    assert (tmp_path / "text_a" / "model.pt").read_bytes() == (tmp_path / "text_b" / "model.pt").read_bytes()
    meta = json.loads((tmp_path / "text_b" / "config.json").read_text())
    assert meta["history"][-1]["audio_share"] == 0.0  # the twin injects nothing


def test_a_saved_state_of_other_inputs_or_code_is_never_resumed(tiny_lm_dir, demo_index_dir, official_release, tmp_path):
    """A finished run's saved state is resumed only by a rerun on the same config, inputs and code: in the same folder,
    a release whose items changed trains from the start and gives what a fresh run on it gives (before, a matching
    config alone resumed the old run's finished state and returned its weights); another code version starts over."""
    import shutil

    import pandas as pd

    from benchmark.release_io import file_digests, load_release
    from models.train import resume_key

    cfg = _cfg(tiny_lm_dir, epochs=1)
    changed = tmp_path / "changed_release"
    shutil.copytree(official_release, changed)
    table = sorted(changed.glob("*/train.parquet"))[0]
    df = pd.read_parquet(table)
    df.iloc[: len(df) // 2].to_parquet(table, index=False)  # half its train items gone (the manifest's checksums follow)
    manifest = json.loads((changed / "manifest.json").read_text())
    manifest["files"] = {k: v for k, v in file_digests(changed).items() if k in manifest["files"]}
    (changed / "manifest.json").write_text(json.dumps(manifest))
    run = train(official_release, cfg, tmp_path / "run", _opts(demo_index_dir))
    old = torch.load(run / "model.pt", weights_only=True)
    train(changed, cfg, run, _opts(demo_index_dir))  # the same folder: the old state must not be resumed
    fresh = train(changed, cfg, tmp_path / "fresh", _opts(demo_index_dir))
    a, b = torch.load(run / "model.pt", weights_only=True), torch.load(fresh / "model.pt", weights_only=True)
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    assert not all(torch.allclose(a[k], old[k], atol=1e-6) for k in a)
    # another code version: the state is made anew (its key is the new one)
    other = _opts(demo_index_dir, resume_key="other code")
    train(changed, cfg, run, other)
    state = torch.load(run / "last" / "state.pt", weights_only=True)
    assert state["state_key"] == resume_key(cfg, other, load_release(changed), demo_index_dir / "index.json",
                                            run / "detector" / "span_detector.pt")


def test_a_fresh_head_and_projection_start_the_same_whatever_drew_from_torch_before(tiny_lm_dir):
    """build_model seeds torch before the LM loads: a fresh MLM head (an LM without one, like MiniLM) is drawn then.
    Before, it was drawn before the seed, so AudioBERT trained beside its own span detector started from another
    head than the same model given a trained detector."""
    from models.audiobert import build_model

    torch.manual_seed(123)
    torch.rand(1000)  # e.g. a span detector trained first in the same process
    a, _, head_is_new = build_model(_cfg(tiny_lm_dir), 8, 0)
    torch.rand(77)
    b, _, _ = build_model(_cfg(tiny_lm_dir), 8, 0)
    sa, sb = a.state_dict(), b.state_dict()
    assert head_is_new and sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
