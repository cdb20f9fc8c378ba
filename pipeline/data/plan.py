"""The plan of a dataset: every note with its random draws, and the shards that render them.

Sources, in order: each soundfont of data.soundfonts (a GM instrument a font has no preset
for is skipped there and counted), then the synthetic tones of [tones] (pipeline/data/tones.py;
their "instruments" are the tone kinds). Within a source: instrument, velocity, note (and,
for tones, variant).

The plan is a pure function of the config and the fonts' contents: every note's random
draws come from a generator seeded by (seed, source, instrument, note, velocity, variant),
so adding a source, an instrument or a velocity leaves every other note as it was. Each
kind of draw (detune, FluidSynth's reverb, where the onset and release segments sit, the
augmentation, then the tone's timbre) takes a fixed number of values from it, whatever the
settings, so changing one setting moves no other draw.

Notes are grouped into shards; a shard's key hashes its notes, the render settings and its
soundfont's sha256, and a shard whose record exists, whole, with every clip it lists intact,
is not rendered again: that makes builds incremental and lets an interrupted build resume.
`data_params` is the data stage's slice of the config (make's .params/data.json), whose
fingerprint dataset.json records.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass, field, replace
from functools import cache

import numpy as np

from pipeline.core import constants as C
from pipeline.core.artifacts import fingerprint
from pipeline.core.audio_format import DEFAULT_FORMAT, ClipFormat, clip_format
from pipeline.core.config import AugmentConfig, Config, GateConfig
from pipeline.core.errors import PipelineError
from pipeline.core.instruments import Instrument, resolve_instrument
from pipeline.core.pitch import bend_for_cents, cents_for_bend, midi_to_hz
from pipeline.data import tones
from pipeline.data.augmentation import AugmentSettings, AugmentSpec, draw_augment
from pipeline.data.clips import clip_name, clip_relpath, source_slug
from pipeline.data.rendering import (
    FluidReverb,
    Renderer,
    check_note,
    soundfont_info,
    soundfont_paths,
    soundfont_presets,
    soundfont_stat,
)

RENDER_VERSION = 3  # bump when a change to the code changes the audio, to re-render every shard
SHARD_KEY_LENGTH = 20  # hex digits of the shard's fingerprint: its record's file name


# settings that change only where or how fast the data stage runs, never its outputs
NOT_OUTPUT_SETTINGS = ("workers", "scheduler")
AUDIO_SETTINGS = ("sample_rate", "clip_seconds", "sample_format", "file_format")  # pipeline.core.audio_format
DATA_SECTIONS = ("data", "tones", "phrases", "augment", "gate", "audit", "split")


# --- sources ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class FontSource:
    """A soundfont of the plan: its file name is the clips' `source`."""
    name: str
    path: str                          # absolute
    size: int
    sha256: str
    stat: tuple[int, int]              # (size, mtime ns) when hashed: a local worker trusts an unchanged file


def plan_fonts(cfg: Config) -> list[FontSource]:
    """data.soundfonts expanded (globs) and checked; each font hashed once per process."""
    fonts = []
    for path in soundfont_paths(cfg.data.soundfonts):
        info = soundfont_info(path)  # the name is the listed file's, links not followed: the user's name
        fonts.append(FontSource(path.name, os.path.abspath(path), info["bytes"], info["sha256"], soundfont_stat(path)))
    slugs = [source_slug(f.name) for f in fonts] + [C.SYNTHETIC_SOURCE]
    if len(set(slugs)) < len(slugs):
        raise PipelineError(f"two sources of data.soundfonts file their clips under one folder name "
                            f"({', '.join(f.name for f in fonts)}); rename one of the files")
    return fonts


def data_params(cfg: Config, fonts: list[FontSource] | tuple[FontSource, ...] | None = None) -> dict:
    """The data stage's slice of the config: the sections its outputs depend on, less the settings
    that only decide where it runs, plus each soundfont's sha256 (a changed font re-renders).
    make's .params/data.json holds it; dataset.json records its fingerprint, which is how a
    dataset built by `pipeline data --set ...` is known not to be this config's."""
    full = cfg.to_dict()
    params = {section: dict(full[section]) for section in DATA_SECTIONS}
    for key in NOT_OUTPUT_SETTINGS:
        params["data"].pop(key, None)
    if clip_format(cfg.data).is_default:  # the fingerprints of datasets built before these were settings
        for key in AUDIO_SETTINGS:
            params["data"].pop(key)
    fonts = plan_fonts(cfg) if fonts is None else fonts
    params["data"]["soundfonts"] = [f.name for f in fonts]  # what and in which order, not where: names and sha256
    params["soundfonts_sha256"] = {f.name: f.sha256 for f in fonts}
    return params


def params_fingerprint(cfg: Config, fonts: list[FontSource] | tuple[FontSource, ...] | None = None) -> str:
    return fingerprint(data_params(cfg, fonts))


@cache
def tone_instrument(kind: str) -> Instrument:
    """The "instrument" of a synthetic tone kind: no GM program (-1), family synthetic."""
    return Instrument(-1, kind, C.SYNTHETIC_SOURCE)


# --- notes -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class NoteSpec:
    source: str                        # the soundfont's file name, or "synthetic"
    program: int                       # GM program; -1 for a synthetic tone
    midi: int
    velocity: int                      # 0 for a synthetic tone (it has none)
    bend: int                          # the detune, as a pitch-wheel offset (tones use the same steps)
    variant: int = 0                   # which of a synthetic note's tones
    tone: tones.ToneSpec | None = None
    reverb: FluidReverb | None = None  # FluidSynth's reverb, soundfont notes only
    augment: AugmentSpec = field(default_factory=AugmentSpec)
    onset_lead_ms: float = 0.0         # the onset segment starts this long before the detected onset
    release_at: float = 0.5            # the release segment holds the note-off at this share of its length

    @property
    def instrument(self) -> Instrument:
        return tone_instrument(self.tone.kind) if self.tone else resolve_instrument(self.program)

    @property
    def cents(self) -> float:
        return cents_for_bend(self.bend)

    @property
    def frequency(self) -> float:
        return float(midi_to_hz(self.midi + self.cents / 100.0))

    def clip_name(self, segment: str, suffix: str = ".wav") -> str:
        variant = self.variant if self.tone else None
        return clip_name(self.instrument.slug, self.midi, self.frequency, segment, self.velocity, variant, suffix)

    def clip_path(self, segment: str, suffix: str = ".wav") -> str:
        """Where this note's clip of `segment` lives, relative to the dataset folder."""
        return clip_relpath(self.source, self.instrument.slug, self.clip_name(segment, suffix))

    def augment_label(self, rate: int = C.SAMPLE_RATE) -> str:
        parts = [self.reverb.label()] if self.reverb else []
        if self.augment != AugmentSpec():
            parts.append(self.augment.label(rate))
        return ";".join(parts) or "none"


@dataclass(frozen=True)
class Plan:
    notes: tuple[NoteSpec, ...]
    fonts: tuple[FontSource, ...]
    skipped_presets: dict[str, list[str]]  # font name -> GM instruments it has no preset for (not rendered)


def _key(text: str) -> int:
    """A stable 64-bit number for a name (a source, a tone kind) in a generator's seed."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def _note_rng(seed: int, source: str, instrument: int, midi: int, velocity: int, variant: int) -> np.random.Generator:
    return np.random.default_rng([seed, _key(source), instrument, midi, velocity, variant])


def augment_settings(a: AugmentConfig) -> AugmentSettings:
    """The [augment] keys as pipeline/data/augmentation.py's settings; the rest keep its defaults."""
    return AugmentSettings(
        clean_share=1.0 - a.share, room_share=a.room_share, eq_share=a.eq_share, noise_share=a.noise_share,
        level_share=a.level_share, codec_share=a.codec_share, rt60_s=a.rt60_s, drr_db=a.drr_db,
        noise_kinds=a.noise_kinds, noise_weights=a.noise_weights, snr_db=a.snr_db, hum_snr_db=a.hum_snr_db,
        telephone_share=a.telephone_share, level_db=a.level_db, mp3_share=a.mp3_share, mp3_kbps=a.mp3_kbps,
        ogg_quality=a.ogg_quality)


def _drawn(cfg: Config, rng: np.random.Generator, note: NoteSpec, settings: AugmentSettings) -> NoteSpec:
    """The note with its detune, reverb, segment positions and augmentation drawn: a fixed number
    of values each, drawn whether used or not, so no draw depends on another's settings."""
    d, a = cfg.data, cfg.augment
    detuned, cents = rng.random(), rng.uniform(-1, 1)
    bend = bend_for_cents(cents * d.detune_max_cents) if detuned < d.detune_share else 0
    reverbed, *unit = rng.random(), *(rng.uniform(*bounds) for bounds in
                                      (a.fluid_reverb_room, a.fluid_reverb_damping, a.fluid_reverb_level))
    reverb = None
    if note.source != C.SYNTHETIC_SOURCE and reverbed < a.fluid_reverb_share:
        reverb = FluidReverb(*(round(float(v), 3) for v in unit))
    lead, share = rng.uniform(*d.onset_lead_ms), rng.uniform(*d.release_at)
    # kept only for the segments built: configs without them keep their shard keys
    lead = round(float(lead), 1) if "onset" in d.segments else 0.0
    share = round(float(share), 3) if "release" in d.segments else 0.5
    augment = draw_augment(rng, settings)  # AugmentSpec() for the clean share (all notes at share 0)
    return replace(note, bend=bend, augment=augment, reverb=reverb, onset_lead_ms=lead, release_at=share)


def plan_note(cfg: Config, source: str, program: int, midi: int, velocity: int,
              settings: AugmentSettings | None = None) -> NoteSpec:
    """One soundfont note with its draws."""
    rng = _note_rng(cfg.data.seed, source, program, midi, velocity, 0)
    return _drawn(cfg, rng, NoteSpec(source, program, midi, velocity, 0), settings or augment_settings(cfg.augment))


def plan_tone(cfg: Config, kind: str, midi: int, variant: int,
              settings: AugmentSettings | None = None) -> NoteSpec | None:
    """One synthetic note with its draws and its tone; None where the kind cannot sound this pitch
    (above the band limit, or a missing fundamental above 2.5 kHz)."""
    rng = _note_rng(cfg.data.seed, C.SYNTHETIC_SOURCE, _key(kind), midi, 0, variant)
    note = _drawn(cfg, rng, NoteSpec(C.SYNTHETIC_SOURCE, -1, midi, 0, 0, variant),
                  settings or augment_settings(cfg.augment))
    f0 = note.frequency
    if f0 >= tones.MAX_BAND_LIMIT_HZ or (kind == "missing_fundamental" and 3 * f0 >= tones.MAX_BAND_LIMIT_HZ):
        return None
    return replace(note, tone=tones.draw_tone(rng, f0, (kind,)))  # last: it draws as many values as it needs


def _instruments(specs: tuple[str, ...]) -> list[Instrument]:
    instruments = []
    for spec in specs:
        inst = resolve_instrument(spec)
        twin = next((i for i in instruments if i.program == inst.program), None)
        if twin is not None:
            raise PipelineError(f"data.instruments names {inst.name} twice ({spec!r} is program {inst.program}); "
                                "list it once")
        instruments.append(inst)
    return instruments


def make_plan(cfg: Config) -> Plan:
    """Every note of the dataset, in a fixed order: source, instrument, velocity, note (variant)."""
    d = cfg.data
    check_note(d.note_low)
    check_note(d.note_high)
    fonts = plan_fonts(cfg)
    instruments = _instruments(d.instruments) if fonts else []
    settings = augment_settings(cfg.augment)
    notes, skipped = [], {}
    for font in fonts:
        have = soundfont_presets(font.path)
        if not have:  # no preset headers: FluidSynth says what is wrong, or the font is no GM bank
            Renderer(font.path).close()
            raise PipelineError(f"soundfont {font.path} has no General MIDI presets (bank 0); "
                                "remove it from data.soundfonts")
        skipped[font.name] = [i.name for i in instruments if i.program not in have]
        notes += [] if not d.notes else [plan_note(cfg, font.name, inst.program, midi, velocity, settings)
                  for inst in instruments if inst.program in have
                  for velocity in d.velocities for midi in range(d.note_low, d.note_high + 1)]
    nowhere = [i.name for i in instruments if all(i.name in skipped[f.name] for f in fonts)]
    if nowhere:
        raise PipelineError(f"no soundfont of data.soundfonts has a preset for {', '.join(nowhere)}; remove them "
                            "from data.instruments or add a full General MIDI soundfont")
    if cfg.tones.enabled and d.notes:
        planned = (plan_tone(cfg, kind, midi, variant, settings) for kind in cfg.tones.kinds
                   for midi in range(d.note_low, d.note_high + 1) for variant in range(cfg.tones.variants))
        notes += [n for n in planned if n is not None]
    return Plan(tuple(notes), tuple(fonts), skipped)


def plan_notes(cfg: Config) -> list[NoteSpec]:
    """make_plan's notes."""
    return list(make_plan(cfg).notes)


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
    effects: bool                      # FluidSynth's reverb unit on: some notes use it
    audio: ClipFormat = DEFAULT_FORMAT  # the clips' rate, length, sample format and container

    @classmethod
    def from_config(cls, cfg: Config) -> RenderSettings:
        d = cfg.data
        return cls(RENDER_VERSION, d.hold_seconds, d.release_seconds, d.sustain_at, d.gain, d.segments, cfg.gate,
                   d.seed, d.resampler, cfg.augment.fluid_reverb_share > 0, clip_format(d))


def settings_key(settings) -> dict:
    """What a shard's key hashes of its settings (RenderSettings, or phrase_plan's PhraseSettings): every
    field, the clips' format only where it is not the default (ClipFormat.stamp: the keys of shards
    built before it was a setting stay)."""
    return {k: v for k, v in asdict(settings).items() if k != "audio"} | settings.audio.stamp()


@dataclass(frozen=True)
class ShardTask:
    """A fixed set of notes of one source and all a worker needs to render them (picklable).

    A local worker (`on_cluster` False) writes the clips under `data_dir` and trusts the
    soundfont when its (size, mtime) still equals `soundfont_stat`, the file the plan hashed;
    a cluster worker returns each WAV's bytes in its row instead and hashes its own copy of
    the soundfont, which may be another file. Synthetic shards have no soundfont ("")."""
    key: str
    notes: tuple[NoteSpec, ...]
    settings: RenderSettings
    source: str
    soundfont: str
    soundfont_sha256: str
    soundfont_stat: tuple[int, int]
    data_dir: str
    on_cluster: bool = False

    def for_cluster(self) -> ShardTask:
        return replace(self, on_cluster=True)

    def clip_paths(self) -> list[str]:
        """The path of every row of the shard's record, kept or dropped, in the order it renders
        them: each note's segments in C.SEGMENT_NAMES order."""
        segments = [seg for seg in C.SEGMENT_NAMES if seg in self.settings.segments]
        suffix = self.settings.audio.suffix
        return [note.clip_path(segment, suffix) for note in self.notes for segment in segments]


def plan_shards(cfg: Config, notes: list[NoteSpec], fonts: list[FontSource] | str | None = None) -> list[ShardTask]:
    """Fixed groups of notes; a shard never spans two (source, instrument, velocity) runs, so adding
    a source, an instrument or a velocity adds shards without changing the existing ones.
    `fonts`: the plan's (else planned again: each font is hashed once per process anyway); a
    str, the single font's sha256 of the older signature, is ignored the same way."""
    by_name = {f.name: f for f in (fonts if isinstance(fonts, (list, tuple)) else plan_fonts(cfg))}
    settings = RenderSettings.from_config(cfg)
    shards = []
    for chunk in _chunks(notes, cfg.data.shard_size):
        font = by_name.get(chunk[0].source)
        if font is None and chunk[0].source != C.SYNTHETIC_SOURCE:
            raise PipelineError(f"notes of {chunk[0].source} but no such soundfont in data.soundfonts; plan again")
        sha = font.sha256 if font else ""
        key = fingerprint([settings_key(settings), sha, [asdict(n) for n in chunk]])[:SHARD_KEY_LENGTH]
        shards.append(ShardTask(key, chunk, settings, chunk[0].source, font.path if font else "", sha,
                                font.stat if font else (0, 0), str(cfg.data_dir)))
    return shards


def _chunks(notes: list[NoteSpec], size: int):
    run: list[NoteSpec] = []
    for note in notes:
        if run and (_run_key(note) != _run_key(run[0]) or len(run) == size):
            yield tuple(run)
            run = []
        run.append(note)
    if run:
        yield tuple(run)


def _run_key(note: NoteSpec) -> tuple:
    return note.source, note.program, note.tone.kind if note.tone else "", note.velocity
