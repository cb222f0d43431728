"""Decode any audio file for the detector: soundfile first (WAV, FLAC, Ogg, MP3 where its
libsndfile has it), then ffmpeg (AAC/M4A and whatever else it knows)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np

from soundscape.errors import AudioError

FFMPEG_RATE = 48000  # ffmpeg resamples to the mark's rate as it decodes


def read_any(path: str | Path) -> tuple[np.ndarray, int]:
    """``(channels, samples)`` float32 and the sample rate.

    Raises:
        AudioError: the file is missing or neither decoder reads it.
    """
    import soundfile

    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such file")
    try:
        data, sr = soundfile.read(str(path), dtype="float32", always_2d=True)
        return np.ascontiguousarray(data.T), int(sr)
    except (soundfile.LibsndfileError, RuntimeError, TypeError):
        pass
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise AudioError(f"{path}: not a format soundfile reads, and ffmpeg is not installed "
                         "(install it, e.g. `make tools`)")
    proc = subprocess.run([ffmpeg, "-v", "error", "-nostdin", "-i", str(path), "-f", "f32le",
                           "-ac", "2", "-ar", str(FFMPEG_RATE), "pipe:1"],
                          capture_output=True, check=False)
    if proc.returncode != 0 or not proc.stdout:
        reason = proc.stderr.decode(errors="replace").strip().splitlines()
        raise AudioError(f"{path}: not audio ffmpeg can decode"
                         + (f" ({reason[-1]})" if reason else ""))
    data = np.frombuffer(proc.stdout, dtype="<f4")
    return np.ascontiguousarray(data[: data.size // 2 * 2].reshape(-1, 2).T), FFMPEG_RATE
