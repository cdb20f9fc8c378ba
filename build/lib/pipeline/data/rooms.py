"""Rooms and microphones: what the space and the microphone do to a note, as linear filters.

A synthetic room impulse response (direct sound, sparse early reflections, a noise tail that
decays at its RT60 below 1 kHz and faster above) and a microphone/EQ chain of biquads (a low
cut, shelves, peaks, sometimes a telephone-like low-pass). Both are linear and time-invariant:
they change a partial's level and phase, never its frequency, so a note keeps its label.
pipeline/data/augmentation.py draws their parameters per note and runs them in its chain.

The specs round their floats on construction (`Rounded`), so repr(spec) rebuilds a spec
exactly and the same spec gives the same samples in any process.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
from scipy import fft, signal

from pipeline.core import constants as C
from pipeline.core.errors import PipelineError

DIGITS = 3                      # spec floats are rounded to this many decimals: the repr rebuilds the spec

# --- Room -------------------------------------------------------------------------------
DECAY_NEPERS = math.log(1000.0)  # amplitude falls by e^this (60 dB) over one RT60
RIR_TAIL_RT60S = 1.2            # an RIR lasts this many RT60s of its slowest band: 72 dB of decay
RIR_BAND_HZ = tuple(125.0 * 2.0**k for k in range(7))  # octave bands of the tail, 125 Hz .. 8 kHz
DAMPING_FROM_HZ = 1000.0        # bands above this decay faster (air and walls absorb high frequencies)
DAMPING_OCTAVES = 3.0           # ... reaching RT60 x hf_decay three octaves up (8 kHz)
EARLY_WINDOW_MS = 40.0          # early reflections arrive within this after the pre-delay; the tail fades in over it
EARLY_SPREAD_MS = 5.0           # a reflection carries the tail's energy of this long at its time: sparse, strong

# --- Microphone and EQ ------------------------------------------------------------------
FILTER_KINDS = ("highpass", "lowpass", "lowshelf", "highshelf", "peaking")
PASS_ORDER = {"highpass": 2, "lowpass": 4}  # Butterworth: a mic's 12 dB/octave low cut; a steep band limit
SHELF_Q = 1.0 / math.sqrt(2.0)  # the cookbook's shelf slope S = 1: no overshoot


def rounded(value):
    if isinstance(value, float):
        return round(value, DIGITS)
    if isinstance(value, tuple):
        return tuple(rounded(v) for v in value)
    return value


class Rounded:
    """Frozen dataclasses whose float fields are rounded on construction, so repr(spec) rebuilds it."""

    def __post_init__(self):
        for f in dataclasses.fields(self):
            object.__setattr__(self, f.name, rounded(getattr(self, f.name)))


@dataclass(frozen=True)
class RoomSpec(Rounded):
    rt60: float                 # s, below 1 kHz
    drr_db: float               # direct-to-reverberant energy ratio
    predelay_ms: float          # direct sound to first reflection
    early_reflections: int
    hf_decay: float             # RT60 at 8 kHz / RT60 below 1 kHz (1 = no damping)
    seed: int


@dataclass(frozen=True)
class Band(Rounded):
    kind: str                   # one of FILTER_KINDS
    freq_hz: float              # cutoff, shelf midpoint or peak centre
    gain_db: float = 0.0        # shelves and peaks
    q: float = SHELF_Q          # peaks (shelves keep SHELF_Q; pass filters are Butterworth)


@dataclass(frozen=True)
class EqSpec:
    bands: tuple[Band, ...]


# --- Room -------------------------------------------------------------------------------

def _band_rt60(rt60: float, hf_decay: float) -> np.ndarray:
    octaves_up = np.clip(np.log2(np.array(RIR_BAND_HZ) / DAMPING_FROM_HZ) / DAMPING_OCTAVES, 0.0, 1.0)
    return rt60 * hf_decay**octaves_up


def _decaying_noise(rng: np.random.Generator, n: int, rate: int, band_rt60: np.ndarray) -> np.ndarray:
    """Gaussian noise split into octave bands that each decay at their own RT60, then summed.

    The bands are triangular in log frequency and sum to one, so at time 0 the tail is white.
    """
    size = fft.next_fast_len(n, real=True)  # an RIR's length can be a large prime: FFTs at it are slow
    spectrum = fft.rfft(rng.standard_normal(size))
    freqs = fft.rfftfreq(size, 1.0 / rate)
    position = np.clip(np.log2(np.maximum(freqs, RIR_BAND_HZ[0]) / RIR_BAND_HZ[0]), 0, len(RIR_BAND_HZ) - 1)
    t = np.arange(n) / rate
    tail = np.zeros(n)
    for band, t60 in enumerate(band_rt60):
        weight = np.clip(1.0 - np.abs(position - band), 0.0, 1.0)
        tail += fft.irfft(spectrum * weight, size)[:n] * np.exp(-DECAY_NEPERS * t / t60)
    return tail


def _early_reflections(rng: np.random.Generator, n: int, rate: int, rt60: float, start: int,
                       count: int) -> np.ndarray:
    """Sparse signed impulses from the pre-delay on, as strong as EARLY_SPREAD_MS of the tail."""
    early = np.zeros(n)
    if count <= 0:
        return early
    window = EARLY_WINDOW_MS * rate / 1000.0
    times = np.minimum(start + np.round(np.sort(rng.uniform(0.0, window, count))).astype(int), n - 1)
    times[0] = start            # the first reflection defines the pre-delay
    amplitude = np.exp(-DECAY_NEPERS * times / rate / rt60) * math.sqrt(EARLY_SPREAD_MS * rate / 1000.0)
    signs = rng.choice([-1.0, 1.0], count)
    np.add.at(early, times, amplitude * rng.uniform(0.5, 1.0, count) * signs)
    return early


def room_impulse_response(rt60: float, drr_db: float, rate: int = C.SAMPLE_RATE,
                          seed: int | np.random.Generator = 0, *, predelay_ms: float = 10.0,
                          early_reflections: int = 6, hf_decay: float = 0.5) -> np.ndarray:
    """A synthetic room: the direct sound at sample 0 (the note keeps its timing), sparse early
    reflections from the pre-delay on, and a noise tail decaying at RT60 below 1 kHz and faster
    above (x hf_decay at 8 kHz). Scaled to unit energy, direct/rest = drr_db. float32."""
    if rt60 <= 0 or not 0 < hf_decay <= 1:
        raise PipelineError(f"room: rt60 {rt60} s and hf_decay {hf_decay} must be positive (hf_decay at most 1)")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    band_rt60 = _band_rt60(rt60, hf_decay)
    start = max(1, round(predelay_ms * rate / 1000.0))
    n = start + math.ceil(RIR_TAIL_RT60S * float(band_rt60.max()) * rate)
    tail = _decaying_noise(rng, n, rate, band_rt60)
    # the diffuse tail builds up over the early window while the first reflections stand out
    fade = np.clip((np.arange(n) - start) / (EARLY_WINDOW_MS * rate / 1000.0), 0.0, 1.0)
    reverb = tail * np.sin(0.5 * np.pi * fade) ** 2 + _early_reflections(rng, n, rate, rt60, start,
                                                                        early_reflections)
    direct_share = 10.0 ** (drr_db / 10.0)
    rir = reverb * math.sqrt(1.0 / (1.0 + direct_share) / float(np.sum(reverb**2)))
    rir[0] = math.sqrt(direct_share / (1.0 + direct_share))
    return rir.astype(np.float32)


def reverberate(audio: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """audio convolved with rir, cut to the input's length (the tail past the end is dropped)."""
    x = np.asarray(audio, dtype=np.float64)
    if x.size == 0:
        return x.astype(np.float32)
    return signal.oaconvolve(x, np.asarray(rir, dtype=np.float64))[: x.size].astype(np.float32)


# --- Microphone and EQ ---------------------------------------------------------------

def _cookbook_sos(band: Band, rate: int) -> np.ndarray:
    """Shelf or peaking biquad from the Audio EQ Cookbook (R. Bristow-Johnson), one sos row."""
    a = 10.0 ** (band.gain_db / 40.0)
    w0 = 2.0 * np.pi * band.freq_hz / rate
    cos, alpha = math.cos(w0), math.sin(w0) / (2.0 * (band.q if band.kind == "peaking" else SHELF_Q))
    if band.kind == "peaking":
        b = [1 + alpha * a, -2 * cos, 1 - alpha * a]
        den = [1 + alpha / a, -2 * cos, 1 - alpha / a]
    else:
        root = 2.0 * math.sqrt(a) * alpha
        sign = 1.0 if band.kind == "lowshelf" else -1.0  # the high shelf is the low one mirrored
        b = [a * ((a + 1) - sign * (a - 1) * cos + root), 2 * sign * a * ((a - 1) - sign * (a + 1) * cos),
             a * ((a + 1) - sign * (a - 1) * cos - root)]
        den = [(a + 1) + sign * (a - 1) * cos + root, -2 * sign * ((a - 1) + sign * (a + 1) * cos),
               (a + 1) + sign * (a - 1) * cos - root]
    return np.array([[*(v / den[0] for v in b), 1.0, den[1] / den[0], den[2] / den[0]]])


def eq_sos(eq: EqSpec, rate: int = C.SAMPLE_RATE) -> np.ndarray:
    """The EQ's filters as one second-order-sections array (for sosfilt or sosfreqz)."""
    rows = []
    for band in eq.bands:
        if band.kind not in FILTER_KINDS:
            raise PipelineError(f"EQ band kind {band.kind!r} is not one of {FILTER_KINDS}; pick one of those")
        if not 0 < band.freq_hz < rate / 2:
            raise PipelineError(f"EQ {band.kind} at {band.freq_hz} Hz is outside 0..{rate / 2:g} Hz "
                                f"(Nyquist at {rate} Hz); move it inside")
        if band.kind in PASS_ORDER:
            rows.append(signal.butter(PASS_ORDER[band.kind], band.freq_hz, band.kind, fs=rate, output="sos"))
        else:
            rows.append(_cookbook_sos(band, rate))
    return np.vstack(rows) if rows else np.zeros((0, 6))


def colour(audio: np.ndarray, eq: EqSpec, rate: int = C.SAMPLE_RATE) -> np.ndarray:
    """audio through the EQ's biquads in order (causal, from rest: the note starts in silence)."""
    x = np.asarray(audio, dtype=np.float64)
    sos = eq_sos(eq, rate)
    return (signal.sosfilt(sos, x) if len(sos) and x.size else x).astype(np.float32)
