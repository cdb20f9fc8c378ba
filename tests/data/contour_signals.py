"""The test contours, per sample, built with detmath (so they are bit-for-bit too)."""

import numpy as np

from pipeline.dsp.detmath import exp2, sin_turns, smoothstep

C2_HZ, C6_HZ = 65.40639132514966, 1046.5022612023945


def times(seconds: float, sr: int) -> np.ndarray:
    return np.arange(round(seconds * sr)) / sr


def steady(sr: int, hz: float = 220.0, seconds: float = 2.0) -> np.ndarray:
    return np.full(round(seconds * sr), hz)


def vibrato(sr: int, hz: float = 440.0, cents: float = 50.0, rate: float = 5.5, seconds: float = 3.0) -> np.ndarray:
    """±`cents` around `hz` at `rate` Hz."""
    return hz * exp2(cents * sin_turns(rate * times(seconds, sr)) / 1200)


def glide(sr: int, low: float = C2_HZ, octaves: float = 4.0, seconds: float = 4.0) -> np.ndarray:
    """C2 to C6 (4 octaves) over 4 s, exponential (1,200 cents/s)."""
    return low * exp2(octaves * times(seconds, sr) / seconds)


def trill(sr: int, hz: float = 330.0, rate: float = 7.0, transition_s: float = 0.03,
          seconds: float = 3.0) -> np.ndarray:
    """A semitone trill: `rate` cycles a second between hz and a semitone up, 30 ms smoothsteps."""
    cycle = rate * times(seconds, sr)
    within = cycle - np.floor(cycle)
    ramp = transition_s * rate
    return hz * exp2((smoothstep(within / ramp) - smoothstep((within - 0.5) / ramp)) / 12)


def gappy(sr: int, hz: float = 300.0) -> np.ndarray:
    """Voiced 300 ms, silent 100, voiced 200, silent 150, voiced 250, silent 50 (f0 0 or NaN)."""
    parts = [(0.3, hz), (0.1, 0.0), (0.2, hz * 1.5), (0.15, np.nan), (0.25, hz * 0.75), (0.05, 0.0)]
    return np.concatenate([np.full(round(s * sr), v) for s, v in parts])
