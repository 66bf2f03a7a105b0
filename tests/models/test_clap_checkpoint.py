"""A laion-clap checkpoint (`.pt`, as the official AudioBERT code loads through laion_clap) read into transformers'
ClapModel (models.clap_checkpoint) and used as `index.retrieval: clap:<file.pt>`.

The key names are not made here: tests/fixtures/laion_clap_keys_<variant>.txt list laion-clap's own state_dict
(names and real shapes) for the released checkpoints' three shapes, written from the LAION-AI/CLAP source by
tests/fixtures/make_laion_clap_keys.py. The tiny checkpoints below carry exactly those names, with random values
in the shapes of a tiny ClapModel."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmark.errors import ModelLoadError
from models.clap_checkpoint import checkpoint_inputs, laion_clap_config, load_laion_clap, rename_state_dict
from tests.models.conftest import ANIMALS, all_sentences, sine, train_tokenizer

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
VARIANTS = {  # fixture: (patch width, depths, fused) of laion-clap's HTSAT-tiny / HTSAT-base (htsat.py)
    "htsat_tiny_unfused": (96, [2, 2, 6, 2], False),
    "htsat_tiny_fused": (96, [2, 2, 6, 2], True),
    "htsat_base_unfused": (128, [2, 2, 12, 2], False),
}


def fixture_keys(variant: str) -> dict[str, tuple[int, ...]]:
    rows = [ln.split("\t") for ln in (FIXTURES / f"laion_clap_keys_{variant}.txt").read_text().splitlines()
            if ln and not ln.startswith("#")]
    return {k: tuple(int(x) for x in s.split(",") if x) for k, s in rows}


def not_in_clapmodel(key: str) -> bool:
    """What ClapModel has no place for, said independently of the module: torchlibrosa's front end, HTSAT's
    AudioSet classifier, the loss MLPs and the shifted-window masks."""
    return (key.startswith(("audio_branch.spectrogram_extractor.", "audio_branch.logmel_extractor.", "audio_branch.tscam_conv.",
                            "audio_branch.head.", "text_transform.", "audio_transform."))
            or key.endswith(".attn_mask"))


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_real_shapes_map_onto_clapmodel_with_nothing_missing_or_unused(variant):
    """At the released sizes (meta tensors: no memory): the config read off the tensors is laion's HTSAT / RoBERTa,
    and every laion tensor either lands on a ClapModel weight of its shape or is one ClapModel has no place for."""
    from transformers import ClapModel

    keys = fixture_keys(variant)
    sd = {k: torch.empty(s, device="meta") for k, s in keys.items()}
    config = laion_clap_config(sd, variant)
    embed, depths, fused = VARIANTS[variant]
    a, t = config.audio_config, config.text_config
    assert (a.patch_embeds_hidden_size, list(a.depths), list(a.num_attention_heads), a.window_size) == (embed, depths, [4, 8, 16, 32], 8)
    assert (a.enable_fusion, a.spec_size, a.num_mel_bins, a.hidden_size) == (fused, 256, 64, embed * 8)
    assert (t.hidden_size, t.num_hidden_layers, t.num_attention_heads, t.vocab_size, t.max_position_embeddings) == (768, 12, 12, 50265, 514)
    assert config.projection_dim == 512

    hf_sd, dropped = rename_state_dict(sd)
    assert set(dropped) == {k for k in keys if not_in_clapmodel(k)} and dropped
    with torch.device("meta"):
        own = ClapModel(config).state_dict()
    assert sorted(set(hf_sd) - set(own)) == []  # none unused
    assert sorted(set(own) - set(hf_sd)) == ["text_model.embeddings.token_type_ids"]  # none missing (a zeros buffer)
    assert {k: tuple(v.shape) for k, v in hf_sd.items()} == {k: tuple(own[k].shape) for k in hf_sd}
    n_qkv = sum(k.endswith(("attn.qkv.weight", "attn.qkv.bias")) for k in keys)
    assert len(hf_sd) == len(keys) - len(dropped) + 2 * n_qkv


# ---------------------------------------------------------------- a tiny checkpoint file with the real names


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory) -> Path:
    return train_tokenizer(tmp_path_factory.mktemp("clap_tok") / "tok", all_sentences())


def tiny_clap(variant: str, vocab: int):
    """A tiny random ClapModel with the variant's structure (depths, 12 text layers, fusion)."""
    from transformers import ClapAudioConfig, ClapConfig, ClapModel, ClapTextConfig

    _, depths, fused = VARIANTS[variant]
    text = ClapTextConfig(vocab_size=vocab, hidden_size=16, num_hidden_layers=12, num_attention_heads=1, intermediate_size=32,
                          max_position_embeddings=66, projection_dim=16, layer_norm_eps=1e-5)
    audio = ClapAudioConfig(patch_embeds_hidden_size=8, depths=depths, num_attention_heads=[1, 1, 2, 2], hidden_size=64,
                            projection_dim=16, num_mel_bins=64, spec_size=256, window_size=8, enable_fusion=fused)
    torch.manual_seed(0)
    return ClapModel(ClapConfig(text_config=text.to_dict(), audio_config=audio.to_dict(), projection_dim=16))


def write_checkpoint(variant: str, path: Path, vocab: int, extra: dict | None = None, drop: str = "") -> dict[str, torch.Tensor]:
    """A laion-clap style file: {"state_dict": {"module." + laion name: tensor}, "epoch", "optimizer"}, every name
    from the fixture; a tensor's shape is the tiny model's (through the renames), random values. Returns the
    laion state dict written (without the prefix)."""
    keys = fixture_keys(variant)
    own = tiny_clap(variant, vocab).state_dict()
    g = torch.Generator().manual_seed(1)
    sd = {}
    for k, shape in keys.items():
        if not_in_clapmodel(k):
            sd[k] = torch.randn(shape, generator=g)  # laion's own shapes (the masks' tell the spectrogram size)
            continue
        names = list(rename_state_dict({k: torch.empty(shape, device="meta")})[0])
        ref = own[names[0]]
        if len(names) == 3:  # qkv: query, key and value stacked
            shape_ = (3 * ref.shape[0], *ref.shape[1:])
        else:
            shape_ = tuple(ref.shape)
        if not ref.is_floating_point():  # position / relative-position indices, batch counters: valid integers
            sd[k] = ref.clone() if "num_batches_tracked" not in k else torch.tensor(7)
        elif "running_var" in k:
            sd[k] = torch.rand(shape_, generator=g) + 0.5
        else:
            sd[k] = torch.randn(shape_, generator=g)
    sd.update(extra or {})
    sd.pop(drop, None)
    torch.save({"epoch": np.int64(45), "name": "tiny", "optimizer": {"state": {}, "param_groups": []},
                "state_dict": {"module." + k: v for k, v in sd.items()}}, path)
    return sd


@pytest.mark.parametrize("variant", ["htsat_tiny_unfused", "htsat_tiny_fused"])
def test_every_tensor_of_a_tiny_checkpoint_lands(variant, tokenizer_dir, tmp_path):
    from transformers import AutoTokenizer

    vocab = len(AutoTokenizer.from_pretrained(str(tokenizer_dir)))
    pt = tmp_path / f"{variant}.pt"
    written = write_checkpoint(variant, pt, vocab)
    model, tok = load_laion_clap(pt, tokenizer=str(tokenizer_dir))
    assert len(tok) == vocab and model.config.audio_config.enable_fusion is VARIANTS[variant][2]
    assert list(model.config.audio_config.depths) == VARIANTS[variant][1] and model.config.text_config.num_hidden_layers == 12
    got = model.state_dict()
    landed = 0
    for k, v in written.items():
        if not_in_clapmodel(k):
            continue
        names = list(rename_state_dict({k: v})[0])
        value = torch.cat([got[n] for n in names]) if len(names) == 3 else got[names[0]]
        assert torch.equal(value, v), k
        landed += 1
    assert landed == len(written) - sum(map(not_in_clapmodel, written))
    # the renames, checked by module path rather than through the module's own table
    enc = model.audio_model.audio_encoder
    blk = enc.layers[2].blocks[1]
    assert torch.equal(blk.layernorm_before.weight, written["audio_branch.layers.2.blocks.1.norm1.weight"])
    assert torch.equal(blk.layernorm_after.bias, written["audio_branch.layers.2.blocks.1.norm2.bias"])
    q, k_, v_ = written["audio_branch.layers.2.blocks.1.attn.qkv.weight"].chunk(3)
    sa = blk.attention.self
    assert torch.equal(sa.query.weight, q) and torch.equal(sa.key.weight, k_) and torch.equal(sa.value.weight, v_)
    assert torch.equal(blk.attention.output.dense.weight, written["audio_branch.layers.2.blocks.1.attn.proj.weight"])
    assert torch.equal(blk.intermediate.dense.weight, written["audio_branch.layers.2.blocks.1.mlp.fc1.weight"])
    assert torch.equal(blk.output.dense.weight, written["audio_branch.layers.2.blocks.1.mlp.fc2.weight"])
    assert torch.equal(enc.batch_norm.running_var, written["audio_branch.bn0.running_var"])
    assert torch.equal(model.text_projection.linear1.weight, written["text_projection.0.weight"])
    assert torch.equal(model.audio_projection.linear2.bias, written["audio_projection.2.bias"])
    assert torch.equal(model.text_model.pooler.dense.weight, written["text_branch.pooler.dense.weight"])
    assert torch.equal(model.logit_scale_t, written["logit_scale_t"])
    if VARIANTS[variant][2]:
        assert torch.equal(enc.patch_embed.fusion_model.global_att[1].weight,
                           written["audio_branch.patch_embed.fusion_model.global_att.1.weight"])
        assert torch.equal(enc.patch_embed.mel_conv2d.weight, written["audio_branch.patch_embed.mel_conv2d.weight"])


def test_an_unused_or_missing_tensor_or_an_unsafe_file_is_a_one_line_error(tokenizer_dir, tmp_path):
    from transformers import AutoTokenizer

    vocab = len(AutoTokenizer.from_pretrained(str(tokenizer_dir)))
    extra = tmp_path / "extra.pt"
    write_checkpoint("htsat_tiny_unfused", extra, vocab, extra={"audio_branch.layers.0.blocks.0.attn.gain": torch.ones(1)})
    with pytest.raises(ModelLoadError, match=r"extra\.pt: 1 tensors have no place in ClapModel \(first: audio_branch\.layers\.0\.blocks\.0\.attn\.gain\)") as e:
        load_laion_clap(extra, tokenizer=None)
    assert "\n" not in str(e.value)
    missing = tmp_path / "missing.pt"
    write_checkpoint("htsat_tiny_unfused", missing, vocab, drop="audio_branch.layers.1.blocks.0.mlp.fc2.bias")
    with pytest.raises(ModelLoadError, match=r"missing\.pt: 1 ClapModel weights are not in the file \(first: audio_model\.audio_encoder\.layers\.1\.blocks\.0\.output\.dense\.bias\)") as e:
        load_laion_clap(missing, tokenizer=None)
    assert "\n" not in str(e.value)
    unsafe = tmp_path / "unsafe.pt"
    torch.save({"args": argparse.Namespace(lr=1.0), "state_dict": {"logit_scale_a": torch.ones(())}}, unsafe)
    with pytest.raises(ModelLoadError, match=r"unsafe\.pt: cannot read as a weights-only torch checkpoint .*argparse\.Namespace") as e:
        load_laion_clap(unsafe, tokenizer=None)
    assert "\n" not in str(e.value)
    with pytest.raises(ModelLoadError, match=r"nowhere\.pt: no such CLAP checkpoint file"):
        load_laion_clap(tmp_path / "nowhere.pt")


def test_an_index_builds_from_a_laion_checkpoint_and_its_file_is_an_index_input(tokenizer_dir, tmp_path):
    from transformers import AutoTokenizer

    from models.retrieval import AudioIndex, IndexConfig, build_index

    vocab = len(AutoTokenizer.from_pretrained(str(tokenizer_dir)))
    pt = tmp_path / "630k-audioset-best.pt"
    write_checkpoint("htsat_tiny_unfused", pt, vocab)
    clips = [(f"syn/{i}", sine(200 + 120 * i, sr=48000, noise=0.02, seed=i), 48000, f"{a} sound\n{s}") for i, (a, s) in enumerate(ANIMALS[:4])]
    cfg = IndexConfig(retrieval=f"clap:{pt}", inject="retrieval", clap_tokenizer=str(tokenizer_dir), ks=(1, 3))
    index = build_index(clips, cfg)
    assert index.retrieval_embeddings.shape == (4, 16) and np.allclose(np.linalg.norm(index.retrieval_embeddings, axis=1), 1, atol=1e-5)
    assert index.models["retrieval"] == f"clap:{pt}" and index.models["text_side"] == {"kind": "clap", "name": str(pt), "tokenizer": str(tokenizer_dir)}
    assert index.metrics["n_heldout"] == 4 and 0.0 <= index.metrics["recall@1"] <= 1.0
    again = AudioIndex.load(index.save(tmp_path / "index"))  # the text side reloads from the file + the named tokenizer
    hits = again.search(["dog sound", "cow sound"], k=2)
    assert [len(h) for h in hits] == [2, 2]
    assert np.allclose(again.encode_queries(["dog sound"]), index.encode_queries(["dog sound"]), atol=1e-5)
    # the index stage's freshness key reads the file (and a local tokenizer folder) as inputs
    assert checkpoint_inputs({"retrieval": f"clap:{pt}", "inject": "aisfx", "clap_tokenizer": str(tokenizer_dir)}) == {
        "clap_checkpoint_retrieval": pt, "clap_tokenizer": tokenizer_dir}
    assert checkpoint_inputs({"retrieval": "clap:laion/clap-htsat-unfused", "inject": "aisfx"}) == {}
    from pipeline.contract import Context

    ctx = Context(corpus=str(tmp_path), corpus_id="t", build_root=tmp_path / "build",
                  overrides={"index": {"retrieval": f"clap:{pt}", "clap_tokenizer": str(tokenizer_dir)}})
    paths = ctx.input_paths("index")
    assert paths["clap_checkpoint_retrieval"] == pt and paths["clap_tokenizer"] == tokenizer_dir


def test_a_legacy_format_file_with_numpy_1_scalars_reads(tmp_path):
    """A checkpoint in torch's legacy (non-zip) format, its epoch a numpy scalar pickled under numpy 1's module
    name (numpy.core.multiarray): read weights-only, without the memory map a legacy file cannot have."""
    import io

    from models.clap_checkpoint import read_state_dict

    buf = io.BytesIO()
    torch.save({"epoch": np.int64(45), "state_dict": {"module.logit_scale_a": torch.tensor(2.5)}}, buf,
               _use_new_zipfile_serialization=False)  # protocol 2: GLOBAL names are plain text lines
    data = buf.getvalue()
    assert data.count(b"numpy._core.multiarray") == 1
    (tmp_path / "old.pt").write_bytes(data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    assert read_state_dict(tmp_path / "old.pt") == {"logit_scale_a": torch.tensor(2.5)}
