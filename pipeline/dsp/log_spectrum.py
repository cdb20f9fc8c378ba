"""The frame model's input: every 10 ms, the log magnitude spectrum of the audio around that instant
on a log-frequency grid (48 bins an octave, 25 cents apart), from two windows at once.

Frame k is centred on sample k x 160 of the 16 kHz audio (t = k x 10 ms, CREPE's convention),
the audio zero-padded at both ends. Two Hann windows: 1,024 samples (64 ms: the pitch of a fast
vibrato or trill barely moves inside it) and 2,048 samples (128 ms: the partials of A0, 27.5 Hz
apart, fall in separate FFT bins). Each magnitude spectrum is mapped onto the grid by triangular
filters (each grid bin averages the FFT bins around it, interpolating where the grid is finer
than the FFT) and logged: ln(magnitude + LOG_FLOOR). Grid bin g is at GRID_LOW_HZ x 2^(g / 48):
12.5 Hz to 8 kHz.

`frame_spectra(audio)` gives (frames, 2, GRID_BINS) float32; `frame_spectra_at(audio, centres)`
the same for chosen frames only (training batches). Both take any length; memory grows with the
frames asked for, so a long recording is taken in blocks (pipeline.inference.frames).
"""

from __future__ import annotations

from functools import cache

import numpy as np
import scipy.fft
import scipy.sparse
from numpy.lib.stride_tricks import sliding_window_view

from pipeline.core import constants as C

HOP = 160                          # samples at 16 kHz: 10 ms
WINDOWS = (1024, 2048)             # the two windows' lengths: the channels, in this order
BINS_PER_OCTAVE = 48
GRID_LOW_HZ = 12.5                 # grid bin 0: an octave below the lowest candidate pitch
GRID_BINS = int(np.floor(BINS_PER_OCTAVE * np.log2(C.SAMPLE_RATE / 2 / GRID_LOW_HZ))) + 1   # 448: to 8 kHz
LOG_FLOOR = 1e-5                   # added to the magnitude before the log (about -100 dB of a full-scale sine)
PAD = max(WINDOWS) // 2            # zeros before the first sample and after the last


def grid_hz(bins: np.ndarray | None = None) -> np.ndarray:
    """The grid's frequencies (Hz): all of them, or those of the given (fractional) bins."""
    bins = np.arange(GRID_BINS) if bins is None else np.asarray(bins, dtype=np.float64)
    return GRID_LOW_HZ * 2.0 ** (bins / BINS_PER_OCTAVE)


@cache
def filterbank(window: int) -> scipy.sparse.csr_matrix:
    """(window/2 + 1, GRID_BINS) sparse weights: grid bin g is a triangle centred on its frequency,
    as wide as the larger of the grid's and the FFT's spacing there, normalised to sum 1."""
    fft_hz = np.arange(window // 2 + 1) * C.SAMPLE_RATE / window
    spacing = C.SAMPLE_RATE / window
    rows, cols, values = [], [], []
    for g, centre in enumerate(grid_hz()):
        width = max(centre * (2 ** (1 / BINS_PER_OCTAVE) - 1), spacing)
        near = np.flatnonzero(np.abs(fft_hz - centre) < width)
        weight = 1.0 - np.abs(fft_hz[near] - centre) / width
        rows += list(near)
        cols += [g] * len(near)
        values += list(weight / weight.sum())
    shape = (len(fft_hz), GRID_BINS)
    return scipy.sparse.csr_matrix((np.asarray(values, np.float32), (rows, cols)), shape=shape)


@cache
def hann(window: int) -> np.ndarray:
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(window) / window)).astype(np.float32)


def frame_count(samples: int) -> int:
    """Frames of audio this long: one every HOP samples from 0, the last at or before its end."""
    return 1 + max(samples - 1, 0) // HOP if samples else 0


def frame_spectra(audio: np.ndarray) -> np.ndarray:
    """(samples,) float audio at 16 kHz -> (frame_count, 2, GRID_BINS) float32 log magnitudes."""
    return frame_spectra_at(audio, np.arange(frame_count(len(audio))))


def frame_spectra_at(audio: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """The spectra of the frames whose indices are `centres` (frame k: centred on sample k x HOP)."""
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    padded = np.concatenate([np.zeros(PAD, np.float32), audio, np.zeros(PAD, np.float32)])
    return spectra_at_samples(padded, np.asarray(centres, dtype=np.int64) * HOP + PAD)


def spectra_at_samples(audio: np.ndarray, samples: np.ndarray, magnitudes: bool = False):
    """(len(samples), 2, GRID_BINS) log spectra of the windows centred on these samples of `audio`
    (float, or 16-bit integers read as /32768; every window must lie inside it). With
    `magnitudes`, also each window's linear magnitude spectra, in WINDOWS' order
    (pipeline/dsp/frame_refine.py)."""
    scale = np.float32(1 / 32768 if audio.dtype == np.int16 else 1.0)
    samples = np.asarray(samples, dtype=np.int64)
    out = np.empty((len(samples), len(WINDOWS), GRID_BINS), dtype=np.float32)
    linear = []
    for channel, window in enumerate(WINDOWS):
        magnitude = np.abs(scipy.fft.rfft(_windowed(audio, samples, window, scale), axis=-1))
        out[:, channel] = np.log(filterbank(window).T.dot(magnitude.T).T + LOG_FLOOR)
        linear.append(magnitude)
    return (out, linear) if magnitudes else out


def _windowed(audio: np.ndarray, samples: np.ndarray, window: int, scale: np.float32) -> np.ndarray:
    """(len(samples), window) float32: the Hann-windowed audio around each sample. Evenly spaced
    samples (a tracker's frames) are read through a strided view, not gathered: the same values,
    a copy fewer (a fifth of the time of the spectra)."""
    taper = hann(window) * scale
    steps = np.diff(samples)
    if len(samples) > 1 and steps[0] > 0 and (steps == steps[0]).all():
        start = samples[0] - window // 2
        view = sliding_window_view(audio, window)[start:start + steps[0] * (len(samples) - 1) + 1:steps[0]]
        return np.multiply(view, taper, dtype=np.float32)
    return np.asarray(audio[samples[:, None] - window // 2 + np.arange(window)[None, :]], dtype=np.float32) * taper
