"""Any release, any index (`auditorybench index CORPUS --out DIR`, train/eval --index), and the published models'
code paths (transformers ClapModel for retrieval, ASTModel for injection, a BertForMaskedLM) from local folders,
each a tiny random-init checkpoint made here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from benchmark.errors import ModelLoadError
from models.infer import load_checkpoint
from models.retrieval import AudioIndex
from tests.models.conftest import ANIMALS, all_sentences, sine, train_tokenizer

TRAIN_ENV = {  # the demo preset, made tiny for a test (settings through the environment, as a user would)
    "AUDITORYBENCH_TRAIN_EPOCHS": "1", "AUDITORYBENCH_TRAIN_BATCH_SIZE": "8", "AUDITORYBENCH_TRAIN_DETECTOR_EPOCHS": "1",
    "AUDITORYBENCH_TRAIN_LORA_R": "4", "AUDITORYBENCH_TRAIN_LORA_ALPHA": "8", "AUDITORYBENCH_TRAIN_MAX_LENGTH": "48",
}


def test_index_any_corpus_then_train_official_in_audiobert_mode(tmp_path, tiny_lm_dir, official_release, monkeypatch, capsys):
    from pipeline.cli import main
    from pipeline.demo.corpus import build_demo_corpus

    corpus = build_demo_corpus(tmp_path / "demo_corpus", seed=11, n_clips=40, n_shards=3, quiet=True)
    for k, v in {"AUDITORYBENCH_INDEX_TEXT_ENCODER": str(tiny_lm_dir), "AUDITORYBENCH_INDEX_EPOCHS": "20",
                 "AUDITORYBENCH_INDEX_RETRIEVAL": "demo", "AUDITORYBENCH_INDEX_INJECT": "aisfx", **TRAIN_ENV}.items():
        monkeypatch.setenv(k, v)
    index_dir = tmp_path / "index"
    main(["index", str(corpus), "--out", str(index_dir), "--quiet"])
    index = AudioIndex.load(index_dir)
    built = index.models["corpus"]
    assert len(index) >= 30 and built["clips"] == len(index) and len(built["fingerprint"]) == 64
    assert index.models["retrieval"].startswith("demo") and index.models["inject"] == "aisfx"
    before = (index_dir / "index.json").read_bytes()
    main(["index", str(corpus), "--out", str(index_dir), "--quiet"])  # fresh: same bytes
    assert (index_dir / "index.json").read_bytes() == before

    # the official release has no audio_index/: without --index AudioBERT stops and says how to get one
    with pytest.raises(SystemExit):
        main(["train", str(official_release), "--out", str(tmp_path / "no"), "--preset", "demo", "--lm", str(tiny_lm_dir), "--quiet"])
    assert "auditorybench index CORPUS --out DIR" in capsys.readouterr().err
    ckpt = tmp_path / "audiobert"
    main(["train", str(official_release), "--out", str(ckpt), "--preset", "demo", "--lm", str(tiny_lm_dir), "--index", str(index_dir), "--quiet"])
    meta = json.loads((ckpt / "config.json").read_text())
    assert meta["config"]["mode"] == "audiobert" and meta["index_models"]["corpus"] == built
    assert meta["inject_dim"] == 512 and meta["index_dir"] == str(index_dir.resolve())
    main(["eval", str(official_release), "--models", str(ckpt), "--out", str(tmp_path / "eval"), "--index", str(index_dir), "--quiet"])
    res = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert {r["task"] for r in res["rows"]} == {"animal_sound_recognition", "sound_pitch_comparison"}
    m = load_checkpoint(ckpt, index_dir=index_dir)
    assert m.index is not None and m.index.models["corpus"] == built


# ---------------------------------------------------------------- the published models, tiny


@pytest.fixture(scope="module")
def hf_dirs(tmp_path_factory, tiny_lm_dir) -> dict[str, Path]:
    """Tiny random-init ClapModel, ASTModel and BertForMaskedLM, each saved with its feature extractor / tokenizer."""
    from transformers import (
        ASTConfig,
        ASTFeatureExtractor,
        ASTModel,
        AutoTokenizer,
        BertConfig,
        BertForMaskedLM,
        ClapAudioConfig,
        ClapConfig,
        ClapFeatureExtractor,
        ClapModel,
        ClapTextConfig,
    )

    root = tmp_path_factory.mktemp("hf")
    torch.manual_seed(0)
    # CLAP: RoBERTa-style text tower over a WordPiece vocabulary trained here; HTSAT audio tower with 2 small stages
    clap = train_tokenizer(root / "clap", all_sentences())
    n_vocab = len(AutoTokenizer.from_pretrained(str(clap)))
    text = ClapTextConfig(vocab_size=n_vocab, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                          max_position_embeddings=130, pad_token_id=0, projection_dim=16)
    audio = ClapAudioConfig(depths=[1, 1], num_attention_heads=[2, 2], patch_embeds_hidden_size=16, hidden_size=32,
                            projection_dim=16, num_mel_bins=64, spec_size=256, window_size=8)
    ClapModel(ClapConfig(text_config=text.to_dict(), audio_config=audio.to_dict(), projection_dim=16)).save_pretrained(str(clap))
    ClapFeatureExtractor(feature_size=64, sampling_rate=48000, max_length_s=2).save_pretrained(str(clap))
    # AST: one layer over 100 frames of 128 mel bins
    ast = root / "ast"
    ASTModel(ASTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, max_length=100,
                       num_mel_bins=128)).save_pretrained(str(ast))
    ASTFeatureExtractor(max_length=100, num_mel_bins=128, sampling_rate=16000).save_pretrained(str(ast))
    # a masked LM with its own head (unlike all-MiniLM-L6-v2), and its tokenizer
    bert = root / "bert"
    tok = AutoTokenizer.from_pretrained(str(tiny_lm_dir))
    tok.save_pretrained(str(bert))
    BertForMaskedLM(BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                               intermediate_size=64, max_position_embeddings=128)).save_pretrained(str(bert))
    return {"clap": clap, "ast": ast, "bert": bert}


def test_clap_retrieval_ast_injection_and_bert_mlm_through_index_train_eval(hf_dirs, official_release, demo_index_dir, tmp_path):
    from models.config import RunOptions, TrainConfig
    from models.eval import evaluate
    from models.loading import load_masked_lm
    from models.retrieval import IndexConfig, build_index
    from models.train import train

    clips = [(f"syn/{i}", sine(200 + 120 * i, sr=48000, noise=0.02, seed=i), 48000, f"{a} sound\n{s}") for i, (a, s) in enumerate(ANIMALS)]
    cfg = IndexConfig(retrieval=f"clap:{hf_dirs['clap']}", inject=f"ast:{hf_dirs['ast']}", ks=(1, 3))
    index = build_index(clips, cfg)
    assert index.retrieval_embeddings.shape == (len(ANIMALS), 16) and index.inject_dim == 32
    assert index.models["retrieval"] == f"clap:{hf_dirs['clap']}" and index.models["inject"] == f"ast:{hf_dirs['ast']}"
    assert index.metrics["n_heldout"] == len(ANIMALS) and 0.0 <= index.metrics["recall@1"] <= 1.0
    index_dir = index.save(tmp_path / "index")
    again = AudioIndex.load(index_dir)  # save/load round trip; the CLAP text side is reloaded from its folder
    hits = again.search(["dog sound", "cow sound"], k=2)
    assert [len(h) for h in hits] == [2, 2] and all(-1.0 <= x.similarity <= 1.0 for h in hits for x in h)
    assert torch.allclose(torch.from_numpy(again.encode_queries(["dog sound"])), torch.from_numpy(index.encode_queries(["dog sound"])), atol=1e-5)

    mlm, head_is_new = load_masked_lm(str(hf_dirs["bert"]))
    assert not head_is_new  # the head came from the checkpoint
    tc = TrainConfig.demo(lm=str(hf_dirs["bert"]), epochs=1, batch_size=8, detector_epochs=1, lora_r=4, lora_alpha=8, max_length=48)
    ckpt = train(official_release, tc, tmp_path / "ckpt", RunOptions(index_dir=str(index_dir)))
    meta = json.loads((ckpt / "config.json").read_text())
    assert meta["head_is_new"] is False and meta["inject_dim"] == 32 and meta["index_models"]["retrieval"].startswith("clap:")
    res = evaluate(official_release, [ckpt, f"mlm:{hf_dirs['bert']}"], tmp_path / "eval", splits=("test",))
    names = sorted(r["model"] for r in res["rows"])
    assert names == sorted(["AudioBERT(bert)"] * 2 + [f"mlm:{hf_dirs['bert']}"] * 2)
    # a checkpoint refuses an index embedded by other models, naming both
    with pytest.raises(ModelLoadError, match=r"retrieval embeddings by 'demo.*trained with 'clap:"):
        load_checkpoint(ckpt, index_dir=demo_index_dir)


def test_resplit_card_shows_scores_on_the_original_and_the_resplit_test(tmp_path, tiny_lm_dir, demo_index_dir, monkeypatch):
    from benchmark.official import RESPLIT_FILE, RESPLIT_NAME
    from benchmark.release_io import load_release
    from pipeline.cli import main
    from tests.models.conftest import write_official_csvs

    for k, v in TRAIN_ENV.items():
        monkeypatch.setenv(k, v)
    src = write_official_csvs(tmp_path / "src")
    main(["import-official", str(src), "--releases", str(tmp_path / "rel"), "--version", "0.0.1", "--resplit", "--score",
          "--index", str(demo_index_dir), "--preset", "demo", "--lm", str(tiny_lm_dir), "--quiet"])
    path = tmp_path / "rel" / f"{RESPLIT_NAME}-0.0.1"
    scores = json.loads((path / RESPLIT_FILE).read_text())["scores"]
    assert set(scores) == {"AudioBERT", "text-only"}
    rel = load_release(path)
    for model in scores.values():
        for task, by in model.items():
            assert set(by) == {"original test", "resplit test"}
            assert by["resplit test"]["n"] == len(rel.items(task, "test"))
            for where in ("original test", "resplit test"):
                if by[where]["too_few_units"]:  # the tiny fixture's few sources: no interval, said so
                    assert by[where]["ci"] is None and by[where]["units"]
                else:
                    lo, hi = by[where]["ci"]
                    assert lo <= by[where]["accuracy"] <= hi
    card = (path / "README.md").read_text()
    assert "leak_effect" in card and "original test" in card and "resplit test" in card and "nan" not in card
