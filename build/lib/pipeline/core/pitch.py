"""Pitch arithmetic: Hz, MIDI numbers, note names, pitch-wheel bends, cents, and the one accuracy rule.

Every module that speaks about pitch imports it from here; it imports nothing but numpy
and the constants.

Conventions (mir_eval.melody's, with every clip a voiced frame):
- an estimate that is NaN, infinite, zero or negative is a miss ("unvoiced"); its error in
  cents is NaN, and it counts as wrong in every accuracy;
- a pitch is correct within T cents when |error| < T (strict, as mir_eval);
- an octave error is an error within CENT_TOLERANCE of a nonzero multiple of 1200 cents.
"""

from __future__ import annotations

import re

import numpy as np

from pipeline.core import constants as C

NOTE_NAMES = ("C", "Cs", "D", "Ds", "E", "F", "Fs", "G", "Gs", "A", "As", "B")
A4_MIDI, A4_HZ = 69, 440.0
_PITCH_CLASS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
_ACCIDENTAL = {"": 0, "#": 1, "s": 1, "♯": 1, "b": -1, "♭": -1}
NOTE_RE = re.compile(r"^([A-Ga-g])(#|s|b|♯|♭)?(-?\d)$")


# --- notes and frequencies ---------------------------------------------------------------
def midi_to_hz(midi: float | np.ndarray) -> float | np.ndarray:
    return A4_HZ * 2.0 ** ((np.asarray(midi, dtype=np.float64) - A4_MIDI) / 12.0)


def hz_to_midi(hz: float | np.ndarray) -> float | np.ndarray:
    return A4_MIDI + 12.0 * np.log2(np.asarray(hz, dtype=np.float64) / A4_HZ)


def note_name(midi: int) -> str:
    """MIDI 69 -> 'A4', 61 -> 'Cs4' (s for sharp, safe in file names)."""
    return f"{NOTE_NAMES[midi % 12]}{midi // 12 - 1}"


def note_to_midi(text: str) -> int | None:
    """'A4' -> 69, 'Cs4'/'C#4' -> 61, 'Db4' -> 61, 'Cb4' -> 59; None if `text` is not a note name."""
    match = NOTE_RE.match(text.strip())
    if not match:
        return None
    letter, accidental, octave = match.groups()
    midi = (int(octave) + 1) * 12 + _PITCH_CLASS[letter.upper()] + _ACCIDENTAL[accidental or ""]
    return midi if C.MIDI_MIN <= midi <= C.MIDI_MAX else None


# --- the pitch wheel -----------------------------------------------------------------------
def bend_for_cents(cents: float) -> int:
    """Nearest 14-bit pitch-wheel offset (-8192..8191) for a detune in cents."""
    value = round(cents / C.PITCH_BEND_RANGE_CENTS * C.PITCH_BEND_CENTER)
    return int(np.clip(value, -C.PITCH_BEND_CENTER, C.PITCH_BEND_CENTER - 1))


def cents_for_bend(bend: int) -> float:
    """The exact detune a wheel offset produces: the label uses this, not the request."""
    return bend * C.PITCH_BEND_RANGE_CENTS / C.PITCH_BEND_CENTER


# --- errors and the accuracy rule ----------------------------------------------------------
def voiced(est_hz) -> np.ndarray:
    """True where an estimate is a usable frequency (finite and positive)."""
    est = np.asarray(est_hz, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return np.isfinite(est) & (est > 0)


def cents(ref_hz, est_hz) -> np.ndarray:
    """Signed error 1200·log2(est/ref) per clip; NaN where the estimate is a miss."""
    ref = np.asarray(ref_hz, dtype=np.float64)
    est = np.asarray(est_hz, dtype=np.float64)
    ok = voiced(est)
    out = np.full(ref.shape, np.nan)
    out[ok] = 1200.0 * np.log2(est[ok] / ref[ok])
    return out


def within(cents_error, tolerance: float = C.CENT_TOLERANCE) -> np.ndarray:
    """True where |error| < tolerance cents (strict, as mir_eval); a miss (NaN) is outside."""
    with np.errstate(invalid="ignore"):
        return np.abs(np.asarray(cents_error, dtype=np.float64)) < tolerance


def octave_errors(cents_error) -> np.ndarray:
    """True where an error lies within CENT_TOLERANCE of a nonzero multiple of 1200 cents."""
    cents_error = np.asarray(cents_error, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        octaves = np.round(cents_error / 1200.0)
        return (octaves != 0) & (np.abs(cents_error - 1200.0 * octaves) < C.CENT_TOLERANCE)
