"""CREPE pitch through torchcrepe, imported without torchaudio.

torchcrepe 0.0.24 does `import torchaudio` at import time, only for its file loader (`torchcrepe.load.audio`).
torchaudio is not installed here: we import torchcrepe with a placeholder `torchaudio` module in sys.modules and
remove it again right after, so other libraries (transformers, peft) never see it. Audio is loaded with soundfile.

Inference is our own thin loop over torchcrepe's network: frames of 1024 samples at 16 kHz, batched, decoded
with a deterministic local weighted average around the most probable bin (torchcrepe's decoders dither at random).
Weights and compute stay float32 on every device: see check_crepe_weights for why fp16 breaks crepe-full.
"""

from __future__ import annotations

import importlib.machinery
import sys
import types
from functools import lru_cache

import numpy as np

from benchmark.errors import InputError
from pipeline.measure.track import PitchTrack

__all__ = ["import_torchcrepe", "load_crepe", "check_crepe_weights", "estimate_pitch_crepe", "CREPE_SR"]

CREPE_SR = 16000  # Hz: the rate the network was trained at
_WINDOW = 1024  # samples per network frame
_CENTS_OFFSET = 1997.3794084376191  # cents of bin 0 (re 10 Hz)
_CENTS_PER_BIN = 20.0


class _NoTorchaudio(types.ModuleType):
    def __getattr__(self, name: str):
        if name.startswith("__"):  # introspection (inspect, pickle, hasattr) sees an ordinary bare module
            raise AttributeError(name)
        raise ImportError(
            f"torchaudio.{name}: torchaudio is not installed; auditorybench loads audio with soundfile "
            "(pipeline.measure.audio.load_audio_bytes), not torchcrepe's file loader"
        )


def import_torchcrepe() -> types.ModuleType:
    """Import torchcrepe with a temporary placeholder for its unused `import torchaudio`; the placeholder is
    removed from sys.modules before returning (a real torchaudio, if ever installed, is used as is)."""
    if "torchcrepe" in sys.modules:
        return sys.modules["torchcrepe"]
    placed = False
    if "torchaudio" not in sys.modules:
        try:
            import torchaudio  # noqa: F401  (a real install wins)
        except ImportError:
            stub = _NoTorchaudio("torchaudio", "placeholder: torchaudio is not installed")
            stub.__spec__ = importlib.machinery.ModuleSpec("torchaudio", None)
            sys.modules["torchaudio"] = stub
            placed = True
    try:
        import torchcrepe
    finally:
        if placed:
            sys.modules.pop("torchaudio", None)
    return torchcrepe


def check_crepe_weights(state: dict, source: str) -> None:
    """Raise InputError naming the first floating-point tensor of a CREPE state dict that is not float32 or not finite.

    CREPE full's first batch norm keeps running variances up to about 5e5 (64 of conv2_BN's 128 are above 65504),
    beyond float16's range: weights shipped or cast as fp16 turn them into inf, the layer then passes only its bias
    for half its channels, and the network loses most clean tones (voiced 0 % on a 440 Hz sine; tests/pipeline/
    test_measure_real_notes.py). The tiny model's largest is about 1.2e4, so it survives fp16, which is why only
    crepe-full missed on the GPU. Inference runs in float32 on every device.
    """
    import torch

    for name, t in state.items():
        if not torch.is_floating_point(t):
            continue
        if t.dtype != torch.float32:
            raise InputError(f"{source}: CREPE weight {name} is {t.dtype}, not float32 (fp16 overflows conv2_BN.running_var)")
        if not bool(torch.isfinite(t).all()):
            raise InputError(f"{source}: CREPE weight {name} has {int((~torch.isfinite(t)).sum())} non-finite values")


@lru_cache(maxsize=4)
def load_crepe(capacity: str, device: str):
    """The CREPE network ('tiny' or 'full') with its packaged weights (checked: float32 and finite), in float32 eval
    mode on device.

    Memoised per process: the weights are read-only, so the memo changes speed, never results.
    """
    import os

    import torch

    torchcrepe = import_torchcrepe()
    model = torchcrepe.Crepe(capacity)
    path = os.path.join(os.path.dirname(torchcrepe.__file__), "assets", f"{capacity}.pth")
    state = torch.load(path, map_location="cpu", weights_only=True)
    check_crepe_weights(state, path)
    model.load_state_dict(state)
    return model.to(device=torch.device(device), dtype=torch.float32).eval()


def estimate_pitch_crepe(audio: np.ndarray, sr: int, params: dict, capacity: str = "tiny") -> PitchTrack:
    """CREPE f0 track of float32[samples] at sr Hz (must be 16000) with hop params hop_s seconds.

    params: fmin_hz, fmax_hz, device (cpu | cuda), crepe.batch_size (frames per forward pass),
    crepe.voicing_threshold (periodicity, 0..1, above which a frame is voiced). confidence = periodicity.
    """
    import torch

    if sr != CREPE_SR:
        raise ValueError(f"CREPE needs audio at {CREPE_SR} Hz, got {sr} Hz (resample once, at load)")
    cfg = params["crepe"]
    device = str(params["device"])
    hop = max(1, int(round(params["hop_s"] * sr)))
    model = load_crepe(capacity, device)
    x = np.pad(np.asarray(audio, dtype=np.float32), (_WINDOW // 2, _WINDOW // 2))
    n = 1 + len(audio) // hop
    frames = np.lib.stride_tricks.sliding_window_view(x, _WINDOW)[::hop][:n]
    frames = frames - frames.mean(axis=1, keepdims=True)
    std = frames.std(axis=1, keepdims=True)
    frames = frames / np.maximum(std, 1e-10)
    batch = int(cfg["batch_size"])
    probs = []
    with torch.inference_mode():
        for i in range(0, n, batch):
            chunk = torch.from_numpy(np.ascontiguousarray(frames[i : i + batch], dtype=np.float32)).to(device)
            probs.append(model(chunk).float().cpu().numpy())
    p = np.concatenate(probs, axis=0)  # [frames, 360], sigmoid outputs
    cents = _CENTS_OFFSET + _CENTS_PER_BIN * np.arange(p.shape[1])
    freqs = 10.0 * 2 ** (cents / 1200.0)
    p = np.where((freqs >= params["fmin_hz"]) & (freqs <= params["fmax_hz"]), p, 0.0)
    best = p.argmax(axis=1)
    periodicity = p[np.arange(len(best)), best]
    bins = np.arange(p.shape[1])
    near = np.abs(bins[None, :] - best[:, None]) <= 4
    w = np.where(near, p, 0.0)
    c = (w * cents[None, :]).sum(axis=1) / np.maximum(w.sum(axis=1), 1e-12)
    f0 = 10.0 * 2 ** (c / 1200.0)
    silent = std[:, 0] < 1e-6
    voiced = (periodicity >= float(cfg["voicing_threshold"])) & ~silent
    return PitchTrack(np.where(voiced, f0, np.nan), voiced, periodicity.astype(np.float64), hop / sr)
