"""An f0 estimator for checking labels, independent of the label code: YIN (de Cheveigné &
Kawahara 2002) on 16 kHz audio, upsampled 4x internally so that the parabolic interpolation of
the difference function is accurate to a small fraction of a cent up to ~1.5 kHz.

Each frame k compares the W samples starting at s_k with the same span shifted by the period
T, so it sees [s_k, s_k + W + T]; s_k is chosen so that this span is centred on t_k for the T
found. `window` returns that span so a check can average a moving label over what the
estimator saw.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import soxr

UPSAMPLE = 4


@dataclass(frozen=True)
class YinTrack:
    times: np.ndarray        # frame centres (s)
    f0_hz: np.ndarray        # NaN where no period was found
    aperiodicity: np.ndarray  # the normalised difference at the period (0: perfectly periodic)
    window: np.ndarray       # (n, 2): the start and end (s) of the span each frame compared


def yin(audio16k: np.ndarray, times: np.ndarray, fmin: float = 50.0, fmax: float = 1600.0,
        window_s: float = 0.030, threshold: float = 0.15, sr: int = 16_000) -> YinTrack:
    x = soxr.resample(audio16k.astype(np.float64), sr, sr * UPSAMPLE, quality="VHQ")
    rate = sr * UPSAMPLE
    w = int(round(window_s * rate))
    tmin, tmax = int(np.floor(rate / fmax)), int(np.ceil(rate / fmin))
    span = w + tmax
    x = np.concatenate([np.zeros(span), x, np.zeros(span)])
    centres = np.round(times * rate).astype(np.int64) + span
    d = difference(x, centres - span // 2, w, tmax)       # first pass: span centred on t
    period, aper = pick_period(d, tmin, tmax, threshold)
    starts = centres - (w + np.round(np.nan_to_num(period, nan=tmax)).astype(np.int64)) // 2
    d = difference(x, starts, w, tmax)                     # second pass: centred for the period found
    period, aper = pick_period(d, tmin, tmax, threshold)
    f0 = np.where(np.isfinite(period), rate / period, np.nan)
    lo = (starts - span) / rate
    hi = lo + (w + np.nan_to_num(period)) / rate
    return YinTrack(times, f0, aper, np.stack([lo, hi], axis=1))


def difference(x: np.ndarray, starts: np.ndarray, w: int, tmax: int) -> np.ndarray:
    """d(tau) = sum_{j<w} (x[s+j] - x[s+j+tau])^2 for tau = 0..tmax, every start s (FFT)."""
    n = 1 << int(np.ceil(np.log2(w + tmax + w)))
    idx = starts[:, None] + np.arange(w + tmax)[None, :]
    seg = x[idx]
    head = seg[:, :w]
    spec = np.fft.rfft(seg, n) * np.conj(np.fft.rfft(head, n))
    r = np.fft.irfft(spec, n)[:, :tmax + 1]                # r(tau) = sum x[j] x[j+tau]
    energy = np.concatenate([np.zeros((len(seg), 1)), np.cumsum(seg ** 2, axis=1)], axis=1)
    e_tau = energy[:, w:w + tmax + 1] - energy[:, :tmax + 1]
    return np.maximum(energy[:, [w]] + e_tau - 2 * r, 0.0)


def pick_period(d: np.ndarray, tmin: int, tmax: int, threshold: float):
    """YIN steps 3-5: cumulative-mean normalisation, the first dip under the threshold (else the
    global minimum), parabolic interpolation of d around it."""
    tau = np.arange(d.shape[1])
    cum = np.cumsum(d[:, 1:], axis=1)
    dn = np.ones_like(d)
    dn[:, 1:] = d[:, 1:] * tau[1:] / np.maximum(cum, 1e-30)
    periods, apers = np.full(len(d), np.nan), np.full(len(d), np.nan)
    for i, row in enumerate(dn):
        t = first_dip(row, tmin, tmax, threshold)
        if t is None:
            continue
        a, b, c = d[i, t - 1], d[i, t], d[i, t + 1]
        denom = a - 2 * b + c
        shift = 0.5 * (a - c) / denom if denom > 0 else 0.0
        periods[i], apers[i] = t + np.clip(shift, -1, 1), row[t]
    return periods, apers


def first_dip(row: np.ndarray, tmin: int, tmax: int, threshold: float):
    below = np.flatnonzero(row[tmin:tmax] < threshold)
    if len(below):
        t = tmin + below[0]
        while t + 1 < tmax and row[t + 1] < row[t]:
            t += 1
    else:
        t = tmin + int(np.argmin(row[tmin:tmax]))
    if t <= tmin or t >= tmax - 1 or not np.isfinite(row[t]):
        return None
    return int(t)
