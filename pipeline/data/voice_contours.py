"""The voice source's phrases: speech-like intonation and sung lines, as a per-sample f0 curve (the
label; 0 = unvoiced) and the segments that name its vowels, consonants and pauses.

`draw_speech_contour`: voiced stretches of 80-400 ms separated by consonants and pauses, with
declination, pitch accents, boundary tones and onset bumps. `draw_sung_line`: a scale inside the
register, legato portamento or detached notes, delayed vibrato, scoops. pipeline/data/voice.py
renders a voice along them. Deterministic as voice.py (pipeline/dsp/detmath.py).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from pipeline.data import contour_synth as cs
from pipeline.dsp.detmath import exp2, moving_average, sin_turns, smoothstep, snap

REGISTERS = ("male", "female", "child", "soprano")
VOWELS = ("i", "e", "ae", "a", "o", "u", "uh")
CONSONANTS = ("s", "sh", "f", "h", "p", "t", "k")
F0_RANGE_HZ = (50.0, 1100.0)
SPEECH_RANGE_HZ = {"male": (50.0, 300.0), "female": (110.0, 520.0), "child": (160.0, 650.0), "soprano": (120.0, 560.0)}
SPEECH_BASE_HZ = {"male": (85.0, 140.0), "female": (165.0, 240.0), "child": (230.0, 320.0), "soprano": (190.0, 260.0)}
SUNG_RANGE_HZ = {"male": (82.0, 523.0), "female": (165.0, 880.0), "child": (196.0, 880.0), "soprano": (247.0, 1100.0)}
VIBRATO_RATE_HZ = (4.5, 7.0)
VIBRATO_EXTENT_CENTS = (20.0, 120.0)   # peak to peak: ±10..±60 cents


@dataclass(frozen=True)
class Segment:
    """Samples [start, stop) of a phrase: kind 'voiced' (phone = a vowel), 'consonant' (phone
    = a consonant) or 'pause' (phone = '')."""
    start: int
    stop: int
    kind: str
    phone: str = ""


@dataclass(frozen=True, eq=False)
class Contour:
    """A drawn phrase: the per-sample f0 (the label; 0 = unvoiced) and its segments."""
    f0_hz: np.ndarray
    segments: tuple[Segment, ...]
    sr: int


def uniform_draw(rng: np.random.Generator, low: float, high: float, digits: int = 3) -> float:
    return round(float(rng.uniform(low, high)), digits)



def draw_speech_contour(rng: np.random.Generator, seconds: float, sr: int, register: str) -> Contour:
    """Speech-like intonation over `seconds`: voiced stretches of 80-400 ms (one or two vowels)
    separated by unvoiced consonants (40-150 ms, 75%) and pauses (150-450 ms); f0 in semitones
    = declination per breath group + pitch accents (2-6 st humps, half the stretches) + a
    boundary fall (2-6 st) or rise (3-8 st) before each pause and at the end + 0.5-1.5 st
    onset bumps after voiceless obstruents + a ±0.3 st wobble; each part rises or falls at
    40 st/s at most. The register's base f0 is drawn and the excursions are scaled into its
    range (SPEECH_RANGE_HZ)."""
    total = round(seconds * sr)
    segments = _speech_layout(rng, total, sr)
    t = np.arange(total) / sr
    semitones = (_declination(rng, segments, t, sr) + _accents(rng, segments, t, sr)
                 + _boundary_tones(rng, segments, t, sr) + _onset_bumps(rng, segments, t, sr)
                 + _wobble(rng, t, 0.08, 0.3))
    low, high = SPEECH_RANGE_HZ[register]
    base = uniform_draw(rng, *SPEECH_BASE_HZ[register], 1)
    voiced = _voiced_mask(segments, total)
    bounds = snap([12 * math.log2(low / base), 12 * math.log2(high / base)])   # libm scalars: snapped
    semitones = _fit_range(semitones, voiced, float(bounds[0]), float(bounds[1]))
    f0 = np.where(voiced, base * exp2(semitones / 12.0), 0.0)
    return Contour(f0, tuple(segments), sr)


def _speech_layout(rng: np.random.Generator, total: int, sr: int) -> list[Segment]:
    """A 50-250 ms pause, then voiced stretches and gaps while they fit, a pause to the end."""
    segments, at = [], round(uniform_draw(rng, 0.05, 0.25) * sr)
    segments.append(Segment(0, at, "pause"))
    end = total - round(0.05 * sr)
    while True:
        length = round(uniform_draw(rng, 0.08, 0.4) * sr)
        length = min(length, end - at)
        if length < round(0.08 * sr):
            break
        segments += vowels(rng, at, at + length, sr)
        at += length
        if rng.random() < 0.75:
            gap, kind, phone = round(uniform_draw(rng, 0.04, 0.15) * sr), "consonant", str(rng.choice(CONSONANTS))
        else:
            gap, kind, phone = round(uniform_draw(rng, 0.15, 0.45) * sr), "pause", ""
        if at + gap >= end - round(0.08 * sr):
            break
        segments.append(Segment(at, at + gap, kind, phone))
        at += gap
    segments.append(Segment(at, total, "pause"))
    return segments


def vowels(rng: np.random.Generator, start: int, stop: int, sr: int) -> list[Segment]:
    """One vowel, or two (a diphthong-like glide) in a stretch over 220 ms half the time."""
    first = str(rng.choice(VOWELS))
    if stop - start > 0.22 * sr and rng.random() < 0.5:
        split = start + round((stop - start) * uniform_draw(rng, 0.35, 0.65))
        return [Segment(start, split, "voiced", first), Segment(split, stop, "voiced", str(rng.choice(VOWELS)))]
    return [Segment(start, stop, "voiced", first)]


def _voiced_mask(segments, total: int) -> np.ndarray:
    voiced = np.zeros(total, dtype=bool)
    for s in segments:
        voiced[s.start:s.stop] |= s.kind == "voiced"
    return voiced


def stretches(segments, kind: str = "voiced") -> list[tuple[int, int]]:
    """Maximal runs of adjacent segments of `kind`, as (start, stop) samples."""
    runs = []
    for s in segments:
        if s.kind == kind and runs and runs[-1][1] == s.start:
            runs[-1] = (runs[-1][0], s.stop)
        elif s.kind == kind:
            runs.append((s.start, s.stop))
    return runs


def _bump(t: np.ndarray, centre: float, half_width: float) -> np.ndarray:
    """(1 - u²)² for |u| < 1, u = (t - centre)/half_width: a C1 hump of height 1."""
    u = np.clip((t - centre) / half_width, -1.0, 1.0)
    return (1.0 - u * u) ** 2


def _declination(rng, segments, t, sr) -> np.ndarray:
    """Each breath group (split at pauses) starts 0.5-3 st up and falls 1-4 st/s (7 st at most)."""
    out = np.zeros_like(t)
    groups = stretches([s if s.kind == "pause" else Segment(s.start, s.stop, "speech") for s in segments], "speech")
    for start, stop in groups:
        top, rate = uniform_draw(rng, 0.5, 3.0, 2), uniform_draw(rng, 1.0, 4.0, 2)
        span = slice(start, stop)
        out[span] = top - np.minimum(rate * (t[span] - start / sr), 7.0)
    return out


def _accents(rng, segments, t, sr) -> np.ndarray:
    out = np.zeros_like(t)
    for start, stop in stretches(segments):
        if rng.random() < 0.5:
            centre = (start + (stop - start) * uniform_draw(rng, 0.2, 0.8)) / sr
            height = uniform_draw(rng, 2.0, 6.0, 2)
            # steepest slope 1.54·height/half_width <= 39 st/s
            half_width = max(uniform_draw(rng, 0.1, 0.25), height / 25)
            out += height * _bump(t, centre, half_width)
    return out


def _boundary_tones(rng, segments, t, sr) -> np.ndarray:
    """Before each pause (and at the end): a fall of 2-6 st, or a rise of 3-8 st (30%)."""
    out = np.zeros_like(t)
    for start, stop in stretches(segments):
        following = [s for s in segments if s.start == stop]
        if following and following[0].kind == "pause":
            size = uniform_draw(rng, 3.0, 8.0, 2) if rng.random() < 0.3 else -uniform_draw(rng, 2.0, 6.0, 2)
            # smoothstep: slope <= 1.5·size/length = 38 st/s
            length = max(uniform_draw(rng, 0.12, 0.3), abs(size) / 25)
            span = slice(max(start, stop - round(length * sr)), stop)
            out[span] += size * smoothstep((t[span] - (stop / sr - length)) / length)
    return out


def _onset_bumps(rng, segments, t, sr) -> np.ndarray:
    """After a voiceless obstruent, voicing starts 0.5-1.5 st high and settles in 60 ms."""
    out = np.zeros_like(t)
    for before, after in zip(segments, segments[1:]):
        if before.kind == "consonant" and before.phone != "h" and after.kind == "voiced":
            onset = after.start / sr
            height = uniform_draw(rng, 0.5, 1.5, 2)
            out += np.where(t >= onset, height * (1.0 - smoothstep((t - onset) / 0.06)), 0.0)
    return out


def _wobble(rng, t, spacing: float, size: float) -> np.ndarray:
    """Random knots every `spacing` s within ±size, joined by smoothsteps (C1)."""
    knots = np.round(rng.uniform(-size, size, int(t[-1] / spacing) + 3 if t.size else 2), 3)
    position = t / spacing
    index = np.floor(position).astype(np.int64)
    return knots[index] + (knots[index + 1] - knots[index]) * smoothstep(position - index)


def _fit_range(semitones, voiced, low: float, high: float) -> np.ndarray:
    """Scale the excursions above/below 0 st so that voiced values stay inside [low, high]."""
    if not voiced.any():
        return semitones
    top, bottom = semitones[voiced].max(), semitones[voiced].min()
    out = semitones.copy()
    if top > high:
        out = np.where(out > 0, out * (high / top), out)
    if bottom < low:
        out = np.where(out < 0, out * (low / bottom), out)
    return out


def draw_sung_line(rng: np.random.Generator, seconds: float, sr: int, register: str) -> Contour:
    """A sung line over `seconds`: notes of a major or minor scale (0.5-2 beats at 75-150 bpm,
    ±10 cents intonation, mostly steps) inside the register's range (SUNG_RANGE_HZ), joined
    legato (a smoothstep portamento of 50-150 ms, longer for leaps: 45 st/s at most), or by
    a consonant or a breath; vibrato 4.5-7 Hz, 20-120 cents peak to peak, starting 0.1-0.35 s
    into each note and fading in over 0.15-0.3 s; 30% of detached notes are scooped into from
    10-50 cents below."""
    total = round(seconds * sr)
    notes, segments = _sung_layout(rng, total, sr, register)
    t = np.arange(total) / sr
    cents = _note_cents(rng, notes, t, sr) + _vibrato(rng, notes, t, sr)
    voiced = _voiced_mask(segments, total)
    f0 = np.where(voiced, 440.0 * exp2(cents / 1200.0), 0.0)
    return Contour(f0, tuple(segments), sr)


@dataclass(frozen=True)
class _Note:
    start: int
    stop: int
    cents: float                 # re A4 = 440 Hz
    legato: bool                 # joined to the next note without a break


def _sung_layout(rng, total: int, sr: int, register: str):
    """The notes and segments of a line: a pause, notes (each a voiced segment, some followed by
    a consonant or a breath carved from their end), a pause of at least 50 ms."""
    scale = _scale(rng, register)
    degree = int(rng.integers(0, len(scale)))
    beat = uniform_draw(rng, 0.4, 0.8)
    at = round(uniform_draw(rng, 0.05, 0.2) * sr)
    notes, segments = [], [Segment(0, at, "pause")]
    end = total - round(0.05 * sr)
    while end - at >= round(0.2 * sr):
        stop = min(at + round(beat * float(rng.choice([0.5, 1, 1, 1.5, 2])) * sr), end)
        gap, kind = _note_gap(rng, last=stop == end)
        sung_stop = max(at + round(0.1 * sr), stop - round(gap * sr))
        notes.append(_Note(at, sung_stop, scale[degree] + uniform_draw(rng, -10.0, 10.0, 1), sung_stop == stop < end))
        keep_vowel = segments[-1].kind == "voiced" and rng.random() < 0.5
        segments.append(Segment(at, sung_stop, "voiced", segments[-1].phone if keep_vowel else str(rng.choice(VOWELS))))
        if sung_stop < stop:
            segments.append(Segment(sung_stop, stop, kind, str(rng.choice(CONSONANTS)) if kind == "consonant" else ""))
        at = stop
        degree = int(np.clip(degree + _melodic_step(rng), 0, len(scale) - 1))
    if notes and notes[-1].legato:                        # the line ended after it: no note to glide to
        notes[-1] = dataclasses.replace(notes[-1], legato=False)
    segments.append(Segment(at, total, "pause"))
    return notes, segments


def _scale(rng, register: str) -> list[float]:
    """Notes (cents re A4) of a major or natural minor scale, a fifth below to an octave and a
    fifth above a random tonic, inside the register's range less 75 cents (vibrato, scoops)."""
    low, high = snap([1200 * math.log2(hz / 440) for hz in SUNG_RANGE_HZ[register]])   # libm scalars: snapped
    low, high = low + 75.0, high - 75.0
    steps = (0, 2, 4, 5, 7, 9, 11) if rng.random() < 0.5 else (0, 2, 3, 5, 7, 8, 10)
    tonic = 100 * math.floor(rng.uniform(low, max(low, high - 1200)) / 100)
    notes = [tonic + 1200 * octave + 100 * step for octave in range(-1, 3) for step in steps]
    return [c for c in notes if max(low, tonic - 700) <= c <= min(high, tonic + 1900)]


def _note_gap(rng, last: bool) -> tuple[float, str]:
    """(seconds, kind) after a note: legato 60% (0 s), a consonant 30% (40-120 ms), a breath 10%."""
    join = rng.random()
    if join < 0.6 or last:
        return 0.0, ""
    if join < 0.9:
        return uniform_draw(rng, 0.04, 0.12), "consonant"
    return uniform_draw(rng, 0.2, 0.4), "pause"


def _melodic_step(rng) -> int:
    """Scale steps: mostly ±1, some ±2, repeats, and leaps of 3-5."""
    u = rng.random()
    sign = 1 if rng.random() < 0.5 else -1
    if u < 0.5:
        return sign
    if u < 0.75:
        return 2 * sign
    if u < 0.85:
        return 0
    return int(rng.integers(3, 6)) * sign


def _note_cents(rng, notes, t, sr) -> np.ndarray:
    """Each note's pitch; legato joins glide by a smoothstep centred on the boundary."""
    out = np.zeros_like(t)
    for i, note in enumerate(notes):
        span = slice(note.start, note.stop)
        out[span] = note.cents
        if i and not notes[i - 1].legato and rng.random() < 0.3:        # scoop into a detached note
            depth, length = uniform_draw(rng, 10.0, 50.0, 1), uniform_draw(rng, 0.04, 0.1)
            out[span] -= depth * (1.0 - smoothstep((t[span] - note.start / sr) / length))
    for note, following in zip(notes, notes[1:]):
        if note.legato:           # a leap takes longer: at most 45 st/s (smoothstep: 1.5·interval/length)
            length = max(uniform_draw(rng, 0.05, 0.15), abs(following.cents - note.cents) / 3000)
            span = slice(max(note.start, note.stop - round(length * sr / 2)),
                         min(following.stop, note.stop + round(length * sr / 2)))
            ramp = smoothstep((t[span] - (note.stop / sr - length / 2)) / length)
            out[span] = note.cents + (following.cents - note.cents) * ramp
    return out


def _vibrato(rng, notes, t, sr) -> np.ndarray:
    """A continuous vibrato (one rate per line) whose depth each note brings in after a delay."""
    rate = uniform_draw(rng, *VIBRATO_RATE_HZ, 2)
    extent = uniform_draw(rng, *VIBRATO_EXTENT_CENTS, 1)
    depth = np.zeros_like(t)
    for note in notes:
        span = slice(note.start, note.stop)
        onset = note.start / sr + uniform_draw(rng, 0.1, 0.35)
        ramp_in = smoothstep((t[span] - onset) / uniform_draw(rng, 0.15, 0.3))
        ramp_out = 1.0 if note.legato else 1.0 - smoothstep((t[span] - (note.stop / sr - 0.08)) / 0.08)
        depth[span] = extent / 2 * uniform_draw(rng, 0.8, 1.2, 2) * ramp_in * ramp_out
    depth = moving_average(depth, round(0.05 * sr))   # legato joins: the next note's ramp starts from where this one is
    return depth * sin_turns(rate * t + uniform_draw(rng, 0.0, 1.0))


# --- labels -------------------------------------------------------------------------------
def frame_labels(f0_hz, sr: int, hop_s: float = 0.01, window_s: float = 0.0) -> np.ndarray:
    """The label every `hop_s` (frame k at sample m = round(k·hop_s·sr)), in Hz, 0 = unvoiced.

    window_s = 0: the label at m itself (the intended instantaneous f0). window_s > 0: the
    mean-period f0, 1/mean(1/f0), over the samples within window_s/2 of m (what a period
    estimator with that window measures), 0 unless all of them are voiced.
    """
    f0 = cs.clean_f0(f0_hz)
    frames = np.round(np.arange(0, f0.size / sr, hop_s) * sr).astype(np.int64)
    frames = frames[frames < f0.size]
    if window_s <= 0:
        return f0[frames]
    half = round(window_s * sr / 2)
    first, last = np.maximum(frames - half, 0), np.minimum(frames + half + 1, f0.size)
    periods = np.concatenate([[0.0], np.cumsum(np.where(f0 > 0, 1.0 / np.where(f0 > 0, f0, 1.0), 0.0))])
    voiced = np.concatenate([[0], np.cumsum(f0 > 0)])
    whole = voiced[last] - voiced[first] == last - first
    return np.where(whole, (last - first) / np.where(whole, periods[last] - periods[first], 1.0), 0.0)


# --- rendering ----------------------------------------------------------------------------


def segments_from_f0(rng, f0: np.ndarray, sr: int) -> tuple[Segment, ...]:
    voiced = f0 > 0
    edges = np.flatnonzero(np.diff(voiced.astype(np.int8))) + 1
    bounds = np.concatenate([[0], edges, [f0.size]]).astype(int)
    segments = []
    for start, stop in zip(bounds[:-1], bounds[1:]):
        if voiced[start]:
            segments += vowels(rng, start, stop, sr)
        elif stop - start < 0.2 * sr and 0 < start and stop < f0.size:
            segments.append(Segment(start, stop, "consonant", str(rng.choice(CONSONANTS))))
        else:
            segments.append(Segment(start, stop, "pause"))
    return tuple(segments)
