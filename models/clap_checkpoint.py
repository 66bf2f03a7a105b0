"""LAION-CLAP checkpoints (`.pt`, as laion_clap writes them) loaded into transformers' `ClapModel`.

The official AudioBERT code loads its CLAP through `laion_clap` (e.g. `630k-audioset-best.pt`), which cannot be
installed beside numpy 2. `index.retrieval: clap:<file.pt>` (and `index.inject: clap:<file.pt>`) read such a file
here instead: its state dict is renamed onto `ClapModel` (the renames of transformers' own
`convert_clap_original_pytorch_to_hf.py`), the model's shape is read off the tensors (HTSAT-tiny / -base / any
depth, fused (2-D attentional feature fusion) or not), and the load is strict: a tensor of the file that finds no
place, or a weight of the model the file does not fill, is an error naming the file and the first such key.

What the file holds that ClapModel has no place for, by design (`DROPPED`): the torchlibrosa STFT kernels and mel
filterbank (ClapFeatureExtractor computes the log-mel spectrogram), HTSAT's AudioSet classifier (`tscam_conv`,
`head`), the training loss's `text_transform` / `audio_transform` MLPs and the shifted-window masks (recomputed
from the shapes) — laion_clap's own `get_text_embedding` / `get_audio_embedding` use none of them. Buffers that
the model derives from its config (`position_ids`, `token_type_ids`, `relative_position_index`) are loaded when
the file has them and otherwise keep the model's own values (`DERIVED`).

The file holds no tokenizer: the text side's comes from a hub id (`roberta-base`, what laion_clap uses) or a local
folder (`index.clap_tokenizer`).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import torch

from benchmark.errors import ModelLoadError

__all__ = ["CHECKPOINT_SUFFIXES", "DEFAULT_TOKENIZER", "DROPPED", "DERIVED", "is_laion_checkpoint", "read_state_dict", "checkpoint_inputs",
           "laion_clap_config", "rename_state_dict", "load_laion_clap", "laion_feature_extractor"]

CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")
DEFAULT_TOKENIZER = "roberta-base"  # laion_clap's text tokenizer (its RoBERTa text branch)
AUDIO_SR_HZ = 48000  # laion_clap's audio front end (model_configs/HTSAT-*.json): 48 kHz, 1024-point FFT, hop 480,
HOP, N_FFT, FMIN_HZ, FMAX_HZ, MAX_S = 480, 1024, 50, 14000, 10  # 50-14000 Hz mel, 10 s clips (an int: samples = s * sr)

DROPPED: dict[str, str] = {  # laion key pattern -> why ClapModel has no place for it
    r"^audio_branch\.spectrogram_extractor\.": "torchlibrosa STFT kernels (ClapFeatureExtractor makes the spectrogram)",
    r"^audio_branch\.logmel_extractor\.": "torchlibrosa mel filterbank (ClapFeatureExtractor's own)",
    r"^audio_branch\.(tscam_conv|head)\.": "HTSAT's AudioSet classifier, not on the embedding path",
    r"^audio_branch\.layers\.\d+\.blocks\.\d+\.attn_mask$": "shifted-window mask, recomputed from the shapes",
    r"^(text|audio)_transform\.": "the training loss's MLP, unused by laion_clap's get_*_embedding",
}
DERIVED = (  # ClapModel buffers computed from the config: loaded when the file has them, else the model's own
    r"^text_model\.embeddings\.(position_ids|token_type_ids)$",
    r"\.attention\.self\.relative_position_index$",
)
_AUDIO_RENAMES = (  # on the key after audio_branch.; from transformers' convert_clap_original_pytorch_to_hf.py
    (r"^bn0\.", "batch_norm."),
    (r"\.norm1\.", ".layernorm_before."),
    (r"\.norm2\.", ".layernorm_after."),
    (r"\.attn\.proj\.", ".attention.output.dense."),
    (r"\.attn\.(relative_position_bias_table|relative_position_index|qkv\.)", r".attention.self.\1"),
    (r"\.mlp\.fc1\.", ".intermediate.dense."),
    (r"\.mlp\.fc2\.", ".output.dense."),
)
_PROJECTION = re.compile(r"^(text|audio)_projection\.(0|2)\.")  # nn.Sequential(Linear, act, Linear)


def is_laion_checkpoint(ref: str) -> bool:
    """True for a `clap:` reference that names a checkpoint file (by its suffix) rather than a hub id or folder."""
    return Path(str(ref)).suffix.lower() in CHECKPOINT_SUFFIXES


# ---------------------------------------------------------------- reading the file

_NUMPY_SCALAR = ("numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar")  # numpy 1's name, numpy 2's


def _safe_numpy_globals() -> list:
    """numpy scalars and dtypes (training checkpoints may keep the epoch or optimizer figures as numpy scalars, and
    a file pickled under numpy 1 names them numpy.core.*): allowed by name, nothing else."""
    import numpy as np

    out: list = [(np._core.multiarray.scalar, name) for name in _NUMPY_SCALAR] + [np.dtype]
    out += [t for t in vars(np.dtypes).values() if isinstance(t, type) and issubclass(t, np.dtype)]
    return out


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The file's tensors by laion name: `torch.load(weights_only=True)` (no code in the file runs; numpy scalars
    allowed), memory-mapped when the file is a zip checkpoint; a `state_dict` wrapper (laion_clap's training
    checkpoints also hold the optimizer) is opened and the `module.` prefix of distributed training removed."""
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"{path}: no such CLAP checkpoint file")
    try:
        with torch.serialization.safe_globals(_safe_numpy_globals()):
            try:
                obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError as e:  # a legacy (non-zip) file cannot be memory-mapped
                if "mmap" not in str(e):
                    raise
                obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - pickle / zip / torch errors all mean: not a readable checkpoint
        first = (str(e).strip().splitlines() or [type(e).__name__])
        why = next((ln.strip() for ln in first if "Unsupported global" in ln), first[0].strip())
        raise ModelLoadError(f"{path}: cannot read as a weights-only torch checkpoint ({why[:200]})") from e
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ModelLoadError(f"{path}: not a state dict of tensors (nor a dict with one under 'state_dict')")
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in obj.items()}


# ---------------------------------------------------------------- the model's shape, from the tensors


def _need(sd: dict, key: str, path, what: str) -> torch.Tensor:
    if key not in sd:
        raise ModelLoadError(f"{path}: no {key}; {what}")
    return sd[key]


def _count(sd: dict, pattern: str) -> int:
    rx = re.compile(pattern)
    return len({m.group(1) for k in sd if (m := rx.match(k))})


def laion_clap_config(sd: dict[str, torch.Tensor], path: str | Path = "checkpoint"):
    """The transformers `ClapConfig` a laion-clap state dict (laion names, no `module.`) was trained with, read off
    its tensors: RoBERTa text branch (width, layers, vocabulary; 64-wide heads, as roberta-base's 12 at 768), HTSAT
    audio branch (patch width, depths, heads and window per stage, mel bands, fusion), projection size."""
    from transformers import ClapAudioConfig, ClapConfig, ClapTextConfig

    if any(k.startswith("audio_branch.conv_block1.") for k in sd):
        raise ModelLoadError(f"{path}: a PANN audio branch; transformers' ClapModel has HTSAT only")
    if any(k.startswith(("audio_branch.mel_conv1d.", "audio_branch.fusion_model.")) for k in sd):
        raise ModelLoadError(f"{path}: 1-D feature fusion; transformers' ClapModel has the 2-D (aff_2d) fusion only")
    proj = _need(sd, "audio_branch.patch_embed.proj.weight", path, "not a laion-clap HTSAT checkpoint")
    words = _need(sd, "text_branch.embeddings.word_embeddings.weight", path, "not a RoBERTa text branch (laion-clap 'roberta')")
    n_types = _need(sd, "text_branch.embeddings.token_type_embeddings.weight", path, "not a RoBERTa text branch").shape[0]
    if n_types != 1:
        raise ModelLoadError(f"{path}: text branch has {n_types} token types (BERT); ClapModel's text model is RoBERTa's")
    vocab, width = words.shape
    text = ClapTextConfig(
        vocab_size=int(vocab), hidden_size=int(width),
        num_hidden_layers=_count(sd, r"^text_branch\.encoder\.layer\.(\d+)\."),
        num_attention_heads=max(1, int(width) // 64),
        intermediate_size=int(_need(sd, "text_branch.encoder.layer.0.intermediate.dense.weight", path, "no text layers").shape[0]),
        max_position_embeddings=int(_need(sd, "text_branch.embeddings.position_embeddings.weight", path, "no positions").shape[0]),
        type_vocab_size=1, layer_norm_eps=1e-5, pad_token_id=1, bos_token_id=0, eos_token_id=2,  # roberta-base's
        projection_dim=int(_need(sd, "text_projection.2.weight", path, "no text projection").shape[0]))
    n_stages = _count(sd, r"^audio_branch\.layers\.(\d+)\.")
    depths = [_count(sd, rf"^audio_branch\.layers\.{i}\.blocks\.(\d+)\.") for i in range(n_stages)]
    table = [_need(sd, f"audio_branch.layers.{i}.blocks.0.attn.relative_position_bias_table", path, "no window attention")
             for i in range(n_stages)]
    window = (math.isqrt(int(table[0].shape[0])) + 1) // 2  # the table has (2w - 1)² rows
    embed, patch = int(proj.shape[0]), int(proj.shape[-1])
    spec_size = 256  # HTSAT's (every laion config); checked against a shifted-window mask when the file has one
    mask = sd.get("audio_branch.layers.0.blocks.1.attn_mask")
    if mask is not None:
        spec_size = window * math.isqrt(int(mask.shape[0])) * patch
    fused = "audio_branch.patch_embed.fusion_model.local_att.0.weight" in sd
    audio_kw = {}
    if fused:
        audio_kw["aff_block_r"] = embed // int(sd["audio_branch.patch_embed.fusion_model.local_att.0.weight"].shape[0])
    n_features = embed * 2 ** (n_stages - 1)
    audio = ClapAudioConfig(
        patch_embeds_hidden_size=embed, depths=depths, num_attention_heads=[int(t.shape[1]) for t in table],
        window_size=window, patch_size=patch, patch_stride=(patch, patch), spec_size=spec_size,
        num_mel_bins=int(_need(sd, "audio_branch.bn0.weight", path, "no input batch norm").shape[0]),
        patch_embed_input_channels=int(proj.shape[1]), enable_fusion=fused,
        enable_patch_layer_norm="audio_branch.patch_embed.norm.weight" in sd,
        qkv_bias="audio_branch.layers.0.blocks.0.attn.qkv.bias" in sd,
        mlp_ratio=int(sd["audio_branch.layers.0.blocks.0.mlp.fc1.weight"].shape[0]) / embed,
        hidden_size=n_features, num_hidden_layers=n_stages,
        projection_dim=int(_need(sd, "audio_projection.2.weight", path, "no audio projection").shape[0]), **audio_kw)
    return ClapConfig(text_config=text.to_dict(), audio_config=audio.to_dict(), projection_dim=text.projection_dim)


# ---------------------------------------------------------------- the renames


def _dropped(key: str) -> str | None:
    return next((why for rx, why in DROPPED.items() if re.search(rx, key)), None)


def rename_state_dict(sd: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(ClapModel state dict, {laion key: why dropped}). Every other laion key is renamed (an audio attention's
    fused `qkv` split into query, key and value); a key no rule covers keeps its laion name, so that the strict
    load below reports it as unused."""
    out, dropped, _ = _rename(sd)
    return out, dropped


def _rename(sd: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str], dict[str, str]]:
    """rename_state_dict, plus {ClapModel key: the laion key it came from}."""
    out: dict[str, torch.Tensor] = {}
    dropped: dict[str, str] = {}
    origin: dict[str, str] = {}
    for key, value in sd.items():
        why = _dropped(key)
        if why is not None:
            dropped[key] = why
            continue
        new = key
        if key.startswith("text_branch."):
            new = "text_model." + key[len("text_branch."):]
        elif key.startswith("audio_branch."):
            rest = key[len("audio_branch."):]
            for rx, rep in _AUDIO_RENAMES:
                rest = re.sub(rx, rep, rest)
            new = "audio_model.audio_encoder." + rest
        elif m := _PROJECTION.match(key):
            new = f"{m.group(1)}_projection.linear{1 if m.group(2) == '0' else 2}." + key[m.end():]
        if ".attention.self.qkv." in new:
            for part, chunk in zip(("query", "key", "value"), value.chunk(3, dim=0)):
                out[new.replace(".qkv.", f".{part}.")] = chunk
                origin[new.replace(".qkv.", f".{part}.")] = key
        else:
            out[new] = value
            origin[new] = key
    return out, dropped, origin


def _load_into(model, hf_sd: dict[str, torch.Tensor], origin: dict[str, str], path) -> None:
    """Strict: every tensor lands on a model weight of its shape, every model weight is filled (derived buffers
    may keep the model's own values); otherwise a one-line ModelLoadError naming the file and the first key."""
    own = model.state_dict()
    unused = [k for k in hf_sd if k not in own]
    if unused:
        raise ModelLoadError(f"{path}: {len(unused)} tensors have no place in ClapModel (first: {origin[unused[0]]})")
    missing = [k for k in own if k not in hf_sd and not any(re.search(rx, k) for rx in DERIVED)]
    if missing:
        raise ModelLoadError(f"{path}: {len(missing)} ClapModel weights are not in the file (first: {missing[0]})")
    for k, v in hf_sd.items():
        if tuple(v.shape) != tuple(own[k].shape):
            raise ModelLoadError(f"{path}: {origin[k]} has shape {tuple(v.shape)}, the model's {k} {tuple(own[k].shape)}")
    model.load_state_dict(hf_sd, strict=False, assign=False)


def load_laion_clap(path: str | Path, tokenizer: str | None = DEFAULT_TOKENIZER, *, min_vocab: int | None = None):
    """(ClapModel in eval mode, text tokenizer or None) from a laion-clap checkpoint file. `tokenizer`: hub id or
    local folder (None: the audio side only needs no tokenizer); it may not have more entries than the text
    branch's vocabulary. Raises ModelLoadError (one line, naming the file) on anything that does not fit."""
    from transformers import ClapModel

    from models.loading import MIN_VOCAB, load_tokenizer

    sd = read_state_dict(path)
    config = laion_clap_config(sd, path)
    hf_sd, _, origin = _rename(sd)
    model = ClapModel(config)
    _load_into(model, hf_sd, origin, path)
    tok = None
    if tokenizer is not None:
        tok = load_tokenizer(tokenizer, min_vocab=MIN_VOCAB if min_vocab is None else min_vocab)
        if len(tok) > config.text_config.vocab_size:
            raise ModelLoadError(f"{path}: tokenizer {tokenizer} has {len(tok)} entries, the text branch "
                                 f"{config.text_config.vocab_size}; not this checkpoint's tokenizer")
    return model.eval(), tok


def laion_feature_extractor(model):
    """The ClapFeatureExtractor of laion_clap's audio front end for this model: 48 kHz, 10 s, 1024-point FFT, hop
    480, the model's mel bands over 50-14000 Hz; 4 stacked views ('fusion') for a fused model."""
    from transformers import ClapFeatureExtractor

    fused = bool(model.config.audio_config.enable_fusion)
    return ClapFeatureExtractor(feature_size=int(model.config.audio_config.num_mel_bins), sampling_rate=AUDIO_SR_HZ,
                                hop_length=HOP, max_length_s=MAX_S, fft_window_size=N_FFT, frequency_min=FMIN_HZ,
                                frequency_max=FMAX_HZ, padding="repeatpad", truncation="fusion" if fused else "rand_trunc")



def checkpoint_inputs(index_params: dict) -> dict[str, Path]:
    """The files an index built with these settings reads besides the corpus, as inputs of the index stage's
    freshness key: each `clap:<file.pt>` of retrieval / inject and, with one, a local `clap_tokenizer` folder."""
    out: dict[str, Path] = {}
    for role in ("retrieval", "inject"):
        kind, _, ref = str((index_params or {}).get(role, "")).partition(":")
        if kind == "clap" and is_laion_checkpoint(ref):
            out[f"clap_checkpoint_{role}"] = Path(ref)
    tok = Path(str((index_params or {}).get("clap_tokenizer", DEFAULT_TOKENIZER)))
    if out and tok.is_dir():
        out["clap_tokenizer"] = tok
    return out
