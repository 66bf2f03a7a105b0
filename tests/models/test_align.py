"""The audio-to-word alignment warm-up (models.align) with the shipped MiniLM: it moves clips to their captions' words."""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

from models.align import align_projection, caption_word_embeddings
from models.audiobert import AudioBERT, AudioBertConfig
from models.loading import load_masked_lm, load_tokenizer
from models.retrieval import AudioIndex

SOURCES = ("cow", "dog", "bird", "violin", "tuba", "kettle", "siren", "bell")


def _index(n_per: int = 6, dim: int = 12) -> AudioIndex:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(len(SOURCES), dim))
    ids, caps, audio = [], [], []
    for s, name in enumerate(SOURCES):
        for k in range(n_per):
            ids.append(f"c/{name}{k}")
            caps.append(f"A {name} recorded outside ({k}).wav\n{name} sound")
            audio.append(centres[s] + 0.3 * rng.normal(size=dim))
    a = np.asarray(audio, dtype=np.float32)
    return AudioIndex(ids, caps, a, a, {"retrieval": "toy", "inject": "toy"}, {}, None)


def _nearest_source_accuracy(model, index, tok) -> float:
    emb = model._mlm.get_input_embeddings().weight.detach()
    words = F.normalize(caption_word_embeddings([f"{s} sound" for s in SOURCES], tok, emb), dim=-1)
    with torch.no_grad():
        v = F.normalize(model.project_audio(torch.from_numpy(index.inject_embeddings)), dim=-1)
    truth = np.repeat(np.arange(len(SOURCES)), len(index) // len(SOURCES))
    return float(((v @ words.T).argmax(-1).numpy() == truth).mean())


def test_caption_words_are_the_mean_of_their_embeddings():
    tok = load_tokenizer("minilm")
    emb = torch.randn(len(tok), 4)
    got = caption_word_embeddings(["Cow, moo! (a 12.wav)", "42 !!"], tok, emb)
    words = ["cow", "moo", "wav"]  # letters only, 3+ long, distinct: 'a' is too short
    want = torch.stack([emb[tok(w, add_special_tokens=False)["input_ids"]].mean(0) for w in words]).mean(0)
    assert torch.allclose(got[0], want) and torch.equal(got[1], torch.zeros(4))


def test_alignment_puts_each_clip_nearest_its_own_source_word():
    tok = load_tokenizer("minilm")
    mlm, _ = load_masked_lm("minilm", allow_new_head=True)
    torch.manual_seed(0)
    model = AudioBERT(mlm, AudioBertConfig(lm="minilm", inject_dim=12, lora_r=2, lora_alpha=4, injection="insert"), train_head=True)
    index = _index()
    lm_before = {k: v.clone() for k, v in model._mlm.state_dict().items() if "lora" not in k}
    before = _nearest_source_accuracy(model, index, tok)
    loss = align_projection(model, index, tok, steps=150, lr=1e-2, batch=32, seed=0)
    after = _nearest_source_accuracy(model, index, tok)
    assert np.isfinite(loss) and after >= 0.9 > before + 0.3, (before, after)
    assert all(torch.equal(v, model._mlm.state_dict()[k]) for k, v in lm_before.items())  # the LM itself did not move
    assert np.isnan(align_projection(model, index, tok, steps=0))
