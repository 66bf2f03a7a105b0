"""The task registry: a task is one YAML file in this folder (plus, where needed, a few typed functions).

`list_tasks()` names every registered task, `get_task(name)` returns its typed spec (an unknown name fails with a
"did you mean" suggestion), `task_choices(items)` gives each task's answer set for a release.
Extra task folders can be registered with $AUDITORYBENCH_TASK_DIRS (os.pathsep-separated) — how a user adds a task
without touching the package.
"""

from __future__ import annotations

import difflib
import os
from functools import lru_cache
from pathlib import Path
from typing import Literal, Optional

import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from benchmark.errors import ConfigError, UnknownNameError

__all__ = ["TaskSpec", "Basis", "list_tasks", "get_task", "task_dirs", "task_choices", "enabled_tasks", "comparison_tasks", "writer_specs"]

_HERE = Path(__file__).resolve().parent


class Basis(BaseModel):
    """One way to measure a comparison task's quantity: a measurement column, restricted to pitched/unpitched clips."""

    model_config = ConfigDict(extra="forbid")
    basis: str
    column: str
    where: Literal["pitched", "unpitched", "any"] = "any"
    enabled_by: Optional[str] = None  # "section.key" of a boolean param that switches this basis on


class Measurement(BaseModel):
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
    csv_columns: list[str]
    metrics: list[str] = Field(default_factory=lambda: ["accuracy", "macro_f1"])
    # comparison tasks
    dimension: str = ""
    categories: list[str] = Field(default_factory=list)
    pairing: Literal["within_category", "across_categories"] = "within_category"
    measurement: Optional[Measurement] = None
    gap_rule: Optional[GapRule] = None
    templates: list[str] = Field(default_factory=list)
    prompt_file: Optional[str] = None
    # recognition tasks
    item_source: Optional[str] = None
    min_per_answer_param: Optional[str] = None
    require_agreement: bool = True  # keep a pair only when the writer's own guess agrees with the measurement
    card_notes: str = ""  # how the task was built and its limits, rendered into the data card
    path: str = ""

    @model_validator(mode="after")
    def _check(self) -> "TaskSpec":
        if self.kind == "comparison":
            missing = [k for k in ("measurement", "gap_rule") if getattr(self, k) is None]
            if missing or not self.categories or not (self.templates or self.prompt_file):
                raise ValueError(f"comparison task needs measurement, gap_rule, categories and templates (missing: {missing or 'templates/categories'})")
            if not isinstance(self.answer_choices, list) or len(self.answer_choices) != 2:
                raise ValueError("comparison task needs exactly two answer_choices: [first-is-more, first-is-less]")
            for t in self.templates:
                if t.count("[MASK]") != 1 or "{a}" not in t or "{b}" not in t:
                    raise ValueError(f"template needs one [MASK], {{a}} and {{b}}: {t!r}")
        return self


def task_dirs() -> list[Path]:
    extra = [Path(p) for p in os.environ.get("AUDITORYBENCH_TASK_DIRS", "").split(os.pathsep) if p]
    return [_HERE, *extra]


@lru_cache(maxsize=8)
def _load(dirs: tuple[str, ...]) -> dict[str, TaskSpec]:
    specs: dict[str, TaskSpec] = {}
    for d in dirs:
        for path in sorted(Path(d).glob("*.yaml")):
            try:
                raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
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


def writer_specs(params_all: dict | None = None) -> dict[str, dict]:
    """What the sentence writer needs per comparison task: choices, dimension, templates and the LLM writer's prompt
    file (resolved against the task YAML's folder; None = the write stage's generic prompt)."""
    return {
        t.name: {"choices": list(t.answer_choices), "dimension": t.dimension, "templates": list(t.templates),
                 "prompt_file": str(Path(t.path).parent / t.prompt_file) if t.prompt_file else None}
        for t in comparison_tasks(params_all)
    }


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
