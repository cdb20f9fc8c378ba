"""The plan of a dataset: every note with its random draws, and the shards that render them.

The plan is a pure function of the config: every note's random draws (detune, augmentation)
come from a generator seeded by (seed, program, note, velocity), so adding an instrument
leaves every other note as it was. Notes are grouped into shards; a shard's key hashes its
notes, the render settings and the soundfont, and a shard whose record exists is not
rendered again: that makes builds incremental and lets an interrupted build resume.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, replace

import numpy as np

from pipeline.artifacts import fingerprint
from pipeline.clips import clip_name
from pipeline.config import Config, GateConfig
from pipeline.instruments import Instrument, resolve_instrument
from pipeline.pitch import bend_for_cents, cents_for_bend, midi_to_hz
from pipeline.rendering import check_note, soundfont_stat

RENDER_VERSION = 2  # bump when a change to the code changes the audio, to re-render every shard
SHARD_KEY_LENGTH = 20  # hex digits of the shard's fingerprint: its record's file name


# --- notes -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class NoteSpec:
    program: int
    midi: int
    velocity: int
    bend: int
    reverb: bool = False
    chorus: bool = False
    sox_effects: tuple = ()            # ((name, (params...)), ...)
    noise: str = "none"
    snr_db: float | None = None

    @property
    def instrument(self) -> Instrument:
        return resolve_instrument(self.program)

    @property
    def cents(self) -> float:
        return cents_for_bend(self.bend)

    @property
    def frequency(self) -> float:
        return float(midi_to_hz(self.midi + self.cents / 100.0))

    def clip_name(self, segment: str) -> str:
        return clip_name(self.instrument.slug, self.midi, self.frequency, segment, self.velocity)

    def augment_label(self) -> str:
        parts = [name for name, on in (("reverb", self.reverb), ("chorus", self.chorus)) if on]
        parts += [f"{name}({','.join(f'{p:g}' for p in params)})" for name, params in self.sox_effects]
        if self.noise != "none":
            parts.append(f"{self.noise}_noise")
        return ";".join(parts) or "none"


def _note_rng(seed: int, program: int, midi: int, velocity: int) -> np.random.Generator:
    return np.random.default_rng([seed, program, midi, velocity])


def _sox_effect(name: str, rng: np.random.Generator) -> tuple[str, tuple]:
    """One sox effect with parameters drawn for this note (rounded so labels stay readable)."""
    if name == "overdrive":
        return name, (round(rng.uniform(5, 20), 1), 20.0)
    if name == "equalizer":
        return name, (round(float(np.exp(rng.uniform(np.log(200), np.log(4000)))), 0), 1.0,
                      round(rng.uniform(-9, 9), 1))
    return name, (round(rng.uniform(3, 8), 2), round(rng.uniform(20, 60), 1))  # tremolo


def plan_note(cfg: Config, program: int, midi: int, velocity: int) -> NoteSpec:
    rng = _note_rng(cfg.data.seed, program, midi, velocity)
    detuned, cents, augmented, snr = rng.random(), rng.uniform(-1, 1), rng.random(), rng.random()
    bend = bend_for_cents(cents * cfg.data.detune_max_cents) if detuned < cfg.data.detune_share else 0
    a = cfg.augment
    if augmented >= a.share:
        return NoteSpec(program, midi, velocity, bend)
    snr_db = round(a.snr_db_min + snr * (a.snr_db_max - a.snr_db_min), 2) if a.noise != "none" else None
    return NoteSpec(program, midi, velocity, bend, reverb=a.reverb, chorus=a.chorus,
                    sox_effects=tuple(_sox_effect(name, rng) for name in a.sox_effects), noise=a.noise, snr_db=snr_db)


def plan_notes(cfg: Config) -> list[NoteSpec]:
    """Every note of the dataset, in a fixed order: instrument, velocity, note."""
    d = cfg.data
    check_note(d.note_low)
    check_note(d.note_high)
    instruments = [resolve_instrument(i) for i in d.instruments]
    return [plan_note(cfg, inst.program, midi, velocity)
            for inst in instruments for velocity in d.velocities for midi in range(d.note_low, d.note_high + 1)]


# --- shards ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class RenderSettings:
    """Everything besides the notes that shapes a shard's audio and labels (part of its key)."""
    version: int
    hold_seconds: float
    release_seconds: float
    sustain_at: float
    gain: float
    segments: tuple[str, ...]
    gate: GateConfig
    seed: int
    resampler: str
    effects: bool                      # FluidSynth's reverb and chorus units on: some notes use them

    @classmethod
    def from_config(cls, cfg: Config) -> RenderSettings:
        d, a = cfg.data, cfg.augment
        return cls(RENDER_VERSION, d.hold_seconds, d.release_seconds, d.sustain_at, d.gain, d.segments, cfg.gate,
                   d.seed, d.resampler, a.share > 0 and (a.reverb or a.chorus))


@dataclass(frozen=True)
class ShardTask:
    """A fixed set of notes and all a worker needs to render them (picklable).

    A local worker (`on_cluster` False) writes the clips under `data_dir` and trusts the
    soundfont when its (size, mtime) still equals `soundfont_stat`, the file the plan hashed;
    a cluster worker returns each WAV's bytes in its row instead and hashes its own copy of
    the soundfont, which may be another file."""
    key: str
    notes: tuple[NoteSpec, ...]
    settings: RenderSettings
    soundfont: str
    soundfont_sha256: str
    soundfont_stat: tuple[int, int]
    data_dir: str
    on_cluster: bool = False

    def for_cluster(self) -> ShardTask:
        return replace(self, on_cluster=True)


def plan_shards(cfg: Config, notes: list[NoteSpec], soundfont_sha: str) -> list[ShardTask]:
    """Fixed groups of notes; a shard never spans two (instrument, velocity) runs, so adding an
    instrument or a velocity adds shards without changing the existing ones."""
    settings = RenderSettings.from_config(cfg)
    stat = soundfont_stat(cfg.data.soundfont)
    shards = []
    for chunk in _chunks(notes, cfg.data.shard_size):
        key = fingerprint([asdict(settings), soundfont_sha, [asdict(n) for n in chunk]])[:SHARD_KEY_LENGTH]
        shards.append(ShardTask(key, chunk, settings, os.path.abspath(cfg.data.soundfont), soundfont_sha, stat,
                                str(cfg.data_dir)))
    return shards


def _chunks(notes: list[NoteSpec], size: int):
    run: list[NoteSpec] = []
    for note in notes:
        if run and ((note.program, note.velocity) != (run[0].program, run[0].velocity) or len(run) == size):
            yield tuple(run)
            run = []
        run.append(note)
    if run:
        yield tuple(run)
