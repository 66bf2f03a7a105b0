"""Settings: command-line flag > environment variable > params.yaml > the defaults declared here.

One pydantic model per params.yaml section holds that section's settings, their types and their defaults (the one
place defaults live; the repository's params.yaml spells them out and a test keeps the two equal). A key that is
not a setting fails, naming the key, where it came from and the closest valid name. Environment overrides:
AUDITORYBENCH_<SECTION>_<KEY>=<YAML value>, e.g. AUDITORYBENCH_MEASURE_ESTIMATOR=crepe-tiny.

Where params come from when no path is given: $AUDITORYBENCH_PARAMS, else ./params.yaml in the current folder,
else the defaults alone — so an installed `auditorybench` works from any folder.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any, Literal, Optional, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, create_model
from pydantic import ValidationError as PydanticValidationError

from benchmark.errors import ConfigError

__all__ = ["load_params", "stage_params", "apply_env", "validate_params", "default_params", "SECTIONS", "PARAMS_FILE", "ENV_PREFIX",
           "DEMO_PROFILE", "profile_for"]

PARAMS_FILE = "params.yaml"
ENV_PREFIX = "AUDITORYBENCH_"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


# ---------------------------------------------------------------------------------------------------- sections


class TasksParams(_Section):
    enabled: Union[Literal["all"], list[str]] = "all"  # or a list of registered task names (`auditorybench tasks`)


class DemoCorpusParams(_Section):
    seed: int = 20240913
    n_clips: int = 900  # clips across the shards (plus a few deliberately bad members)
    n_shards: int = 3
    sample_rate: int = 48000


class ReadParams(_Section):
    max_json_bytes: int = 1048576  # a caption JSON above this is rejected


class _LLMParams(_Section):
    backend: str = "rules"  # rules (offline lexicon) | openai (any OpenAI-compatible server)
    model: str = ""  # --model (model_override) > $AUDITORYBENCH_LLM_MODEL > this
    model_override: Optional[str] = None  # the --model flag only
    base_url: str = ""  # "" = $OPENAI_BASE_URL, else api.openai.com; the key only ever comes from $OPENAI_API_KEY
    concurrency: int = 8
    timeout_s: float = 60
    max_retries: int = 5
    retry_budget: int = 500
    max_consecutive_failures: int = 48  # failed tries in a row, run-wide, before the endpoint is taken as down
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30
    max_retry_after_s: float = 120
    temperature: float = 0
    seed: int = 0
    structured_output: Literal["auto", "json_schema", "json_object", "text"] = "auto"
    cache_dir: str = "llm_cache"  # relative to build/<corpus>/
    max_reject_frac: float = 0.5


class ExtractParams(_LLMParams):
    max_tokens: int = 512
    batch_size: int = 8  # clips per categorise request
    max_caption_chars: int = 600
    prompt_categorise: str = "v2"
    prompt_animal_item: str = "v2"


class WriteParams(_LLMParams):
    max_tokens: int = 256
    max_caption_chars: int = 300
    prompt_comparison_sentence: str = "v2"
    guess_margin: float = 0.5  # rules guess: typical values must differ by this, else ""


class VibratoParams(_Section):  # a periodic swing of the pitch track is one pitch, its centre (pitch.find_vibrato)
    enabled: bool = True
    rate_hz: list[float] = Field(default_factory=lambda: [3.0, 9.0])
    min_periodicity: float = 0.5
    max_extent_cents: float = 100
    min_cycles: float = 2


class PitchedParams(_Section):
    min_voiced_frac: float = 0.55
    max_iqr_cents: float = 150
    active_rel_db: float = 30
    vibrato: VibratoParams = Field(default_factory=VibratoParams)


class YinParams(_Section):
    threshold: float = 0.2
    voicing_threshold: float = 0.3
    window_s: float = 0.064
    octave_tol: float = 0.2
    octave_max_aperiodicity: float = 0.6  # the octave check moves to tau/k only where the plain YIN dip is this deep
    steady_below_confidence: float = 0.85  # a clip less confident than this ...
    steady_max_iqr_cents: float = 5  # ... must hold its pitch this still
    window_octave: bool = True  # one octave per analysis window (pitch._decide_octave), not per frame
    fold_cents: float = 100  # frames this near the window's pitch class, octaves apart, are folded onto one octave
    octave_tol_window: float = 0.04  # the shortest candidate period whose median score is this near the best


class HighParams(_Section):
    enabled: bool = True
    sr: int = 48000
    fmin_hz: float = 400
    fmax_hz: float = 7600
    window_s: float = 0.016
    check_from_hz: float = 500
    trigger_frac: float = 0.2
    detect_window_s: float = 0.008


class PyinParams(_Section):
    frame_length: int = 2048
    resolution: float = 0.1
    min_confidence: float = 0.1


class CrepeParams(_Section):
    batch_size: int = 512
    voicing_threshold: float = 0.5


class MeasureParams(_Section):
    estimator: str = "yin"  # yin | pyin | crepe-tiny | crepe-full
    cross_check: bool = False
    check_estimator: str = "crepe-tiny"
    disagree_cents: float = 100
    device: Literal["cpu", "cuda"] = "cpu"
    analysis_sr: int = 16000
    fmin_hz: float = 30
    fmax_hz: float = 2200
    hop_s: float = 0.01
    max_analysis_s: float = 4.0
    max_duration_s: float = 1800
    min_sample_rate_hz: int = 8000
    silence_db: float = -60
    active_rel_db: float = 40
    level_frame_s: float = 0.05
    pitched: PitchedParams = Field(default_factory=PitchedParams)
    yin: YinParams = Field(default_factory=YinParams)
    high: HighParams = Field(default_factory=HighParams)
    pyin: PyinParams = Field(default_factory=PyinParams)
    crepe: CrepeParams = Field(default_factory=CrepeParams)


class SplitParams(_Section):
    seed: int = 0
    fractions: dict[str, float] = Field(default_factory=lambda: {"train": 0.7, "dev": 0.1, "test": 0.2})
    holdout_frac: float = 0.0  # names (sources; animal items' sound words) held out of train: their clips go to dev/test


class PairsParams(_Section):
    min_gap: float = 1.10
    max_pairs_per_clip: int = 3
    allow_centroid_pairs: bool = True
    candidate_window: int = 64
    duration_min_ratio: float = 1.5
    loudness_min_db: float = 6.0
    loudness_min_clips: int = 2


class FilterParams(_Section):
    require_agreement: bool = True
    min_per_answer: int = 2
    review_confidence: float = 0.8
    review_gap: float = 1.25
    review_decisions: str = ""


class ReleaseParams(_Section):
    version: str = "1.0.0"
    exclude_nc: bool = False
    cards_dir: str = "data_cards"  # relative: to the current folder


class WikiParams(_Section):
    min_gap: float = 1.10
    templates: list[str] = Field(default_factory=lambda: [
        "The sound of {a} is typically [MASK] than the sound of {b}.",
        "{A} usually sounds [MASK] in pitch than {b}.",
        "Compared with {b}, {a} typically has a [MASK] pitch.",
    ])
    animal_templates: list[str] = Field(default_factory=lambda: ["{Sound} is the sound a [MASK] makes."])
    ranges_path: str = ""
    animal_sounds_path: str = ""
    api_url: str = "https://{language}.wikipedia.org/w/api.php"
    language: str = "en"
    user_agent: str = "auditorybench/0.1 (research benchmark build; https://arxiv.org/abs/2409.08199)"
    cache_path: str = "build/wiki/http_cache.sqlite"
    timeout_s: float = 10.0
    offline: bool = False


class IndexParams(_Section):
    retrieval: str = "auto"
    inject: str = "auto"
    demo_audio: str = "aisfx"
    text_encoder: str = "minilm"
    clap_tokenizer: str = "roberta-base"
    proj_dim: int = 256
    epochs: int = 200
    batch_clips: int = Field(1024, ge=2)
    recall_sample: int = Field(1000, ge=2)
    holdout_frac: float = 0.2
    ks: list[int] = Field(default_factory=lambda: [1, 5, 10])
    max_audio_s: float = 10.0
    precision: Literal["fp32", "bf16"] = "fp32"
    seed: int = 0
    device: Literal["cpu", "cuda"] = "cpu"


def _train_overrides() -> type[_Section]:
    """Every models.config.TrainConfig and RunOptions field as an optional override (None: the preset's value):
    declared once, there."""
    from dataclasses import fields
    from typing import get_type_hints

    from models.config import RunOptions, TrainConfig

    hints = get_type_hints(TrainConfig) | get_type_hints(RunOptions)
    return create_model("_TrainOverrides", __base__=_Section,
                        **{f.name: (Optional[hints[f.name]], None) for f in fields(TrainConfig) + fields(RunOptions)})


class TrainParams(_train_overrides()):
    preset: Literal["published", "demo"] = "published"
    mode: Literal["audiobert", "text", "captions"] = "audiobert"
    seed: int = 0
    device: Literal["cpu", "cuda"] = "cpu"


class EvalParams(_Section):
    tasks: list[str] = Field(default_factory=list)  # [] = every task of the release
    splits: list[Literal["train", "dev", "test", "wiki"]] = Field(default_factory=lambda: ["train", "dev", "test", "wiki"])
    max_items: int = 0
    ablation: list[Literal["train", "dev", "test", "wiki"]] = Field(default_factory=lambda: ["test"])
    seed: int = 0
    device: Literal["cpu", "cuda"] = "cpu"


SECTIONS: dict[str, type[_Section]] = {
    "tasks": TasksParams, "demo_corpus": DemoCorpusParams, "read": ReadParams, "extract": ExtractParams,
    "measure": MeasureParams, "split": SplitParams, "pairs": PairsParams, "write": WriteParams, "filter": FilterParams,
    "release": ReleaseParams, "wiki": WikiParams, "index": IndexParams, "train": TrainParams, "eval": EvalParams,
}


# ---------------------------------------------------------------------------------------------------- profiles

# The embedded demo corpus's own settings, applied whenever the corpus id is `demo` (by make and the CLI alike:
# pipeline.contract.Context), above params.yaml and below the environment and the command line, which still win.
DEMO_PROFILE: dict[str, dict[str, Any]] = {
    # sources and animal sound words held out of train, so the test asks what only the audio can answer (the demo
    # measures the mechanism, not real-world knowledge)
    "split": {"holdout_frac": 0.4},
    # a source of the source-level loudness task may meet more partners (each pair is still one distinct source pair)
    "pairs": {"max_pairs_per_clip": 8},
    # log-mel statistics instead of the aisfx CNN for injection and the demo retrieval model's audio side
    "index": {"inject": "melstats", "demo_audio": "melstats"},
    # no train split in the table; a fixed 400-item subsample of the wiki splits; instrument_recognition is left out of
    # the table: its answers are source names, and holding a source out (what the pitch test needs) takes every train
    # example of that answer away, so its test measures nothing a model could have learned here
    "eval": {"splits": ["dev", "test", "wiki"], "max_items": 400,
             "tasks": ["animal_sound_recognition", "sound_pitch_comparison", "duration_comparison", "loudness_comparison"]},
    # the demo training recipe (models.config.TrainConfig.demo)
    "train": {"preset": "demo"},
}
_PROFILES = {"demo": DEMO_PROFILE}


def profile_for(corpus_id: str) -> dict[str, dict[str, Any]]:
    """The settings profile of a corpus id ({} for every corpus but the embedded demo)."""
    return _PROFILES.get(corpus_id, {})


# ---------------------------------------------------------------------------------------------------- loading


def _unknown(where: str, key: str, known: list[str], name: str | None = None) -> ConfigError:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else f" (valid: {', '.join(sorted(known))})"
    return ConfigError(f"{where}: unknown setting {name or key!r}{hint}")


def _check_keys(model: type[BaseModel], values: dict, prefix: str, where: str, sources: dict[str, str]) -> None:
    """Fail on the first key that is not a setting of model (nested sections too), naming where it came from."""
    for key, value in values.items():
        origin = sources.get(key, where)
        if key not in model.model_fields:
            raise _unknown(origin, key, list(model.model_fields), f"{prefix}.{key}")
        sub = model.model_fields[key].annotation
        if isinstance(sub, type) and issubclass(sub, BaseModel) and isinstance(value, dict):
            _check_keys(sub, value, f"{prefix}.{key}", origin, {})


def _section(name: str, values: Any, where: str, sources: dict[str, str] | None = None) -> _Section:
    if name not in SECTIONS:
        raise _unknown(where, name, list(SECTIONS))
    model = SECTIONS[name]
    values = values or {}
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: section {name!r} is a mapping of settings, not {type(values).__name__}")
    _check_keys(model, values, name, where, sources or {})
    try:
        return model(**values)
    except PydanticValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(x) for x in err.get("loc", ()))
        origin = (sources or {}).get(str(err.get("loc", ("",))[0]), where)
        raise ConfigError(f"{origin}: {name}.{loc}: {err['msg']} (got {err.get('input')!r})") from e


def default_params() -> dict:
    """Every section with its default settings."""
    return {name: model().model_dump() for name, model in SECTIONS.items()}


def validate_params(data: dict, where: str = "params", sources: dict[str, dict[str, str]] | None = None) -> dict:
    """{section: settings} validated and completed with the defaults; unknown sections and keys fail."""
    for name in data:
        if name not in SECTIONS:
            raise _unknown(where, name, list(SECTIONS))
    return {name: _section(name, data.get(name), where, (sources or {}).get(name)).model_dump() for name in SECTIONS}


def _params_path(path: str | Path | None) -> Path | None:
    if path:
        return Path(path)
    if os.environ.get("AUDITORYBENCH_PARAMS"):
        return Path(os.environ["AUDITORYBENCH_PARAMS"])
    local = Path.cwd() / PARAMS_FILE
    return local if local.is_file() else None


def _read_yaml(p: Path) -> dict:
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except OSError as e:
        raise ConfigError(f"{p}: cannot read params file ({e.strerror})") from e
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: not valid YAML ({str(e).splitlines()[0]})") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: top level must be a mapping of stage sections")
    return data


def load_params(path: str | Path | None = None, profile: dict[str, dict] | None = None) -> dict:
    """Every section's settings: params.yaml (path, else $AUDITORYBENCH_PARAMS, else ./params.yaml, else none), then
    the corpus's profile (profile_for), then environment overrides on top, validated and completed with the defaults."""
    p = _params_path(path)
    data = _read_yaml(p) if p is not None else {}
    for section, values in (profile or {}).items():
        data[section] = {**(data.get(section) or {}), **values}
    merged, sources = apply_env(data, with_sources=True)
    return validate_params(merged, str(p) if p is not None else "defaults", sources)


def apply_env(params: dict, with_sources: bool = False):
    """Environment overrides AUDITORYBENCH_<SECTION>_<KEY>=<YAML value> on top of params' sections (sections are
    matched longest name first, so AUDITORYBENCH_DEMO_CORPUS_N_CLIPS is demo_corpus.n_clips). Other
    AUDITORYBENCH_* variables (PARAMS, TASK_DIRS, RELEASES, ...) are not settings and are left alone.
    with_sources: also return {section: {key: variable name}} for error messages."""
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in params.items()}
    sources: dict[str, dict[str, str]] = {}
    names = sorted(set(SECTIONS) | {k for k, v in out.items() if isinstance(v, dict) or v is None}, key=len, reverse=True)
    for var, raw in sorted(os.environ.items()):
        if not var.startswith(ENV_PREFIX):
            continue
        rest = var[len(ENV_PREFIX):].lower()
        section = next((s for s in names if rest.startswith(s + "_")), None)
        if section is None:
            continue
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as e:
            raise ConfigError(f"environment variable {var}: cannot parse {raw!r}") from e
        key = rest[len(section) + 1:]
        out[section] = {**(out.get(section) or {}), key: value}
        sources.setdefault(section, {})[key] = f"environment variable {var}"
    return (out, sources) if with_sources else out


def stage_params(section: str, flags: dict[str, Any] | None = None, path: str | Path | None = None) -> dict:
    """One section's settings (params.yaml, environment, defaults) with command-line flags (entries whose value is
    not None) applied on top and validated like the rest."""
    params = load_params(path)
    if section not in params:
        raise _unknown("params", section, list(SECTIONS))
    given = {k: v for k, v in (flags or {}).items() if v is not None}
    return _section(section, {**params[section], **given}, "command line").model_dump()
