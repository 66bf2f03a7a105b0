"""Settings: command-line flag > environment variable > params.yaml (one section per stage)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from benchmark.errors import ConfigError

__all__ = ["load_params", "stage_params", "PARAMS_PATH"]

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
    return data


def stage_params(section: str, flags: dict[str, Any] | None = None, path: str | Path | None = None) -> dict:
    """One section of params.yaml with environment overrides (AUDITORYBENCH_<SECTION>_<KEY>, YAML-parsed)
    and then command-line flags (entries whose value is not None) applied on top."""
    params = load_params(path)
    if section not in params:
        raise ConfigError(f"params.yaml has no section {section!r} (sections: {', '.join(sorted(params))})")
    out = dict(params[section] or {})
    prefix = f"AUDITORYBENCH_{section.upper()}_"
    for name, raw in os.environ.items():
        if name.startswith(prefix):
            key = name[len(prefix):].lower()
            try:
                out[key] = yaml.safe_load(raw)
            except yaml.YAMLError as e:
                raise ConfigError(f"environment variable {name}: cannot parse {raw!r}") from e
    for key, value in (flags or {}).items():
        if value is not None:
            out[key] = value
    return out
