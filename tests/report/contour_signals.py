"""Recordings whose f0 contour is known exactly, with their truth CSVs: vibrato, a glide, a trill
and a voice-like source with a weak fundamental, formants and a breath of noise between phrases.

Each is a sum of harmonics of one phase, phase = 2*pi*cumsum(f0)/sr, so the period is 1/f0(t)
at every sample; partials at or above 45 % of the sample rate are left out per sample. The truth
is f0 at MDB-stem-synth's hop (128 samples at 44.1 kHz, 2.9 ms), 0 where the tone is silent, so
mir_eval's resampling to 10 ms is exercised. Used by the tests, and to make the set the docs
quote: `python -m tests.report.contour_signals OUT_DIR`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 16_000
TRUTH_HOP = 128 / 44_100
SECONDS = 3.0
RAMP = 0.005                     # seconds of fade at each edge of a voiced stretch


def _envelope(t: np.ndarray, spans) -> np.ndarray:
    env = np.zeros_like(t)
    for start, end in spans:
        env = np.maximum(env, np.clip(np.minimum(t - start, end - t) / RAMP, 0, 1))
    return env


def _harmonics(f0: np.ndarray, gains) -> np.ndarray:
    phase = 2 * np.pi * np.cumsum(f0) / SR
    out = np.zeros_like(f0)
    for k, gain in enumerate(gains, start=1):
        out += gain * np.sin(k * phase) * (k * f0 < 0.45 * SR)
    return out


def vibrato(t):
    return 220.0 * 2 ** (50 / 1200 * np.sin(2 * np.pi * 5.5 * t)), [(0.25, 1.4), (1.6, 2.75)]


def glide(t):
    return 110.0 * 4 ** np.clip((t - 0.4) / 2.0, 0, 1), [(0.2, 2.8)]


def trill(t):
    return np.where(np.floor(t * 8) % 2 == 0, 392.0, 440.0), [(0.2, 2.6)]


def voice(t):
    cents = 30 * np.sin(2 * np.pi * 0.7 * t) + 20 * np.sin(2 * np.pi * 5.0 * t) - 60 * t
    return 140.0 * 2 ** (cents / 1200), [(0.2, 1.2), (1.5, 2.7)]


def voice_gains(f0_hz: float = 140.0, count: int = 40) -> list[float]:
    """A glottal-like slope (-12 dB/octave) through three vowel formants (/a/: 700, 1220, 2600 Hz),
    the fundamental 25 dB under the strongest partial."""
    k = np.arange(1, count + 1)
    freq = k * f0_hz
    formants = sum(g / (1 + ((freq - fc) / bw) ** 2) for fc, bw, g in ((700, 130, 1.0), (1220, 150, 0.6),
                                                                        (2600, 250, 0.3)))
    gains = k ** -2.0 * (0.05 + formants)
    gains[0] = gains.max() * 10 ** (-25 / 20)
    return list(gains)


KINDS = {"vibrato": (vibrato, [1 / k for k in range(1, 9)]),
         "glide": (glide, [1 / k for k in range(1, 9)]),
         "trill": (trill, [1 / k ** 1.5 for k in range(1, 7)]),
         "voice": (voice, voice_gains())}


def render(kind: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(audio float32 at 16 kHz, truth times, truth Hz with 0 where silent)."""
    contour, gains = KINDS[kind]
    t = np.arange(int(SECONDS * SR)) / SR
    f0, spans = contour(t)
    audio = _harmonics(f0, gains) * _envelope(t, spans)
    audio *= 0.5 / np.abs(audio).max()
    if kind == "voice":   # breath between the phrases: noise the truth calls unvoiced
        rng = np.random.default_rng(seed)
        audio += 0.03 * rng.standard_normal(len(t)) * _envelope(t, [(1.25, 1.45)])
    times = np.arange(int(SECONDS / TRUTH_HOP)) * TRUTH_HOP
    truth_f0, truth_spans = contour(times)
    truth = np.where(_envelope(times, truth_spans) > 0, truth_f0, 0.0)
    return audio.astype(np.float32), times, truth


def write_truth(path: Path, times: np.ndarray, hz: np.ndarray, header: bool = True) -> Path:
    rows = "".join(f"{t:.6f},{f:.4f}\n" for t, f in zip(times, hz))
    path.write_text(("time,frequency\n" if header else "") + rows)
    return path


def write_set(folder: Path) -> list[Path]:
    """The four recordings and their truths: vibrato.csv with a header, glide.csv without (as
    MDB-stem-synth's), trill.f0.csv (as CREPE's name), voice.csv with a voiced column."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for kind in KINDS:
        audio, times, hz = render(kind)
        sf.write(folder / f"{kind}.wav", audio, SR, subtype="FLOAT")
        if kind == "glide":
            write_truth(folder / "glide.csv", times, hz, header=False)
        elif kind == "trill":
            write_truth(folder / "trill.f0.csv", times, hz)
        elif kind == "voice":
            rows = "".join(f"{t:.6f},{f:.4f},{int(f > 0)}\n" for t, f in zip(times, hz))
            (folder / "voice.csv").write_text("time,frequency,voiced\n" + rows)
        else:
            write_truth(folder / f"{kind}.csv", times, hz)
        written.append(folder / f"{kind}.wav")
    return written


if __name__ == "__main__":
    for path in write_set(Path(sys.argv[1])):
        print(path)
