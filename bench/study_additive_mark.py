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

With ``--payload`` the sequence carries ss1's payload instead (a sync on 30 % of the block's
samples, each of the 124 code bits on its own scattered stretches of 16), and the bench reads
it back after every attack of ``bench_watermark.py``, next to ss1 on the same clips.

    .venv/bin/python bench/study_additive_mark.py [--tilt 1.0] [--snr 35 30] [--payload] [--frame-cap]
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

from bench_watermark import attacks  # noqa: E402

from soundscape import delivery  # noqa: E402
from soundscape.watermark import ecc, mask  # noqa: E402
from soundscape.watermark.detect import detect, to_mono  # noqa: E402
from soundscape.watermark.layout import frames, window  # noqa: E402
from soundscape.watermark.payload import PAYLOAD_BITS, Payload  # noqa: E402

RATE = 12000                   # where both marks are worked out and read
N_FFT, HOP = 256, 128          # 46.875 Hz bins, as ss1's
BLOCK = 32768                  # 2.73 s: the sequence's period (ss1's block)
LOW, HIGH = 11, 128            # marked bins: 516 Hz to 6 kHz
MARGIN_DB = 3.0                # under the masking threshold, as ss1
SEQUENCE = np.random.default_rng(0xADD).choice([-1.0, 1.0], size=BLOCK)
THRESHOLD = math.sqrt(2.0 * math.log(BLOCK / 1e-6))
FRAME_CAP = False              # --frame-cap: the SNR held frame by frame, not over the whole clip
# --payload: the block's samples in stretches of 16, each stretch the sync's or one code bit's
# (30 % sync, as ss1; the rest shared out evenly), in a fixed scattered order
STRETCH = 16
N_CODE = ecc.coded_length(PAYLOAD_BITS)
_stretches = BLOCK // STRETCH
_per_bit = int(_stretches * 0.7) // N_CODE
_roles = np.full(_stretches, -1)
_roles[:N_CODE * _per_bit] = np.repeat(np.arange(N_CODE), _per_bit)
ROLE = np.repeat(np.random.default_rng(0xADD + 1).permutation(_roles), STRETCH)   # -1: sync
SYNC = (ROLE < 0).astype(np.float64)
OFFSETS_48K = (0, 2)           # half a 12 kHz sample apart: the grid within a quarter sample
PAYLOAD_THRESHOLD = math.sqrt(2.0 * math.log(len(OFFSETS_48K) * BLOCK / 1e-6))


def stft(x: np.ndarray) -> np.ndarray:
    return sfft.rfft(frames(np.ascontiguousarray(x), size=N_FFT, hop=HOP) * window(N_FFT), axis=1)


def istft(spec: np.ndarray, n: int) -> np.ndarray:
    pieces = sfft.irfft(spec, n=N_FFT, axis=1) * window(N_FFT)
    out = np.zeros(n)
    for k, piece in enumerate(pieces):
        out[k * HOP:k * HOP + N_FFT] += piece
    return out


def carrier(payload: Payload | None) -> np.ndarray:
    """The block's sequence: plain, or with each code bit's stretches signed by the bit."""
    if payload is None:
        return SEQUENCE
    signs = 1.0 - 2.0 * ecc.encode(payload.bits()).astype(np.float64)
    return SEQUENCE * np.where(ROLE < 0, 1.0, signs[np.maximum(ROLE, 0)])


def embed(audio: np.ndarray, snr_db: float, tilt: float,
          payload: Payload | None = None) -> tuple[np.ndarray, float]:
    """``audio`` plus the sequence shaped under its mask (tilted by ``(f / 6 kHz)^tilt``
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
    allowed *= (np.arange(power.shape[1]) / HIGH)[None, :] ** tilt     # <= 1: under the mask
    allowed[:, :LOW] = allowed[:, HIGH:] = 0.0
    seq = stft(np.resize(carrier(payload), mid.size))
    shaped = seq / np.sqrt(np.mean(np.abs(seq[:, LOW:HIGH]) ** 2)) * np.sqrt(allowed)
    mark = istft(shaped, mid.size)
    if FRAME_CAP:
        # one pass, as an embedder of long beds must: each frame's mark at most snr_db under
        # that frame (so the whole is too), never above the mask
        frame_mark = (np.abs(shaped) ** 2).sum(axis=1)
        scale = np.sqrt(np.minimum(1.0, power.sum(axis=1) * 10 ** (-snr_db / 10)
                                   / np.maximum(frame_mark, 1e-30)))
        mark = istft(shaped * scale[:, None], mid.size)
    else:
        mark *= min(1.0, math.sqrt(np.sum(mid ** 2) * 10 ** (-snr_db / 10) / np.sum(mark ** 2)))
    mark48 = resample_poly(mark, 4, 1)[:audio.shape[1]].astype(np.float32)
    marked = audio + mark48[None, :]
    snr = 10 * math.log10(np.sum(audio.astype(np.float64) ** 2)
                          / (audio.shape[0] * np.sum(mark48.astype(np.float64) ** 2)))
    return marked.astype(np.float32), snr


def whitened_fold(y: np.ndarray) -> np.ndarray:
    """The received 12 kHz mono, each STFT bin divided by its local level, the band kept,
    every block summed onto one."""
    spec = stft(y)
    level = uniform_filter1d(np.abs(spec) ** 2, 9, axis=0, mode="nearest")
    spec /= np.sqrt(level + 1e-6 * level.mean() + 1e-30)
    spec[:, :LOW] = spec[:, HIGH:] = 0.0
    g = istft(spec, y.size)
    folded = np.zeros(-(-y.size // BLOCK) * BLOCK)
    folded[:y.size] = g
    return folded.reshape(-1, BLOCK).sum(axis=0)


def correlate(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``sum_n a[n] b[n + lag]`` for every lag (circular)."""
    return sfft.irfft(np.conj(sfft.rfft(a)) * sfft.rfft(b), n=BLOCK)


def scores(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """The normalised correlation with the sequence at every lag of the block."""
    folded = whitened_fold(to_mono(audio, sample_rate).astype(np.float64))
    return correlate(SEQUENCE, folded) / math.sqrt(np.sum(folded ** 2))


def read_payload(audio: np.ndarray, sample_rate: int):
    """The sync score (over every lag and both half-sample offsets) and the payload read there.

    The sync's score at a lag is ``sum_{n in sync} t[n] g[n + lag]`` over the energy of ``g`` on
    those samples alone: a Rademacher sum under no mark, for every lag at once with two FFTs."""
    best = (-np.inf, None)
    starts = OFFSETS_48K if sample_rate == SR else (0,)
    for o in starts:
        folded = whitened_fold(to_mono(audio[:, o:], sample_rate).astype(np.float64))
        num = correlate(SEQUENCE * SYNC, folded)
        den = np.sqrt(np.maximum(correlate(SYNC, folded ** 2), 1e-30))
        z = num / den
        lag = int(np.argmax(z))
        if z[lag] > best[0]:
            at = np.roll(folded, -lag) * SEQUENCE
            soft = np.zeros(N_CODE)
            np.add.at(soft, ROLE[ROLE >= 0], at[ROLE >= 0])
            best = (float(z[lag]), Payload.from_bits(ecc.decode(soft, PAYLOAD_BITS)))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tilt", type=float, default=1.0)
    parser.add_argument("--snr", type=float, nargs="+", default=[35.0, 30.0])
    parser.add_argument("--unmarked", type=int, default=100,
                        help="--payload: unmarked excerpts of each clip's music read too")
    parser.add_argument("--payload", action="store_true",
                        help="carry ss1's payload and read it back after bench_watermark's attacks")
    parser.add_argument("--frame-cap", action="store_true",
                        help="hold the SNR in every frame (one pass) instead of over the clip")
    args = parser.parse_args()
    global FRAME_CAP
    FRAME_CAP = args.frame_cap
    if args.payload:
        payload_study(args)
        return
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


def payload_study(args) -> None:
    print(f"additive mark with a payload, tilt {args.tilt}; sync threshold over {BLOCK} lags x "
          f"{len(OFFSETS_48K)} offsets at P < 1e-6: {PAYLOAD_THRESHOLD:.2f}; 'exact' is the "
          f"payload read bit for bit")
    rng = np.random.default_rng(9)
    with tempfile.TemporaryDirectory() as tmp:
        for prompt, kind, duration, seed in (("warm ambient pad with soft piano", "bed", 60, 3),
                                             ("bright upbeat logo", "jingle", 6, 7),
                                             ("warm bells sting", "jingle", 6, 2)):
            m = mastered(prompt, kind, duration, seed)
            music = m.audio.copy()
            mark = Payload(0x5A17, 0x2026_1202)
            ss1 = delivery.mark_master(m, key_id=0x5A17)
            print(f"\n{duration} s {kind} {prompt!r}: ss1 at {ss1['snr_db']:.1f} dB")
            runs = [("ss1", m.audio, None)]
            for snr in args.snr:
                marked, got = embed(music, snr, args.tilt, mark)
                margin, _ = mask.margin_db(music, marked)
                runs.append((f"additive {got:.1f} dB (margin {margin:+.1f})", marked, mark))
            for label, audio, want in runs:
                ok, total, row = 0, 0, []
                for name, (y, sr) in attacks(audio, Path(tmp), rng, bed=kind == "bed"):
                    if want is None:
                        found = detect(y, sr)
                        z, good = found.z, found.payload is not None and found.payload.hex == ss1["payload"]
                    else:
                        z, got_payload = read_payload(y, sr)
                        good = z >= PAYLOAD_THRESHOLD and got_payload == want
                    ok += good
                    total += 1
                    row.append(f"{name} {z:.1f}{'' if good else ' LOST'}")
                print(f"   {label}: {ok}/{total} exact | " + " | ".join(row))
            # unmarked: the music itself, excerpts of it, and it in noise, read as marked ones are
            highest, called = -np.inf, 0
            for k in range(args.unmarked):
                start = int(rng.integers(0, max(1, music.shape[1] - 3 * SR)))
                length = int(rng.integers(3 * SR, music.shape[1] - start + 1)) if k else music.shape[1]
                y = music[:, start:start + length] * np.float32(10 ** (rng.uniform(-20, 6) / 20))
                if k % 3 == 1:
                    y = y + pink(y.shape[1], rng) * float(np.sqrt(np.mean(y ** 2))) * 10 ** (rng.uniform(-20, 10) / 20)
                z, _ = read_payload(y.astype(np.float32), SR)
                highest = max(highest, z)
                called += z >= PAYLOAD_THRESHOLD
            print(f"   unmarked, {args.unmarked} excerpts (some in noise): highest sync {highest:.2f}, "
                  f"{called} called marked")


if __name__ == "__main__":
    main()
