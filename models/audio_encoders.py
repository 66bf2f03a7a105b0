"""Audio encoders: one clip in, one embedding out.

Every encoder takes `audio: float32[samples]` mono at `sr` Hz, resamples once to its own rate, and returns
`float32[dim]` per clip (`encode` stacks them to `float32[n_clips, dim]`).

- `AisfxEncoder`: the aisfx sound-effects CNN (512-d). Its front end is re-implemented here faithfully
  (96-bin HTK mel, unit-sum filters, 2048/1024 frames at 44.1 kHz, log10(1e4·x + 1), the paper's
  min-max scale, 100-frame blocks ≈ 2.3 s with 50 % hop), since the package's own code pins old
  librosa/numpy. Block embeddings are averaged into one clip embedding. Clips go through `FastAisfxNet` (batch norms
  folded, channels-last; optionally bfloat16), checked against the published network (`AisfxNet`) by the tests.
- `MelStatsEncoder`: no network: the mean and spread of that same log-mel spectrogram over the clip's sounding
  frames, plus its level (194-d). Milliseconds per clip, for the demo corpus (`index.inject: melstats`,
  `index.demo_audio: melstats`), whose synthetic sources differ in exactly what it keeps: spectrum, pitch, level.
- `ClapAudioEncoder`: transformers ClapModel audio tower + projection (hub id or local path).
- `ASTEncoder`: transformers ASTModel pooled output (the published AudioBERT injection encoder).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Protocol, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from benchmark.errors import InputError, ModelLoadError

__all__ = [
    "AudioEncoder",
    "AisfxEncoder",
    "FastAisfxNet",
    "AISFX_PRECISIONS",
    "MelStatsEncoder",
    "ClapAudioEncoder",
    "ASTEncoder",
    "resample",
    "aisfx_mel",
    "load_audio_encoder",
]


class AudioEncoder(Protocol):
    name: str
    dim: int
    sample_rate_hz: int

    def encode(self, audios: Sequence[np.ndarray], sr: int) -> np.ndarray: ...


def resample(audio: np.ndarray, sr: int, target_sr: int) -> np.ndarray:
    """float32[samples] mono at sr Hz -> float32 at target_sr Hz (soxr via librosa)."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise InputError(f"audio must be mono float32[samples], got shape {audio.shape}")
    if sr == target_sr:
        return audio
    import librosa

    return librosa.resample(audio, orig_sr=sr, target_sr=target_sr).astype(np.float32)


# ---------------------------------------------------------------- aisfx

AISFX_SR_HZ = 44100
AISFX_N_FFT = 2048
AISFX_HOP = 1024
AISFX_MELS = 96
AISFX_BLOCK_FRAMES = 100  # ≈ 2.3 s
AISFX_SPEC_MAX = 9.457798957824707  # 'original' normalisation of the ISMIR paper (min 0)
AISFX_PRECISIONS = ("fp32", "bf16")  # of the network's convolutions (FastAisfxNet)


@functools.lru_cache(maxsize=1)
def _aisfx_mel_basis() -> np.ndarray:
    """float32[96, 1025]: HTK mel filters, each of unit sum (Essentia's 'unit_sum'), 0 Hz to Nyquist."""
    import librosa

    return librosa.filters.mel(
        sr=AISFX_SR_HZ, n_fft=AISFX_N_FFT, n_mels=AISFX_MELS, fmin=0.0, fmax=AISFX_SR_HZ / 2, htk=True, norm=1.0
    ).astype(np.float32)


def aisfx_mel(audio: np.ndarray, sr: int) -> np.ndarray:
    """Log-mel spectrogram as aisfx expects it: float32[frames, 96], scaled to about [0, 1]."""
    import librosa

    y = resample(audio, sr, AISFX_SR_HZ)
    peak = float(np.max(np.abs(y))) if y.size else 0.0
    y = y / (peak if peak > 0 else 1.0)
    if y.size < AISFX_N_FFT:
        y = np.pad(y, (0, AISFX_N_FFT - y.size))
    power = np.abs(librosa.stft(y, n_fft=AISFX_N_FFT, hop_length=AISFX_HOP, win_length=AISFX_N_FFT, center=True, pad_mode="constant")) ** 2
    spec = _aisfx_mel_basis() @ power  # = librosa.feature.melspectrogram(..., htk=True, norm=1.0, power=2.0)
    spec = np.log10(spec * 10000.0 + 1.0).T  # [frames, mels]
    return (spec / AISFX_SPEC_MAX).astype(np.float32)


def _blocks(spec: np.ndarray, block: int = AISFX_BLOCK_FRAMES) -> np.ndarray:
    """[frames, mels] -> [n_blocks, block, mels]: 50 % hop, partial last block dropped, short input zero-padded."""
    hop = block // 2
    n = spec.shape[0]
    if n <= block:
        out = np.zeros((1, block, spec.shape[1]), dtype=np.float32)
        out[0, :n] = spec
        return out
    starts = range(0, n - block + 1, hop)
    return np.stack([spec[s : s + block] for s in starts]).astype(np.float32)


class _ConvBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, 1, 1, bias=False)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.bn2 = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor, pool: tuple[int, int]) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return F.max_pool2d(x, kernel_size=pool)


class AisfxNet(nn.Module):
    """aisfx EmbeddingNet (9-layer CNN, max pooling, 64 base channels): [batch, frames, mels] -> [batch, 512]."""

    def __init__(self, base: int = 64):
        super().__init__()
        self.conv_block1 = _ConvBlock(1, base)
        self.conv_block2 = _ConvBlock(base, base * 2)
        self.conv_block3 = _ConvBlock(base * 2, base * 4)
        self.conv_block4 = _ConvBlock(base * 4, base * 8)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        x = spec.unsqueeze(1)
        x = self.conv_block1(x, (2, 2))
        x = self.conv_block2(x, (2, 2))
        x = self.conv_block3(x, (2, 2))
        x = self.conv_block4(x, (1, 1))
        return x.mean(dim=3).max(dim=2).values


def _load_aisfx_state(path) -> dict:
    import numpy as _np

    try:
        from numpy._core.multiarray import scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import scalar
    safe = [(scalar, "numpy.core.multiarray.scalar"), _np.dtype]
    safe += [getattr(_np.dtypes, n) for n in dir(_np.dtypes) if n.endswith("DType")]
    try:
        with torch.serialization.safe_globals(safe):
            weights, _ = torch.load(str(path), map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError, Exception) as e:  # noqa: BLE001 - re-raised as one typed error
        raise ModelLoadError(f"{path}: cannot load aisfx checkpoint ({type(e).__name__}: {str(e).splitlines()[0][:120]})") from e
    prefix = "embedding_net."
    state = {k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)}
    if not state:
        raise ModelLoadError(f"{path}: no embedding_net weights in the aisfx checkpoint")
    return state


class FastAisfxNet(nn.Module):
    """AisfxNet for inference only: each batch norm folded into its convolution, activations channels-last (oneDNN's
    fast layout on CPUs). The same function as AisfxNet in eval mode to float rounding (tested: max |diff| <= 1e-5 of
    the largest value), 1.14x (one block) to 1.33x (a 10 s clip) faster on one core; with precision "bf16" its
    convolutions run under bfloat16 autocast (2.2x to 2.6x on CPUs with AVX512-BF16 or AMX; embeddings move by
    1 - cosine < 1e-4, so the precision is part of the index's key). Speed: `make bench-scale`."""

    POOLS = ((2, 2), (2, 2), (2, 2), (1, 1))

    def __init__(self, net: AisfxNet, precision: str = "fp32"):
        super().__init__()
        from torch.nn.utils.fusion import fuse_conv_bn_eval

        if precision not in AISFX_PRECISIONS:
            raise InputError(f"aisfx precision {precision!r}: expected one of {', '.join(AISFX_PRECISIONS)}")
        self.precision = precision
        blocks = (net.conv_block1, net.conv_block2, net.conv_block3, net.conv_block4)
        net = net.eval()
        self.convs = nn.ModuleList(fuse_conv_bn_eval(c, bn) for b in blocks for c, bn in ((b.conv1, b.bn1), (b.conv2, b.bn2)))
        self.to(memory_format=torch.channels_last)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        x = spec.unsqueeze(1).contiguous(memory_format=torch.channels_last)
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
            for k, pool in enumerate(self.POOLS):
                x = F.relu(self.convs[2 * k + 1](F.relu(self.convs[2 * k](x))))
                x = F.max_pool2d(x, kernel_size=pool)
        return x.float().mean(dim=3).max(dim=2).values


@dataclass
class AisfxEncoder:
    """The pretrained aisfx sound-effects encoder (512-d, 44.1 kHz). `net` is the checkpoint's network as published
    (the reference); clips go through `fast` (FastAisfxNet) unless `reference=True`."""

    net: AisfxNet
    name: str = "aisfx-x-sequential-ce"
    dim: int = 512
    sample_rate_hz: int = AISFX_SR_HZ
    device: str = "cpu"
    batch_blocks: int = 64
    precision: str = "fp32"
    reference: bool = False

    def __post_init__(self) -> None:
        self.fast = FastAisfxNet(self.net, self.precision).to(self.device)

    @classmethod
    def from_checkpoint(cls, path=None, device: str = "cpu", precision: str = "fp32", reference: bool = False) -> "AisfxEncoder":
        from models.loading import aisfx_checkpoint_path

        path = path or aisfx_checkpoint_path()
        net = AisfxNet()
        missing, unexpected = net.load_state_dict(_load_aisfx_state(path), strict=False)
        if missing:
            raise ModelLoadError(f"{path}: aisfx checkpoint lacks {len(missing)} weights (e.g. {missing[0]})")
        return cls(net=net.eval().to(device), device=device, precision=precision, reference=reference)

    @torch.inference_mode()
    def encode(self, audios: Sequence[np.ndarray], sr: int) -> np.ndarray:
        net = self.net if self.reference else self.fast
        blocks = [_blocks(aisfx_mel(a, sr)) for a in audios]
        owner = np.concatenate([np.full(len(b), i) for i, b in enumerate(blocks)]) if blocks else np.zeros(0, int)
        flat = np.concatenate(blocks) if blocks else np.zeros((0, AISFX_BLOCK_FRAMES, AISFX_MELS), np.float32)
        outs = []
        for s in range(0, len(flat), self.batch_blocks):
            x = torch.from_numpy(flat[s : s + self.batch_blocks]).to(self.device)
            outs.append(net(x).float().cpu().numpy())
        emb = np.concatenate(outs) if outs else np.zeros((0, self.dim), np.float32)
        out = np.zeros((len(audios), self.dim), np.float32)
        for i in range(len(audios)):
            out[i] = emb[owner == i].mean(axis=0)
        return out


@dataclass
class MelStatsEncoder:
    """Per clip: mean and standard deviation of the aisfx log-mel bands over the sounding frames (within 30 dB of
    the loudest), the sounding share of the clip, and its RMS level (dBFS / 60): float32[194]. No weights."""

    name: str = "melstats"
    dim: int = 2 * AISFX_MELS + 2
    sample_rate_hz: int = AISFX_SR_HZ

    def encode(self, audios: Sequence[np.ndarray], sr: int) -> np.ndarray:
        out = np.zeros((len(audios), self.dim), np.float32)
        for i, a in enumerate(audios):
            a = np.asarray(a, dtype=np.float32)
            rms = float(np.sqrt(np.mean(np.square(a, dtype=np.float64)))) if a.size else 0.0
            spec = aisfx_mel(a, sr)  # [frames, 96], peak-normalised audio
            peak = spec.max(axis=1)  # log10 units / AISFX_SPEC_MAX: 30 dB = 3 units
            on = peak >= peak.max() - 3.0 / AISFX_SPEC_MAX
            act = spec[on]
            out[i, :AISFX_MELS] = act.mean(axis=0)
            out[i, AISFX_MELS:2 * AISFX_MELS] = act.std(axis=0)
            out[i, -2] = float(on.mean())
            out[i, -1] = (20.0 * np.log10(max(rms, 1e-6))) / 60.0
        return out


# ---------------------------------------------------------------- transformers encoders


def _pooled(out) -> torch.Tensor:
    return out if isinstance(out, torch.Tensor) else out.pooler_output


@dataclass
class ClapAudioEncoder:
    """CLAP audio tower + projection (L2-normalised), from a transformers ClapModel."""

    model: object  # transformers.ClapModel
    feature_extractor: object  # transformers.ClapFeatureExtractor
    name: str = "clap"
    device: str = "cpu"

    @property
    def dim(self) -> int:
        return int(self.model.config.projection_dim)

    @property
    def sample_rate_hz(self) -> int:
        return int(self.feature_extractor.sampling_rate)

    @classmethod
    def from_pretrained(cls, name: str, device: str = "cpu", local_only: bool | None = None) -> "ClapAudioEncoder":
        from transformers import ClapFeatureExtractor, ClapModel

        from models.clap_checkpoint import is_laion_checkpoint, laion_feature_extractor, load_laion_clap
        from models.loading import _load  # same loud failure as the other loaders

        if is_laion_checkpoint(name):  # a laion-clap .pt: no feature extractor beside it, laion_clap's front end
            model, _ = load_laion_clap(name, tokenizer=None)
            return cls(model=model.to(device), feature_extractor=laion_feature_extractor(model), name=name, device=device)
        model, _ = _load(ClapModel, name, local_only=local_only)
        try:
            fe = ClapFeatureExtractor.from_pretrained(name, local_files_only=bool(local_only))
        except (OSError, ValueError) as e:
            raise ModelLoadError(f"{name}: cannot load CLAP feature extractor ({str(e).splitlines()[0][:120]})") from e
        return cls(model=model.eval().to(device), feature_extractor=fe, name=name, device=device)

    @torch.no_grad()
    def encode(self, audios: Sequence[np.ndarray], sr: int) -> np.ndarray:
        # The feature extractor must match the model: 'fusion' stacks 4 mel views (fused checkpoints only), an unfused
        # model takes one. Clips are cut to the extractor's length first, so 'rand_trunc' never draws at random.
        fused = bool(getattr(self.model.config.audio_config, "enable_fusion", False))
        n_max = int(self.feature_extractor.nb_max_samples)
        wavs = [resample(a, sr, self.sample_rate_hz)[:n_max] for a in audios]
        feats = self.feature_extractor(wavs, sampling_rate=self.sample_rate_hz, return_tensors="pt",
                                       truncation="fusion" if fused else "rand_trunc")
        feats = {k: v.to(self.device) for k, v in feats.items() if k in ("input_features", "is_longer")}
        return _pooled(self.model.get_audio_features(**feats)).float().cpu().numpy()


@dataclass
class ASTEncoder:
    """Audio Spectrogram Transformer pooled output (mean of the CLS and distillation tokens)."""

    model: object  # transformers.ASTModel
    feature_extractor: object  # transformers.ASTFeatureExtractor
    name: str = "ast"
    device: str = "cpu"

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    @property
    def sample_rate_hz(self) -> int:
        return int(self.feature_extractor.sampling_rate)

    @classmethod
    def from_pretrained(cls, name: str, device: str = "cpu", local_only: bool | None = None) -> "ASTEncoder":
        from transformers import ASTFeatureExtractor, ASTModel

        from models.loading import _load

        model, _ = _load(ASTModel, name, local_only=local_only)
        try:
            fe = ASTFeatureExtractor.from_pretrained(name, local_files_only=bool(local_only))
        except (OSError, ValueError) as e:
            raise ModelLoadError(f"{name}: cannot load AST feature extractor ({str(e).splitlines()[0][:120]})") from e
        return cls(model=model.eval().to(device), feature_extractor=fe, name=name, device=device)

    @torch.no_grad()
    def encode(self, audios: Sequence[np.ndarray], sr: int) -> np.ndarray:
        wavs = [resample(a, sr, self.sample_rate_hz) for a in audios]
        feats = self.feature_extractor(wavs, sampling_rate=self.sample_rate_hz, return_tensors="pt")
        out = self.model(input_values=feats["input_values"].to(self.device))
        return out.pooler_output.float().cpu().numpy()


def load_audio_encoder(name: str, device: str = "cpu", local_only: bool | None = None, precision: str = "fp32") -> AudioEncoder:
    """'aisfx' -> AisfxEncoder; 'clap:<hub id, folder or laion-clap .pt>' -> ClapAudioEncoder; 'ast:<hub id or path>' -> ASTEncoder.
    `local_only` loads from a local path or the hub cache only (no network wait). `precision` (fp32 | bf16): aisfx's."""
    kind, _, ref = str(name).partition(":")
    if kind == "aisfx":
        return AisfxEncoder.from_checkpoint(ref or None, device=device, precision=precision)
    if kind == "melstats":
        return MelStatsEncoder()
    if kind == "clap" and ref:
        return ClapAudioEncoder.from_pretrained(ref, device=device, local_only=local_only)
    if kind == "ast" and ref:
        return ASTEncoder.from_pretrained(ref, device=device, local_only=local_only)
    from benchmark.errors import UnknownNameError

    raise UnknownNameError(f"audio encoder {name!r}: expected 'aisfx', 'melstats', 'clap:<id or path>' or 'ast:<id or path>'")
