"""Benchmark: mastering and writing a 10-minute stereo 48 kHz bed on one core.

Prints the wall time of master(), write_audio() as WAV and FLAC, and audio_sha256, with their
multiples of real time. Input: seeded filtered noise plus slowly swelling tones (a stand-in
for a composer bed). Run: OMP_NUM_THREADS=1 .venv/bin/python bench/bench_master.py [minutes]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before numpy loads its BLAS

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.signal import lfilter

from soundscape.audio.io import BextInfo, audio_sha256, make_ixml, write_audio
from soundscape.audio.master import master
from soundscape.render import LOOP_OVERLAP_SECONDS, Lineage, Render
from soundscape.spec import CueSpec, resolve_intent

SR = 48000


def bed_audio(seconds: float, *, seed: int = 440) -> np.ndarray:
    """Filtered noise (a wind-like texture) plus a drone chord that swells and fades."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    noise = lfilter([0.05], [1.0, -0.97], rng.standard_normal((2, n)).astype(np.float32), axis=-1)
    t = np.arange(n, dtype=np.float32) / SR
    swell = np.float32(0.6) + np.float32(0.4) * np.sin(np.float32(2 * np.pi / 23.0) * t)
    chord = np.zeros(n, dtype=np.float32)
    for freq, amp in ((73.42, 0.20), (110.0, 0.12), (174.61, 0.08), (220.0, 0.06), (587.33, 0.03)):
        chord += np.float32(amp) * np.sin(np.float32(2 * np.pi * freq) * t)
    return (noise + chord * swell).astype(np.float32)


CPU = {}


def timed(fn, label=None):
    """Wall time of fn(); its CPU time is kept in CPU[label] (other jobs on a shared machine
    inflate the wall time, not the CPU time)."""
    cpu, start = time.process_time(), time.perf_counter()
    result = fn()
    CPU[label] = time.process_time() - cpu
    return result, time.perf_counter() - start


def main() -> None:
    minutes = float(sys.argv[1]) if len(sys.argv) > 1 else 10.0
    seconds = minutes * 60.0
    spec = CueSpec(prompt="calm wind over a low drone", kind="bed", duration=seconds, seed=440,
                   intent=resolve_intent("calm wind over a low drone"))
    render = Render(spec=spec, audio=bed_audio(seconds), sample_rate=SR, lineage=Lineage("bench", "0"))
    print(f"input: {minutes:g} min stereo {SR} Hz, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    for preset in ("ebu-r128", "streaming"):
        mastered, seconds_taken = timed(lambda: master(render, preset), "master")
        print(f"master ({preset}): {seconds_taken:.2f} s wall, {CPU['master']:.2f} s CPU "
              f"({seconds / seconds_taken:.0f}x real time); "
              f"{mastered.loudness_lufs:.2f} LUFS, {mastered.true_peak_dbtp:.2f} dBTP, "
              f"limiter {mastered.limiter_reduction_db:.2f} dB")
    looped = CueSpec(prompt=spec.prompt, kind="bed", duration=seconds, seed=440, intent=spec.intent, loop=True)
    loop_render = Render(spec=looped, audio=bed_audio(seconds + LOOP_OVERLAP_SECONDS), sample_rate=SR,
                         lineage=Lineage("bench", "0"))
    looped_master, seconds_taken = timed(lambda: master(loop_render, "ebu-r128"), "master")
    print(f"master (ebu-r128, loop): {seconds_taken:.2f} s wall, {CPU['master']:.2f} s CPU "
          f"({seconds / seconds_taken:.0f}x real time); seam ratio {looped_master.seam_ratio:.3f}")
    del loop_render, looped_master
    bext = BextInfo(description=spec.prompt, origination_date="2026-01-01", origination_time="12:00:00",
                    loudness_value=mastered.loudness_lufs, max_true_peak_level=mastered.true_peak_dbtp,
                    coding_history="A=PCM,F=48000,W=24,M=stereo,T=soundscape bench")
    ixml = make_ixml({"project": "bench", "note": spec.prompt, "parameters": spec.describe()})
    with tempfile.TemporaryDirectory() as folder:
        wav, flac = Path(folder) / "bed.wav", Path(folder) / "bed.flac"
        _, t_wav = timed(lambda: write_audio(wav, mastered.audio, SR, bext=bext, ixml=ixml), "wav")
        print(f"write wav: {t_wav:.2f} s wall, {CPU['wav']:.2f} s CPU ({seconds / t_wav:.0f}x real time), "
              f"{wav.stat().st_size / 1e6:.0f} MB")
        _, t_flac = timed(lambda: write_audio(flac, mastered.audio, SR, fmt="flac"), "flac")
        print(f"write flac: {t_flac:.2f} s wall, {CPU['flac']:.2f} s CPU ({seconds / t_flac:.0f}x real time), "
              f"{flac.stat().st_size / 1e6:.0f} MB")
        digest, t_hash = timed(lambda: audio_sha256(wav), "hash")
        print(f"audio_sha256 (wav): {t_hash:.2f} s wall, {CPU['hash']:.2f} s CPU "
              f"({seconds / t_hash:.0f}x real time) {digest[:16]}...")


if __name__ == "__main__":
    main()
