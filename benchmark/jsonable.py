"""The one rule that turns a value into strict JSON: every manifest, freshness key, release file and card record
goes through `jsonable`, so a NaN is written the same way (null) wherever it appears."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

__all__ = ["jsonable"]


def jsonable(obj: Any) -> Any:
    """A JSON-safe copy: NaN and ±inf become None (strict JSON has no NaN token), numpy scalars and arrays plain
    numbers and lists, tuples lists, paths POSIX strings, dict keys strings, anything else its str()."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, (str, int, bool)) or obj is None:
        return obj
    if hasattr(obj, "tolist"):  # numpy scalars and arrays
        return jsonable(obj.tolist())
    if isinstance(obj, Path):
        return obj.as_posix()
    return str(obj)
