"""The spectrogram: one 513x90 scaled magnitude spectrogram per 5,280-sample clip (`spectrogram`),
or the columns of a whole recording's STFT (`spectrogram_columns`), bit for bit the same values.

Clips of another rate or length (`Stft.for_clips`) keep the STFT's durations: a 16 ms Hann
window every 3.5 ms, a 64 ms FFT (15.6 Hz bins up to the Nyquist frequency): at 44.1 kHz a
706-sample window, hop 155, 2,822-point FFT, 1,412 bins; the frames follow the clip's length.

Scaling, applied to scipy's magnitude spectrogram (mode="magnitude", scaling="density"):
- linear: the magnitude itself (tiny values; store as float32, float16 loses them);
- log: ln(magnitude + LOG_EPSILON), the default;
- db: 20 log10(magnitude + LOG_EPSILON).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.fft

from pipeline.core import constants as C
from pipeline.core.errors import PipelineError

# Floor added to the magnitude before the log: about 120 dB below full scale and above
# the 16-bit quantisation noise, so silence maps to one value instead of dither patterns.
LOG_EPSILON = 1e-6


@dataclass(frozen=True)
class Stft:
    """The spectrogram's geometry for clips of `samples` samples at `rate` Hz."""
    rate: int = C.SAMPLE_RATE
    samples: int = C.CLIP_SAMPLES
    window_length: int = C.WINDOW_LENGTH
    hop: int = C.HOP
    n_fft: int = C.N_FFT

    @classmethod
    def for_clips(cls, rate: int, samples: int) -> Stft:
        """The default's durations at another rate (the default itself at 16 kHz), for clips of any length."""
        scale = rate / C.SAMPLE_RATE
        window = round(C.WINDOW_LENGTH * scale)
        return cls(rate, samples, window, window - round(C.OVERLAP * scale), round(C.N_FFT * scale))

    @property
    def shape(self) -> tuple[int, int]:
        """(frequency bins, frames): (513, 90) for the default clips."""
        return self.n_fft // 2 + 1, 1 + (self.samples - self.window_length) // self.hop


DEFAULT_STFT = Stft()


def spectrogram(clips: np.ndarray, scaling: str = "log", out: np.ndarray | None = None,
                stft: Stft = DEFAULT_STFT) -> np.ndarray:
    """(N, 5280) clips -> (N, 513, 90) float32 scaled magnitude spectrograms (`stft.shape` for clips
    of another rate or length), written into `out` (any float dtype, e.g. rows of a memory map) when given.

    Bit for bit what `scipy.signal.spectrogram(clip, mode="magnitude")` and the scaling give
    per clip (tests and `make bench` check it), computed for the whole batch at once: the same
    float32 operations in the same order, minus scipy's detours that cannot change a value
    (a complex64 window and scale where both are real, an extra transpose).
    """
    clips = np.asarray(clips, dtype=np.float32)
    if clips.ndim == 1:
        clips = clips[None, :]
    if clips.ndim != 2 or clips.shape[1] != stft.samples:
        raise PipelineError(f"spectrogram expects clips of shape (N, {stft.samples}), got {clips.shape}; "
                            f"cut audio into {stft.samples}-sample clips at {stft.rate} Hz first")
    if scaling not in SCALINGS:
        raise PipelineError(f"unknown spectrogram scaling {scaling!r}; choose log, db or linear")
    if out is None:
        out = np.empty((len(clips), *stft.shape), dtype=np.float32)
    elif out.shape != (len(clips), *stft.shape):
        raise PipelineError(f"spectrogram output has shape {out.shape}, expected ({len(clips)}, "
                            f"{stft.shape[0]}, {stft.shape[1]})")
    for start in range(0, len(clips), CACHE_BATCH):
        _spectrogram_into(clips[start:start + CACHE_BATCH], scaling, out[start:start + CACHE_BATCH], stft)
    return out


def spectrogram_columns(audio: np.ndarray, scaling: str = "log", block: int = 2048) -> np.ndarray:
    """(samples,) audio -> (513, T) float32 scaled magnitude columns, T = 1 + (samples - 256) // 56.

    Column j is the frame at sample 56 * j, computed with the very operations of `spectrogram`,
    so columns j .. j + 89 are bit for bit the spectrogram of the clip starting at sample
    56 * j: a recording's STFT is computed once and every window reads its columns from it.
    `block` columns at a time keep the FFT buffers small whatever the length."""
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    if scaling not in SCALINGS:
        raise PipelineError(f"unknown spectrogram scaling {scaling!r}; choose log, db or linear")
    if len(audio) < C.CLIP_SAMPLES:
        raise PipelineError(f"audio of {len(audio)} samples is shorter than one {C.CLIP_SAMPLES}-sample window; "
                            "pad it first")
    total = 1 + (len(audio) - C.WINDOW_LENGTH) // C.HOP
    out = np.empty((C.N_FREQ_BINS, total), dtype=np.float32)
    for start in range(0, total, block):
        count = min(block, total - start)
        piece = audio[start * C.HOP:(start + count - 1) * C.HOP + C.WINDOW_LENGTH]
        _spectrogram_into(piece[None, :], scaling, out[None, :, start:start + count])
    return out


# clips per FFT call: their buffers stay in the core's L2 (measured: 2 beats 8, 16 is slower than a loop)
CACHE_BATCH = 2
SCALINGS = ("log", "db", "linear")


def _spectrogram_into(clips: np.ndarray, scaling: str, out: np.ndarray, stft: Stft = DEFAULT_STFT) -> None:
    window, density = spectrogram_window(stft.window_length, stft.rate)
    frames = np.lib.stride_tricks.sliding_window_view(clips, stft.window_length, axis=-1)[:, ::stft.hop]
    frames = frames - np.mean(frames, axis=-1, keepdims=True)  # scipy's detrend="constant"
    frames *= window
    spectrum = scipy.fft.rfft(frames, n=stft.n_fft, axis=-1)
    spectrum.view(np.float32)[...] *= density
    _scale_into(np.abs(spectrum), scaling, out.transpose(0, 2, 1))


@lru_cache(maxsize=4)
def spectrogram_window(length: int = C.WINDOW_LENGTH, rate: int = C.SAMPLE_RATE) -> tuple[np.ndarray, np.float32]:
    """scipy's window and density scale, as the float32 values its complex64 path uses."""
    window = (_periodic_hann(length) if C.WINDOW == "hann" else _scipy_window(length)).astype(np.complex64)
    density = np.sqrt(1.0 / (rate * (window * window).sum()))
    return window.real.copy(), np.float32(density.real)


def _periodic_hann(length: int = C.WINDOW_LENGTH) -> np.ndarray:
    """scipy.signal.get_window("hann", 256), computed as scipy's general_cosine does (a test
    checks the bits): importing scipy.signal would cost each worker a second."""
    fac = np.linspace(-np.pi, np.pi, length + 1)
    hann = np.zeros(length + 1)
    for k, a in enumerate((0.5, 0.5)):
        hann += a * np.cos(k * fac)
    return hann[:-1]


def _scipy_window(length: int = C.WINDOW_LENGTH) -> np.ndarray:
    import scipy.signal

    return scipy.signal.get_window(C.WINDOW, length)


def _scale_into(magnitude: np.ndarray, scaling: str, out: np.ndarray) -> None:
    """Write the documented scaling of a float32 magnitude into `out`, in place in `magnitude`
    first (contiguous, cheaper than computing into a transposed view), then one copy."""
    if scaling == "log":  # ln(magnitude + LOG_EPSILON), in float32 as numpy computes it
        np.log(np.add(magnitude, LOG_EPSILON, out=magnitude), out=magnitude)
    elif scaling == "db":  # 20 log10(magnitude + LOG_EPSILON)
        np.multiply(np.log10(np.add(magnitude, LOG_EPSILON, out=magnitude), out=magnitude), 20.0, out=magnitude)
    out[...] = magnitude
