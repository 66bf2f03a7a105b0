"""Settings: command-line flag > environment variable > params.yaml (one section per stage)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from benchmark.errors import ConfigError

__all__ = ["load_params", "stage_params", "apply_env", "PARAMS_PATH"]

PARAMS_PATH = Path(__file__).resolve().parent.parent / "params.yaml"


def load_params(path: str | Path | None = None) -> dict:
    """The whole params.yaml (path from the argument, else $AUDITORYBENCH_PARAMS, else the repository's)."""
    p = Path(path or os.environ.get("AUDITORYBENCH_PARAMS") or PARAMS_PATH)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except OSError as e:
        raise ConfigError(f"{p}: cannot read params file ({e.strerror})") from e
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: not valid YAML ({str(e).splitlines()[0]})") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: top level must be a mapping of stage sections")
    return apply_env(data)


def apply_env(params: dict) -> dict:
    """Environment overrides AUDITORYBENCH_<SECTION>_<KEY>=<YAML value> on top of params.yaml's sections."""
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in params.items()}
    sections = sorted((k for k, v in out.items() if isinstance(v, dict) or v is None), key=len, reverse=True)
    for name, raw in sorted(os.environ.items()):
        if not name.startswith("AUDITORYBENCH_"):
            continue
        rest = name[len("AUDITORYBENCH_"):].lower()
        section = next((s for s in sections if rest.startswith(s + "_")), None)
        if section is None:
            continue
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as e:
            raise ConfigError(f"environment variable {name}: cannot parse {raw!r}") from e
        out[section] = {**(out[section] or {}), rest[len(section) + 1:]: value}
    return out


def stage_params(section: str, flags: dict[str, Any] | None = None, path: str | Path | None = None) -> dict:
    """One section of params.yaml with environment overrides (AUDITORYBENCH_<SECTION>_<KEY>, YAML-parsed)
    and then command-line flags (entries whose value is not None) applied on top."""
    params = load_params(path)
    if section not in params:
        raise ConfigError(f"params.yaml has no section {section!r} (sections: {', '.join(sorted(params))})")
    out = dict(params[section] or {})
    for key, value in (flags or {}).items():
        if value is not None:
            out[key] = value
    return out
