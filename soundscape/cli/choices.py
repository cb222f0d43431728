"""The fixed choices options offer, shown as choices in ``--help`` and refused by the parser.

Kept here as plain tuples so that building the help imports nothing heavy (the mastering
presets live in soundscape.audio.master, which loads numpy and scipy); a test holds each tuple
equal to the registry it mirrors.
"""

from __future__ import annotations

from typing import Literal

from soundscape.engines import ENGINES

PRESETS = ("ebu-r128", "netflix", "streaming", "none")      # soundscape.audio.master.PRESETS
AUDIO_FORMATS = ("wav", "flac")                              # soundscape.pipeline's formats
REPORT_FORMATS = ("csv", "json", "html", "pdf", "society")   # soundscape.reports.FORMATS
ENGINE_NAMES = tuple(ENGINES)

PresetChoice = Literal[PRESETS]  # type: ignore[valid-type]
AudioFormatChoice = Literal[AUDIO_FORMATS]  # type: ignore[valid-type]
ReportFormatChoice = Literal[REPORT_FORMATS]  # type: ignore[valid-type]
EngineChoice = Literal[ENGINE_NAMES]  # type: ignore[valid-type]
