"""The task registry: a task is one YAML file in this folder (plus, where needed, a small function).

`list_tasks()` names every registered task, `get_task(name)` returns its typed spec (an unknown name fails with a
"did you mean" suggestion), `task_choices(items)` gives each task's answer set for a release.
Extra task folders can be registered with $AUDITORYBENCH_TASK_DIRS (os.pathsep-separated) — how a user adds a task
without touching the package.

Every field of a task's YAML is read by something:
- kind, answer_choices, csv_columns, metrics: the release (its manifest, CSV files and validation) and eval;
- comparison tasks: dimension, categories, pairing, measurement, gap_rule (pairs), templates, prompt_file (write),
  require_agreement (filter);
- recognition tasks: item_source — a function named as in lm-evaluation-harness, `!function module.func` (a module
  importable, or a .py file beside the YAML), called with the build's tables and `item_source_args` — and
  min_per_answer_param (filter);
- wiki_source: which Wikipedia snapshot gives the task a test-only "wiki" split (ranges | animal_sounds);
- card_notes: the data card.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import os
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, Optional, Union

import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from benchmark.errors import ConfigError, UnknownNameError
from benchmark.metrics import METRICS
from benchmark.schema import csv_field

__all__ = ["TaskSpec", "Basis", "list_tasks", "get_task", "task_dirs", "task_choices", "enabled_tasks", "comparison_tasks",
           "recognition_tasks", "writer_specs", "item_source_function", "item_source_file", "item_source_path",
           "param_value"]

DATA_FILES = ("*.yaml", "prompts/*.md")  # in the code hash of every stage that imports this module
_HERE = Path(__file__).resolve().parent


class Basis(BaseModel):
    """One way to measure a comparison task's quantity: a measurement column, restricted to pitched/unpitched clips."""

    model_config = ConfigDict(extra="forbid")
    basis: str
    column: str
    where: Literal["pitched", "unpitched", "any"] = "any"
    enabled_by: Optional[str] = None  # "section.key" of a boolean param that switches this basis on


class MeasurementSpec(BaseModel):
    """How a comparison task measures its sides (a task YAML's `measurement:`); benchmark.schema.Measurement is a
    measured clip."""

    model_config = ConfigDict(extra="forbid")
    level: Literal["clip", "source"] = "clip"  # source: mean over a source's clips in the split (needs min_clips)
    min_clips_param: Optional[str] = None
    bases: list[Basis]


class GapRule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["ratio", "difference"]
    param: str  # "section.key" holding the minimum ratio (>1) or difference


class TaskSpec(BaseModel):
    """A registered task, as declared in its YAML file."""

    model_config = ConfigDict(extra="forbid")
    name: str
    version: int
    kind: Literal["recognition", "comparison"]
    description: str = ""
    answer_choices: list[str] | Literal["from_items"]
    csv_columns: list[Union[str, dict[str, str]]]  # "field", or {CSV header: schema.Item field}
    metrics: list[str] = Field(default_factory=lambda: ["accuracy", "macro_f1"])
    # comparison tasks
    dimension: str = ""
    categories: list[str] = Field(default_factory=list)  # comparison: pairs' categories; recognition: the item source's
    pairing: Literal["within_category", "across_categories"] = "within_category"
    measurement: Optional[MeasurementSpec] = None
    gap_rule: Optional[GapRule] = None
    templates: list[str] = Field(default_factory=list)
    prompt_file: Optional[str] = None
    require_agreement: bool = True  # keep a pair only when the writer's own guess agrees with the measurement
    # recognition tasks
    item_source: Optional[str] = None  # "module.func", written `!function module.func` in the YAML
    item_source_args: dict[str, Any] = Field(default_factory=dict)
    min_per_answer_param: Optional[str] = None
    wiki_source: Optional[Literal["ranges", "animal_sounds"]] = None
    card_notes: str = ""  # how the task was built and its limits, rendered into the data card
    path: str = ""

    @field_validator("csv_columns")
    @classmethod
    def _csv_fields(cls, v: list) -> list:
        headers = [csv_field(c)[0] for c in v]  # raises naming the column that is not a schema.Item field
        if len(set(headers)) != len(headers) or not headers:
            raise ValueError(f"csv_columns {headers}: need at least one column, each header once")
        return v

    @field_validator("metrics")
    @classmethod
    def _known_metrics(cls, v: list[str]) -> list[str]:
        for name in v:
            if name not in METRICS:
                close = difflib.get_close_matches(name, list(METRICS), n=1)
                raise ValueError(f"unknown metric {name!r}" + (f"; did you mean {close[0]!r}?" if close else f" (known: {', '.join(sorted(METRICS))})"))
        return v

    @model_validator(mode="after")
    def _check(self) -> TaskSpec:
        if self.kind == "comparison":
            missing = [k for k in ("measurement", "gap_rule") if getattr(self, k) is None]
            if missing or not self.categories or not (self.templates or self.prompt_file):
                raise ValueError(f"comparison task needs measurement, gap_rule, categories and templates (missing: {missing or 'templates/categories'})")
            if not isinstance(self.answer_choices, list) or len(self.answer_choices) != 2:
                raise ValueError("comparison task needs exactly two answer_choices: [first-is-more, first-is-less]")
            for t in self.templates:
                if t.count("[MASK]") != 1 or "{a}" not in t or "{b}" not in t:
                    raise ValueError(f"template needs one [MASK], {{a}} and {{b}}: {t!r}")
            if self.item_source or self.item_source_args or self.min_per_answer_param:
                raise ValueError("item_source, item_source_args and min_per_answer_param are for recognition tasks")
            if self.wiki_source not in (None, "ranges"):
                raise ValueError(f"wiki_source {self.wiki_source!r}: a comparison task's wiki split comes from 'ranges'")
        else:
            if not self.item_source:
                raise ValueError("recognition task needs item_source: !function module.func")
            if self.measurement or self.gap_rule:
                raise ValueError("measurement and gap_rule are for comparison tasks")
            if self.wiki_source not in (None, "animal_sounds"):
                raise ValueError(f"wiki_source {self.wiki_source!r}: a recognition task's wiki split comes from 'animal_sounds'")
        return self


class _TaskLoader(yaml.SafeLoader):
    """YAML with lm-evaluation-harness's `!function module.func` tag (read as the string "module.func")."""


_TaskLoader.add_constructor("!function", lambda loader, node: str(loader.construct_scalar(node)))


def task_dirs() -> list[Path]:
    extra = [Path(p) for p in os.environ.get("AUDITORYBENCH_TASK_DIRS", "").split(os.pathsep) if p]
    return [_HERE, *extra]


@lru_cache(maxsize=8)
def _load(dirs: tuple[str, ...]) -> dict[str, TaskSpec]:
    specs: dict[str, TaskSpec] = {}
    for d in dirs:
        for path in sorted(Path(d).glob("*.yaml")):
            try:
                raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_TaskLoader) or {}
                spec = TaskSpec(**raw, path=str(path))
            except (yaml.YAMLError, ValidationError, TypeError) as e:
                first = str(e).replace("\n", " ")[:300]
                raise ConfigError(f"{path}: not a valid task file ({first})") from e
            if spec.name in specs:
                raise ConfigError(f"{path}: task {spec.name!r} is already registered by {specs[spec.name].path}")
            specs[spec.name] = spec
    return specs


def _registry() -> dict[str, TaskSpec]:
    return _load(tuple(str(d) for d in task_dirs()))


def list_tasks() -> list[str]:
    return sorted(_registry())


def get_task(name: str) -> TaskSpec:
    reg = _registry()
    if name not in reg:
        close = difflib.get_close_matches(name, list(reg), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else f"; registered: {', '.join(sorted(reg))}"
        raise UnknownNameError(f"unknown task {name!r}{hint}")
    return reg[name]


def enabled_tasks(params_all: dict | None = None) -> list[TaskSpec]:
    """The tasks a build makes: params.yaml `tasks.enabled` (a list of names, or "all")."""
    enabled = ((params_all or {}).get("tasks") or {}).get("enabled", "all")
    names = list_tasks() if enabled in (None, "all") else list(enabled)
    return [get_task(n) for n in names]


def comparison_tasks(params_all: dict | None = None) -> list[TaskSpec]:
    return [t for t in enabled_tasks(params_all) if t.kind == "comparison"]


def recognition_tasks(params_all: dict | None = None) -> list[TaskSpec]:
    return [t for t in enabled_tasks(params_all) if t.kind == "recognition"]


def writer_specs(params_all: dict | None = None) -> dict[str, dict]:
    """What the sentence writer needs per comparison task: choices, dimension, templates and the LLM writer's prompt
    file (resolved against the task YAML's folder; None = the write stage's generic prompt)."""
    return {
        t.name: {"choices": list(t.answer_choices), "dimension": t.dimension, "templates": list(t.templates),
                 "prompt_file": str(Path(t.path).parent / t.prompt_file) if t.prompt_file else None}
        for t in comparison_tasks(params_all)
    }


def item_source_file(spec: TaskSpec) -> Path | None:
    """The .py file beside the task's YAML that holds its item source, when there is one (else None: importable)."""
    module = str(spec.item_source or "").rpartition(".")[0]
    beside = Path(spec.path).parent / (module.replace(".", os.sep) + ".py") if spec.path and module else None
    return beside if beside is not None and beside.is_file() else None


def item_source_path(spec: TaskSpec) -> Path | None:
    """The file holding the task's item source (beside its YAML, or the importable module's), for freshness keys."""
    beside = item_source_file(spec)
    if beside is not None:
        return beside
    module = str(spec.item_source or "").rpartition(".")[0]
    found = importlib.util.find_spec(module) if module else None
    return Path(found.origin) if found is not None and found.origin and found.origin.endswith(".py") else None


def item_source_function(spec: TaskSpec) -> Callable[..., pd.DataFrame]:
    """The recognition task's item source, `module.func`: `<module>.py` beside the YAML, else an importable module."""
    module, _, func = str(spec.item_source or "").rpartition(".")
    if not module or not func:
        raise ConfigError(f"{spec.path}: item_source {spec.item_source!r} is not `!function module.func`")
    beside = item_source_file(spec)
    if beside is not None:
        loader_spec = importlib.util.spec_from_file_location(f"auditorybench_task_{spec.name}_{module}", beside)
        mod = importlib.util.module_from_spec(loader_spec)
        loader_spec.loader.exec_module(mod)  # type: ignore[union-attr]
    else:
        try:
            mod = importlib.import_module(module)
        except ImportError as e:
            raise ConfigError(f"{spec.path}: item_source module {module!r} cannot be imported ({e})") from e
    fn = getattr(mod, func, None)
    if not callable(fn):
        raise ConfigError(f"{spec.path}: item_source {spec.item_source!r}: {module} has no function {func!r}")
    return fn


def param_value(params_all: dict, dotted: str) -> Any:
    """The value of a "section.key" setting (a task's *_param fields name settings this way)."""
    section, _, key = dotted.partition(".")
    values = params_all.get(section) or {}
    if key not in values:
        raise ConfigError(f"setting {dotted!r} not found (section {section!r} has: {', '.join(sorted(values))})")
    return values[key]


def task_choices(items: pd.DataFrame) -> dict[str, list[str]]:
    """Each task's answer set for a release: the declared choices, or the sorted set of answers of its items."""
    out = {}
    for task in sorted(items["task"].unique()):
        try:
            spec = get_task(task)
            declared = spec.answer_choices
        except UnknownNameError:
            declared = "from_items"
        out[task] = list(declared) if isinstance(declared, list) else sorted(items.loc[items["task"] == task, "answer"].unique())
    return out
