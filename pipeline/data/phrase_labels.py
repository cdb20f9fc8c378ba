"""A phrase's labels: the f0 every 10 ms, checked frame by frame against the audio.

A phrase's exact curve is what its synthesizer played: per 64-sample block for FluidSynth
(pipeline/data/phrase_rendering.py), per sample for the synthetic tones and the voice. Its frame
table has one row every 10 ms (frame k at t = k x 10 ms, the value AT t):

    time,f0_hz,voiced,clean,flag
    0.00,0.0000,0,0,
    0.37,261.6256,1,1,

- f0_hz: the curve at t where voiced, else 0 (mir_eval's and CREPE's "unvoiced");
- voiced: a note (or the voice's glottis) sounds at t, within 40 dB of its loudest frame, in the
  clean render (release tails included, rests and unvoiced consonants not);
- clean: voiced and 30 ms or more from every onset, key change and voicing edge;
- flag: why the label of that frame is not to be trusted (empty: trusted). An independent
  estimator (YIN on the clean 16 kHz audio, pipeline/dsp/frame_pitch.py) checks every voiced
  frame whose window holds no step of the curve: where it is sure and an octave off, `octave`;
  sure and more than phrases.audit_cents off, `off` (a sample's recorded vibrato, a preset that
  does not sound its key). When most of a phrase's sure frames are flagged, the instrument itself
  does not play the label (an organ's 16' register): every voiced frame of it gets that flag.
  `tail`: unvoiced in the clean render, but a room's reverberation of the last note still
  sounds there (within 40 dB of the phrase's voiced peak): a tracker that hears the pitch is
  not wrong, one that does not is not either. Flagged frames are left out of training and scoring.

The exact curve is also written: NAME.curve.npy, float32 f0 in Hz every millisecond (0 where no
note sounds), for those who want the pitch between frames.
"""

from __future__ import annotations

import io

import numpy as np

from pipeline.core import constants as C
from pipeline.dsp.frame_pitch import yin

FRAME_SECONDS = 0.010
CURVE_RATE = 1000                  # the exact curve's samples per second
VOICED_RANGE_DB = 40.0             # as the clean render's voicing: within this of the loudest frame
SURE_APERIODICITY = 0.15           # YIN's threshold: below it the estimate names a period
STEP_CENTS = 80.0                  # a window holding a step this big has no single f0 to check
PHRASE_SHARE = 0.5                 # this share of a phrase's sure frames flagged: the whole phrase is
OCTAVE_TOLERANCE_CENTS = 50.0
FLAGS = ("octave", "off", "tail")
HEADER = "time,f0_hz,voiced,clean,flag\n"


def cents_to_hz(cents: np.ndarray) -> np.ndarray:
    return 440.0 * 2.0 ** ((np.asarray(cents, dtype=np.float64) - 6900.0) / 1200.0)


def hz_to_cents(hz: np.ndarray) -> np.ndarray:
    hz = np.asarray(hz, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(hz > 0, 6900.0 + 1200.0 * np.log2(np.where(hz > 0, hz, 1.0) / 440.0), np.nan)


def window_label(curve_cents: np.ndarray, window: np.ndarray, rate: int = C.RENDER_RATE):
    """Mean and spread (max - min) of a per-sample curve (MIDI cents at `rate`, NaN where silent)
    over each [start, end] span in seconds: what an estimator's window saw."""
    csum = np.concatenate([[0.0], np.cumsum(np.nan_to_num(curve_cents))])
    nans = np.concatenate([[0], np.cumsum(np.isnan(curve_cents))])
    lo = np.clip(np.round(window[:, 0] * rate).astype(np.int64), 0, len(curve_cents) - 1)
    hi = np.clip(np.round(window[:, 1] * rate).astype(np.int64), lo + 1, len(curve_cents))
    mean = (csum[hi] - csum[lo]) / (hi - lo)
    mean[nans[hi] - nans[lo] > 0] = np.nan
    spread = np.array([np.ptp(np.nan_to_num(curve_cents[a:b])) for a, b in zip(lo, hi)])
    return mean, spread


def audit_flags(audio16: np.ndarray, times: np.ndarray, curve_cents: np.ndarray, voiced: np.ndarray,
                audit_cents: float) -> np.ndarray:
    """Per frame: "octave", "off" or "" from YIN on the clean 16 kHz audio (see the module doc)."""
    flags = np.full(len(times), "", dtype=object)
    check = np.flatnonzero(voiced)
    if not len(check):
        return flags
    fmin, fmax = search_range(curve_cents)
    track = yin(audio16, times[check], fmin=fmin, fmax=fmax)
    mean, spread = window_label(curve_cents, np.nan_to_num(track.window))
    sure = (track.aperiodicity < SURE_APERIODICITY) & np.isfinite(track.f0_hz) & np.isfinite(mean) \
        & (spread < STEP_CENTS)
    error = hz_to_cents(track.f0_hz) - mean
    octave = sure & (np.abs(error) > OCTAVE_TOLERANCE_CENTS) & \
        (np.abs(np.abs(error) - 1200.0 * np.round(np.abs(error) / 1200.0)) < OCTAVE_TOLERANCE_CENTS)
    off = sure & ~octave & (np.abs(error) > audit_cents)
    for name, hit in (("octave", octave), ("off", off)):
        if sure.sum() and hit.sum() >= PHRASE_SHARE * sure.sum():
            flags[check] = name            # the instrument does not play the label
            return flags
    flags[check[octave]] = "octave"
    flags[check[off]] = "off"
    return flags


def search_range(curve_cents: np.ndarray) -> tuple[float, float]:
    """The pitches YIN may find, from the phrase's own curve: beyond an octave below its lowest and
    above its highest (a preset that sounds an octave off stays findable; YIN takes the shortest
    period that dips, so the wider range costs no octave errors of its own)."""
    hz = cents_to_hz(curve_cents[np.isfinite(curve_cents)])
    if not len(hz):
        return 50.0, 1600.0
    return max(20.0, float(hz.min()) / 2.5), min(C.SAMPLE_RATE / 3, float(hz.max()) * 2.5)


def tail_flags(heard: np.ndarray, times: np.ndarray, voiced: np.ndarray, rate: int = C.SAMPLE_RATE) -> np.ndarray:
    """Unvoiced frames after a voiced one where the augmented audio still sounds within
    VOICED_RANGE_DB of the voiced frames' loudest: a room's tail."""
    levels = frame_levels_db(heard, times, rate)
    if not voiced.any():
        return np.zeros(len(times), dtype=bool)
    after_voice = np.maximum.accumulate(voiced)
    return ~voiced & after_voice & (levels >= levels[voiced].max() - VOICED_RANGE_DB)


def frame_levels_db(audio: np.ndarray, times: np.ndarray, rate: int, window_s: float = 0.020) -> np.ndarray:
    """RMS level (dBFS) in a window centred on each time."""
    half = int(round(window_s * rate / 2))
    power = np.concatenate([[0.0], np.cumsum(np.asarray(audio, dtype=np.float64) ** 2)])
    centre = np.round(times * rate).astype(np.int64)
    lo, hi = np.clip(centre - half, 0, len(audio)), np.clip(centre + half, 0, len(audio))
    mean = (power[hi] - power[lo]) / np.maximum(hi - lo, 1)
    return 10 * np.log10(np.maximum(mean, 1e-30))


def synthetic_voicing(audio44: np.ndarray, f0_hz44: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Voiced frames of a synthetic phrase: its curve names a pitch at t and it sounds within
    VOICED_RANGE_DB of its loudest such frame."""
    at = np.minimum(np.round(times * C.RENDER_RATE).astype(np.int64), len(f0_hz44) - 1)
    pitched = f0_hz44[at] > 0
    levels = frame_levels_db(audio44, times, C.RENDER_RATE)
    if not pitched.any():
        return pitched
    return pitched & (levels >= levels[pitched].max() - VOICED_RANGE_DB) & (levels > -100.0)


def frame_table_bytes(times, f0_hz, voiced, clean, flags) -> bytes:
    """The frame table as CSV bytes (fixed formatting: the same labels, the same bytes)."""
    rows = [f"{t:.2f},{f if v else 0.0:.4f},{int(v)},{int(c)},{g}\n"
            for t, f, v, c, g in zip(times, f0_hz, voiced, clean, flags)]
    return (HEADER + "".join(rows)).encode()


def curve_bytes(curve_hz44: np.ndarray) -> bytes:
    """The exact curve every millisecond as a float32 .npy file's bytes."""
    step = C.RENDER_RATE / CURVE_RATE
    at = np.round(np.arange(int(len(curve_hz44) / step)) * step).astype(np.int64)
    buffer = io.BytesIO()
    np.save(buffer, np.nan_to_num(curve_hz44[at]).astype(np.float32), allow_pickle=False)
    return buffer.getvalue()


def read_frame_table(path):
    """A phrase's frame table as a pandas DataFrame (flag "" where trusted)."""
    import pandas as pd

    return pd.read_csv(path, keep_default_na=False, dtype={"flag": str})
