"""Tiny models built in-process from configs, a tokenizer trained here, and an official-format release."""

from __future__ import annotations

import itertools
import string
from pathlib import Path

import numpy as np
import pytest
import torch

ANIMALS = [("dog", "woof woof"), ("cat", "meow"), ("eagle owl", "hoo hoo"), ("cow", "moo"), ("duck", "quack quack"), ("sheep", "baa")]
SOURCES = ["a violin", "a tuba", "a flute", "a bass drum", "a whistle", "a cello", "a piccolo", "a kettle drum"]
HIGH = {"a violin", "a flute", "a whistle", "a piccolo"}


def official_rows() -> dict[str, list[dict]]:
    """Official-format rows: animal (animal, description, sentence) and pitch (sentence, answer, span1, span2)."""
    animal, pitch = [], []
    templates = ["The sound of {d} comes from a [MASK].", "A [MASK] usually goes {d} at night.", "When you hear {d}, it is a [MASK]."]
    for (a, d), t in itertools.product(ANIMALS, templates):
        animal.append({"animal": a, "description": d, "sentence": t.format(d=d)})
    for s1, s2 in itertools.permutations(SOURCES[:6], 2):
        ans = "higher" if (s1 in HIGH and s2 not in HIGH) else "lower"
        pitch.append({"sentence": f"The sound of {s1} is typically [MASK] in pitch than {s2}.", "answer": ans, "span1": s1, "span2": s2})
    return {"animal": animal, "pitch": pitch}


def train_tokenizer(out_dir: Path, sentences: list[str]) -> Path:
    """A WordPiece tokenizer trained on the test sentences plus filler words (>= 1000 entries), saved as BERT's."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import BertTokenizerFast

    filler = ["".join(p) for p in itertools.product(string.ascii_lowercase[:12], repeat=3)][:1500]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    trainer = trainers.WordPieceTrainer(vocab_size=1200, special_tokens=specials, min_frequency=1)
    tok.train_from_iterator(sentences * 3 + filler, trainer)
    out_dir.mkdir(parents=True, exist_ok=True)
    fast = BertTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
    # post-processor: [CLS] ... [SEP]
    from tokenizers import processors

    fast.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", fast.cls_token_id), ("[SEP]", fast.sep_token_id)],
    )
    fast.save_pretrained(str(out_dir))
    return out_dir


def all_sentences() -> list[str]:
    rows = official_rows()
    out = [r["sentence"] for r in rows["animal"]] + [r["sentence"] for r in rows["pitch"]]
    out += [a for a, _ in ANIMALS] + ["higher", "lower", "sound", "a recording of a dog barking", "rain on a roof"]
    return out


@pytest.fixture(scope="session")
def tiny_lm_dir(tmp_path_factory) -> Path:
    """A 2-layer, 32-wide BertModel (no MLM head, like all-MiniLM-L6-v2) with a trained tokenizer."""
    from transformers import BertConfig, BertModel

    d = tmp_path_factory.mktemp("tiny_bert")
    tok_dir = train_tokenizer(d, all_sentences())
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tok_dir))
    cfg = BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=128)
    torch.manual_seed(0)
    BertModel(cfg).save_pretrained(str(d))
    return d


def write_official_csvs(src: Path) -> Path:
    """Official-format CSVs (train/dev/test/wiki for both tasks, split by row order, leaks included) into src."""
    import pandas as pd

    rows = official_rows()
    src.mkdir(parents=True, exist_ok=True)
    for name, task in (("animal", "animal_sound_recognition"), ("pitch", "sound_pitch_comparsion")):
        df = pd.DataFrame(rows[name])
        n = len(df)
        parts = {"train": df.iloc[: n // 2], "dev": df.iloc[n // 2 : 2 * n // 3], "test": df.iloc[2 * n // 3 :], "wiki": df.iloc[:4]}
        for split, part in parts.items():
            part.to_csv(src / f"{task}_{split}.csv", index=False)
    return src


@pytest.fixture(scope="session")
def official_release(tmp_path_factory) -> Path:
    """A release imported from official-format CSVs (train/dev/test/wiki for both tasks)."""
    from benchmark.official import import_official

    return import_official(write_official_csvs(tmp_path_factory.mktemp("official_src")), tmp_path_factory.mktemp("releases"), "0.0.1")


def sine(f_hz: float, sr: int = 16000, dur_s: float = 1.0, noise: float = 0.0, seed: int = 0) -> np.ndarray:
    t = np.arange(int(sr * dur_s)) / sr
    x = 0.4 * np.sin(2 * np.pi * f_hz * t)
    if noise:
        x = x + np.random.default_rng(seed).normal(0, noise, t.size)
    return x.astype(np.float32)


@pytest.fixture(scope="session")
def demo_index_dir(tmp_path_factory, tiny_lm_dir) -> Path:
    """A demo-retrieval index (tiny text side, the real aisfx audio side) over synthetic clips named by animal."""
    from models.retrieval import IndexConfig, build_index

    clips = []
    for i, (animal, sound) in enumerate(ANIMALS * 2):
        clips.append((f"syn/{i}", sine(150 + 90 * i, noise=0.03, seed=i), 16000, f"{animal} sound\n{sound}"))
    cfg = IndexConfig(retrieval="demo", inject="aisfx", text_encoder=str(tiny_lm_dir), epochs=30, holdout_frac=0.3, ks=(1, 5))
    out = tmp_path_factory.mktemp("demo_index")
    build_index(clips, cfg).save(out)
    return out


torch.set_num_threads(min(2, torch.get_num_threads()))


def train_bpe_tokenizer(out_dir: Path, sentences: list[str]):
    """A byte-level BPE tokenizer (GPT-2 style: '<|endoftext|>' is BOS, EOS and padding) trained on the sentences plus
    filler words (>= 1000 entries): merges cross word boundaries the way a real causal LM's do."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    filler = ["".join(p) for p in itertools.product(string.ascii_lowercase[:12], repeat=3)][:1500]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=1400, special_tokens=["<|endoftext|>"], min_frequency=1,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(sentences * 3 + filler, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                                   pad_token="<|endoftext|>", unk_token="<|endoftext|>")
    out_dir.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(str(out_dir))
    return fast


@pytest.fixture(scope="session")
def tiny_causal_dir(tmp_path_factory) -> Path:
    """A 2-layer, 32-wide random-init Llama causal LM with a byte-level BPE tokenizer, saved as a model folder."""
    from transformers import LlamaConfig, LlamaForCausalLM

    d = tmp_path_factory.mktemp("tiny_llama")
    tok = train_bpe_tokenizer(d, all_sentences())
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=128, initializer_range=0.5,
                                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                                         pad_token_id=tok.pad_token_id))
    model.save_pretrained(str(d))
    return d
