"""Musical measurements of rendered audio: key, tempo, last chord, level and spectrum.

Used by tests and reports to check what the engines claim. librosa is imported inside the
functions that need it, so importing this module costs nothing.
"""

from __future__ import annotations

import warnings

import numpy as np

from soundscape.spec import Key, parse_key

# Krumhansl & Kessler (1982) probe-tone key profiles, tonic first.
KK_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
KK_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
SILENCE_DB = -120.0
CHROMA_HOP = 4096  # a multiple of 2**(octaves - 1) as librosa's CQT needs


def to_mono(audio: np.ndarray) -> np.ndarray:
    """Mix ``(channels, n)`` or ``(n,)`` audio down to float32 mono."""
    audio = np.asarray(audio, dtype=np.float32)
    return audio.mean(axis=0) if audio.ndim == 2 else audio


def chroma(audio: np.ndarray, sr: int, *, fmin_midi: int = 24) -> np.ndarray:
    """Constant-Q chromagram ``(12, frames)`` (C first), from C1 upwards by default."""
    import librosa

    y = to_mono(audio)
    fmin = librosa.midi_to_hz(fmin_midi)
    n_octaves = min(7, int(np.floor(np.log2(0.45 * sr / fmin))))
    with warnings.catch_warnings():
        # Short windows (a final chord) make the low octaves' frames longer than the signal;
        # librosa pads them and says so, which is expected here.
        warnings.filterwarnings("ignore", message="n_fft=.* is too large")
        return librosa.feature.chroma_cqt(y=y, sr=sr, hop_length=CHROMA_HOP, fmin=fmin,
                                          n_octaves=n_octaves, bins_per_octave=36)


def key_scores(profile: np.ndarray) -> dict[str, float]:
    """Correlation of a 12-bin pitch-class profile with all 24 major and minor key profiles."""
    scores = {}
    for tonic in range(12):
        for mode, ref in (("major", KK_MAJOR), ("minor", KK_MINOR)):
            scores[Key(tonic, mode).name] = float(np.corrcoef(profile, np.roll(ref, tonic))[0, 1])
    return scores


def estimate_key(audio: np.ndarray, sr: int) -> tuple[Key, dict[str, float]]:
    """The best-matching of the 24 major/minor keys and every key's score (by key name).

    The mean chroma is correlated with the Krumhansl-Kessler profiles rotated to each tonic.
    """
    profile = chroma(audio, sr).mean(axis=1)
    scores = key_scores(profile)
    best = max(scores, key=scores.get)
    tonic_name, mode = best.split(" ")

    return parse_key(f"{tonic_name} {mode}"), scores


def onset_envelope(audio: np.ndarray, sr: int, *, hop_length: int = 512) -> np.ndarray:
    import librosa

    return librosa.onset.onset_strength(y=to_mono(audio), sr=sr, hop_length=hop_length)


def estimate_tempo(audio: np.ndarray, sr: int, *, hop_length: int = 512,
                   start_bpm: float = 120.0) -> float:
    """Tempo in bpm from the onset envelope's periodicity (librosa's autocorrelation method).

    Like every beat tracker it can answer an octave off (double or half) when the music's
    subdivisions are strong; its log-normal prior centres on ``start_bpm`` (one octave wide),
    so music below about 80 bpm with busy half-beats may read as twice its tempo. A caller that
    knows the rough range can move ``start_bpm`` there.
    """
    import librosa

    env = onset_envelope(audio, sr, hop_length=hop_length)
    tempo = librosa.feature.tempo(onset_envelope=env, sr=sr, hop_length=hop_length,
                                  start_bpm=start_bpm)
    return float(np.atleast_1d(tempo)[0])


def onset_times(audio: np.ndarray, sr: int, *, hop_length: int = 512) -> np.ndarray:
    """Times (s) of detected onsets."""
    import librosa

    env = onset_envelope(audio, sr, hop_length=hop_length)
    frames = librosa.onset.onset_detect(onset_envelope=env, sr=sr, hop_length=hop_length)
    return librosa.frames_to_time(frames, sr=sr, hop_length=hop_length)


# Triad templates (root, third, fifth) over pitch classes relative to the root.
_TRIADS = {"major": (0, 4, 7), "minor": (0, 3, 7)}


def chord_root(profile: np.ndarray, *, bass: np.ndarray | None = None) -> int:
    """Root pitch class of the triad that best fits a 12-bin profile (bass breaks ties)."""
    p = profile / (np.linalg.norm(profile) or 1.0)
    best, best_score = 0, -np.inf
    for root in range(12):
        for intervals in _TRIADS.values():
            template = np.zeros(12)
            template[[(root + i) % 12 for i in intervals]] = (1.0, 0.8, 0.9)
            score = float(p @ (template / np.linalg.norm(template)))
            if bass is not None:
                score += 0.3 * float(bass[root] / (bass.max() or 1.0))
            if score > best_score:
                best, best_score = root, score
    return best


def final_chord_root(audio: np.ndarray, sr: int, *, seconds: float = 1.0) -> int:
    """Pitch class (0 = C) of the last chord: measured from the last strong onset for ``seconds``.

    A jingle's last chord starts with its final hit; the tail after it is mostly reverb of that
    same chord, so the window starts at the last detected onset of some strength (a sixth of
    the strongest), which is the hit.
    """
    import librosa

    y = to_mono(audio)
    hop = 512
    env = onset_envelope(y, sr, hop_length=hop)
    peaks = librosa.onset.onset_detect(onset_envelope=env, sr=sr, hop_length=hop)
    strong = [f for f in peaks if env[f] > env.max() / 6.0]
    start = int(librosa.frames_to_samples(strong[-1], hop_length=hop)) if strong else \
        max(0, y.size - int(seconds * sr))
    seg = y[start: start + int(seconds * sr)]
    profile = chroma(seg, sr).mean(axis=1)
    # The low register decides between chords sharing two tones (I against vi or iii).
    return chord_root(profile, bass=_band_chroma(seg, sr, high_hz=260.0))


def _band_chroma(y: np.ndarray, sr: int, *, high_hz: float) -> np.ndarray:
    """Pitch-class energy of the spectrum below ``high_hz`` (a bass chroma)."""
    spec = np.abs(np.fft.rfft(y * np.hanning(y.size))) ** 2
    freqs = np.fft.rfftfreq(y.size, 1 / sr)
    keep = (freqs > 25.0) & (freqs < high_hz)
    midi = 69 + 12 * np.log2(freqs[keep] / 440.0)
    out = np.zeros(12)
    np.add.at(out, np.round(midi).astype(int) % 12, spec[keep])
    return out


def level_envelope_db(audio: np.ndarray, sr: int, hop_seconds: float = 0.05) -> np.ndarray:
    """RMS level (dBFS, both channels pooled) per hop of ``hop_seconds``."""
    a = np.atleast_2d(np.asarray(audio, dtype=np.float64))
    hop = max(1, int(round(hop_seconds * sr)))
    frames = a.shape[-1] // hop
    if frames == 0:
        return np.array([SILENCE_DB])
    power = (a[:, : frames * hop] ** 2).reshape(a.shape[0], frames, hop).mean(axis=(0, 2))
    return np.maximum(10 * np.log10(np.maximum(power, 1e-30)), SILENCE_DB)


def band_energy_db(audio: np.ndarray, sr: int, low_hz: float, high_hz: float) -> float:
    """Mean power (dB) of the mono mix between ``low_hz`` and ``high_hz``."""
    y = to_mono(audio).astype(np.float64)
    spec = np.abs(np.fft.rfft(y)) ** 2 / max(y.size, 1)
    freqs = np.fft.rfftfreq(y.size, 1 / sr)
    band = spec[(freqs >= low_hz) & (freqs < high_hz)]
    return float(10 * np.log10(max(band.sum() / max(y.size, 1), 1e-30)))


def spectral_centroid(audio: np.ndarray, sr: int) -> float:
    """Power-weighted mean frequency (Hz) of the mono mix."""
    y = to_mono(audio).astype(np.float64)
    spec = np.abs(np.fft.rfft(y)) ** 2
    freqs = np.fft.rfftfreq(y.size, 1 / sr)
    return float((spec * freqs).sum() / (spec.sum() or 1.0))


def chroma_profile(audio: np.ndarray, sr: int) -> np.ndarray:
    """Mean chroma, normalised to sum 1 (which pitch classes a stretch of music dwells on)."""
    p = chroma(audio, sr).mean(axis=1)
    return p / (p.sum() or 1.0)


def dc_offset(audio: np.ndarray) -> np.ndarray:
    """Mean value per channel."""
    return np.atleast_2d(np.asarray(audio, dtype=np.float64)).mean(axis=-1)


def max_step(audio: np.ndarray) -> float:
    """Largest sample-to-sample step in any channel (clicks show up here)."""
    a = np.atleast_2d(np.asarray(audio, dtype=np.float32))
    return float(np.max(np.abs(np.diff(a, axis=-1))))


# --- mix measures: what a sound designer checks before keeping a bed ---------------------------

def band_shares(audio: np.ndarray, sr: int, bands: tuple[tuple[float, float], ...]) -> list[float]:
    """Fraction of the energy (both channels pooled) in each ``(low, high)`` band, by FFT."""
    a = np.atleast_2d(np.asarray(audio, dtype=np.float64))
    power = np.zeros(a.shape[-1] // 2 + 1)
    for channel in a:
        power += np.abs(np.fft.rfft(channel)) ** 2
    freqs = np.fft.rfftfreq(a.shape[-1], 1.0 / sr)
    total = power[freqs > 0].sum() or 1.0
    return [float(power[(freqs >= lo) & (freqs < hi)].sum() / total) for lo, hi in bands]


def _lowpassed(audio: np.ndarray, sr: int, cutoff: float) -> np.ndarray:
    from scipy.signal import butter, sosfiltfilt

    sos = butter(4, cutoff, fs=sr, output="sos")
    return sosfiltfilt(sos, np.atleast_2d(np.asarray(audio, dtype=np.float64)), axis=-1)


def low_band_correlation(audio: np.ndarray, sr: int, *, below: float = 200.0) -> float:
    """Correlation of left and right below ``below`` Hz (1: the low end is centred, mono-safe)."""
    low = _lowpassed(audio, sr, below)
    denom = np.sqrt((low[0] ** 2).sum() * (low[1] ** 2).sum())
    return float((low[0] * low[1]).sum() / denom) if denom > 0 else 1.0


def mono_loss_db(audio: np.ndarray, sr: int, *, below: float = 300.0,
                 window: float = 1.0) -> tuple[float, float]:
    """What folding to mono costs below ``below`` Hz: the overall loss in dB (mono power against
    the channels' mean power), and its wobble (the range of the per-window loss, in dB)."""
    low = _lowpassed(audio, sr, below)
    mono = (low[0] + low[1]) / 2
    stereo = (low[0] ** 2 + low[1] ** 2) / 2

    def db(a, b):
        return 10 * np.log10(max(a, 1e-30) / max(b, 1e-30))

    overall = db((mono ** 2).mean(), stereo.mean())
    hop = int(window * sr)
    per = [db((mono[i:i + hop] ** 2).mean(), stereo[i:i + hop].mean())
           for i in range(0, mono.size - hop + 1, hop) if stereo[i:i + hop].mean() > 1e-12]
    return float(-overall), float(max(per) - min(per)) if per else 0.0


def per_second_chroma(audio: np.ndarray, sr: int) -> np.ndarray:
    """Chroma averaged over each second ``(seconds, 12)``."""
    c = chroma(audio, sr)
    frames_per_second = sr / CHROMA_HOP
    seconds = int(c.shape[1] / frames_per_second)
    rows = [c[:, int(i * frames_per_second):int((i + 1) * frames_per_second)].mean(axis=1)
            for i in range(seconds)]
    return np.array(rows)


def chroma_similarity(a: np.ndarray, b: np.ndarray, sr: int) -> float:
    """Mean per-second correlation of two renders' chroma (1: the same harmony throughout)."""
    ca, cb = per_second_chroma(a, sr), per_second_chroma(b, sr)
    n = min(len(ca), len(cb))
    values = [np.corrcoef(x, y)[0, 1] for x, y in zip(ca[:n], cb[:n]) if x.std() > 0 and y.std() > 0]
    return float(np.mean(values)) if values else 1.0


def short_term_loudness(audio: np.ndarray, sr: int, *, window: float = 3.0,
                        hop: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """EBU R 128 short-term loudness (3 s windows) every ``hop`` seconds: (times, LUFS).

    Times are the windows' centres."""
    from soundscape.audio.loudness import LOUDNESS_OFFSET, SUBBLOCK_SECONDS, subblock_energies

    energies = subblock_energies(audio, sr).sum(axis=0)
    width = int(round(window / SUBBLOCK_SECONDS))
    step = int(round(hop / SUBBLOCK_SECONDS))
    starts = np.arange(0, energies.size - width + 1, step)
    csum = np.concatenate([[0.0], np.cumsum(energies)])
    power = (csum[starts + width] - csum[starts]) / width
    with np.errstate(divide="ignore"):
        lufs = LOUDNESS_OFFSET + 10 * np.log10(np.maximum(power, 1e-30))
    return (starts * SUBBLOCK_SECONDS + window / 2), lufs


def repeat_score(audio: np.ndarray, sr: int, *, within: float = 60.0, window: float = 2.0,
                 probes: int = 6, skip: float = 0.5) -> tuple[float, float]:
    """How literally a stretch of the signal comes back within ``within`` seconds.

    Several ``window``-second probes are cross-correlated (normalised, by FFT, at 8 kHz on the
    mono mix) against the next ``within`` seconds; lags under ``skip`` s are ignored. Returns
    the highest correlation found (a literal repeat scores about 1) and its lag in seconds.
    """
    from scipy.signal import fftconvolve, resample_poly

    y = resample_poly(to_mono(audio).astype(np.float64), 1, max(1, sr // 8000))
    rate = sr / max(1, sr // 8000)
    w = int(window * rate)
    span = int(within * rate)
    best, best_lag = 0.0, 0.0
    starts = np.linspace(0, max(y.size - w - span, 0), probes).astype(int) if y.size > w + span \
        else np.array([0])
    for s in starts:
        probe = y[s:s + w]
        norm_p = np.sqrt((probe ** 2).sum())
        if norm_p == 0:
            continue
        target = y[s:s + w + span]
        corr = fftconvolve(target, probe[::-1], mode="valid")
        energy = np.convolve(target ** 2, np.ones(w), mode="valid")
        corr = corr / (norm_p * np.sqrt(np.maximum(energy, 1e-30)))
        lo = int(skip * rate)
        if corr.size <= lo:
            continue
        k = lo + int(np.argmax(corr[lo:]))
        if corr[k] > best:
            best, best_lag = float(corr[k]), k / rate
    return best, best_lag


def minute_distance(audio: np.ndarray, sr: int, *, first: tuple[float, float] = (60.0, 120.0),
                    second: tuple[float, float] = (240.0, 300.0)) -> dict[str, float]:
    """How different two minutes of a bed are: chroma profile (L1 distance), brightness
    (|log2| of the spectral-centroid ratio), level (dB) and note density (onsets per second)."""
    a = audio[..., int(first[0] * sr):int(first[1] * sr)]
    b = audio[..., int(second[0] * sr):int(second[1] * sr)]
    onsets_a = onset_times(a, sr).size / (first[1] - first[0])
    onsets_b = onset_times(b, sr).size / (second[1] - second[0])
    return {
        "chroma": float(np.abs(chroma_profile(a, sr) - chroma_profile(b, sr)).sum()),
        "brightness": float(abs(np.log2(spectral_centroid(b, sr) / spectral_centroid(a, sr)))),
        "level_db": float(abs(level_envelope_db(a, sr, first[1] - first[0])[0]
                              - level_envelope_db(b, sr, second[1] - second[0])[0])),
        "onsets_per_second": (round(onsets_a, 3), round(onsets_b, 3)),
    }
