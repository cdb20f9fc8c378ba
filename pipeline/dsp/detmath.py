"""Elementwise math that gives the same bits on every x86-64 machine.

numpy's float64 sin/cos/exp/log/power take different SIMD code (AVX-512, AVX2, SSE) on
different CPUs and may differ in the last bit. Per-sample arrays therefore use only +, -, *,
/, sqrt, floor, cumsum and table lookups; libm results only fill SMALL tables, rounded to a
2^-24 grid (`snap`) so that a last-bit difference vanishes. Sums over samples use `det_sum`
(a sequential cumulative sum), never np.sum/np.dot (pairwise or BLAS order varies).
"""

from __future__ import annotations

import numpy as np

SNAP_BITS = 24
LN2 = 0.6931471805599453          # ln 2 as a literal: no libm call at all
_SINE_SIZE = 1 << 16              # linear interpolation error (2π/N)²/8 = 1.2e-9, below the snap
_EXP2_SIZE = 1 << 10              # 2^(j/1024); the remainder by a 5-term series, error < 1e-17


def snap(x) -> np.ndarray:
    """Round to a 2^-24 grid, so that last-bit differences between libm builds vanish."""
    scale = 2.0 ** SNAP_BITS
    return np.round(np.asarray(x, dtype=np.float64) * scale) / scale


def _table(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    values = snap(values)
    values.flags.writeable = False
    slope = np.append(np.diff(values), 0.0)            # differences of grid values: exact
    slope.flags.writeable = False
    return values, slope


_SINE, _SINE_SLOPE = _table(np.sin(2 * np.pi * np.arange(_SINE_SIZE + 1) / _SINE_SIZE))
_EXP2, _EXP2_SLOPE = _table(2.0 ** (np.arange(_EXP2_SIZE + 1) / _EXP2_SIZE))


def sin_turns(turns) -> np.ndarray:
    """sin(2π·turns) from a 65,536-entry table, linearly interpolated (error < 4e-8)."""
    turns = np.asarray(turns, dtype=np.float64)
    position = (turns - np.floor(turns)) * _SINE_SIZE   # in [0, N]; N itself is a valid entry
    index = position.astype(np.int64)
    return _SINE[index] + _SINE_SLOPE[index] * (position - index)


def cos_turns(turns) -> np.ndarray:
    """cos(2π·turns), as `sin_turns` a quarter turn on."""
    return sin_turns(np.asarray(turns, dtype=np.float64) + 0.25)


def exp2(x) -> np.ndarray:
    """2**x to a relative 3e-8 (5e-5 cents): a 1,025-entry table times a short series."""
    x = np.asarray(x, dtype=np.float64)
    whole = np.floor(x)
    position = (x - whole) * _EXP2_SIZE
    index = position.astype(np.int64)
    r = (position - index) * (LN2 / _EXP2_SIZE)        # 0 <= r < 6.8e-4
    series = 1.0 + r * (1.0 + r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0))))
    return np.ldexp(_EXP2[index] * series, whole.astype(np.int64))


def db_to_gain(db) -> np.ndarray:
    """10**(db/20) through `exp2` (log2(10)/20 as a literal)."""
    return exp2(np.asarray(db, dtype=np.float64) * 0.1660964047443681)


def smoothstep(x) -> np.ndarray:
    """0 below 0, 1 above 1, 3x²-2x³ between: a C1 ramp by arithmetic only."""
    x = np.clip(np.asarray(x, dtype=np.float64), 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def smootherstep(x) -> np.ndarray:
    """0 below 0, 1 above 1, 6x⁵-15x⁴+10x³ between: a C2 ramp (its spectrum falls faster)."""
    x = np.clip(np.asarray(x, dtype=np.float64), 0.0, 1.0)
    return x * x * x * (x * (6.0 * x - 15.0) + 10.0)


def det_sum(x) -> float:
    """Σx in a fixed sequential order (np.sum's pairwise blocks may follow the SIMD width)."""
    x = np.asarray(x, dtype=np.float64).ravel()
    return float(np.cumsum(x)[-1]) if x.size else 0.0


def moving_average(x: np.ndarray, width: int) -> np.ndarray:
    """Centred boxcar mean of `width` samples along axis 0, edges padded with the end values."""
    width = max(int(width), 1)
    x = np.asarray(x, dtype=np.float64)
    before, after = width // 2, width - 1 - width // 2
    padded = np.concatenate([np.repeat(x[:1], before, axis=0), x, np.repeat(x[-1:], after, axis=0)])
    total = np.cumsum(np.concatenate([np.zeros_like(x[:1]), padded]), axis=0)
    return (total[width:] - total[:-width]) / width
