"""A study for issue 13, not the shipped mark: an *additive* mark, found blind.

soundscape's mark (``soundscape-ss1``) scales each bin of the music by +-delta, so a detector
without the original reads it only from each bin's power. This study measures the other
classic design (spread spectrum): a fixed pseudo-random sequence, shaped under the music's
masking threshold and added. Its detector whitens what it hears (each STFT bin divided by its
local level), keeps the marked band, folds the blocks onto one and correlates with the sequence
at every lag at once (one FFT). The score at a lag is ``sum_n t[n] g[n + lag] / ||g||`` with
``t`` the +-1 sequence: a Rademacher sum in unmarked audio, so Hoeffding's bound gives the
threshold for P < 1e-6 over every lag of the block (6.96).

It carries no payload (presence only) and has no peak or loudness handling: it answers how
loud such a mark must be, and what it survives, next to ss1 on the same clips. Prints, per clip
and SNR: the mark's SNR and largest mask margin, and the score at the true lag (and the largest
elsewhere) clean, after MP3 and AAC at 128 kbps, with pink noise 10 dB under the music, with the
music 10 dB under pink noise, and for the unmarked music in that noise; and ss1's sync score on
the same attacks (ss1 puts 30 % of its cells in the sync: its whole mark reads about
``z / sqrt(0.3)``).

    .venv/bin/python bench/study_additive_mark.py [--tilt 1.0] [--snr 35 30]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import math
import sys
import tempfile
from pathlib import Path

import numpy as np
from scipy import fft as sfft
from scipy.ndimage import uniform_filter1d
from scipy.signal import resample_poly

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_watermark import SR, codec, mastered, pink  # noqa: E402

from soundscape import delivery  # noqa: E402
from soundscape.watermark import mask  # noqa: E402
from soundscape.watermark.detect import detect, to_mono  # noqa: E402
from soundscape.watermark.layout import frames, window  # noqa: E402

RATE = 12000                   # where both marks are worked out and read
N_FFT, HOP = 256, 128          # 46.875 Hz bins, as ss1's
BLOCK = 32768                  # 2.73 s: the sequence's period (ss1's block)
LOW, HIGH = 11, 128            # marked bins: 516 Hz to 6 kHz
MARGIN_DB = 3.0                # under the masking threshold, as ss1
SEQUENCE = np.random.default_rng(0xADD).choice([-1.0, 1.0], size=BLOCK)
THRESHOLD = math.sqrt(2.0 * math.log(BLOCK / 1e-6))


def stft(x: np.ndarray) -> np.ndarray:
    return sfft.rfft(frames(np.ascontiguousarray(x), size=N_FFT, hop=HOP) * window(N_FFT), axis=1)


def istft(spec: np.ndarray, n: int) -> np.ndarray:
    pieces = sfft.irfft(spec, n=N_FFT, axis=1) * window(N_FFT)
    out = np.zeros(n)
    for k, piece in enumerate(pieces):
        out[k * HOP:k * HOP + N_FFT] += piece
    return out


def embed(audio: np.ndarray, snr_db: float, tilt: float) -> tuple[np.ndarray, float]:
    """``audio`` plus the sequence shaped under its mask (tilted by ``(f / 516 Hz)^tilt``
    toward the top of the band, where pink noise is weakest), at most ``snr_db`` under it."""
    mid = resample_poly(audio.mean(axis=0).astype(np.float64), 1, 4)
    power = np.abs(stft(mid)) ** 2
    thr, _ = mask.threshold(power.astype(np.float32))
    held = thr.copy()              # under the neighbouring frames' thresholds too (as ss1)
    held[1:] = np.minimum(held[1:], thr[:-1])
    held[:-1] = np.minimum(held[:-1], thr[1:])
    _, starts, _ = mask._bands(power.shape[1])
    band = np.searchsorted(starts, np.arange(power.shape[1]), side="right") - 1
    allowed = held[:, band] / np.bincount(band)[band] * 10 ** (-MARGIN_DB / 10)
    allowed *= (np.arange(power.shape[1]) / LOW)[None, :] ** tilt
    allowed[:, :LOW] = allowed[:, HIGH:] = 0.0
    seq = stft(np.resize(SEQUENCE, mid.size))
    shaped = seq / np.sqrt(np.mean(np.abs(seq[:, LOW:HIGH]) ** 2)) * np.sqrt(allowed)
    mark = istft(shaped, mid.size)
    mark *= min(1.0, math.sqrt(np.sum(mid ** 2) * 10 ** (-snr_db / 10) / np.sum(mark ** 2)))
    mark48 = resample_poly(mark, 4, 1)[:audio.shape[1]].astype(np.float32)
    marked = audio + mark48[None, :]
    snr = 10 * math.log10(np.sum(audio.astype(np.float64) ** 2)
                          / (audio.shape[0] * np.sum(mark48.astype(np.float64) ** 2)))
    return marked.astype(np.float32), snr


def scores(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """The normalised correlation with the sequence at every lag of the block."""
    y = to_mono(audio, sample_rate).astype(np.float64)
    spec = stft(y)
    level = uniform_filter1d(np.abs(spec) ** 2, 9, axis=0, mode="nearest")
    spec /= np.sqrt(level + 1e-6 * level.mean() + 1e-30)
    spec[:, :LOW] = spec[:, HIGH:] = 0.0
    g = istft(spec, y.size)
    folded = np.zeros(-(-y.size // BLOCK) * BLOCK)
    folded[:y.size] = g
    folded = folded.reshape(-1, BLOCK).sum(axis=0)
    corr = sfft.irfft(np.conj(sfft.rfft(SEQUENCE)) * sfft.rfft(folded), n=BLOCK)
    return corr / math.sqrt(np.sum(folded ** 2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tilt", type=float, default=1.0)
    parser.add_argument("--snr", type=float, nargs="+", default=[35.0, 30.0])
    args = parser.parse_args()
    print(f"additive mark, tilt {args.tilt}; threshold over {BLOCK} lags at P < 1e-6: "
          f"{THRESHOLD:.2f}; 'z@0' is the true lag, 'elsewhere' the largest other")
    rng = np.random.default_rng(5)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for prompt, kind, duration, seed in (("warm ambient pad with soft piano", "bed", 60, 3),
                                             ("calm dreamy pad with soft rain", "bed", 20, 5),
                                             ("bright upbeat logo", "jingle", 6, 7),
                                             ("warm bells sting", "jingle", 6, 2)):
            m = mastered(prompt, kind, duration, seed)
            music = m.audio.copy()
            rms = float(np.sqrt(np.mean(music.astype(np.float64) ** 2)))
            ss1 = delivery.mark_master(m, key_id=0x5A17)
            ss1_audio = m.audio
            print(f"\n{duration} s {kind} {prompt!r}: ss1 at {ss1['snr_db']:.1f} dB")

            def attacked(x, noise_seed):
                noise = np.random.default_rng(noise_seed)
                yield "clean", x, SR
                yield "MP3 128k", *codec(x, ["-b:a", "128k"], ".mp3", tmp)
                yield "AAC 128k", *codec(x, ["-c:a", "aac", "-b:a", "128k"], ".m4a", tmp)
                yield "pink 10 dB under", x + pink(x.shape[1], noise) * rms * 10 ** -0.5, SR
                yield "music 10 dB under pink", x + pink(x.shape[1], noise) * rms * 10 ** 0.5, SR

            row = [f"{name} {detect(y, sr).z:.1f}" for name, y, sr in attacked(ss1_audio, 11)]
            print("   ss1 sync z:  " + " | ".join(row))
            for snr in args.snr:
                marked, got = embed(music, snr, args.tilt)
                margin, _ = mask.margin_db(music, marked)
                row = []
                for name, y, sr in attacked(marked, 11):
                    z = scores(y, sr)
                    row.append(f"{name} {z[0]:.1f} ({np.delete(z, 0).max():.1f})")
                unmarked = scores(music + pink(music.shape[1], rng) * rms * 10 ** 0.5, SR)
                print(f"   additive {got:.1f} dB, mask margin {margin:+.1f} dB: z@0 (elsewhere) "
                      + " | ".join(row) + f" | unmarked in the noise: largest {unmarked.max():.1f}")


if __name__ == "__main__":
    main()
