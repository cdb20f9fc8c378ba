"""The plan of a dataset's phrases: every phrase with its random draws, and the shards that render them.

Sources, in order: each soundfont of data.soundfonts playing each instrument of data.instruments
and phrases.instruments (the GM voices by default) that it has a preset for, `per_instrument`
phrases each; then `phrases.tones` phrases per synthetic tone kind (tones.kinds); then
`phrases.voices` phrases of the voice source, their registers taken in turn.

Every phrase's draws come from a generator seeded by (seed, "phrase", source, instrument, index),
so adding a source, an instrument or more phrases leaves every other phrase as it was: its melody
and gestures (pipeline/data/contours.py) or its voice and intonation (pipeline/data/voice.py),
its timbre, its augmentation and FluidSynth's reverb. A soundfont phrase stays inside the
instrument's usual range (core/instruments.playable_range) within data.note_low..note_high.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from pipeline.core import constants as C
from pipeline.core.artifacts import fingerprint
from pipeline.core.audio_format import DEFAULT_FORMAT, ClipFormat, clip_format
from pipeline.core.config import Config
from pipeline.core.errors import PipelineError
from pipeline.core.instruments import Instrument, playable_range, resolve_instrument
from pipeline.core.pitch import hz_to_midi, midi_to_hz
from pipeline.data import contour_synth, voice
from pipeline.data.augmentation import AugmentSpec, draw_augment
from pipeline.data.clips import source_slug
from pipeline.data.contours import PhraseSpec, draw_phrase
from pipeline.data.plan import FontSource, augment_settings, settings_key
from pipeline.data.rendering import FluidReverb, soundfont_presets

PHRASE_VERSION = 1                 # bump when a change to the code changes a phrase's audio or labels
PHRASES_DIR = "phrases"            # data/NAME/phrases/SOURCE/INSTRUMENT/NAME.wav (+ .f0.csv, .curve.npy)
VOICE_SOURCE = "voice"             # the voice source's name (soundfonts go by file name, tones by "synthetic")
MIN_SPAN = 7                       # semitones: a melody needs at least this much room
TONE_HEADROOM = 3                  # semitones a melody's gestures may reach beyond its notes


@dataclass(frozen=True)
class PhraseItem:
    """One phrase of the plan and everything drawn for it (picklable, compared by value)."""
    source: str                        # soundfont file name, "synthetic" or "voice"
    kind: str                          # soundfont, tone or voice
    program: int                       # GM program; -1 for tones and voices
    name: str                          # the instrument: GM name, tone kind or voice register
    index: int                         # which phrase of its (source, instrument)
    seconds: float
    style: str                         # melody, speech or sung
    melody: PhraseSpec | None = None   # soundfont and tone phrases
    timbre_seed: int = 0               # a tone's timbre (contour_synth.draw_tone_timbre)
    voice: voice.VoiceSpec | None = None
    contour_seed: int = 0              # a voice's intonation and its render's noise
    render_seed: int = 0
    reverb: FluidReverb | None = None
    augment: AugmentSpec = field(default_factory=AugmentSpec)

    @property
    def instrument(self) -> Instrument:
        if self.kind == "soundfont":
            return resolve_instrument(self.program)
        return Instrument(-1, self.name, C.SYNTHETIC_SOURCE if self.kind == "tone" else VOICE_SOURCE)

    @property
    def relpath(self) -> str:
        """The WAV's path in the dataset folder; its frame table and curve sit beside it."""
        return self.audio_path(".wav")

    def audio_path(self, suffix: str) -> str:
        """The audio's path in the dataset folder, for a container's suffix (.wav, .flac)."""
        slug = self.instrument.slug
        return f"{PHRASES_DIR}/{source_slug(self.source)}/{slug}/{slug}_{self.style}_p{self.index:04d}{suffix}"

    def augment_label(self, rate: int = C.SAMPLE_RATE) -> str:
        parts = [self.reverb.label()] if self.reverb else []
        if self.augment != AugmentSpec():
            parts.append(self.augment.label(rate))
        return ";".join(parts) or "none"


def _key(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def _rng(cfg: Config, source: str, name: str, index: int) -> np.random.Generator:
    return np.random.default_rng([cfg.data.seed, _key("phrase"), _key(source), _key(name), index])


def _common_draws(cfg: Config, rng: np.random.Generator, kind: str) -> dict:
    """Reverb and augmentation: a fixed number of values whatever is used."""
    a = cfg.augment
    reverbed, *unit = rng.random(), *(rng.uniform(*bounds) for bounds in
                                      (a.fluid_reverb_room, a.fluid_reverb_damping, a.fluid_reverb_level))
    reverb = FluidReverb(*(round(float(v), 3) for v in unit)) \
        if kind == "soundfont" and reverbed < a.fluid_reverb_share else None
    return {"reverb": reverb, "augment": draw_augment(rng, augment_settings(a))}


def note_range(cfg: Config, program: int) -> tuple[int, int]:
    """The notes a soundfont phrase may use: the instrument's usual range within the config's."""
    low, high = playable_range(program)
    low, high = max(low, cfg.data.note_low), min(high, cfg.data.note_high)
    return (low, high) if high - low >= MIN_SPAN else playable_range(program)


def plan_soundfont_phrase(cfg: Config, font: str, program: int, index: int) -> PhraseItem:
    inst = resolve_instrument(program)
    rng = _rng(cfg, font, inst.name, index)
    common = _common_draws(cfg, rng, "soundfont")
    melody = draw_phrase(rng, cfg.phrases.seconds, *note_range(cfg, program))
    return PhraseItem(font, "soundfont", program, inst.name, index, cfg.phrases.seconds, "melody",
                      melody=melody, **common)


def tone_high(kind: str) -> int:
    """The highest note a tone kind's melody may use: its partial 1 (a missing fundamental's
    partial 3) stays under the band limit, with room for vibrato, scoops and drift."""
    limit = contour_synth.BAND_LIMIT_HZ / (3 if kind == "missing_fundamental" else 1)
    return int(hz_to_midi(limit)) - TONE_HEADROOM


def tone_timbre(item: PhraseItem) -> contour_synth.ToneTimbre:
    """The timbre of a tone phrase, from its seed, with partials for the melody's lowest note."""
    lowest = midi_to_hz(min(n.midi for n in item.melody.notes) - TONE_HEADROOM)
    return contour_synth.draw_tone_timbre(np.random.default_rng(item.timbre_seed), item.name, float(lowest))


def plan_tone_phrase(cfg: Config, kind: str, index: int) -> PhraseItem:
    rng = _rng(cfg, C.SYNTHETIC_SOURCE, kind, index)
    common = _common_draws(cfg, rng, "tone")
    low = max(cfg.data.note_low, int(hz_to_midi(voice.F0_RANGE_HZ[0])))
    high = min(cfg.data.note_high, tone_high(kind))
    melody = draw_phrase(rng, cfg.phrases.seconds, low, max(high, low + MIN_SPAN))
    return PhraseItem(C.SYNTHETIC_SOURCE, "tone", -1, kind, index, cfg.phrases.seconds, "melody",
                      melody=melody, timbre_seed=int(rng.integers(0, 2**63)), **common)


def plan_voice_phrase(cfg: Config, index: int) -> PhraseItem:
    p = cfg.phrases
    register = p.registers[index % len(p.registers)]
    rng = _rng(cfg, VOICE_SOURCE, register, index)
    common = _common_draws(cfg, rng, "voice")
    style = "speech" if rng.random() < p.speech_share else "sung"
    spec = voice.draw_voice(rng, register)
    contour_seed, render_seed = (int(s) for s in rng.integers(0, 2**63, size=2))
    return PhraseItem(VOICE_SOURCE, "voice", -1, register, index, p.seconds, style, voice=spec,
                      contour_seed=contour_seed, render_seed=render_seed, **common)


def plan_phrases(cfg: Config, fonts: list[FontSource] | tuple[FontSource, ...]) -> list[PhraseItem]:
    """Every phrase of the dataset, in a fixed order (empty when phrases are off)."""
    p = cfg.phrases
    if not p.enabled:
        return []
    programs = _programs(cfg)
    items = []
    for font in fonts:
        have = soundfont_presets(font.path)
        items += [plan_soundfont_phrase(cfg, font.name, program, index)
                  for program in programs if program in have for index in range(p.per_instrument)]
    if p.tones:
        items += [plan_tone_phrase(cfg, kind, index) for kind in cfg.tones.kinds for index in range(p.tones)]
    items += [plan_voice_phrase(cfg, index) for index in range(p.voices)]
    return items


def _programs(cfg: Config) -> list[int]:
    """data.instruments, then phrases.instruments not already among them (GM programs)."""
    programs: list[int] = []
    for spec in (*cfg.data.instruments, *cfg.phrases.instruments):
        program = resolve_instrument(spec).program
        if program not in programs:
            programs.append(program)
    return programs


def phrase_sources(cfg: Config, fonts) -> list[str]:
    """The sources phrases come from, in plan order."""
    if not cfg.phrases.enabled:
        return []
    return ([f.name for f in fonts] if cfg.phrases.per_instrument else []) + \
        ([C.SYNTHETIC_SOURCE] if cfg.phrases.tones and cfg.tones.kinds else []) + \
        ([VOICE_SOURCE] if cfg.phrases.voices else [])


# --- shards ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PhraseSettings:
    """Everything besides the phrases that shapes a shard's outputs (part of its key)."""
    version: int
    gain: float
    resampler: str
    audit_cents: float
    effects: bool
    # rate, sample format, container; `samples` stays the default's: a phrase keeps its own length, and
    # data.clip_seconds must not change the phrases' keys
    audio: ClipFormat = DEFAULT_FORMAT

    @classmethod
    def from_config(cls, cfg: Config) -> PhraseSettings:
        return cls(PHRASE_VERSION, cfg.data.gain, cfg.data.resampler, cfg.phrases.audit_cents,
                   cfg.augment.fluid_reverb_share > 0, replace(clip_format(cfg.data), samples=C.CLIP_SAMPLES))


@dataclass(frozen=True)
class PhraseShardTask:
    """A fixed set of phrases of one source and all a worker needs to render them (see
    plan.ShardTask: the same rules for local and cluster workers)."""
    key: str
    items: tuple[PhraseItem, ...]
    settings: PhraseSettings
    source: str
    soundfont: str
    soundfont_sha256: str
    soundfont_stat: tuple[int, int]
    data_dir: str
    on_cluster: bool = False

    def for_cluster(self) -> PhraseShardTask:
        return replace(self, on_cluster=True)

    def clip_paths(self) -> list[str]:
        return [item.audio_path(self.settings.audio.suffix) for item in self.items]


def plan_phrase_shards(cfg: Config, items: list[PhraseItem], fonts) -> list[PhraseShardTask]:
    """Fixed groups of phrases of one (source, instrument); a shard's key hashes its phrases, the
    settings and its soundfont's sha256 (prefixed 'p' beside the notes' shards)."""
    by_name = {f.name: f for f in fonts}
    settings = PhraseSettings.from_config(cfg)
    shards, run = [], []
    for item in [*items, None]:
        if run and (item is None or (item.source, item.name) != (run[0].source, run[0].name)
                    or len(run) == cfg.phrases.shard_size):
            font = by_name.get(run[0].source)
            if run[0].kind == "soundfont" and font is None:
                raise PipelineError(f"phrases of {run[0].source} but no such soundfont in data.soundfonts")
            sha = font.sha256 if font else ""
            key = "p" + fingerprint([settings_key(settings), sha, [asdict(i) for i in run]])[:19]
            shards.append(PhraseShardTask(key, tuple(run), settings, run[0].source, font.path if font else "",
                                          sha, font.stat if font else (0, 0), str(cfg.data_dir)))
            run = []
        if item is not None:
            run.append(item)
    return shards
