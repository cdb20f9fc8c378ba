"""YIN's cumulative mean normalised difference d'(lag) (de Cheveigne & Kawahara 2002), for many
windows at once: near 0 at a periodic window's period, near 1 everywhere for noise.

d(lag) = sum over the first W = n - max_lag samples of (x[j] - x[j + lag])^2, computed as
energy + shifted energy - 2 * cross-correlation (one FFT pair per window);
d'(lag) = d(lag) * lag / sum(d(1..lag)), and d'(0) = 1.
"""

from __future__ import annotations

import numpy as np
import scipy.fft


def cumulative_mean_normalized_difference(windows: np.ndarray, max_lag: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, n) windows -> (d' for lags 0..max_lag, shape (N, max_lag + 1); each window's energy
    over its first n - max_lag samples, 0 for silence)."""
    x = np.asarray(windows, dtype=np.float64)
    width = x.shape[1] - max_lag
    size = scipy.fft.next_fast_len(x.shape[1], real=True)
    cross = scipy.fft.irfft(np.conj(scipy.fft.rfft(x[:, :width], size)) * scipy.fft.rfft(x, size), size)
    lags = np.arange(max_lag + 1)
    energy = np.concatenate([np.zeros((len(x), 1)), np.cumsum(np.square(x), axis=1)], axis=1)
    shifted = energy[:, lags + width] - energy[:, lags]
    diff = np.maximum(cross[:, :1] + shifted - 2.0 * cross[:, :max_lag + 1], 0.0)
    running = np.cumsum(diff[:, 1:], axis=1)
    tiny = np.finfo(np.float64).tiny
    dprime = np.ones_like(diff)
    dprime[:, 1:] = np.where(running > tiny, diff[:, 1:] * lags[1:] / np.maximum(running, tiny), 1.0)
    return dprime, cross[:, 0]
