"""Waveform pictures of delivered cues for the HTML and PDF reports (matplotlib, Agg).

matplotlib is imported inside the functions, on the Agg backend (no display, no GUI toolkit),
so importing the reports package costs nothing until a picture is drawn.
"""

from __future__ import annotations

import io
from pathlib import Path

WIDTH_PX, HEIGHT_PX, DPI = 720, 120, 100
BINS = 600
CLEARED_COLOUR, NOT_CLEARED_COLOUR = "#2e7d32", "#c62828"


def envelope(path: str | Path, *, bins: int = BINS):
    """Min and max of the mono mix in ``bins`` equal slices, read block by block.

    Returns:
        ``(times, lows, highs)`` as numpy arrays (seconds, -1..1), or None when the file is
        missing or unreadable: a report still renders without its picture.
    """
    import numpy as np
    import soundfile as sf

    try:
        with sf.SoundFile(str(path)) as f:
            frames, rate = f.frames, f.samplerate
            if frames == 0:
                return None
            bins = max(1, min(bins, frames))
            step = -(-frames // bins)
            lows, highs = [], []
            # Block by block: a three-hour bed never sits in memory whole.
            for block in f.blocks(blocksize=step, dtype="float32", always_2d=True):
                mono = block.mean(axis=1)
                lows.append(float(mono.min()))
                highs.append(float(mono.max()))
    except (OSError, RuntimeError, ValueError):
        return None
    times = np.arange(len(lows)) * step / rate
    return times, np.asarray(lows), np.asarray(highs)


def waveform_png(path: str | Path, *, cleared: bool = True, width_px: int = WIDTH_PX,
                 height_px: int = HEIGHT_PX) -> bytes | None:
    """A PNG of the cue's waveform (min/max envelope over time), or None without audio."""
    data = envelope(path)
    if data is None:
        return None
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    times, lows, highs = data
    # A bare Figure (not pyplot) is not registered globally, so nothing leaks across cues.
    fig = Figure(figsize=(width_px / DPI, height_px / DPI), dpi=DPI)
    ax = fig.add_axes((0.03, 0.3, 0.95, 0.66))
    colour = CLEARED_COLOUR if cleared else NOT_CLEARED_COLOUR
    ax.fill_between(times, lows, highs, color=colour, linewidth=0, step="mid")
    ax.axhline(0.0, color="#555555", linewidth=0.4)
    ax.set_xlim(0, max(float(times[-1]), 1e-3))
    ax.set_ylim(-1.0, 1.0)
    ax.set_yticks([])
    ax.tick_params(axis="x", labelsize=7, length=2, pad=1)
    ax.set_xlabel("seconds", fontsize=7, labelpad=1)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()
