"""One typed config for the whole pipeline: TOML files under configs/ plus --set overrides.

Every section is a frozen dataclass; unknown keys, wrong types and out-of-range values
raise PipelineError naming the key. The same object is saved next to every output.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.core import constants as C
from pipeline.core.audio_format import FILE_FORMATS, SAMPLE_FORMATS, SAMPLE_RATES, check_clip_settings
from pipeline.core.config_files import (
    REMOVED_KEYS,
    resolve_paths,
    resolved_override,
    to_toml,  # noqa: F401  (pipeline.core.config.to_toml: where callers have always found it)
    upgrade,
    upgraded_override,
)
from pipeline.core.errors import PipelineError
from pipeline.core.typed_toml import Rules, apply_overrides, build, read_toml

# output roots under Config.root: ROOT/data/NAME, ROOT/models/NAME, ROOT/reports/NAME
DATA_ROOT = "data"
MODEL_ROOT = "models"
REPORT_ROOT = "reports"
# the default config, package data (configs/default.toml in a checkout links to it): what make and
# the command line use when no config is named, so both build and train the same `default`
DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "default.toml"


# the kinds of pipeline/data/tones.py (a test checks they match; config sits below tones in the layers)
TONE_KINDS = ("sine", "triangle", "square", "sawtooth", "harmonic", "missing_fundamental", "stretched")
CLASSIC_SEGMENTS = ("attack", "sustain", "decay")


@dataclass(frozen=True)
class DataConfig:
    # .sf2/.sf3 files or glob patterns, expanded in order (each pattern's matches sorted); a path in a
    # config file is relative to the file's folder; a bare file name ("FluidR3_GM.sf2") is also looked
    # for in the soundfont folders (PIPELINE_SOUNDFONT_PATH, /usr/share/sounds/sf2, ...); [] with tones
    # on: a synthetic-only dataset
    soundfonts: tuple[str, ...] = ("FluidR3_GM.sf2",)
    instruments: tuple[str, ...] = ("Acoustic Grand Piano", "Violin", "Flute")  # GM names or numbers 0-127
    notes: bool = True                 # single-note clips (false: a dataset of phrases only)
    note_low: int = 21                 # A0: the piano's range
    note_high: int = 108               # C8
    velocities: tuple[int, ...] = (100,)  # MIDI velocities, each note rendered at every one
    detune_share: float = 0.5          # share of notes detuned by a random pitch bend
    detune_max_cents: float = 50.0     # detune drawn uniformly in +-this
    segments: tuple[str, ...] = CLASSIC_SEGMENTS  # constants.SEGMENTS adds onset, release and whole (alone)
    onset_lead_ms: tuple[float, float] = (20.0, 250.0)  # onset segment: starts this long before the onset
    release_at: tuple[float, float] = (0.3, 0.9)        # release segment: the note-off at this share of it
    hold_seconds: float = 1.0          # note-on to note-off; at least clip_seconds + 0.05 but for whole notes
    release_seconds: float = 0.5       # rendered after note-off (decay segment lives here); at least clip_seconds
    sustain_at: float = 0.5            # sustain segment centre, as a share of the hold
    gain: float = 0.4                  # FluidSynth master gain
    seed: int = 0                      # seeds every random draw of the plan (detune, segments, augmentation)
    workers: int = 0                   # 0 = every core
    shard_size: int = 32               # notes per shard, the unit of work and of resume
    scheduler: str = ""                # "" = local process pool, else tcp://HOST:PORT (Dask)
    resampler: str = "soxr"            # 44.1 kHz -> sample_rate: soxr (libsoxr in-process) or sox (a sox process)
    sample_rate: int = C.SAMPLE_RATE   # Hz of the clips; the spectrogram models need 16000, the frame model takes any
    clip_seconds: float = C.CLIP_SECONDS  # each segment's length (the spectrogram models need 0.33)
    sample_format: str = "int16"       # int16, int24 or float32 (float32: WAV only)
    file_format: str = "wav"           # wav or flac (docs/dataset.md: the clips' formats)

    @property
    def soundfont(self) -> str:
        """The first soundfont entry, for code that renders with one font (the benchmarks)."""
        return self.soundfonts[0] if self.soundfonts else ""


@dataclass(frozen=True)
class TonesConfig:
    """The synthetic source (pipeline/data/tones.py): tones whose f0 is exactly their label."""
    enabled: bool = False              # add the synthetic source
    kinds: tuple[str, ...] = TONE_KINDS  # each is an instrument of source "synthetic"; [] = off
    variants: int = 1                  # tones drawn per (kind, note)


VOICE_REGISTERS = ("male", "female", "child", "soprano")  # pipeline/data/voice.py's
PHRASE_SOURCES = ("soundfont", "voice", "tone")


@dataclass(frozen=True)
class PhrasesConfig:
    """Phrases (pipeline/data/phrases.py): clips of a few seconds whose pitch moves (melodies with
    legato, glides, vibrato, trills, scoops, falls and rests; speech and sung lines of the voice
    source), each with its f0 every 10 ms, next to the single-note clips."""
    enabled: bool = False              # build phrases (melodies with per-frame labels) besides the notes
    seconds: float = 4.0               # each phrase's length
    per_instrument: int = 2            # phrases per soundfont and instrument (data.instruments + instruments)
    instruments: tuple[str, ...] = ("Choir Aahs", "Voice Oohs", "Synth Voice")  # GM voices, phrases only
    tones: int = 0                     # phrases per synthetic tone kind (tones.kinds)
    voices: int = 0                    # phrases of the voice source (glottal pulses through formants)
    registers: tuple[str, ...] = VOICE_REGISTERS   # the voices' registers, drawn in turn
    speech_share: float = 0.5          # voice phrases that speak; the others sing
    audit_cents: float = 25.0          # a frame whose sure independent estimate is farther off is flagged
    shard_size: int = 8                # phrases per shard, the unit of work and of resume


@dataclass(frozen=True)
class AugmentConfig:
    """Real rooms and microphones (pipeline/data/augmentation.py's AugmentSettings, by plan.augment_settings),
    and FluidSynth's own reverb. Shares are per note; each effect's share applies to augmented notes."""
    share: float = 0.0                 # share of notes augmented (0 = off)
    room_share: float = 0.5            # convolution with a synthetic room impulse response ...
    rt60_s: tuple[float, float] = (0.1, 1.5)       # ... whose RT60 is log-uniform in this range
    drr_db: tuple[float, float] = (-3.0, 12.0)     # direct-to-reverberant ratio
    eq_share: float = 0.5              # microphone low cut, shelves, peaks
    telephone_share: float = 0.1       # of EQs: a steep low-pass at 3-7 kHz
    noise_share: float = 0.6           # background noise ...
    noise_kinds: tuple[str, ...] = ("white", "pink", "brown", "hum")  # ... of these kinds ...
    noise_weights: tuple[float, ...] = (0.3, 0.35, 0.15, 0.2)       # ... drawn with these weights
    snr_db: tuple[float, float] = (0.0, 40.0)      # white, pink and brown noise, against the note's active part
    hum_snr_db: tuple[float, float] = (15.0, 40.0)  # mains hum (50 or 60 Hz and its harmonics)
    level_share: float = 0.3           # a gain ramp ...
    level_db: float = 12.0             # ... between two levels within +-this
    codec_share: float = 0.3           # an MP3 or Ogg Vorbis round trip
    mp3_share: float = 0.6             # of codec notes
    mp3_kbps: tuple[int, ...] = (32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160)  # MP3 bitrates drawn from
    ogg_quality: tuple[float, float] = (0.0, 0.6)  # Ogg Vorbis quality range
    fluid_reverb_share: float = 0.0    # soundfont notes rendered through FluidSynth's reverb ...
    fluid_reverb_room: tuple[float, float] = (0.2, 0.95)   # ... room size, damping and level drawn per note
    fluid_reverb_damping: tuple[float, float] = (0.0, 0.8)  # FluidSynth reverb damping
    fluid_reverb_level: tuple[float, float] = (0.2, 0.9)    # FluidSynth reverb level


@dataclass(frozen=True)
class GateConfig:
    silent_peak_dbfs: float = -60.0    # a segment whose raw peak is below this is silent
    min_rms_db_below_note: float = 40.0  # a segment this far below the note's loudest is too quiet
    min_sounding_ms: int = 50          # a segment that sounds (within 40 dB of its peak) for less is too short


@dataclass(frozen=True)
class AuditConfig:
    """What the label audit (pipeline/data/audit.py) may do with its independent estimate of each clip."""
    min_confidence: float = 0.9        # the auditor is sure of a clip from here (1 - YIN's aperiodicity)
    mismatch_cents: float = 50.0       # a sure estimate this far from the label drops the clip
    drop_mismatches: bool = True       # drop those clips (audit_mismatch, audit_octave)
    relabel_octaves: bool = True       # a preset that sounds a whole octave off is relabelled ...
    octave_share: float = 0.6          # ... when this share of its sure clips say so
    tune_labels: bool = True           # shift a preset's labels by its consistent tuning offset ...
    tune_min_cents: float = 3.0        # ... of at least this (median of its sure clips) ...
    tune_max_spread_cents: float = 8.0  # ... whose clips agree within this (median absolute deviation)


@dataclass(frozen=True)
class SplitConfig:
    test: str = "instrument"           # instrument (held-out instruments) or random
    test_instruments: tuple[str, ...] = ("Flute",)  # GM names or numbers, or tone kinds, held out whole
    test_sources: tuple[str, ...] = ()  # soundfont file names or "synthetic", held out whole (with the above)
    test_share: float = 0.15           # for test = "random"
    val_share: float = 0.1             # random share of the remaining notes


@dataclass(frozen=True)
class FeaturesConfig:
    # spectrogram: one 513x90 spectrogram per note clip (the reference, bins and stream models);
    # frames: the frame model's examples (pipeline/data/frame_examples.py), spectra made per batch
    kind: str = "spectrogram"
    frames_per_note: int = 4           # frames: examples taken from each note clip (per 330 ms of a longer one)
    scaling: str = "log"               # log: ln(magnitude + 1e-6); db: 20 log10 of the same; linear
    dtype: str = "float16"             # stored precision (float32 for linear scaling)
    batch_size: int = 32               # clips per spectrogram batch (small batches stay in cache: see bench)


@dataclass(frozen=True)
class ModelConfig:
    variant: str = "bins"              # reference (one linear output), bins (soft-argmax head) or stream
    target: str = "midi"               # reference model target: midi, log_hz or hz
    width: float = 1.0                 # multiplies the 64/128/128/256 filters
    dense_units: tuple[int, ...] = (512, 256)  # bins and reference: the Dense layers
    # dropout layers stay where the reference has them, but off by default: at 0.1/0.25 they
    # halved CPU speed, cost the bins model 3 points of accuracy in 8 epochs, and made the
    # regressor's test-time outputs shrink towards the mean (max-pooling of dropped-out maps)
    input_dropout: float = 0.0         # bins and reference: dropout at the input ...
    dropout: float = 0.0               # ... and after each block
    bins_per_semitone: int = 5         # for variant = bins
    label_smoothing_cents: float = 25.0  # std of the Gaussian-blurred bin targets
    time_pool: int = 3                 # bins: average this many frames before the convolutions
    modulation: bool = True            # bins: add the modulation-spectrum branch (low notes)
    reference_width: float = 0.0       # width of the comparison reference model; 0 = width
    # stream (pipeline/model/stream_network.py): a harmonic stack of candidate pitches on time-pooled frames,
    # an MLP per candidate and per frame, dilated convolutions over time, the window's mean, a
    # modulation path; one pass over a long spectrogram gives every window's output (ONNX export)
    pitch_resolution: int = 2          # harmonic-stack candidates per semitone
    harmonics: tuple[float, ...] = (0.5, 1.0, 2.0, 3.0, 4.0, 5.0)  # the multiples of a candidate it reads
    harmonic_units: tuple[int, ...] = (32, 32, 8)   # the MLP shared by every candidate
    encoder_units: tuple[int, ...] = (256,)         # dense layers over all candidates, per frame
    temporal_dilations: tuple[int, ...] = (1, 2, 4)  # residual convolutions over the pooled frames
    head_units: int = 512              # the dense head before the softmax over pitch bins
    modulation_bands: int = 8          # groups of narrow bands whose modulation magnitudes are averaged
    # frames (pipeline/model/frame_network.py): an f0 distribution every 10 ms from the log-frequency
    # spectra of the frame and frame_context frames on each side
    frame_units: tuple[int, ...] = (12, 24, 16)   # harmonic features, temporal convolution, candidate layer
    frame_context: int = 2             # frames on each side of the one estimated (10 ms each)
    frame_bins_per_octave: int = 24    # candidate pitches an octave: 24 (50 cents apart) or 48 (25 cents)


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 30                   # at most (early stopping may end sooner)
    batch_size: int = 64               # examples per step (split across devices)
    learning_rate: float = 1e-3        # Adam's
    patience: int = 6                  # early stopping: epochs without a better validation loss
    seed: int = 0                      # shuffling and initialisation
    mixed_precision: bool = True       # only applied on a GPU
    schedule: str = "cosine"           # learning rate: cosine (decays to 0 at the last epoch) or constant
    compare_reference: bool = True     # also train the reference model (models/NAME/reference/) for the report
    reference_epochs: int = 0          # epochs for that comparison model; 0 = epochs
    level_db: float = 40.0             # stream: each example played up to this many dB quieter (level invariance)
    noise_share: float = 0.1           # stream, frames: share of each batch replaced by unpitched noise (no pitch)
    tone_share: float = 0.05           # frames: share of each batch replaced by plain tones (a sine or a few partials)


@dataclass(frozen=True)
class ReportConfig:
    # trackers run on the test clips beside the model (pipeline/report/baselines.py); one whose package
    # is missing is listed as skipped. crepe and crepe_tiny need the baselines-torch extra (docs/evaluation.md)
    baselines: tuple[str, ...] = ("pyin", "praat", "swift_f0")
    max_baseline_clips: int = 0        # 0 = every test clip, else this many evenly spaced


@dataclass(frozen=True)
class Config:
    name: str = "default"              # names data/NAME, models/NAME, reports/NAME; default: the file's name
    # outputs go to ROOT/data/NAME, ROOT/models/NAME, ROOT/reports/NAME: an existing folder, or a new one in an
    # existing folder; "." is the folder the command runs in, and a relative root written in a config file is
    # relative to the file's folder; make knows only ".", so `pipeline params` refuses any other
    root: str = "."
    data: DataConfig = field(default_factory=DataConfig)
    tones: TonesConfig = field(default_factory=TonesConfig)
    phrases: PhrasesConfig = field(default_factory=PhrasesConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    gate: GateConfig = field(default_factory=GateConfig)
    audit: AuditConfig = field(default_factory=AuditConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    report: ReportConfig = field(default_factory=ReportConfig)

    # --- where this config's outputs go --------------------------------------------
    @property
    def data_dir(self) -> Path:
        return Path(self.root) / DATA_ROOT / self.name

    @property
    def model_dir(self) -> Path:
        return Path(self.root) / MODEL_ROOT / self.name

    @property
    def report_dir(self) -> Path:
        return Path(self.root) / REPORT_ROOT / self.name

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# --- validation ---------------------------------------------------------------------
_CHOICES = {
    "augment.noise_kinds": {"white", "pink", "brown", "hum"},
    "augment.mp3_kbps": {8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160},  # MPEG-2 Layer III
    "data.segments": set(C.SEGMENT_NAMES),
    "data.resampler": {"soxr", "sox"},
    "data.sample_rate": set(SAMPLE_RATES),
    "data.sample_format": set(SAMPLE_FORMATS),
    "data.file_format": set(FILE_FORMATS),
    "tones.kinds": set(TONE_KINDS),
    "phrases.registers": set(VOICE_REGISTERS),
    "split.test": {"instrument", "random"},
    "features.scaling": {"log", "db", "linear"},
    "features.kind": {"spectrogram", "frames"},
    "features.dtype": {"float16", "float32"},
    "model.variant": {"reference", "bins", "stream", "frames"},
    "model.target": {"midi", "log_hz", "hz"},
    "model.frame_bins_per_octave": {24, 48},
    "report.baselines": set(C.BASELINES),
    "train.schedule": {"cosine", "constant"},
}
_SHARES = ("augment.share", "augment.room_share", "augment.eq_share", "augment.telephone_share",
           "augment.noise_share", "augment.level_share", "augment.codec_share", "augment.mp3_share",
           "augment.fluid_reverb_share", "augment.ogg_quality", "augment.fluid_reverb_room",
           "augment.fluid_reverb_damping", "augment.fluid_reverb_level", "audit.min_confidence",
           "audit.octave_share", "data.release_at")
_RANGES = {
    **{key: (0, 1) for key in _SHARES},
    "data.note_low": (C.MIDI_MIN, C.MIDI_MAX), "data.note_high": (C.MIDI_MIN, C.MIDI_MAX),
    "data.velocities": (1, 127), "data.detune_share": (0, 1), "data.detune_max_cents": (0, 200),
    "data.onset_lead_ms": (0, 300),
    "data.hold_seconds": (0.1, 60), "data.release_seconds": (0.05, 60), "data.clip_seconds": (0.05, 30),
    "data.sustain_at": (0, 1), "data.gain": (0.01, 10), "data.workers": (0, 4096),
    "data.shard_size": (1, 100_000), "tones.variants": (1, 1000),
    "phrases.seconds": (1.0, 17.0), "phrases.per_instrument": (0, 100_000), "phrases.tones": (0, 100_000),
    "phrases.voices": (0, 10_000_000), "phrases.speech_share": (0, 1), "phrases.audit_cents": (1, 1200),
    "phrases.shard_size": (1, 10_000),
    "augment.rt60_s": (0.01, 10), "augment.drr_db": (-30, 40), "augment.snr_db": (-20, 100),
    "augment.hum_snr_db": (-20, 100), "augment.level_db": (0, 40), "augment.noise_weights": (0, 1000),
    "audit.mismatch_cents": (1, 1200), "audit.tune_min_cents": (0, 100), "audit.tune_max_spread_cents": (0, 100),
    "split.test_share": (0, 0.9), "split.val_share": (0, 0.9),
    "features.batch_size": (1, 100_000), "features.frames_per_note": (1, 30), "model.width": (0.01, 8),
    "model.input_dropout": (0, 0.95), "model.dropout": (0, 0.95),
    "model.dense_units": (1, 100_000), "model.bins_per_semitone": (1, 100),
    "model.label_smoothing_cents": (0, 600), "model.time_pool": (1, 90), "model.reference_width": (0, 8),
    "model.encoder_units": (1, 100_000), "model.temporal_dilations": (1, 45), "model.head_units": (1, 100_000),
    "model.modulation_bands": (1, 64), "model.pitch_resolution": (1, 20), "model.harmonics": (0.25, 32),
    "model.harmonic_units": (1, 10_000), "model.frame_units": (1, 4096), "model.frame_context": (0, 6),
    "train.level_db": (0, 100), "train.noise_share": (0, 0.9), "train.tone_share": (0, 0.9),
    "train.reference_epochs": (0, 100_000), "train.epochs": (1, 100_000),
    "train.batch_size": (1, 100_000), "train.learning_rate": (1e-8, 10), "train.patience": (1, 10_000),
    "report.max_baseline_clips": (0, 10_000_000), "gate.min_sounding_ms": (0, 60_000),
    "gate.silent_peak_dbfs": (-200, 0), "gate.min_rms_db_below_note": (0, 200),   # dBFS and dB (SILENCE_DB is -200)
    "data.seed": (0, 2**32 - 1), "train.seed": (0, 2**32 - 1),  # numpy's and TensorFlow's seed range
}
# a config's name names its folders (data/NAME, models/NAME, reports/NAME): a plain file name,
# never a path, so that no config can point a build, or its clean-up, outside ROOT
NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$")
# lists whose entries must differ (instruments also by program, when the plan resolves them)
_UNIQUE = {"data.soundfonts", "data.instruments", "data.velocities", "data.segments", "tones.kinds",
           "augment.noise_kinds", "augment.mp3_kbps", "split.test_instruments", "split.test_sources",
           "phrases.instruments", "phrases.registers"}
# names, or program numbers as integers
_INSTRUMENT_KEYS = {"data.instruments", "split.test_instruments", "phrases.instruments"}
# lists a network is built from: an empty one fails only once training is over (the export), so it is refused here
NON_EMPTY = ("model.harmonics", "model.harmonic_units", "model.encoder_units")
def _check_name(name: str) -> None:
    if not NAME_RE.match(name):
        raise PipelineError(f"config name {name!r} is not a plain name; use letters, digits, '_', '.' or '-' "
                            "(no '/', no leading '.'): it names the folders data/NAME, models/NAME, reports/NAME")


def _check_root(root: str) -> None:
    """The folder that holds data/, models/ and reports/: an existing folder, or a new one in an existing
    folder (the stages create it), so that a mistyped path cannot plant an output tree anywhere."""
    fix = "fix root, or remove it to write under the folder the command runs in"
    path = Path(root)
    if not root or "\x00" in root:
        raise PipelineError(f"config root {root!r} is not a folder name; {fix}")
    if path.exists() and not path.is_dir():
        raise PipelineError(f"config root {root} is a file, not a folder; {fix}")
    if not path.exists() and not path.absolute().parent.is_dir():
        raise PipelineError(f"config root {root} is not in an existing folder ({path.absolute().parent} is "
                            f"missing); create that folder or {fix}")


def _check_consistency(cfg: Config) -> None:
    _check_name(cfg.name)
    _check_root(cfg.root)
    for key in NON_EMPTY:
        section, name = key.split(".")
        if not getattr(getattr(cfg, section), name):
            raise PipelineError(f"{key} is empty; list at least one entry (the defaults: pipeline/core/config.py)")
    d = cfg.data
    if d.note_low > d.note_high:
        raise PipelineError(f"data.note_low ({d.note_low}) is above data.note_high ({d.note_high}); swap them")
    if not d.soundfonts and not (cfg.tones.enabled and cfg.tones.kinds):
        raise PipelineError("data.soundfonts is empty and tones are off: nothing to render; list a soundfont "
                            "or set tones.enabled = true")
    if not d.notes and not cfg.phrases.enabled:
        raise PipelineError("data.notes is false and phrases are off: nothing to build; set one of them to true")
    if d.soundfonts and not d.instruments:
        raise PipelineError("data.instruments is empty; list at least one General MIDI instrument")
    if not d.segments or not d.velocities:
        raise PipelineError("data.segments and data.velocities need at least one entry each")
    if len(cfg.model.frame_units) != 3:
        raise PipelineError(f"model.frame_units needs 3 widths (harmonic features, temporal convolution, candidate "
                            f"layer), got {list(cfg.model.frame_units)}; e.g. frame_units = [12, 24, 16]")
    if (cfg.model.variant == "frames") != (cfg.features.kind == "frames"):
        raise PipelineError(f"model.variant = {cfg.model.variant!r} needs features.kind = "
                            f"{'frames' if cfg.model.variant == 'frames' else 'spectrogram'!r}; set both to frames "
                            "for the frame model, or neither")
    check_clip_settings(cfg)
    a = cfg.augment
    if len(a.noise_weights) != len(a.noise_kinds) or (a.noise_kinds and not sum(a.noise_weights) > 0):
        raise PipelineError(f"augment.noise_weights needs one weight per augment.noise_kinds entry "
                            f"({len(a.noise_kinds)}), not all 0; got {list(a.noise_weights)}")
    if a.codec_share > 0 and a.mp3_share > 0 and not a.mp3_kbps:
        raise PipelineError("augment.mp3_kbps is empty; list bitrates or set augment.mp3_share = 0")


RULES = Rules(choices=_CHOICES, ranges=_RANGES, unique=frozenset(_UNIQUE),
              program_numbers=frozenset(_INSTRUMENT_KEYS), removed=REMOVED_KEYS)


def default_config_path() -> Path:
    """The default config shipped in the package (configs/default.toml in a checkout is a link to it)."""
    return DEFAULT_CONFIG


def load_config(path: str | Path | None = DEFAULT_CONFIG, overrides: typing.Iterable[str] = ()) -> Config:
    """Read a TOML config (or the built-in values) and apply `section.key=value` overrides.

    Relative paths written in a file (its soundfonts, its root) are relative to the file's folder,
    so a config means the same from any working folder; in overrides, to the current folder. A
    soundfont named by file name alone that is not there is looked for in the soundfont folders
    when the plan is made (pipeline.data.rendering.soundfont_paths).

    Parameters
    ----------
    path : str, Path or None
        A TOML file; left out, the default config (`default_config_path()`, what make and the
        command line use); None: the built-in values, what every key left out of a file takes.
    overrides : iterable of str
        ``"train.epochs=5"``-style settings applied after the file (values read as TOML).

    Returns
    -------
    Config
        Frozen and checked: unknown keys, wrong types, non-finite numbers and out-of-range
        values raise PipelineError naming the key.

    Examples
    --------
    >>> cfg = load_config("configs/default.toml", ["train.epochs=2"])  # doctest: +SKIP
    >>> cfg.train.epochs  # doctest: +SKIP
    2
    """
    raw: dict = {}
    name = "default"
    if path is not None:
        raw = read_toml(path, "config file", f"name an existing file, e.g. {default_config_path()}")
        name = raw.pop("name", Path(path).stem)
        upgrade(raw)
        resolve_paths(raw, Path(path).parent)
    overrides = [resolved_override(upgraded_override(text)) for text in overrides]
    apply_overrides(raw, overrides)
    raw.setdefault("name", name)
    cfg = build(Config, raw, RULES)
    _check_consistency(cfg)
    return cfg
