"""TrainConfig: everything a training run depends on (the published AudioBERT settings by default), and the
checkpoint format version. Read by train (to train), infer (to reload a checkpoint) and the CLI.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from benchmark.errors import ConfigError
from benchmark.hashing import stable_hash

__all__ = ["TrainConfig", "CHECKPOINT_FORMAT"]

CHECKPOINT_FORMAT = 1


@dataclass
class TrainConfig:
    """Everything a training run depends on; the defaults are the published AudioBERT settings."""

    lm: str = "bert-base-uncased"  # hub id, local path, or 'minilm'
    detector_encoder: str = ""  # '' = the same as lm
    mode: str = "audiobert"  # audiobert | text (same model and gate, no audio injected)
    tasks: tuple[str, ...] = ()  # () = every task of the release
    epochs: int = 20
    batch_size: int = 32
    lr: float = 3e-4
    head_lr: float = 0.0  # 0 = lr; used for a freshly initialised MLM head
    audio_lr: float = 0.0  # 0 = lr; for the fresh audio projection and its gate (audiobert mode)
    weight_decay: float = 0.01
    warmup_frac: float = 0.1
    schedule: str = "cosine"  # cosine | linear | constant
    lora_r: int = 64
    lora_alpha: int = 128
    lora_dropout: float = 0.05
    lora_targets: tuple[str, ...] = ("query", "key", "value")
    injection: str = "add"  # add | replace | insert (the audio as a token of its own in front of each span)
    retrieval_k: int = 1  # top-k clips per span; k > 1 averages them weighted by similarity
    rerank: int = 0  # > 0: re-order the first `rerank` hits by their captions' similarity to the span (models.rerank)
    rerank_encoder: str = "minilm"  # the sentence encoder of that re-ranking
    audio_gate_init: float = 0.0  # the injection gate's start (tanh of it is the audio's share); 0 = start as the text twin
    name_dropout: float = 0.0  # share of training items (drawn anew each epoch) whose span words are replaced by
    #                            made-up words: their audio (retrieved for the real words) is all that is left to go on
    span_slots: int = 0  # > 0: the audio projection also sees the span's place (1st, 2nd, ...); 0 = the published model
    audio_copy: bool = False  # the [MASK] is also offered the words the injected audio looks like (models.audiobert)
    swap_pairs: float = 0.0  # share of two-span comparison items (drawn anew each epoch) trained with the two spans
    #                          (their words and their audio) exchanged and the answer flipped
    align_steps: int = 0  # > 0: first train the audio projection this many steps to put each clip near its caption's
    #                       words in the LM's embedding space (models.align); 0 = straight to the masked-LM training
    detector_epochs: int = 5
    detector_batch_size: int = 16
    detector_lr: float = 1e-5
    detector_dir: str = ""  # reuse a trained span detector (a detector/ folder) instead of training one
    train_spans: str = "gold"  # gold | detector: where training spans come from
    eval_spans: str = "detector"  # detector | gold
    max_length: int = 128
    seed: int = 0
    device: str = "cpu"  # cpu | cuda
    amp: bool = True  # bf16 autocast on cuda
    index_dir: str = ""  # '' = the release's audio_index/
    stop_after_epoch: int = 0  # > 0: stop (resumably) after this epoch; for tests and time-boxed runs

    @classmethod
    def demo(cls, **overrides) -> "TrainConfig":
        """The small demo setting: MiniLM (shipped offline), fewer epochs, a smaller adapter, larger lr."""
        base = dict(
            lm="minilm", epochs=10, batch_size=16, lr=2e-3, head_lr=2e-3, lora_r=8, lora_alpha=16,
            audio_lr=1e-2, audio_gate_init=0.5, name_dropout=0.5, retrieval_k=3,
            # what made AudioBERT read the audio (README, "The demo"): the audio as a token of its own, the two places
            # of a comparison told apart, pairs also trained swapped, the projection first aligned to caption words,
            # the [MASK] offered the words the audio looks like, retrieval hits re-ranked by their captions
            injection="insert", span_slots=2, swap_pairs=0.5, align_steps=300, audio_copy=True, rerank=100,
            detector_epochs=2, detector_lr=1e-4, max_length=64,
            train_spans="detector",  # train on the spans eval will see: retrieval of a slightly other span finds another clip
        )
        base.update(overrides)
        return cls(**base)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(f"train config: unknown keys {unknown}")
        d = dict(d)
        for k in ("tasks", "lora_targets"):
            if k in d and d[k] is not None:
                d[k] = tuple(d[k])
        return cls(**d)

    @classmethod
    def from_params(cls, params: dict) -> "TrainConfig":
        """From the `train:` section of params.yaml: `preset: demo|published` plus overrides."""
        p = dict(params or {})
        preset = p.pop("preset", "published")
        if preset not in ("demo", "published"):
            raise ConfigError(f"train.preset {preset!r}: expected demo or published")
        base = asdict(cls.demo() if preset == "demo" else cls())
        base.update({k: v for k, v in p.items() if v is not None})
        return cls.from_dict(base)

    def key(self) -> str:
        """Hash of the settings that change the result (not stop_after_epoch / device)."""
        d = asdict(self)
        for k in ("stop_after_epoch", "device", "amp"):
            d.pop(k)
        return stable_hash(d)
