"""Rendering phrases with FluidSynth in-process, and their 10 ms f0 labels.

As in pipeline/rendering.py: one keeper synth owns the loaded soundfont; every phrase gets a
brand-new synth that borrows it, so a phrase's audio depends on nothing rendered before (same
spec, same bytes); events are applied between `fluid_synth_write_float` calls cut at block
boundaries; the float32 stereo output is averaged to mono.

The preset's own pitch modulation is switched off voice by voice, right after each note-on
(before the voice renders its first block): the vibrato LFO's, the modulation LFO's and the
modulation envelope's pitch amounts are set to 0, and the vibrato LFO is held back (its delay
set to FluidSynth's maximum, 18 s) so that nothing reaching its depth through a modulator (the
mod wheel, channel pressure, a preset's own modulators) can move the pitch either. The
modulation LFO and envelope keep their filter and volume effects. NOTES.md has the measurements.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.data import fluid as F
from pipeline.data.contours import RENDER_RATE, PhraseSpec
from pipeline.data.phrase_midi import (
    BEND,
    BEND_RANGE,
    BLOCK,
    LEGATO_SWITCH,
    NOTE_OFF,
    NOTE_ON,
    PROGRAM,
    Event,
    PhraseEvents,
    build_events,
    cents_to_hz,
)

FRAME_SECONDS = 0.010
LEVEL_WINDOW_S = 0.020       # RMS window of the voicing level, centred on the frame time
VOICED_RANGE_DB = 40.0       # voiced: within this many dB of the loudest frame of the same note
SILENCE_DBFS = -100.0        # never voiced below this, whatever the note's peak
EDGE_GUARD_S = 0.030         # clean frames are this far from note-ons, key changes and voicing edges
LEGATO_RELEASE_S = 0.03      # voices a legato note cannot re-use fade out this fast
VIBRATO_HOLD_TIMECENTS = 5000.0  # the longest LFO delay FluidSynth accepts: 2^(5000/1200) = 17.96 s
MAX_PHRASE_S = 17.0          # past that the held-back vibrato LFO would start
PITCH_GENERATORS = (F.GEN_VIBLFOTOPITCH, F.GEN_MODLFOTOPITCH, F.GEN_MODENVTOPITCH)


@dataclass(frozen=True)
class PhraseLabel:
    """The f0 label of a phrase, one frame every 10 ms (frame k at t = k x 10 ms, the value AT t):
    `cents`: the MIDI cents played at t (NaN before the first note-on; defined through rests, at
    the last note's pitch); `f0_hz`: its frequency where voiced, 0 elsewhere; `voiced`: a note
    is sounding at t within VOICED_RANGE_DB of that note's loudest frame (release tails
    included); `clean`: voiced and at least EDGE_GUARD_S from any note-on, key change and
    voicing edge. `block_cents`: the exact curve, one value per 64-sample block at 44.1 kHz."""
    times: np.ndarray
    cents: np.ndarray
    f0_hz: np.ndarray
    voiced: np.ndarray
    clean: np.ndarray
    block_cents: np.ndarray


@dataclass(frozen=True)
class RenderedPhrase:
    """Mono float32 audio at 44.1 kHz, its label, and the events that made it."""
    audio: np.ndarray
    label: PhraseLabel
    events: PhraseEvents
    program: int

    def sha256(self) -> str:
        return hashlib.sha256(self.audio.tobytes()).hexdigest()


class PhraseRenderer:
    """Renders phrases with one soundfont, loaded once."""

    def __init__(self, soundfont: str | Path, gain: float = 0.4, effects: bool = False):
        """`effects`: FluidSynth's reverb unit is on, for the phrases that ask for it."""
        import fluidsynth
        lib = F.fluid()
        self.effects = effects
        self.lib = lib
        self.soundfont = str(soundfont)
        self.keeper = fluidsynth.Synth(gain=float(gain), samplerate=float(RENDER_RATE), channels=16,
                                       **{"synth.reverb.active": int(effects), "synth.chorus.active": 0,
                                          "synth.cpu-cores": 1, "synth.polyphony": 64})
        sfid = self.keeper.sfload(self.soundfont)
        if sfid < 0:
            self.keeper.delete()
            raise ValueError(f"FluidSynth could not load soundfont {soundfont}")
        self.sfid = sfid
        self.sfont = lib.get_sfont(self.keeper.synth, sfid)

    def close(self) -> None:
        self.keeper.delete()

    def preset_name(self, program: int) -> str | None:
        return self.keeper.sfpreset_name(self.sfid, 0, program)

    def render(self, spec: PhraseSpec, program: int, bend_range: int | None = None, bend_every: int = 1,
               preset_pitch: bool = False, edge_guard_s: float = EDGE_GUARD_S, reverb=None) -> RenderedPhrase:
        """Render a phrase on GM `program` and label it. `bend_range`: RPN 0 semitones (None:
        the smallest that holds the phrase); `bend_every`: blocks between pitch-bend updates;
        `preset_pitch`: leave the preset's own pitch modulation on (only to measure it: the
        label does not include it); `edge_guard_s`: how far clean frames keep from onsets; `reverb`:
        a rendering.FluidReverb (needs a renderer made with effects on). The label and its voicing
        come from a dry render when there is reverb: the tail is not the note."""
        if spec.seconds > MAX_PHRASE_S:
            raise ValueError(f"phrases are at most {MAX_PHRASE_S} s (the vibrato hold is 17.96 s)")
        if self.preset_name(program) is None:
            raise ValueError(f"{self.soundfont} has no preset for program {program}")
        if reverb is not None and not self.effects:
            raise ValueError("a phrase asks for FluidSynth's reverb from a renderer made without effects")
        events = build_events(spec, program, bend_range, bend_every)
        dry = self.render_events(events.events, events.n_blocks, preset_pitch)
        audio = dry if reverb is None else self.render_events(events.events, events.n_blocks, preset_pitch, reverb)
        return RenderedPhrase(audio, phrase_label(dry, events, edge_guard_s), events, program)

    def render_events(self, events, n_blocks: int, preset_pitch: bool = False, reverb=None) -> np.ndarray:
        """Mono float32 audio of n_blocks blocks, each event applied before its block renders
        (events in block order; a fresh synth, so the same events give the same bytes)."""
        if any(e.block >= n_blocks for e in events):
            raise ValueError(f"an event lies past the last of the {n_blocks} blocks")
        lib = self.lib
        out = np.zeros((n_blocks * BLOCK, 2), dtype=np.float32)
        synth = lib.new_synth(self.keeper.settings)
        try:
            sfid = lib.add_sfont(synth, self.sfont)
            if self.effects:
                lib.reverb(synth, reverb.values() if reverb is not None else None)
            lib.set_legato_mode(synth, 0, F.LEGATO_MODE_MULTI_RETRIGGER)
            done = 0
            for event in events:
                if event.block > done:
                    lib.write(synth, out[done * BLOCK:event.block * BLOCK])
                    done = event.block
                self.apply(synth, sfid, event, preset_pitch)
            if done < n_blocks:
                lib.write(synth, out[done * BLOCK:])
        finally:
            lib.remove_sfont(synth, self.sfont)
            lib.delete_synth(synth)
        return out.mean(axis=1, dtype=np.float32)

    def apply(self, synth, sfid: int, e: Event, preset_pitch: bool) -> None:
        """Send one event to the synth (channel 0)."""
        lib, ch = self.lib, 0
        if e.kind == BEND:
            lib.pitch_bend(synth, ch, e.value)
        elif e.kind == NOTE_ON:
            self.note_on(synth, e)
            if not preset_pitch:
                silence_preset_pitch(lib, synth)
        elif e.kind == NOTE_OFF:
            if e.release_s > 0:  # the voices this note-off releases (tails already fading keep their own)
                cap_release(lib, [v for v in lib.playing_voices(synth) if lib.voice_is_on(v)], e.release_s)
            lib.noteoff(synth, ch, e.note)
        elif e.kind == PROGRAM:
            lib.program_select(synth, ch, sfid, 0, e.value)
        elif e.kind == BEND_RANGE:
            # RPN 0 (pitch-bend sensitivity): semitones in data entry MSB (FluidSynth ignores the
            # LSB's cents), then the null RPN so that no later data entry changes it
            for control, value in ((101, 0), (100, 0), (6, e.value), (38, 0), (101, 127), (100, 127)):
                lib.cc(synth, ch, control, value)
        elif e.kind == LEGATO_SWITCH:
            lib.cc(synth, ch, F.CC_LEGATO_SWITCH, e.value)

    def note_on(self, synth, e: Event) -> None:
        """A note-on; a legato one fades out fast the voices it cannot re-use (a note outside
        their key range), and leaves the re-used ones their own release."""
        lib = self.lib
        if not e.legato:
            lib.noteon(synth, 0, e.note, e.value)
            return
        held = [v for v in lib.playing_voices(synth) if lib.voice_is_on(v)]
        releases = {v: lib.gen_get(v, F.GEN_VOLENVRELEASE) for v in held}
        cap_release(lib, held, LEGATO_RELEASE_S)
        lib.noteon(synth, 0, e.note, e.value)
        for v in held:
            if lib.voice_is_on(v):  # re-used for the new note: its release is its own again
                lib.set_voice_gen(v, F.GEN_VOLENVRELEASE, releases[v])
        lib.commit(synth)


def silence_preset_pitch(lib, synth) -> None:
    """Switch off every pitch modulation the preset gives the playing voices (see module doc)."""
    for v in lib.playing_voices(synth):
        for gen in PITCH_GENERATORS:
            lib.set_voice_gen(v, gen, 0.0)
        lib.set_voice_gen(v, F.GEN_VIBLFODELAY, VIBRATO_HOLD_TIMECENTS)
    lib.commit(synth)


def cap_release(lib, voices, seconds: float) -> None:
    """Shorten the release of these voices to `seconds` (longer ones only): FluidSynth's release
    falls 96 dB, linearly in dB, over that time."""
    cap = 1200.0 * math.log2(seconds)
    for v in voices:
        if lib.gen_get(v, F.GEN_VOLENVRELEASE) > cap:
            lib.set_voice_gen(v, F.GEN_VOLENVRELEASE, cap)  # committed by the note call that follows


# --- the label ---------------------------------------------------------------------------
def frame_times(n_samples: int, rate: int = RENDER_RATE) -> np.ndarray:
    """t = k x 10 ms for every k with t inside the audio."""
    return np.arange(int(math.ceil(n_samples / (rate * FRAME_SECONDS)))) * FRAME_SECONDS


def frame_blocks(times: np.ndarray, rate: int = RENDER_RATE) -> np.ndarray:
    """The block that is sounding at each time (the sample at t, rounded, lies in it)."""
    return np.round(times * rate).astype(np.int64) // BLOCK


def frame_levels_db(audio: np.ndarray, times: np.ndarray, rate: int = RENDER_RATE) -> np.ndarray:
    """RMS level (dBFS) in a LEVEL_WINDOW_S window centred on each time."""
    half = int(round(LEVEL_WINDOW_S * rate / 2))
    power = np.concatenate([[0.0], np.cumsum(audio.astype(np.float64) ** 2)])
    centre = np.round(times * rate).astype(np.int64)
    lo, hi = np.clip(centre - half, 0, len(audio)), np.clip(centre + half, 0, len(audio))
    mean = (power[hi] - power[lo]) / np.maximum(hi - lo, 1)
    return 10 * np.log10(np.maximum(mean, 1e-30))


def voiced_frames(levels: np.ndarray, blocks: np.ndarray, spans) -> np.ndarray:
    """Frames where a note sounds within VOICED_RANGE_DB of that note's loudest frame; a note
    owns the frames from its note-on block to the next note's."""
    voiced = np.zeros(len(levels), dtype=bool)
    for first, end in spans:
        mine = (blocks >= first) & (blocks < end)
        if mine.any():
            peak = levels[mine].max()
            voiced |= mine & (levels >= peak - VOICED_RANGE_DB) & (levels > SILENCE_DBFS)
    return voiced


def clean_frames(voiced: np.ndarray, times: np.ndarray, onset_times: np.ndarray,
                 guard_s: float = EDGE_GUARD_S) -> np.ndarray:
    """Voiced frames at least `guard_s` from every onset and from every voicing change."""
    guard = int(round(guard_s / FRAME_SECONDS))
    steady = voiced.copy()
    for shift in range(1, guard + 1):
        steady[shift:] &= voiced[:-shift]
        steady[:-shift] &= voiced[shift:]
    if len(onset_times):
        nearest = np.min(np.abs(times[:, None] - onset_times[None, :]), axis=1)
        steady &= nearest >= guard_s - 1e-9
    return steady


def phrase_label(audio: np.ndarray, events: PhraseEvents, edge_guard_s: float = EDGE_GUARD_S) -> PhraseLabel:
    """The 10 ms label of a rendered phrase: the played curve sampled at each frame time, and
    the voicing measured on the clean render."""
    times = frame_times(len(audio))
    blocks = np.minimum(frame_blocks(times), events.n_blocks - 1)
    cents = events.played[blocks]
    voiced = voiced_frames(frame_levels_db(audio, times), blocks, events.note_spans) & ~np.isnan(cents)
    onset_times = np.array(events.onsets, dtype=np.float64) * BLOCK / RENDER_RATE
    clean = clean_frames(voiced, times, onset_times, edge_guard_s)
    f0 = np.where(voiced, cents_to_hz(np.nan_to_num(cents)), 0.0)
    return PhraseLabel(times, cents, f0, voiced, clean, events.played)
