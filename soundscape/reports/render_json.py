"""The cue sheet as JSON: the full structure, production block, cues and appendices."""

from __future__ import annotations

import json


def render(sheet) -> bytes:
    """Pretty, stable JSON (sorted keys) of :meth:`CueSheet.to_dict`."""
    return (json.dumps(sheet.to_dict(), indent=2, sort_keys=True, ensure_ascii=False)
            + "\n").encode("utf-8")
