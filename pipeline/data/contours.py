"""Drawing phrases: a seeded random melody with its expressive pitch contour (pure numpy).

A phrase is a `PhraseSpec`: notes (start, end, MIDI note, velocity, legato or detached) with
what the player does to each note's pitch: a glide into it from the previous note, a scoop at
its start, a fall at its end, vibrato or a trill, plus a slow drift over the whole phrase.
Everything random is drawn once, by `draw_phrase`, from a seeded numpy Generator, and stored in
the spec rounded to short decimals, so a spec prints, compares and hashes by value and the same
spec always gives the same curve.

The contour of note i covers [start_i, start_{i+1}) (to the end of the phrase for the last
one): after its note-off the pitch holds where the fall left it, with vibrato and drift going
on, since the release tail keeps sounding at that pitch. Pitches are in MIDI cents
(100 x MIDI note number; 6900 = A4 = 440 Hz).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

RENDER_RATE = 44_100


@dataclass(frozen=True)
class Vibrato:
    """Sinusoidal vibrato: rate and depth (peak deviation, cents) move linearly from their start
    values to their end values over the note; it starts `delay` s after the note-on and fades
    in over `fade` s."""
    rate: float
    rate_end: float
    depth: float
    depth_end: float
    delay: float
    fade: float
    phase: float = 0.0


@dataclass(frozen=True)
class Trill:
    """Alternation between the note and the note `interval` semitones away (negative: below) at
    `rate` cycles per second, each step a raised-cosine ramp of `ramp` s."""
    interval: int
    rate: float
    delay: float = 0.0
    ramp: float = 0.012


@dataclass(frozen=True)
class Note:
    """One note. `legato`: reached from the previous note without a new attack (the previous
    note lasts until this start); `glide`: seconds of portamento from the previous note's pitch
    (legato only); `scoop`: cents off the note at its start (negative: from below), settling
    over `scoop_time`; `fall`: cents the pitch moves over the last `fall_time` s before the
    note-off (negative: down), held after it."""
    start: float
    end: float
    midi: int
    velocity: int = 100
    legato: bool = False
    glide: float = 0.0
    scoop: float = 0.0
    scoop_time: float = 0.0
    fall: float = 0.0
    fall_time: float = 0.0
    vibrato: Vibrato | None = None
    trill: Trill | None = None


@dataclass(frozen=True)
class Drift:
    """A slow sinusoidal drift of the whole phrase: depth (cents), rate (Hz), phase (radians)."""
    depth: float = 0.0
    rate: float = 0.1
    phase: float = 0.0


@dataclass(frozen=True)
class PhraseSpec:
    """Everything drawn for one phrase; the notes are in time order and do not overlap."""
    seconds: float
    notes: tuple[Note, ...]
    drift: Drift = field(default_factory=Drift)

    def __post_init__(self):
        for a, b in zip(self.notes, self.notes[1:]):
            if b.start < a.end - 1e-9 or (b.legato and abs(b.start - a.end) > 1e-9):
                raise ValueError(f"notes overlap or a legato note does not start at the previous end: {a} {b}")
        if self.notes and self.notes[-1].end > self.seconds:
            raise ValueError("the last note ends after the phrase")


# --- the curve --------------------------------------------------------------------------
def smoothstep(u: np.ndarray) -> np.ndarray:
    """0 -> 1 raised-cosine ramp over u in [0, 1], clamped outside."""
    u = np.clip(u, 0.0, 1.0)
    return 0.5 - 0.5 * np.cos(np.pi * u)


def pitch_curve(spec: PhraseSpec, times: np.ndarray) -> np.ndarray:
    """The drawn pitch (MIDI cents, float64) at `times` (seconds); NaN before the first note."""
    times = np.asarray(times, dtype=np.float64)
    cents = np.full(times.shape, np.nan)
    starts = [n.start for n in spec.notes] + [np.inf]
    for i, note in enumerate(spec.notes):
        inside = (times >= note.start) & (times < starts[i + 1])
        previous = note_end_cents(spec.notes[i - 1]) if i else None
        cents[inside] = note_curve(note, times[inside], previous)
    return cents + drift_curve(spec.drift, times)


def note_curve(note: Note, t: np.ndarray, previous_cents: float | None) -> np.ndarray:
    """One note's contour (MIDI cents, without the phrase drift) at times t >= note.start."""
    base = np.full(t.shape, 100.0 * note.midi)
    if note.glide > 0 and previous_cents is not None:
        base += (previous_cents - 100.0 * note.midi) * (1 - smoothstep((t - note.start) / note.glide))
    if note.scoop_time > 0:
        base += note.scoop * (1 - smoothstep((t - note.start) / note.scoop_time))
    if note.fall_time > 0:
        base += note.fall * smoothstep((t - (note.end - note.fall_time)) / note.fall_time)
    if note.vibrato is not None:
        base += vibrato_curve(note.vibrato, t - note.start, note.end - note.start)
    if note.trill is not None:
        base += trill_curve(note.trill, t - note.start)
    return base


def note_end_cents(note: Note) -> float:
    """Where a note's contour sits at its note-off, without vibrato, trill and drift: the pitch a
    following glide starts from."""
    return 100.0 * note.midi + (note.fall if note.fall_time > 0 else 0.0)


def vibrato_curve(v: Vibrato, since_on: np.ndarray, length: float) -> np.ndarray:
    """Vibrato offset (cents) at `since_on` seconds after the note-on of a note `length` s long."""
    span = max(length - v.delay, 1e-6)
    tau = np.maximum(since_on - v.delay, 0.0)
    u = np.minimum(tau, span)
    # phase = 2 pi * integral of the rate, which moves linearly rate -> rate_end over the span
    cycles = v.rate * u + (v.rate_end - v.rate) * u ** 2 / (2 * span) + v.rate_end * (tau - u)
    depth = v.depth + (v.depth_end - v.depth) * (u / span)
    return depth * smoothstep(tau / max(v.fade, 1e-6)) * np.sin(2 * np.pi * cycles + v.phase)


def trill_curve(tr: Trill, since_on: np.ndarray) -> np.ndarray:
    """Trill offset (cents): 0 on the main note, 100 x interval on the other, raised-cosine steps."""
    tau = np.maximum(since_on - tr.delay, 0.0)
    half = 0.5 / tr.rate
    position = np.mod(tau, 2 * half)                # 0..half: going up; half..2 half: going down
    up = smoothstep(position / tr.ramp)
    down = smoothstep((position - half) / tr.ramp)
    return 100.0 * tr.interval * np.where(tau > 0, up - down, 0.0)


def drift_curve(d: Drift, times: np.ndarray) -> np.ndarray:
    return d.depth * np.sin(2 * np.pi * d.rate * times + d.phase)


def pitch_curve_samples(spec: PhraseSpec, rate: int = RENDER_RATE) -> np.ndarray:
    """The drawn curve at every sample of the phrase (MIDI cents; NaN before the first note)."""
    return pitch_curve(spec, np.arange(int(round(spec.seconds * rate))) / rate)


# --- the plan ---------------------------------------------------------------------------
@dataclass(frozen=True)
class PlannedNote:
    """A note as the synthesizer sees it: note-on and note-off times (s), MIDI note, velocity,
    and whether it is entered legato (no note-off before it, no new attack)."""
    on: float
    off: float
    midi: int
    velocity: int
    legato: bool


def note_plan(spec: PhraseSpec) -> list[PlannedNote]:
    """The note-on/off plan of a phrase (pitch movement inside notes goes through pitch bend)."""
    return [PlannedNote(n.start, n.end, n.midi, n.velocity, n.legato) for n in spec.notes]


# --- drawing ----------------------------------------------------------------------------
@dataclass(frozen=True)
class DrawOptions:
    """How often each gesture is drawn, and its ranges (the brief's defaults)."""
    legato: float = 0.45
    glide: float = 0.35            # of legato notes
    max_glide_semitones: int = 24
    rest: float = 0.3              # of detached notes: a real rest rather than a short gap
    scoop: float = 0.3             # of detached notes
    fall: float = 0.35             # of notes followed by a rest or the end
    vibrato: float = 0.55
    trill: float = 0.12
    drift_cents: float = 12.0
    note_seconds: tuple[float, float] = (0.18, 1.2)
    vibrato_rate: tuple[float, float] = (3.0, 9.0)
    vibrato_depth: tuple[float, float] = (5.0, 150.0)
    trill_rate: tuple[float, float] = (5.0, 9.0)


def draw_phrase(rng: np.random.Generator, seconds: float, note_low: int, note_high: int,
                options: DrawOptions = DrawOptions()) -> PhraseSpec:
    """A random phrase of `seconds` s whose notes lie in [note_low, note_high] (MIDI); all the
    randomness comes from `rng`, in a fixed order, so a seed gives one spec."""
    if note_high < note_low or seconds < 1.0:
        raise ValueError("need note_low <= note_high and a phrase of at least 1 s")
    notes: list[Note] = []
    t = r3(rng.uniform(0.05, 0.25))
    tail = 0.35                                      # room for the last release inside the phrase
    midi = int(rng.integers(note_low, note_high + 1))
    legato = False
    while True:
        length = r3(rng.uniform(*options.note_seconds))
        if t + length > seconds - tail:
            break
        notes.append(draw_note(rng, t, length, midi, legato, notes[-1] if notes else None, options))
        following = next_midi(rng, midi, note_low, note_high, options)
        legato, rest, gap_draw = rng.random() < options.legato, rng.random() < options.rest, rng.random()
        legato = legato and following != midi        # a repeated note is always re-attacked
        gap = 0.0 if legato else r3(0.1 + 0.5 * gap_draw if rest else 0.02 + 0.06 * gap_draw)
        t, midi = r3(t + length + gap), following
    notes = add_falls(rng, notes, options)
    drift = Drift(r1(rng.uniform(0, options.drift_cents)), r3(rng.uniform(0.05, 0.5)), r3(rng.uniform(0, 2 * np.pi)))
    return PhraseSpec(r3(seconds), tuple(notes), drift)


def draw_note(rng, start: float, length: float, midi: int, legato: bool, previous: Note | None,
              options: DrawOptions) -> Note:
    """One note's gestures. Each draw happens whatever the outcome, so the stream of random
    numbers does not depend on earlier choices within the note."""
    glide_draw, scoop_draw, gesture_draw = rng.random(), rng.random(), rng.random()
    glide_time, scoop, scoop_time = rng.uniform(0.05, 0.5), rng.uniform(20, 200), rng.uniform(0.04, 0.2)
    scoop_sign = -1.0 if rng.random() < 0.8 else 1.0  # scoops mostly come from below
    vibrato, trill = draw_vibrato(rng, length), draw_trill(rng)
    glide = r3(min(glide_time, 0.6 * length)) if legato and glide_draw < options.glide else 0.0
    has_scoop = not legato and scoop_draw < options.scoop
    use_trill = gesture_draw < options.trill and length >= 0.4
    use_vibrato = not use_trill and gesture_draw < options.trill + options.vibrato and length >= 0.3
    return Note(start=r3(start), end=r3(start + length), midi=int(midi), velocity=int(rng.integers(60, 121)),
                legato=bool(legato), glide=glide,
                scoop=r1(scoop_sign * scoop) if has_scoop else 0.0,
                scoop_time=r3(min(scoop_time, 0.4 * length)) if has_scoop else 0.0,
                vibrato=vibrato if use_vibrato else None, trill=trill if use_trill else None)


def draw_vibrato(rng, length: float, options: DrawOptions = DrawOptions()) -> Vibrato:
    lo, hi = options.vibrato_rate
    dlo, dhi = options.vibrato_depth
    rate = rng.uniform(lo, hi)
    depth = np.exp(rng.uniform(np.log(dlo), np.log(dhi)))  # log-uniform: small depths are common
    return Vibrato(rate=r2(rate), rate_end=r2(np.clip(rate + rng.uniform(-1, 1), lo, hi)),
                   depth=r1(depth), depth_end=r1(np.clip(depth * rng.uniform(0.6, 1.4), dlo, dhi)),
                   delay=r3(rng.uniform(0, 0.35) * length), fade=r3(rng.uniform(0.05, 0.3)),
                   phase=r3(rng.uniform(0, 2 * np.pi)))


def draw_trill(rng, options: DrawOptions = DrawOptions()) -> Trill:
    interval = int(rng.integers(1, 3)) * (1 if rng.random() < 0.8 else -1)
    return Trill(interval=interval, rate=r2(rng.uniform(*options.trill_rate)), delay=r3(rng.uniform(0, 0.1)))


def next_midi(rng, midi: int, low: int, high: int, options: DrawOptions) -> int:
    """A melodic step: mostly small intervals, sometimes a leap up to the glide limit, reflected
    back into [low, high]."""
    kind, size, up = rng.random(), rng.random(), rng.random() < 0.5
    if kind < 0.15:
        step = 0
    elif kind < 0.75:
        step = 1 + int(size * 4)                     # 1..4 semitones
    elif kind < 0.95:
        step = 5 + int(size * 8)                     # 5..12
    else:
        step = 13 + int(size * (options.max_glide_semitones - 12))  # 13..24
    value = midi + (step if up else -step)
    span = high - low
    if span == 0:
        return low
    value = (value - low) % (2 * span)               # reflect at the range ends
    return low + (value if value <= span else 2 * span - value)


def add_falls(rng, notes: list[Note], options: DrawOptions) -> list[Note]:
    """Falls at the ends of notes that are not followed by a legato note."""
    out = []
    for i, note in enumerate(notes):
        draw, size, time = rng.random(), rng.uniform(30, 300), rng.uniform(0.05, 0.3)
        followed_legato = i + 1 < len(notes) and notes[i + 1].legato
        if draw < options.fall and not followed_legato:
            length = note.end - note.start
            note = replace_note(note, fall=r1(-size), fall_time=r3(min(time, 0.4 * length)))
        out.append(note)
    return out


def replace_note(note: Note, **changes) -> Note:
    from dataclasses import replace
    return replace(note, **changes)


def r1(x) -> float:
    return round(float(x), 1)


def r2(x) -> float:
    return round(float(x), 2)


def r3(x) -> float:
    return round(float(x), 3)
