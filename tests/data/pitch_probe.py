"""An f0 estimator for the tests, independent of the synthesis, and the label it is compared with.

The audio goes to 16 kHz with soxr (VHQ, as the dataset does); nothing else of the
synthesis is used. Per frame (centre c):

1. coarse: YIN's cumulative-mean-normalised difference function (40 and 20 ms windows, the
   more periodic kept; on the 16 kHz audio upsampled 4x) finds the period: the first dip
   under 0.15 (else the deepest), moved to 2x or 3x that lag while one of those is more than
   twice as periodic (unless the first dip is under 0.02);
2. fine, twice: the window W is a whole number of periods (>= 2, 12-40 ms); the audio around
   c is low-passed at 3.5x f0 and upsampled 8x (FFT); the Hann-weighted difference
   d(τ) = Σ_j h_j (y[c - W/2 - τ/2 + j] - y[c - W/2 + τ/2 + j])² is walked downhill from the
   coarse lag and a parabola through its minimum gives the period (to ~0.01 cent).

Each compared pair is centred in [c - W/2, c + W/2] with weight h, so the estimate is the
Hann-weighted mean period there: `window_label` is that mean of the label. A whole number
of periods under a Hann window weights every part of the cycle alike, and the low-pass keeps
sharp waveform edges (a voice's glottal closures) from deciding which instants count; with
both, a sawtooth glide of 1,200 cents/s is measured within 0.2 cent of the label.
"""

from __future__ import annotations

import numpy as np
import soxr

RATE = 16_000
UP = 8
THRESHOLD = 0.15
TRUSTED = 0.02
PERIODS_PER_WINDOW = 2
WINDOW_S = (0.012, 0.04)     # shortest and longest window
LOWPASS_HARMONICS = 3.5
COARSE_UP = 4
COARSE_WINDOWS_S = (0.04, 0.02)


def to_16k(audio: np.ndarray, sr: int) -> np.ndarray:
    return soxr.resample(np.asarray(audio, dtype=np.float64), sr, RATE, quality="VHQ")


def cents(estimate, reference) -> np.ndarray:
    return 1200.0 * np.log2(np.asarray(estimate) / np.asarray(reference))


def yin_coarse(x: np.ndarray, centres: np.ndarray, window: int, fmin: float, fmax: float, rate: int = RATE):
    """Period (samples of `rate`, parabolic) and CMNDF minimum per frame centre (samples)."""
    low, high = int(rate // fmax), int(np.ceil(rate / fmin)) + 1
    starts = centres - (window + high) // 2
    padded = np.concatenate([np.zeros(window + high), x, np.zeros(window + high)])
    index = starts[:, None] + (window + high) + np.arange(window + high)[None, :]
    frames = padded[index]
    size = 1 << int(np.ceil(np.log2(2 * (window + high))))
    head = np.fft.rfft(frames[:, :window], size)
    whole = np.fft.rfft(frames, size)
    corr = np.fft.irfft(np.conj(head) * whole, size)[:, : high + 1]
    energy = np.cumsum(np.concatenate([np.zeros((len(frames), 1)), frames ** 2], axis=1), axis=1)
    lagged = energy[:, window: window + high + 1] - energy[:, : high + 1]
    d = np.maximum(energy[:, window:window + 1] + lagged - 2 * corr, 0.0)
    cmndf = np.ones_like(d)
    running = np.cumsum(d[:, 1:], axis=1)
    cmndf[:, 1:] = d[:, 1:] * np.arange(1, high + 1) / np.where(running > 0, running, 1.0)
    periods, minima = np.full(len(frames), np.nan), np.ones(len(frames))
    for i, row in enumerate(cmndf):
        tau = _first_dip(row, low, high)
        if tau is None:
            continue
        a, b, c = row[tau - 1], row[tau], row[min(tau + 1, high)]
        shift = 0.5 * (a - c) / (a - 2 * b + c) if a - 2 * b + c > 0 else 0.0
        periods[i], minima[i] = tau + shift, b
    return periods, minima


def _first_dip(row: np.ndarray, low: int, high: int):
    """YIN's first dip under THRESHOLD (else the deepest), then on to 2x or 3x that lag while
    one is more than twice as periodic: a strong 2nd or 3rd harmonic must not cut the period."""
    below = np.flatnonzero(row[low:high] < THRESHOLD)
    tau = low + int(below[0]) if below.size else low + int(np.argmin(row[low:high]))
    tau = _walk_down(row, tau, high)
    moved = True
    while moved and _floor(row, tau) >= TRUSTED:       # a first dip this deep is trusted as it is
        moved = False
        for k in (2, 3):
            if k * tau + 3 >= high:
                break
            multiple = _walk_down(row, k * tau - 2, high)
            if abs(multiple - k * tau) <= k and _floor(row, multiple) < 0.5 * _floor(row, tau):
                tau, moved = multiple, True
                break
    return tau if tau > max(low, 1) else None


def _floor(row: np.ndarray, tau: int) -> float:
    """The dip's depth between lags, from a parabola through it (an integer lag can sit
    half a sample off a sharp dip)."""
    a, b, c = row[tau - 1], row[tau], row[tau + 1]
    curve = a - 2 * b + c
    return max(b - (a - c) ** 2 / (8 * curve), 0.0) if curve > 0 else b


def _walk_down(row: np.ndarray, tau: int, high: int) -> int:
    while tau + 1 < high and row[tau + 1] < row[tau]:
        tau += 1
    return tau


def refine(x: np.ndarray, centres: np.ndarray, windows: np.ndarray, periods: np.ndarray) -> np.ndarray:
    """Period in 16 kHz samples: per frame, the audio low-passed at LOWPASS_HARMONICS x the
    coarse f0 and upsampled 8x (both by FFT), then the difference function around the coarse
    period and a parabola through its minimum. The low-pass spreads the difference function's
    weight over the whole cycle (a voice's or sawtooth's sharp edges would otherwise decide)."""
    out = np.full(len(centres), np.nan)
    margin = 320                                                  # 20 ms: the filter's tails
    for i, (c, window, period) in enumerate(zip(centres, windows, periods)):
        if not np.isfinite(period):
            continue
        size = 1 << int(np.ceil(np.log2(window + period + 2 * margin + 4)))
        span = int(round(window * UP))
        first = int(c) - size // 2
        segment = x[max(first, 0): first + size]
        segment = np.pad(segment, (max(-first, 0), size - segment.size - max(-first, 0)))
        spectrum = np.fft.rfft(segment)
        f = np.arange(spectrum.size) * (RATE / size)
        cutoff = LOWPASS_HARMONICS * RATE / period
        taper = np.clip((2 * cutoff - f) / cutoff, 0.0, 1.0)       # 1 below the cutoff, 0 from 2x on
        spectrum *= taper * taper * (3 - 2 * taper)
        y = np.fft.irfft(spectrum, size * UP) * UP
        hann = np.sin(np.pi * (np.arange(span) + 0.5) / span) ** 2
        centre = round(period * UP)
        for _ in range(40):                  # downhill: the coarse period is a 40 ms average
            lags = np.arange(centre - 12, centre + 13)
            d = _difference(y, (c - first) * UP - span // 2 - lags // 2, lags, hann)
            k = int(np.argmin(d))
            if 0 < k < len(lags) - 1:
                break
            centre = lags[k]
        a, b, c2 = d[k - 1], d[k], d[k + 1]
        shift = 0.5 * (a - c2) / (a - 2 * b + c2) if a - 2 * b + c2 > 0 else 0.0
        out[i] = (lags[k] + shift) / UP
    return out


def _difference(y, starts, lags, weights) -> np.ndarray:
    """Σ_j w_j (y[s + j] - y[s + lag + j])² for each (start s, lag) pair."""
    j = np.arange(len(weights))
    diffs = y[starts[:, None] + j[None, :]] - y[starts[:, None] + lags[:, None] + j[None, :]]
    return np.einsum("ij,ij->i", diffs * weights, diffs)


def estimate(audio: np.ndarray, sr: int, times: np.ndarray, fmin: float, fmax: float,
             periods_per_window: float = PERIODS_PER_WINDOW, window_s=WINDOW_S):
    """f0 (Hz; NaN where no period), the window used (s) and the CMNDF minimum at each time.

    The window is a whole number of coarse periods: at least `periods_per_window`, at least
    window_s[0] long, at most window_s[1] (a fast f0 change moves less within a short window;
    whole periods weight every part of the cycle alike).
    """
    x = to_16k(audio, sr)
    centres = np.round(np.asarray(times) * RATE).astype(np.int64)
    # coarse at 4x (a dip between two 16 kHz lags would look shallow and lose to the octave below)
    # and with a 40 and a 20 ms window, keeping the more periodic (a fast glide blurs the long one)
    up = soxr.resample(x, RATE, COARSE_UP * RATE, quality="VHQ")
    found = [yin_coarse(up, centres * COARSE_UP, round(w * RATE) * COARSE_UP, fmin, fmax, COARSE_UP * RATE)
             for w in COARSE_WINDOWS_S]
    (long_period, long_min), (short_period, short_min) = found
    short = (short_min < long_min) & np.isfinite(short_period)
    period = np.where(short, short_period, long_period) / COARSE_UP
    minima = np.where(short, short_min, long_min)
    for _ in range(2):       # the coarse period is a 40 ms average: set the window again from the first pass
        windows = _whole_periods(period, periods_per_window, window_s)
        period = refine(x, centres, windows, period)
    return RATE / period, windows / RATE, minima


def _whole_periods(period: np.ndarray, at_least: float, window_s) -> np.ndarray:
    period = np.nan_to_num(period, nan=window_s[0] * RATE)
    count = np.maximum(np.ceil(window_s[0] * RATE / period), at_least)
    count = np.maximum(np.minimum(count, np.floor(window_s[1] * RATE / period)), 1)
    return count * period


def window_label(f0: np.ndarray, sr: int, times: np.ndarray, windows_s) -> np.ndarray:
    """The label's Hann-weighted mean period over [t - W/2, t + W/2], as a frequency (NaN if
    any sample there is unvoiced): what `refine`'s weighted difference function measures."""
    out = np.full(len(times), np.nan)
    for i, (t, window) in enumerate(zip(times, np.broadcast_to(windows_s, np.shape(times)))):
        first = max(0, int(np.ceil((t - window / 2) * sr)))
        part = f0[first: int(np.floor((t + window / 2) * sr)) + 1]
        if part.size and np.all(part > 0):
            weight = np.sin(np.pi * ((first + np.arange(part.size)) / sr - (t - window / 2)) / window) ** 2
            out[i] = np.sum(weight) / np.sum(weight / part)
    return out


def clean_frames(f0: np.ndarray, sr: int, times: np.ndarray, window_s: float, margin_s: float = 0.02) -> np.ndarray:
    """Frames whose whole analysis span (window plus one period), widened by `margin_s` each
    side, is voiced: none of it within `margin_s` of a voicing edge."""
    voiced = f0 > 0
    out = np.zeros(len(times), dtype=bool)
    for i, t in enumerate(times):
        at = min(max(round(t * sr), 0), f0.size - 1)
        if not voiced[at]:
            continue
        half = window_s / 2 + 0.5 / f0[at] + margin_s
        lo, hi = round((t - half) * sr), round((t + half) * sr)
        out[i] = lo >= 0 and hi < f0.size and bool(np.all(voiced[lo:hi + 1]))
    return out


def unvoiced_frames(f0: np.ndarray, sr: int, times: np.ndarray, window_s: float, margin_s: float = 0.02) -> np.ndarray:
    """Frames whose window, widened by `margin_s` each side, is entirely unvoiced."""
    out = np.zeros(len(times), dtype=bool)
    for i, t in enumerate(times):
        lo, hi = round((t - window_s / 2 - margin_s) * sr), round((t + window_s / 2 + margin_s) * sr)
        out[i] = lo >= 0 and hi < f0.size and bool(np.all(f0[lo:hi + 1] == 0))
    return out


def periodicity(audio: np.ndarray, sr: int, times: np.ndarray, window_s: float, fmin=50.0, fmax=1100.0):
    """Per frame: the highest normalised autocorrelation over lags 1/fmax..1/fmin, and the
    frame's RMS level (dB re `audio`'s own RMS over the whole clip)."""
    x = to_16k(audio, sr)
    window = round(window_s * RATE)
    low, high = int(RATE // fmax), int(np.ceil(RATE / fmin))
    reference = np.sqrt(np.mean(x * x)) or 1.0
    peaks, levels = np.full(len(times), np.nan), np.full(len(times), -np.inf)
    for i, t in enumerate(times):
        a = int(round(t * RATE)) - (window + high) // 2
        if a < 0 or a + window + high > x.size:
            continue
        seg = x[a: a + window + high]
        head = seg[:window]
        e0 = head @ head
        levels[i] = 10 * np.log10(e0 / window / reference ** 2 + 1e-30)
        others = np.lib.stride_tricks.sliding_window_view(seg, window)[low: high + 1]
        energy = np.einsum("ij,ij->i", others, others)
        peaks[i] = np.max(others @ head / np.sqrt(e0 * energy + 1e-30))
    return peaks, levels


def rpa(errors_cents: np.ndarray, tolerance: float) -> float:
    errors = np.asarray(errors_cents)
    return float(np.mean(np.abs(errors) <= tolerance)) if errors.size else float("nan")
