"""Versioned prompt files: `<name>.<version>.md`, a `## system` and a `## user` part, with `{{placeholders}}` filled
by plain replacement (data goes in as JSON, so braces in captions are harmless).

The stage's own prompts live in `prompts/` beside this module; a comparison task's YAML names its own prompt file
(`prompt_file`, relative to the YAML's folder), so a new task brings its prompt with it. `prompt_versions` is what
a stage records in its freshness key: each prompt's id and the hash of its text."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from benchmark.errors import ConfigError
from benchmark.hashing import stable_hash

__all__ = ["Prompt", "load_prompt", "load_prompt_file", "prompt_versions", "PROMPTS_DIR"]

DATA_FILES = ("prompts/*.md",)  # in the code hash of every stage that imports this module
PROMPTS_DIR = Path(__file__).resolve().parent / "prompts"


@dataclass(frozen=True)
class Prompt:
    name: str
    version: str  # e.g. "v1"
    system: str
    user: str

    @property
    def sha(self) -> str:
        """Hash of the prompt text: an edit without a version bump still reruns the stage."""
        return stable_hash([self.system, self.user], n=12)

    @property
    def id(self) -> str:
        """What manifests and cache keys record, e.g. "categorise.v1"."""
        return f"{self.name}.{self.version}"

    def render(self, **fields: object) -> list[dict]:
        """Chat messages with placeholders filled; non-string values are JSON-encoded."""
        def fill(text: str) -> str:
            for k, v in fields.items():
                text = text.replace("{{" + k + "}}", v if isinstance(v, str) else json.dumps(v, ensure_ascii=False))
            return text

        return [{"role": "system", "content": fill(self.system)}, {"role": "user", "content": fill(self.user)}]


def load_prompt(name: str, version: str, folder: Path = PROMPTS_DIR) -> Prompt:
    """The stage's prompt `name` at `version` ("v1"), from prompts/ beside this module."""
    path = folder / f"{name}.{version}.md"
    if not path.is_file():
        have = sorted(p.stem for p in folder.glob(f"{name}.*.md"))
        raise ConfigError(f"{path}: no such prompt version (have: {', '.join(have) or 'none'})")
    return load_prompt_file(path)


def load_prompt_file(path: str | Path) -> Prompt:
    """A prompt from its file, `<name>.<version>.md` (a task's `prompt_file`)."""
    path = Path(path)
    name, _, version = path.name.removesuffix(".md").rpartition(".")
    if not path.name.endswith(".md") or not name or not re.fullmatch(r"v\d+", version):
        raise ConfigError(f"{path}: a prompt file is named <name>.v<N>.md (e.g. sound_pitch_comparison.v1.md)")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"{path}: cannot read prompt file ({e.strerror or e})") from e
    if "## system" not in text or "## user" not in text:
        raise ConfigError(f"{path}: a prompt needs a '## system' and a '## user' section")
    system = text.split("## system", 1)[1].split("## user", 1)[0].strip()
    user = text.split("## user", 1)[1].strip()
    return Prompt(name, version, system, user)


def prompt_versions(prompts: dict[str, Prompt]) -> dict[str, str]:
    """What a stage's freshness key records for its prompts: {role: "<name>.<version>@<sha of the text>"}."""
    return {role: f"{p.id}@{p.sha}" for role, p in sorted(prompts.items())}
