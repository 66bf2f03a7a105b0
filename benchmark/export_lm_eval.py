"""Export a release as lm-evaluation-harness tasks, so any Hugging Face model can be scored with `lm_eval`.

    export_lm_eval("releases/demo-1.0.0", "lm_eval_tasks")      # then:
    lm_eval --model hf --model_args pretrained=HuggingFaceTB/SmolLM2-135M-Instruct \\
            --include_path lm_eval_tasks --tasks auditorybench

Writes `<out>/auditorybench/`: one task YAML per benchmark task (`auditorybench_<task>`), a group YAML
(`auditorybench`) over them, `utils.py` (loads the items from the JSON Lines files beside it and fills each answer into
the sentence), `data/<task>/<split>.jsonl` + `data/<task>/choices.json`, and a README. The folder is self-contained:
it can be moved or shipped, and needs no network.

Each task is `multiple_choice` over the task's answer choices, and each choice is scored as this project's causal
quantity: the log-likelihood of the whole sentence with the choice filled in (an empty context, so lm-eval scores every
token of the sentence after the model's BOS or end-of-text token, as `models.baselines.CausalLMBaseline` does). That
is not lm-eval's usual context → answer split, and its `acc_norm` (the log-likelihood divided by the choice's bytes)
would here divide by the whole sentence's length: only `acc` is declared.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import yaml

from benchmark.errors import InputError
from benchmark.hashing import atomic_path
from benchmark.release_io import load_release
from benchmark.schema import MASK, SPLITS

__all__ = ["export_lm_eval", "GROUP", "task_name"]

GROUP = "auditorybench"
_FORMAT_VERSION = 1  # of the exported tasks (their YAML `metadata.version`); raise it when a scored quantity changes

# Written as utils.py beside the YAML files: lm-eval imports it by path (`!function utils.<name>`).
_UTILS = f'''"""Loaders for the auditorybench tasks (written by `auditorybench export lm-eval`; do not edit)."""

import json
from pathlib import Path

import datasets

DATA = Path(__file__).resolve().parent / "data"
MASK = {MASK!r}


def load_items(task, **_):
    """Every split of one task, from data/<task>/<split>.jsonl (lm-eval's `custom_dataset`)."""
    return datasets.DatasetDict({{
        f.stem: datasets.Dataset.from_list([json.loads(line) for line in f.read_text(encoding="utf-8").splitlines() if line])
        for f in sorted((DATA / task).glob("*.jsonl"))
    }})


_CHOICES = {{}}


def fill_choices(doc):
    """The sentence with each of its task's answers in place of {MASK}: the texts whose log-likelihoods are compared."""
    task = doc["task"]
    if task not in _CHOICES:
        _CHOICES[task] = json.loads((DATA / task / "choices.json").read_text(encoding="utf-8"))
    return [doc["sentence"].replace(MASK, a, 1) for a in _CHOICES[task]]
'''


def task_name(task: str) -> str:
    """The lm-eval task name of a benchmark task."""
    return f"{GROUP}_{task}"


def export_lm_eval(release_path: str | Path, out_dir: str | Path, *, split: str = "test", tasks: Sequence[str] = ()) -> Path:
    """Write the release's tasks as lm-evaluation-harness tasks under out_dir/auditorybench/ (returned); `split` is the
    one lm-eval scores (every split is exported, so `test_split` in a YAML can be changed by hand)."""
    if split not in SPLITS:
        raise InputError(f"--split {split!r}: unknown split (splits: {', '.join(SPLITS)})")
    release = load_release(release_path)
    tasks = list(tasks) or release.tasks
    root = Path(out_dir) / GROUP
    exported = []
    for task in tasks:
        choices = release.choices(task)
        if not release.items(task, split).shape[0]:
            continue
        for s in release.splits(task):
            df = release.items(task, s)
            lines = []
            for r in df.itertuples(index=False):
                answer = str(r.answer)
                if answer not in choices:
                    raise InputError(f"{release.path}: item {r.id} of {task}/{s}: answer {answer!r} is not one of the task's choices")
                lines.append(json.dumps({"id": r.id, "task": task, "sentence": r.sentence, "answer": answer,
                                         "label": choices.index(answer)}, ensure_ascii=False))
            _write(root / "data" / task / f"{s}.jsonl", "\n".join(lines) + "\n")
        _write(root / "data" / task / "choices.json", json.dumps(choices, ensure_ascii=False, indent=1) + "\n")
        _write(root / f"{task_name(task)}.yaml", _task_yaml(task, split, release))
        exported.append(task)
    if not exported:
        raise InputError(f"{release.path}: no task has items in split {split!r}")
    _write(root / f"_{GROUP}.yaml", yaml.safe_dump({
        "group": GROUP,
        "task": [task_name(t) for t in exported],
        "aggregate_metric_list": [{"metric": "acc", "aggregation": "mean", "weight_by_size": False}],
        "metadata": {"version": _FORMAT_VERSION},
    }, sort_keys=False))
    _write(root / "utils.py", _UTILS)
    _write(root / "README.md", _readme(release, exported, split))
    return root


def _task_yaml(task: str, split: str, release) -> str:
    body = {
        "task": task_name(task),
        "custom_dataset": _Function("utils.load_items"),
        "dataset_kwargs": {"task": task},
        "test_split": split,
        "output_type": "multiple_choice",
        "doc_to_text": "",
        "target_delimiter": "",
        "doc_to_choice": _Function("utils.fill_choices"),
        "doc_to_target": "label",
        "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}],
        "metadata": {"version": _FORMAT_VERSION, "release": f"{release.name}-{release.version}"},
    }
    return yaml.dump(body, Dumper=_Dumper, sort_keys=False, allow_unicode=True)


class _Function(str):
    """A callable in a .py beside the YAML: lm-eval's `!function utils.<name>` tag."""


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(_Function, lambda dumper, v: dumper.represent_scalar("!function", str(v)))


def _readme(release, tasks: list[str], split: str) -> str:
    rows = "\n".join(f"| `{task_name(t)}` | {len(release.items(t, split))} | {len(release.choices(t))} |" for t in tasks)
    return f"""# AuditoryBench {release.name}-{release.version} as lm-evaluation-harness tasks

Written by `auditorybench export lm-eval {release.path} --out <dir>`. Score any Hugging Face model:

    lm_eval --model hf --model_args pretrained=<hub id or path> --include_path <dir> --tasks {GROUP}

| task | items ({split}) | choices |
|---|---:|---:|
{rows}

**What is scored.** Each item is a sentence with one `{MASK}`; each answer choice is filled into it, and the choice is
scored by the log-likelihood of the *whole filled sentence* (an empty context: every token of the sentence counts,
the first one given the model's BOS, else its end-of-text token). This is AuditoryBench's causal-LM quantity (the
same as `auditorybench eval --models causal:<model>`), not lm-eval's usual split of a prompt and an answer. Only
`acc` is reported: lm-eval's `acc_norm` would divide each sentence's log-likelihood by its length in bytes, which
is not a quantity this benchmark defines.

The release's licence is `{release.license}`; its card and ATTRIBUTION.csv (in the release folder) apply to these files.
"""


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
