"""Canonical JSON: the one text form that leaf hashes, signatures and content keys are taken over."""

from __future__ import annotations

import dataclasses
import json
import math
from datetime import date, datetime
from pathlib import Path


def canonical_json(data) -> str:
    """Sorted keys, no whitespace, UTF-8 text, no NaN (non-finite -> null).

    The same data always gives the same text, so its hash can name it.
    """
    try:
        return _ENCODER.encode(data)
    except ValueError:
        return _ENCODER.encode(_finite(data))


def _default(value):
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    raise TypeError(f"{type(value).__name__} is not JSON-ready")


# One encoder for every call (json.dumps with options builds a new one each time; the ledger
# encodes a record per append). Stateless, so sharing it is safe.
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                            allow_nan=False, default=_default)


def jsonable(data):
    """``data`` as plain JSON types only (dates as ISO text), through its canonical text."""
    return json.loads(canonical_json(data))


def _finite(data):
    # JSON has no NaN or infinity (a silent file measures -inf LUFS); they become null.
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {k: _finite(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [_finite(v) for v in data]
    return data
