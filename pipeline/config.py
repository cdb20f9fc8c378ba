"""One typed config for the whole pipeline: TOML files under configs/ plus --set overrides.

Every section is a frozen dataclass; unknown keys, wrong types and out-of-range values
raise PipelineError naming the key. The same object is saved next to every output.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path

from pipeline import constants as C
from pipeline.errors import PipelineError

# output roots under Config.root: ROOT/data/NAME, ROOT/models/NAME, ROOT/reports/NAME
DATA_ROOT = "data"
MODEL_ROOT = "models"
REPORT_ROOT = "reports"


@dataclass(frozen=True)
class DataConfig:
    soundfont: str = "soundfonts/FluidR3_GM.sf2"
    instruments: tuple[str, ...] = ("Acoustic Grand Piano", "Violin", "Flute")
    note_low: int = 36
    note_high: int = 119
    velocities: tuple[int, ...] = (100,)
    detune_share: float = 0.5          # share of notes detuned by a random pitch bend
    detune_max_cents: float = 50.0     # detune drawn uniformly in +-this
    segments: tuple[str, ...] = C.SEGMENTS
    hold_seconds: float = 1.0          # note-on to note-off
    release_seconds: float = 0.5       # rendered after note-off (decay segment lives here)
    sustain_at: float = 0.5            # sustain segment centre, as a share of the hold
    gain: float = 0.4                  # FluidSynth master gain
    seed: int = 0
    workers: int = 0                   # 0 = every core
    shard_size: int = 32               # notes per shard, the unit of work and of resume
    scheduler: str = ""                # "" = local process pool, else tcp://HOST:PORT (Dask)
    resampler: str = "soxr"            # 44.1 -> 16 kHz: soxr (libsoxr in-process) or sox (a sox process)


@dataclass(frozen=True)
class AugmentConfig:
    share: float = 0.0                 # share of notes augmented (0 = augmentation off)
    reverb: bool = False               # FluidSynth reverb on augmented notes
    chorus: bool = False               # FluidSynth chorus on augmented notes
    sox_effects: tuple[str, ...] = ()  # any of: overdrive, equalizer, tremolo
    noise: str = "none"                # none, white or pink
    snr_db_min: float = 10.0
    snr_db_max: float = 40.0


@dataclass(frozen=True)
class GateConfig:
    silent_peak_dbfs: float = -60.0    # a segment whose raw peak is below this is silent
    min_rms_db_below_note: float = 40.0  # a segment this far below the note's loudest is too quiet
    min_sounding_ms: int = 50          # a segment that sounds (within 40 dB of its peak) for less is too short


@dataclass(frozen=True)
class SplitConfig:
    test: str = "instrument"           # instrument (held-out instruments) or random
    test_instruments: tuple[str, ...] = ("Flute",)
    test_share: float = 0.15           # for test = "random"
    val_share: float = 0.1             # random share of the remaining notes


@dataclass(frozen=True)
class FeaturesConfig:
    scaling: str = "log"               # log: ln(magnitude + 1e-6); db: 20 log10 of the same; linear
    dtype: str = "float16"
    batch_size: int = 32               # clips per spectrogram batch (small batches stay in cache: see bench)


@dataclass(frozen=True)
class ModelConfig:
    variant: str = "bins"              # reference (one linear output) or bins (soft-argmax head)
    target: str = "midi"               # reference model target: midi, log_hz or hz
    width: float = 1.0                 # multiplies the 64/128/128/256 filters
    dense_units: tuple[int, ...] = (512, 256)
    # dropout layers stay where the reference has them, but off by default: at 0.1/0.25 they
    # halved CPU speed, cost the bins model 3 points of accuracy in 8 epochs, and made the
    # regressor's test-time outputs shrink towards the mean (max-pooling of dropped-out maps)
    input_dropout: float = 0.0
    dropout: float = 0.0
    bins_per_semitone: int = 5         # for variant = bins
    label_smoothing_cents: float = 25.0  # std of the Gaussian-blurred bin targets
    time_pool: int = 3                 # bins: average this many frames before the convolutions
    modulation: bool = True            # bins: add the modulation-spectrum branch (low notes)
    reference_width: float = 0.0       # width of the comparison reference model; 0 = width


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 30
    batch_size: int = 64
    learning_rate: float = 1e-3
    patience: int = 6
    seed: int = 0
    mixed_precision: bool = True       # only applied on a GPU
    schedule: str = "cosine"           # learning rate: cosine (decays to 0 at the last epoch) or constant
    compare_reference: bool = True     # also train the reference model (models/NAME/reference/) for the report
    reference_epochs: int = 0          # epochs for that comparison model; 0 = epochs


@dataclass(frozen=True)
class ReportConfig:
    # trackers run on the test clips beside the model (pipeline/baselines.py); one whose package
    # is missing is listed as skipped. crepe and crepe_tiny need torch: see the README.
    baselines: tuple[str, ...] = ("pyin", "praat", "swift_f0")
    max_baseline_clips: int = 0        # 0 = every test clip, else this many evenly spaced


@dataclass(frozen=True)
class Config:
    name: str = "default"
    root: str = "."                    # outputs go to ROOT/data/NAME, ROOT/models/NAME, ROOT/reports/NAME
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    gate: GateConfig = field(default_factory=GateConfig)
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
    "augment.noise": {"none", "white", "pink"},
    "augment.sox_effects": {"overdrive", "equalizer", "tremolo"},
    "data.segments": set(C.SEGMENTS),
    "data.resampler": {"soxr", "sox"},
    "split.test": {"instrument", "random"},
    "features.scaling": {"log", "db", "linear"},
    "features.dtype": {"float16", "float32"},
    "model.variant": {"reference", "bins"},
    "model.target": {"midi", "log_hz", "hz"},
    "report.baselines": set(C.BASELINES),
    "train.schedule": {"cosine", "constant"},
}
_RANGES = {
    "data.note_low": (C.MIDI_MIN, C.MIDI_MAX), "data.note_high": (C.MIDI_MIN, C.MIDI_MAX),
    "data.velocities": (1, 127), "data.detune_share": (0, 1), "data.detune_max_cents": (0, 200),
    "data.hold_seconds": (C.CLIP_SECONDS + 0.05, 60), "data.release_seconds": (C.CLIP_SECONDS, 60),
    "data.sustain_at": (0, 1), "data.gain": (0.01, 10), "data.workers": (0, 4096),
    "data.shard_size": (1, 100_000), "augment.share": (0, 1),
    "split.test_share": (0, 0.9), "split.val_share": (0, 0.9),
    "features.batch_size": (1, 100_000), "model.width": (0.01, 8),
    "model.input_dropout": (0, 0.95), "model.dropout": (0, 0.95),
    "model.dense_units": (1, 100_000), "model.bins_per_semitone": (1, 100),
    "model.label_smoothing_cents": (0, 600), "model.time_pool": (1, 90), "model.reference_width": (0, 8),
    "train.reference_epochs": (0, 100_000), "train.epochs": (1, 100_000),
    "train.batch_size": (1, 100_000), "train.learning_rate": (1e-8, 10), "train.patience": (1, 10_000),
    "report.max_baseline_clips": (0, 10_000_000), "gate.min_sounding_ms": (0, 330),
}


def _coerce(key: str, value, annotation):
    """Check a TOML value against a dataclass field's annotation; return the typed value."""
    origin = typing.get_origin(annotation)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise PipelineError(f"config key {key} must be a list, got {value!r}")
        item_type = typing.get_args(annotation)[0]
        return tuple(_coerce(key, v, item_type) for v in value)
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if annotation is bool and not isinstance(value, bool):
        raise PipelineError(f"config key {key} must be true or false, got {value!r}")
    if annotation is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise PipelineError(f"config key {key} must be an integer, got {value!r}")
    if not isinstance(value, annotation):
        raise PipelineError(f"config key {key} must be a {annotation.__name__}, got {value!r}")
    _check_value(key, value)
    return value


def _check_value(key: str, value) -> None:
    if key in _CHOICES and value not in _CHOICES[key]:
        raise PipelineError(
            f"config key {key} has value {value!r}; choose one of {', '.join(sorted(_CHOICES[key]))}")
    if key in _RANGES:
        low, high = _RANGES[key]
        if not low <= value <= high:
            raise PipelineError(f"config key {key} = {value!r} is out of range; use {low} to {high}")


def _build(cls, raw: dict, prefix: str):
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in known:
            where = f"{prefix}{key}"
            raise PipelineError(
                f"unknown config key {where}; known keys here: {', '.join(sorted(known))}")
    values = {}
    for f in dataclasses.fields(cls):
        if f.name not in raw:
            continue
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint):
            if not isinstance(raw[f.name], dict):
                raise PipelineError(f"config key {prefix}{f.name} must be a [{f.name}] table")
            values[f.name] = _build(hint, raw[f.name], f"{prefix}{f.name}.")
        else:
            values[f.name] = _coerce(f"{prefix}{f.name}", raw[f.name], hint)
    return cls(**values)


def _check_consistency(cfg: Config) -> None:
    d = cfg.data
    if d.note_low > d.note_high:
        raise PipelineError(f"data.note_low ({d.note_low}) is above data.note_high ({d.note_high}); swap them")
    if not d.instruments:
        raise PipelineError("data.instruments is empty; list at least one General MIDI instrument")
    if not d.segments or not d.velocities:
        raise PipelineError("data.segments and data.velocities need at least one entry each")
    if cfg.augment.snr_db_min > cfg.augment.snr_db_max:
        raise PipelineError("augment.snr_db_min is above augment.snr_db_max; swap them")


def parse_override(text: str) -> tuple[list[str], object]:
    """'section.key=value' -> (['section', 'key'], value); value is read as TOML, else a string."""
    if "=" not in text:
        raise PipelineError(f"override {text!r} is not section.key=value; e.g. --set train.epochs=5")
    key, raw = text.split("=", 1)
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key.strip().split("."), value


def load_config(path: str | Path | None = None, overrides: typing.Iterable[str] = ()) -> Config:
    """Read a TOML config (or the built-in defaults) and apply --set overrides."""
    raw: dict = {}
    name = "default"
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise PipelineError(f"config file {path} not found; pick one under configs/, e.g. configs/default.toml")
        try:
            raw = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise PipelineError(f"config file {path} is not valid TOML ({exc}); fix the syntax") from None
        name = raw.pop("name", path.stem)
    for text in overrides:
        keys, value = parse_override(text)
        table = raw
        for k in keys[:-1]:
            table = table.setdefault(k, {})
            if not isinstance(table, dict):
                raise PipelineError(f"override {text!r}: {k} is not a section")
        table[keys[-1]] = value
    raw.setdefault("name", name)
    cfg = _build(Config, raw, "")
    _check_consistency(cfg)
    return cfg


def to_toml(cfg: Config) -> str:
    """The operative config as TOML, written next to outputs so a run can be repeated."""
    lines = [f'name = {json.dumps(cfg.name)}', f'root = {json.dumps(cfg.root)}']
    for section, values in cfg.to_dict().items():
        if not isinstance(values, dict):
            continue
        lines.append(f"\n[{section}]")
        for key, value in values.items():
            lines.append(f"{key} = {json.dumps(list(value) if isinstance(value, tuple) else value)}")
    return "\n".join(lines) + "\n"
