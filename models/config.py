"""TrainConfig: everything a training run's result depends on (the published AudioBERT by default); RunOptions: how
and where it runs (device, precision, paths, a stop for time-boxed runs), which cannot change the result.

Two named configurations: `TrainConfig.published()` (the paper's AudioBERT: `add` injection behind a gate that starts
shut, on whatever masked LM is given, BERT-base by default) and `TrainConfig.demo()` (the demo recipe: MiniLM, the
audio as a token of its own, span slots, swapped pairs, name dropout, the alignment warm-up, the copy path and
re-ranked retrieval). Every choice is a Literal, checked when the config is built or loaded.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Literal

from benchmark.errors import ConfigError
from benchmark.hashing import stable_hash
from models.audiobert import ModelSettings, check_choices

__all__ = ["TrainConfig", "RunOptions", "CHECKPOINT_FORMAT", "PRESETS"]

CHECKPOINT_FORMAT = 2  # 2: TrainConfig with ModelSettings' names and no run options (1: before the compact trainer)


@dataclass
class TrainConfig(ModelSettings):
    """Everything a training run's result depends on; the defaults are the published AudioBERT settings (with the
    model's settings from ModelSettings)."""

    tasks: tuple[str, ...] = ()  # () = every task of the release
    epochs: int = 20
    batch_size: int = 32
    lr: float = 3e-4  # the LoRA adapter's; cosine schedule with warmup
    head_lr: float = 0.0  # 0 = lr; for a freshly initialised MLM head
    audio_lr: float = 0.0  # 0 = lr; for the audio path (AudioBERT.audio_parameters)
    weight_decay: float = 0.01
    warmup_frac: float = 0.1
    retrieval_k: int = 1  # top-k clips per span; k > 1 averages them weighted by similarity
    rerank: int = 0  # > 0: re-order the first `rerank` hits by their captions' similarity to the span (models.rerank)
    name_dropout: float = 0.0  # share of training items (drawn anew each epoch) whose span words are replaced by
    #                            made-up words: their own clips' audio is all that is left to go on
    swap_pairs: float = 0.0  # share of two-span comparison items (drawn anew each epoch) trained with the two spans
    #                          (their words and their audio) exchanged and the answer flipped
    align_steps: int = 0  # > 0: first align the audio projection to caption words this many steps (models.align)
    detector_epochs: int = 5
    detector_batch_size: int = 16
    detector_lr: float = 1e-5
    train_spans: Literal["gold", "detector"] = "gold"  # where training spans come from (eval always uses the detector)
    max_length: int = 128  # tokens of a sentence
    context_tokens: int = 96  # the caption twin's: tokens its retrieved captions may add after the sentence
    seed: int = 0

    def __post_init__(self) -> None:
        self.tasks, self.lora_targets = tuple(self.tasks), tuple(self.lora_targets)
        check_choices(self)

    @classmethod
    def published(cls, **overrides) -> "TrainConfig":
        """The paper's AudioBERT (the defaults): 20 epochs, batch 32, lr 3e-4, LoRA r 64 / alpha 128 on q/k/v, `add`
        injection behind a gate that starts shut; detector 5 epochs, batch 16, lr 1e-5."""
        return cls(**overrides)

    @classmethod
    def demo(cls, **overrides) -> "TrainConfig":
        """The demo recipe: MiniLM (shipped offline), 5 epochs, a small adapter, larger learning rates, and what made
        AudioBERT read the audio on the demo corpus (README, "The demo"). Epochs and the caption twin's context are
        set by the demo's budget (three models and their controls on a 2-core machine): 10 epochs and 96 context
        tokens took `make demo` to 87 minutes, the caption twin alone to about 50 of them."""
        base = dict(
            lm="minilm", epochs=5, batch_size=16, lr=2e-3, head_lr=2e-3, lora_r=8, lora_alpha=16, audio_lr=1e-2,
            name_dropout=0.5, retrieval_k=3, injection="insert", span_slots=2, swap_pairs=0.5, align_steps=300,
            audio_copy=True, rerank=100, detector_epochs=2, detector_lr=1e-4, max_length=64,
            train_spans="detector",  # train on the spans eval will see: retrieval of a slightly other span finds another clip
            context_tokens=32,  # the caption twin's: each span's best hits' caption lines first (SpanHits.captions)
        )
        return cls(**(base | overrides))

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(f"train config: unknown keys {unknown}")
        return cls(**d)

    @classmethod
    def from_params(cls, params: dict) -> "TrainConfig":
        """From the `train:` section of params.yaml: `preset: demo|published` plus overrides (run options ignored)."""
        p = {k: v for k, v in (params or {}).items() if k not in RUN_OPTION_NAMES and v is not None}
        preset = p.pop("preset", "published")
        if preset not in PRESETS:
            raise ConfigError(f"train.preset {preset!r}: expected one of {', '.join(PRESETS)}")
        return PRESETS[preset](**p)

    def encoded_length(self) -> int:
        """Tokens the model reads: a sentence's max_length, plus context_tokens for the caption twin's captions."""
        return self.max_length + (self.context_tokens if self.mode == "captions" else 0)

    def key(self) -> str:
        """Hash of the whole config: every field can change the result."""
        return stable_hash(asdict(self))


@dataclass
class RunOptions:
    """How and where a training run runs: none of it can change its result (a checkpoint trained on cpu and cuda
    answers alike up to float noise; the paths name inputs whose content the caller's freshness key holds)."""

    device: Literal["cpu", "cuda"] = "cpu"
    amp: bool = True  # bf16 autocast on cuda
    index_dir: str = ""  # '' = the release's audio_index/
    detector_dir: str = ""  # reuse a trained span detector (a detector/ folder) instead of training one
    stop_after_epoch: int = 0  # > 0: stop (resumably) after this epoch; for tests and time-boxed runs
    resume_key: str = ""  # the caller's code version: a saved state made by other code is never resumed

    def __post_init__(self) -> None:
        check_choices(self)

    @classmethod
    def from_params(cls, params: dict) -> "RunOptions":
        return cls(**{k: v for k, v in (params or {}).items() if k in RUN_OPTION_NAMES and v is not None})


RUN_OPTION_NAMES = frozenset(f.name for f in fields(RunOptions))
PRESETS = {"published": TrainConfig.published, "demo": TrainConfig.demo}
