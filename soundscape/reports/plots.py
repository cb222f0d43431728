"""Waveform pictures of delivered cues for the HTML and PDF reports (matplotlib, Agg).

matplotlib is imported inside the functions, on the Agg backend (no display, no GUI toolkit),
so importing the reports package costs nothing until a picture is drawn.
"""

from __future__ import annotations

import io
from pathlib import Path

# 9 pt axis labels: at 7 pt on a 120 px strip they were too small to read once the HTML or PDF
# scaled the picture down to the cue's column.
WIDTH_PX, HEIGHT_PX, DPI = 720, 140, 100
AXIS_LABEL_PT = 9
BINS = 600
CHUNK_FRAMES = 1 << 20  # read about a million frames at a time: fast, and bounded in memory
CLEARED_COLOUR, NOT_CLEARED_COLOUR = "#2e7d32", "#c62828"


def envelope(path: str | Path, *, bins: int = BINS):
    """Min and max over all channels in ``bins`` equal slices, read in large blocks.

    Returns:
        ``(times, lows, highs)`` as numpy arrays (seconds, -1..1), or None when the file is
        missing or unreadable: a report still renders without its picture.
    """
    import numpy as np
    import soundfile as sf

    lows, highs = [], []
    try:
        with sf.SoundFile(str(path)) as f:
            frames, rate = f.frames, f.samplerate
            if frames == 0:
                return None
            step = -(-frames // max(1, min(bins, frames)))
            # Whole slices per block, so only the file's last block ends in a partial slice;
            # a three-hour bed never sits in memory whole.
            per_block = step * max(1, CHUNK_FRAMES // step)
            for block in f.blocks(blocksize=per_block, dtype="float32", always_2d=True):
                whole = len(block) // step * step
                if whole:
                    # Each slice's frames are contiguous, so one reduction covers all channels.
                    shaped = block[:whole].reshape(-1, step * block.shape[1])
                    lows.append(shaped.min(axis=1))
                    highs.append(shaped.max(axis=1))
                if whole < len(block):
                    lows.append(block[whole:].min(keepdims=True).ravel())
                    highs.append(block[whole:].max(keepdims=True).ravel())
    except (OSError, RuntimeError, ValueError):
        return None
    lows_all, highs_all = np.concatenate(lows), np.concatenate(highs)
    return np.arange(len(lows_all)) * step / rate, lows_all, highs_all


class WaveformPainter:
    """Draws waveform PNGs on one reused figure (a new figure per cue costs a third more)."""

    def __init__(self, *, width_px: int = WIDTH_PX, height_px: int = HEIGHT_PX):
        import matplotlib

        matplotlib.use("Agg", force=False)
        from matplotlib.figure import Figure

        # A bare Figure (not pyplot) is not registered globally, so nothing leaks between calls.
        self.fig = Figure(figsize=(width_px / DPI, height_px / DPI), dpi=DPI)
        ax = self.ax = self.fig.add_axes((0.03, 0.34, 0.95, 0.62))
        ax.axhline(0.0, color="#555555", linewidth=0.4)
        ax.set_ylim(-1.0, 1.0)
        ax.set_yticks([])
        ax.tick_params(axis="x", labelsize=AXIS_LABEL_PT, length=3, pad=2)
        ax.set_xlabel("seconds", fontsize=AXIS_LABEL_PT, labelpad=1)
        for side in ("top", "right", "left"):
            ax.spines[side].set_visible(False)
        self._fill = None

    def png(self, path: str | Path, *, cleared: bool = True) -> bytes | None:
        """The PNG of ``path``'s waveform (green when cleared, red when not), or None."""
        data = envelope(path)
        if data is None:
            return None
        times, lows, highs = data
        if self._fill is not None:
            self._fill.remove()
        self._fill = self.ax.fill_between(times, lows, highs, linewidth=0, step="mid",
                                          color=CLEARED_COLOUR if cleared else NOT_CLEARED_COLOUR)
        self.ax.set_xlim(0, max(float(times[-1]), 1e-3))
        buffer = io.BytesIO()
        # Fast zlib level: the pictures are small and a report may hold hundreds.
        self.fig.savefig(buffer, format="png", dpi=DPI, pil_kwargs={"compress_level": 1})
        return buffer.getvalue()


def waveform_png(path: str | Path, *, cleared: bool = True, width_px: int = WIDTH_PX,
                 height_px: int = HEIGHT_PX) -> bytes | None:
    """A PNG of one cue's waveform (min/max envelope over time), or None without audio."""
    return WaveformPainter(width_px=width_px, height_px=height_px).png(path, cleared=cleared)


def waveforms(cues) -> dict:
    """``{cue_id: png or None}`` for every cue of a cue sheet, on one reused figure."""
    painter = WaveformPainter()
    return {c.cue_id: painter.png(c.file, cleared=c.cleared) for c in cues}
