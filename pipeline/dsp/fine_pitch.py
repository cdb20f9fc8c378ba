"""Fine pitch from the audio itself: YIN and the peaks of a note's first partials.

Two uses, one technique (a Gaussian-windowed, zero-padded spectrum, whose log-magnitude peak is
a parabola, so a partial's frequency is found to a small part of a bin):
- `estimate(clips)`: f0 from nothing (YIN picks the period, the partials refine it), for the
  label audit (pipeline.data.audit), in the data workers;
- `refine_near(windows, coarse_hz)`: a model's estimate made fine. The network's pitch bins
  are 20 cents wide and its median error several cents; the partials of the same window say
  where within that bin the pitch sits. The model keeps the octave: a refined value
  FINE_GATE_CENTS (a semitone) or more from the model's is not taken;
- `refine_estimates(windows, model_hz)`: that, and under C4 a sure `estimate` instead (the
  network's weakest range). `pipeline predict --summary`, `pipeline evaluate` and the report
  use it; the per-frame CSV does not (it would cost more than the network).
"""

from __future__ import annotations

import numpy as np
import scipy.fft

from pipeline.core import constants as C
from pipeline.dsp.yin import cumulative_mean_normalized_difference

FMIN_HZ = 25.0                   # under A0 (27.5 Hz) detuned by -50 cents
MIN_LAG = 2                      # samples: 8 kHz
MAX_LAG = int(np.ceil(C.SAMPLE_RATE / FMIN_HZ))  # 640 samples
YIN_THRESHOLD = 0.15             # the first dip of d' under this is the period (YIN's absolute threshold)
REFINE_PARTIALS = 4              # partials 1..4 refine the period's frequency
REFINE_RANGE_DB = 30.0           # ... those within this of the strongest of them
PERIOD_MULTIPLES = (1 / 4, 1 / 3, 1 / 2, 1, 2, 3)  # of YIN's period: the candidates it may have missed
PERIOD_TOLERANCE = 0.05          # the shortest candidate within this of the best one's autocorrelation wins
REFINE_FFT = 8192               # zero-padded: 1.95 Hz bins; a Gaussian's log-magnitude peak is a parabola
GAUSSIAN_SIGMA = 1 / 8           # of the clip: -70 dB at its ends


# --- the estimate from nothing (the label audit, in the data workers) ---------------------------------
def yin(clips: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, 5280) clips -> (period in samples, d' there) per clip; period NaN for silence."""
    dprime, energy = cumulative_mean_normalized_difference(clips, MAX_LAG)
    periods, depths = np.full(len(dprime), np.nan), np.ones(len(dprime))
    for i, row in enumerate(dprime):
        if energy[i] > 0:
            periods[i], depths[i] = _period(row)
    return periods, depths


def _period(dprime: np.ndarray) -> tuple[float, float]:
    """The first dip of d' under YIN_THRESHOLD (else its minimum), interpolated by a parabola."""
    search = dprime[MIN_LAG:MAX_LAG]
    below = np.flatnonzero(search < YIN_THRESHOLD)
    lag = MIN_LAG + (int(below[0]) if below.size else int(np.argmin(search)))
    while lag + 1 < MAX_LAG and dprime[lag + 1] < dprime[lag]:
        lag += 1
    a, b, c = dprime[lag - 1:lag + 2]
    bend = a - 2 * b + c
    shift = 0.5 * (a - c) / bend if bend > 0 else 0.0
    return lag + float(np.clip(shift, -0.5, 0.5)), float(np.clip(b, 0.0, 1.0))


def refine(clip: np.ndarray, coarse_hz: float) -> float:
    """coarse_hz checked and made exact: the period first, then the first partials' peaks in a
    Gaussian-windowed spectrum (whose log-magnitude peak is a parabola), each over its number,
    weighted by its power."""
    magnitude = _gaussian_spectrum(clip, GAUSSIAN_SIGMA, REFINE_FFT)
    coarse_hz = _true_period(magnitude, C.SAMPLE_RATE / coarse_hz)
    return _from_partials(magnitude, coarse_hz, REFINE_PARTIALS)


def _from_partials(magnitude: np.ndarray, coarse_hz: float, count: int) -> float:
    """The f0 that partials 1..count say (each peak over its number, weighted by its power, those
    within REFINE_RANGE_DB of the strongest); coarse_hz where none has a peak."""
    peaks = _partial_peaks(magnitude, coarse_hz, count)
    strongest = max((level for _, _, level in peaks), default=0.0)
    used = [(hz / k, level) for k, hz, level in peaks if level >= strongest * 10 ** (-REFINE_RANGE_DB / 20)]
    if not used:
        return coarse_hz
    hz, level = np.array(used).T
    return float(np.sum(hz * level ** 2) / np.sum(level ** 2))


def _true_period(magnitude: np.ndarray, lag: float) -> float:
    """The frequency of the shortest of lag x (1/4 .. 3) that repeats the clip about as well as the
    best of them, from the autocorrelation at fractional lags (the power spectrum's cosine sums).

    YIN's integer lags can miss a short period and take several (at 3.6 kHz the period is 4.45
    samples), and a tone whose partials 2 and 3 dominate can pass for twice its pitch."""
    power = magnitude ** 2
    bins = np.flatnonzero(power > power.max() * 1e-6)  # the rest adds nothing: fewer cosines
    power, turns = power[bins], bins / REFINE_FFT
    candidates = [lag * q for q in PERIOD_MULTIPLES if MIN_LAG <= lag * q <= MAX_LAG]
    repeat = [float(power @ np.cos(2 * np.pi * turns * c)) / float(power.sum()) for c in candidates]
    best = max(repeat)
    return C.SAMPLE_RATE / next(c for c, r in zip(candidates, repeat) if r >= best - PERIOD_TOLERANCE)


def _partial_peaks(magnitude: np.ndarray, coarse_hz: float, count: int) -> list[tuple[int, float, float]]:
    """(k, frequency, magnitude) of the peak within a third of coarse_hz of each multiple k; none
    where the band's maximum is at its edge (no peak in it)."""
    bin_hz = C.SAMPLE_RATE / (2 * (len(magnitude) - 1))  # the FFT's size from its rfft
    peaks = []
    for k in range(1, count + 1):
        low = max(int((k - 1 / 3) * coarse_hz / bin_hz), 1)
        high = int((k + 1 / 3) * coarse_hz / bin_hz) + 1
        if high >= len(magnitude) - 1:
            break
        i = low + int(np.argmax(magnitude[low:high]))
        if magnitude[i] <= 0 or i in (low, high - 1):
            continue
        a, b, c = np.log(magnitude[i - 1:i + 2])
        peaks.append((k, (i + 0.5 * (a - c) / (a - 2 * b + c)) * bin_hz, float(magnitude[i])))
    return peaks


def estimate(clips: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, 5280) clean clips -> (audit_hz, confidence 0..1) per clip; NaN Hz and 0 for silence."""
    clips = np.atleast_2d(clips)
    periods, depths = yin(clips)
    hz = np.full(len(clips), np.nan)
    for i, period in enumerate(periods):
        if np.isfinite(period):
            hz[i] = refine(clips[i], C.SAMPLE_RATE / period)
    return hz, np.where(np.isfinite(hz), 1.0 - depths, 0.0)


# --- a model's estimate made fine --------------------------------------------------------------------
FINE_PARTIALS = 8                # more partials than the audit's: low notes have weak fundamentals
FINE_SIGMA = 1 / 5               # of the window: a wider Gaussian, finer peaks (-54 dB at its ends)
FINE_FFT = 32768                 # zero-padded: 0.49 Hz bins, for the low notes
FINE_MIN_SAMPLES = 800           # 50 ms: a window that sounds for less keeps the model's estimate
FINE_GATE_CENTS = 100.0          # a semitone: a refined value further from the model's is not taken


def _gaussian_spectrum(clip: np.ndarray, sigma: float, size: int) -> np.ndarray:
    n = len(clip)
    window = np.exp(-0.5 * ((np.arange(n) - (n - 1) / 2) / (sigma * n)) ** 2)
    return np.abs(scipy.fft.rfft(np.asarray(clip, dtype=np.float64) * window, size))


def refine_near(windows: np.ndarray, coarse_hz: np.ndarray) -> np.ndarray:
    """(N, samples) 16 kHz windows and a model's f0 for each -> f0 from their first partials,
    where that is within FINE_GATE_CENTS of the model's; the model's elsewhere (also where it
    is 0 or not finite: unvoiced)."""
    windows = np.atleast_2d(windows)
    coarse = np.atleast_1d(np.asarray(coarse_hz, dtype=np.float64))
    fine = coarse.copy()
    for i in np.flatnonzero(np.isfinite(coarse) & (coarse > 0)):
        sounding = _sounding_part(windows[i])   # the Gaussian over the cut would bias the peaks
        if len(sounding) < FINE_MIN_SAMPLES:
            continue
        magnitude = _gaussian_spectrum(sounding, FINE_SIGMA, FINE_FFT)
        hz = _from_partials(magnitude, coarse[i], FINE_PARTIALS)
        if abs(1200.0 * np.log2(hz / coarse[i])) < FINE_GATE_CENTS:
            fine[i] = hz
    return fine


# --- low notes: where the network is weakest, a sure YIN estimate decides -------------------------
YIN_BELOW_HZ = 262.0             # under C4 ...
YIN_MIN_CONFIDENCE = 0.8         # ... an estimate with 1 - d' at least this replaces the network's
YIN_MIN_SAMPLES = 2 * MAX_LAG    # ... read from at least 80 ms of sound (two periods of its lowest pitch)


def refine_estimates(windows: np.ndarray, model_hz: np.ndarray) -> np.ndarray:
    """A model's estimates made fine (refine_near), and under C4 replaced by `estimate`'s where
    YIN is sure of the window's period, octave included. Below C3 the network misses a quarter of
    the notes of a font it never heard, mostly by octaves; YIN is sure of most low notes and
    right about them (docs/evaluation.md, "Results", measures both ways)."""
    windows = np.atleast_2d(windows)
    fine = refine_near(windows, model_hz)
    for i in np.flatnonzero(np.isfinite(fine) & (fine > 0) & (fine < YIN_BELOW_HZ)):
        sounding = _sounding_part(windows[i])
        if len(sounding) >= YIN_MIN_SAMPLES:
            hz, confidence = estimate(sounding[None])
            if np.isfinite(hz[0]) and confidence[0] >= YIN_MIN_CONFIDENCE:
                fine[i] = hz[0]
    return fine


def _sounding_part(window: np.ndarray) -> np.ndarray:
    """The window without digital silence at its ends (a frame half in a file's padding): YIN
    and the partials' window would read the cut as part of the sound."""
    sounding = np.flatnonzero(window)
    return window[sounding[0]:sounding[-1] + 1] if len(sounding) else window[:0]
