"""From a phrase spec to the MIDI-like events of ONE channel, and the f0 those events play.

Events land on FluidSynth's 64-sample block boundaries (at 44.1 kHz): a phrase is a sequence of
blocks, and every event belongs to the block before which it is applied. The pitch inside a
block is constant in FluidSynth (it computes one phase increment per block), so the pitch a
phrase plays is one value per block, and that is what the label is computed from:

    played cents = floor(100 * key + 12700 * (2 * bend / 16384 - 1) * range / 128)

(MIDI cents; key: the sounding note; bend: the 14-bit wheel value; range: the RPN 0 bend range
in semitones). Two things in it are FluidSynth's, both measured:
- /128, not /127: FluidSynth 2.x normalises the pitch-wheel-sensitivity source of its default
  pitch-wheel modulator (amount 12700 cents) by 128, so a range of R semitones reaches only
  R x 127/128 (+-23.81 semitones at 24; bends measured 0.9920 +- 0.0002 of the nominal).
- floor: its cents-to-Hz conversion looks up a table of whole cents and truncates (bends of
  +0.0, +0.3, +0.7 and +0.95 cents render identical bytes).
The bends are chosen so that this sum sits half a cent above the wanted whole cent, so the
label does not depend on the last bits of FluidSynth's floating-point arithmetic.

The label is the nominal pitch: 100 x key + bend. It leaves out the preset's coarse and fine
tune generators, which in these fonts correct their samples' tuning (measured on held notes of
every melodic preset: no correlation between a voice's fine tune and the measured offset), and
it cannot know how well a sample is tuned or what pitch movement is recorded in it: it is the
pitch the sample player was asked for. NOTES.md has the measured offsets.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.data.contours import RENDER_RATE, PhraseSpec, drift_curve, note_curve, note_end_cents
from pipeline.data.fluid import FLUID_BLOCK

BLOCK = FLUID_BLOCK
BEND_CENTER = 8192
BEND_MAX = 16383
BEND_RANGES = (2, 3, 4, 5, 6, 7, 8, 10, 12, 16, 24)  # semitones; GM's default is 2, 24 is the usual top
EDGE_CENTS = 2.0           # bends stay this far inside the range (room for the half-cent offset)
WHEEL_AMOUNT = 12700.0     # cents: the amount of the default pitch-wheel -> pitch modulator
SENSITIVITY_NORM = 128.0   # FluidSynth divides the wheel sensitivity (semitones) by 128, not 127
MIN_RELEASE_S = 0.03       # the shortest release a note-off may be given (a shorter one clicks)
ARRIVED_CENTS = 50.0       # a legato note takes its own key once the curve is this close to it
QUIET_BY_NEXT_NOTE = 1.6   # release time = 1.6 x gap: FluidSynth's release falls 96 dB (linear in dB)
                           # over its time, so the tail is 60 dB down when the next note starts

PROGRAM, BEND_RANGE, LEGATO_SWITCH, NOTE_ON, NOTE_OFF, BEND = \
    "program", "bend_range", "legato_switch", "note_on", "note_off", "bend"


@dataclass(frozen=True)
class Event:
    """One channel event, applied before block `block` is rendered (in list order).
    program: value = GM program; bend_range: value = semitones (RPN 0); legato_switch: value =
    CC 68; note_on: note, value = velocity, legato = entered without a new attack; note_off:
    note, release_s = longest release its voices may keep (0: their own); bend: value = 0..16383."""
    block: int
    kind: str
    note: int = 0
    value: int = 0
    legato: bool = False
    release_s: float = 0.0


@dataclass(frozen=True)
class PhraseEvents:
    """The events of a phrase and what they play: `played` is the MIDI cents of every block
    (NaN before the first note-on); `onsets` the blocks where a note starts or the sounding key
    changes; `note_spans` the (first block, end block) of each note's contour."""
    events: tuple[Event, ...]
    n_blocks: int
    bend_range: int
    played: np.ndarray
    onsets: tuple[int, ...]
    note_spans: tuple[tuple[int, int], ...]


# --- times ------------------------------------------------------------------------------
def block_of(seconds: float, rate: int = RENDER_RATE) -> int:
    """The block boundary nearest to a time: where an event at that time lands."""
    return int(np.floor(seconds * rate / BLOCK + 0.5))


def block_centres(n_blocks: int, rate: int = RENDER_RATE) -> np.ndarray:
    return (np.arange(n_blocks) * BLOCK + BLOCK / 2) / rate


def phrase_blocks(spec: PhraseSpec, rate: int = RENDER_RATE) -> int:
    return int(np.ceil(spec.seconds * rate / BLOCK))


# --- the wanted curve per block -----------------------------------------------------------
def wanted_block_cents(spec: PhraseSpec, on_blocks: list[int], n_blocks: int) -> np.ndarray:
    """The drawn curve at each block's centre, each block given to the note whose note-on block
    came last (so the curve and the note-ons agree on block edges); NaN before the first."""
    t = block_centres(n_blocks)
    cents = np.full(n_blocks, np.nan)
    ends = on_blocks[1:] + [n_blocks]
    for i, (note, a, b) in enumerate(zip(spec.notes, on_blocks, ends)):
        previous = note_end_cents(spec.notes[i - 1]) if i else None
        cents[a:b] = note_curve(note, t[a:b], previous)
    return cents + drift_curve(spec.drift, t)


# --- bend range, keys, bends ----------------------------------------------------------------
def reach_cents(bend_range: int) -> float:
    """How far (cents) a bend may go at this range: FluidSynth's full swing, less the edge."""
    return WHEEL_AMOUNT * bend_range / SENSITIVITY_NORM - EDGE_CENTS


def choose_bend_range(wanted: np.ndarray, nominal: np.ndarray) -> int:
    """The smallest range in BEND_RANGES that holds every block's distance from its note
    (24 when none does: then the key moves, see plan_keys)."""
    reach = np.nanmax(np.abs(wanted - 100.0 * nominal), initial=0.0)
    return next((r for r in BEND_RANGES if reach_cents(r) >= reach), BEND_RANGES[-1])


def bend_step_cents(bend_range: int) -> float:
    """Cents per unit of the 14-bit wheel at this range (0.024 at 2 semitones, 0.29 at 24)."""
    return 2.0 * WHEEL_AMOUNT / 16384.0 * bend_range / SENSITIVITY_NORM


def fits(cents: float, key: int, bend_range: int) -> bool:
    return abs(cents - 100.0 * key) <= reach_cents(bend_range)


def nearest_key(cents: float, nominal: int, bend_range: int) -> int:
    """The key closest to `nominal` from which a bend reaches `cents`."""
    reach = reach_cents(bend_range)
    low, high = int(np.ceil((cents - reach) / 100.0)), int(np.floor((cents + reach) / 100.0))
    return int(np.clip(nominal, max(low, 0), min(high, 127)))


def plan_keys(wanted: np.ndarray, nominal: np.ndarray, attacks: set[int], bend_range: int) -> np.ndarray:
    """The sounding key of every block (-1 before the first note). A detached note starts on
    its own key. After that the key only changes (legato) when the curve has arrived within
    ARRIVED_CENTS of a new note's key, or when the bend can no longer reach the curve (a glide
    past the range), then to the key nearest the curve. So a key change plays the new sample
    close to its own speed: a voice that cannot be re-used starts afresh, and an attack played
    2 octaves down lasts 4 times longer (measured: 100-350 ms of unsteady pitch)."""
    keys = np.full(len(wanted), -1, dtype=np.int64)
    key = -1
    for j, (c, own) in enumerate(zip(wanted.tolist(), nominal.tolist())):
        if c != c:  # NaN: before the first note
            continue
        if j in attacks or key < 0:
            key = own if fits(c, own, bend_range) else nearest_key(c, int(round(c / 100)), bend_range)
        elif key != own and abs(c - 100.0 * own) <= ARRIVED_CENTS:
            key = own
        elif not fits(c, key, bend_range):
            key = nearest_key(c, int(round(c / 100)), bend_range)
        keys[j] = key
    return keys


def bend_values(wanted: np.ndarray, keys: np.ndarray, bend_range: int, every: int,
                must_update: set[int]) -> np.ndarray:
    """The 14-bit wheel value of every block: the nearest whole cent of the curve plus half a
    cent (FluidSynth truncates to whole cents), updated every `every` blocks and wherever a
    note starts or the key changes; held in between. Centred before the first note."""
    step = bend_step_cents(bend_range)
    target = np.round(wanted) + 0.5 - 100.0 * keys
    exact = np.clip(BEND_CENTER + np.round(np.nan_to_num(target) / step), 0, BEND_MAX).astype(np.int64)
    update = (np.arange(len(wanted)) % every == 0) & (keys >= 0)
    update[sorted(must_update)] = True
    last = forward_fill_index(update)
    return np.where(last >= 0, exact[np.maximum(last, 0)], BEND_CENTER)


def forward_fill_index(mask: np.ndarray) -> np.ndarray:
    """For every position, the index of the last True at or before it (-1 if none)."""
    return np.maximum.accumulate(np.where(mask, np.arange(len(mask)), -1))


def played_cents(key, bend, bend_range) -> np.ndarray:
    """What FluidSynth plays (MIDI cents) for a key, 14-bit bend value and range, evaluated in
    the order FluidSynth does: pitch-wheel modulator amount 12700 x bipolar wheel x range/128
    (all exact in float64), added to 100 x key, truncated to a whole cent."""
    key, bend = np.asarray(key, dtype=np.float64), np.asarray(bend, dtype=np.float64)
    wheel = -1.0 + 2.0 * (bend / 16384.0)
    return np.floor(100.0 * key + WHEEL_AMOUNT * wheel * (bend_range / SENSITIVITY_NORM))


# --- events ------------------------------------------------------------------------------
def build_events(spec: PhraseSpec, program: int, bend_range: int | None = None,
                 bend_every: int = 1) -> PhraseEvents:
    """The channel events of a phrase: program, RPN 0 bend range, legato switch, note-ons and
    -offs (legato notes as a note-on before the previous note's note-off, in FluidSynth's mono
    legato mode) and pitch bends every `bend_every` blocks. `bend_range` None: the smallest that
    holds the phrase."""
    n_blocks = phrase_blocks(spec)
    on_blocks = [min(block_of(n.start), n_blocks - 1) for n in spec.notes]
    off_blocks = [min(max(block_of(n.end), b + 1), n_blocks - 1) for n, b in zip(spec.notes, on_blocks)]
    attacks = {b for n, b in zip(spec.notes, on_blocks) if not n.legato}
    wanted = wanted_block_cents(spec, on_blocks, n_blocks)
    nominal = nominal_keys(spec, on_blocks, n_blocks)
    bend_range = bend_range or choose_bend_range(wanted, nominal)
    keys = plan_keys(wanted, nominal, attacks, bend_range)
    changes = sorted(j for j in range(1, n_blocks) if keys[j] != keys[j - 1] and keys[j - 1] >= 0
                     and j not in attacks)
    bends = bend_values(wanted, keys, bend_range, bend_every, attacks | set(changes))
    events = setup_events(program, bend_range) + bend_events(bends, keys)
    events += attack_events(spec, on_blocks, keys) + legato_events(changes, keys, spec, on_blocks)
    events += release_events(spec, on_blocks, off_blocks, keys, n_blocks)
    ordered = tuple(sorted(events, key=lambda e: (e.block, event_rank(e))))
    spans = tuple(zip(on_blocks, on_blocks[1:] + [n_blocks]))
    onsets = tuple(sorted(set(on_blocks) | set(changes)))
    return PhraseEvents(ordered, n_blocks, bend_range, label_from_events(ordered, n_blocks), onsets, spans)


def event_rank(e: Event) -> int:
    """Order inside a block: setup; the note-off of a detached note; the bend the next note
    starts with (a voice takes the wheel as it stands at its note-on); note-ons; last the
    note-off of the note a legato note replaces (note-on first is what makes it legato)."""
    if e.kind == NOTE_OFF:
        return 6 if e.legato else 3
    return {PROGRAM: 0, BEND_RANGE: 1, LEGATO_SWITCH: 2, BEND: 4, NOTE_ON: 5}[e.kind]


def nominal_keys(spec: PhraseSpec, on_blocks: list[int], n_blocks: int) -> np.ndarray:
    keys = np.zeros(n_blocks, dtype=np.int64)
    for note, a, b in zip(spec.notes, on_blocks, on_blocks[1:] + [n_blocks]):
        keys[a:b] = note.midi
    return keys


def setup_events(program: int, bend_range: int) -> list[Event]:
    """Block 0: the program, the bend range (RPN 0, then the null RPN) and the legato switch."""
    return [Event(0, PROGRAM, value=program), Event(0, BEND_RANGE, value=bend_range),
            Event(0, LEGATO_SWITCH, value=127)]


def bend_events(bends: np.ndarray, keys: np.ndarray) -> list[Event]:
    changed = np.flatnonzero((np.diff(bends, prepend=BEND_CENTER) != 0) & (keys >= 0))
    return [Event(int(j), BEND, value=int(bends[j])) for j in changed]


def attack_events(spec: PhraseSpec, on_blocks, keys) -> list[Event]:
    """The note-on of every detached note, on the key planned for its first block."""
    return [Event(b, NOTE_ON, int(keys[b]), n.velocity) for n, b in zip(spec.notes, on_blocks) if not n.legato]


def legato_events(changes: list[int], keys, spec: PhraseSpec, on_blocks) -> list[Event]:
    """Every key change inside a legato line: a note-on of the new key (with the velocity of
    the note that owns the block), then the note-off of the old one."""
    events = []
    for j in changes:
        note = spec.notes[int(np.searchsorted(on_blocks, j, side="right")) - 1]
        events.append(Event(j, NOTE_ON, int(keys[j]), note.velocity, legato=True))
        events.append(Event(j, NOTE_OFF, int(keys[j - 1]), legato=True))
    return events


def release_events(spec: PhraseSpec, on_blocks, off_blocks, keys, n_blocks: int) -> list[Event]:
    """The note-off ending each legato line or detached note, on the key sounding then, with a
    release short enough to be 60 dB down when the next note starts (or the phrase ends)."""
    events = []
    for i in range(len(spec.notes)):
        if i + 1 < len(spec.notes) and spec.notes[i + 1].legato:
            continue
        next_on = on_blocks[i + 1] if i + 1 < len(spec.notes) else n_blocks
        gap = (next_on - off_blocks[i]) * BLOCK / RENDER_RATE
        events.append(Event(off_blocks[i], NOTE_OFF, int(keys[off_blocks[i] - 1]),
                            release_s=round(max(MIN_RELEASE_S, QUIET_BY_NEXT_NOTE * gap), 4)))
    return events


# --- the label ---------------------------------------------------------------------------
def label_from_events(events, n_blocks: int) -> np.ndarray:
    """The MIDI cents played in every block, from the events alone: the last note-on's key (it
    keeps sounding through its release tail), the wheel and the range as they stand when the
    block is rendered (each the last value sent at or before it). NaN before the first note-on."""
    key = last_value(events, NOTE_ON, n_blocks, lambda e: e.note, -1)
    bend = last_value(events, BEND, n_blocks, lambda e: e.value, BEND_CENTER)  # FluidSynth's defaults:
    bend_range = last_value(events, BEND_RANGE, n_blocks, lambda e: e.value, 2)  # centred, 2 semitones
    played = played_cents(key, bend, bend_range)
    return np.where(key >= 0, played, np.nan)


def last_value(events, kind: str, n_blocks: int, value, default) -> np.ndarray:
    """Per block, the value of the last event of `kind` at or before it (later ones in the same
    block win, as they are applied later)."""
    values = np.full(n_blocks, default, dtype=np.int64)
    mask = np.zeros(n_blocks, dtype=bool)
    for e in events:
        if e.kind == kind:
            values[e.block], mask[e.block] = value(e), True
    last = forward_fill_index(mask)
    return np.where(last >= 0, values[np.maximum(last, 0)], default)


def cents_to_hz(cents):
    return 440.0 * 2.0 ** ((np.asarray(cents, dtype=np.float64) - 6900.0) / 1200.0)
