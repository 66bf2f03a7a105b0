"""Versioned prompt files beside the stage: `prompts/<name>.<version>.md`, a `## system` and a `## user` part,
with `{{placeholders}}` filled by plain replacement (data goes in as JSON, so braces in captions are harmless)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from benchmark.errors import ConfigError
from benchmark.hashing import stable_hash

__all__ = ["Prompt", "load_prompt", "PROMPTS_DIR"]

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
    path = folder / f"{name}.{version}.md"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        have = sorted(p.stem for p in folder.glob(f"{name}.*.md"))
        raise ConfigError(f"{path}: no such prompt version (have: {', '.join(have) or 'none'})") from e
    if "## system" not in text or "## user" not in text:
        raise ConfigError(f"{path}: a prompt needs a '## system' and a '## user' section")
    system = text.split("## system", 1)[1].split("## user", 1)[0].strip()
    user = text.split("## user", 1)[1].strip()
    return Prompt(name, version, system, user)
