"""The experiments' settings: one frozen dataclass (with one nested dataclass per experiment),
read from the `[experiments]` table of a TOML file.

Every size has a default that keeps `make experiments` within minutes on 2 CPU cores.
`scale = "original"` swaps in the sizes of the original write-ups (ORIGINAL_SCALE below,
the same for every run) for the experiments that are run; the sizes in the file are then
ignored, so an original-scale run always means the same thing.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.core.errors import PipelineError
from pipeline.core.typed_toml import Rules, apply_overrides, build, read_toml

EXPERIMENTS = ("reference_reproduction", "raw_audio_classifier", "learned_spectrogram", "effect_emulation")
SCALES = ("default", "original")


@dataclass(frozen=True)
class ClipsSettings:
    """The shared clip dataset (data_root/experiments_clips), built by the project's generator."""
    name: str = "experiments_clips"
    soundfont: str = "FluidR3_GM.sf2"
    instruments: tuple[str, ...] = ("Acoustic Grand Piano", "Electric Piano 1", "Acoustic Guitar (nylon)",
                                    "Electric Bass (finger)", "Violin", "Trumpet", "Alto Sax", "Flute")
    note_low: int = 36                 # C2: the original's octaves 2-8
    note_high: int = 119               # B8
    velocities: tuple[int, ...] = (100,)
    detune_share: float = 0.5          # the original's random detunings (ours: pitch bend, +-50 cents)
    detune_max_cents: float = 50.0
    test_share: float = 0.15           # a random split of the notes, as the original's 80/20
    val_share: float = 0.15


@dataclass(frozen=True)
class ReferenceSettings:
    """reference_reproduction: the original Conv2D regressor, its dropout, its target (Hz)."""
    width: float = 1.0                 # x the 64/128/128/256 filters; 1 = the original's 12.4 M parameters
    epochs: int = 3                    # the original: 100
    batch_size: int = 32
    learning_rate: float = 1e-3        # Keras' Adam default, as the original
    max_train_clips: int = 128         # 0 = every training clip; the full width runs at ~6 clips/s on 2 cores
    max_val_clips: int = 96            # 0 = every validation clip
    full_width_variants: tuple[str, ...] = ("original",)
    # the collapse study: the same regressor, narrower so that it trains for more epochs in the budget,
    # with and without the original's dropout
    study_width: float = 0.125
    study_epochs: int = 12
    study_variants: tuple[str, ...] = ("original", "no_input_dropout", "no_dropout")
    study_max_train_clips: int = 0
    study_max_val_clips: int = 0


@dataclass(frozen=True)
class RawAudioSettings:
    """raw_audio_classifier: NSynth-post Conv1D on raw samples vs a spectrogram model, same clips, same budget."""
    epochs: int = 8
    batch_size: int = 32
    learning_rate: float = 1e-4        # the NSynth post's Adam learning rate, used for both models
    spectrogram_width: float = 0.25    # the project's spectrogram body (bins variant) at this width
    first_epoch_points: int = 4        # test accuracy measured this many times during the first epoch
    product_model: str = "models/default/model.keras"  # also scored on the same test clips, if it exists


@dataclass(frozen=True)
class LearnedSpectrogramSettings:
    """learned_spectrogram: one bias-free Dense layer learns the STFT, then a 128-point DFT."""
    window_samples: int = 2048         # 8 kHz audio, 2,048 samples
    nperseg: int = 256                 # Hann window 256, FFT 256
    noverlap: int = 200                # hop 56: 33 frames (the original's code; its "stride 250" gives 8)
    scaling_fs: float = 256.0          # the fs the original passed to scipy (sets the density scale)
    sample_rate: int = 8000
    steps_per_epoch: int = 59          # 15,000 signals / batch 256, as the original's epoch
    epochs: int = 4
    batch_size: int = 256
    learning_rate: float = 1e-3        # Adam(amsgrad=True), as the original
    dft_points: int = 128              # complex DFT as 2N real in -> 2N real out: 65,536 weights
    dft_steps: int = 600
    dft_batch_size: int = 256
    dft_learning_rate: float = 1e-2    # the DFT's weights are +-1, ~100x the STFT's: steps scale with them


@dataclass(frozen=True)
class EffectSettings:
    """effect_emulation: a network learns sox's lowpass-then-overdrive from dry/wet pairs."""
    name: str = "experiments_effect"
    sweeps_per_wave: int = 6           # sine, triangle and sawtooth sweeps each
    sweep_seconds: float = 2.0
    sweep_low_hz: float = 40.0
    sweep_high_hz: float = 4000.0
    lowpass_hz: float = 2000.0
    overdrive_gain_db: float = 20.0
    overdrive_colour: float = 20.0
    piano_notes: tuple[int, ...] = (40, 52, 60, 67, 76, 84)  # MIDI notes of the unseen test
    piano_seconds: float = 1.5
    window: int = 256                  # samples per network window (16 ms)
    epochs: int = 20
    batch_size: int = 64
    learning_rate: float = 1e-3
    val_share: float = 0.2             # share of the sweeps held out for validation


@dataclass(frozen=True)
class ExperimentsSettings:
    scale: str = "default"             # default | original (ORIGINAL_SCALE below)
    seed: int = 0
    clips: ClipsSettings = field(default_factory=ClipsSettings)
    reference: ReferenceSettings = field(default_factory=ReferenceSettings)
    raw_audio: RawAudioSettings = field(default_factory=RawAudioSettings)
    learned_spectrogram: LearnedSpectrogramSettings = field(default_factory=LearnedSpectrogramSettings)
    effect: EffectSettings = field(default_factory=EffectSettings)


# The original write-ups' sizes (docs/experiments.md says where each number comes from).
ORIGINAL_SCALE = {
    "clips": {"instruments": (
        "Acoustic Grand Piano", "Bright Acoustic Piano", "Electric Piano 1", "Harpsichord", "Vibraphone",
        "Marimba", "Drawbar Organ", "Church Organ", "Accordion", "Acoustic Guitar (nylon)",
        "Electric Guitar (jazz)", "Electric Guitar (clean)", "Acoustic Bass", "Electric Bass (finger)",
        "Violin", "Viola", "Cello", "String Ensemble 1", "Choir Aahs", "Trumpet", "Trombone", "French Horn",
        "Alto Sax", "Oboe", "Clarinet", "Bassoon", "Flute", "Pan Flute", "Lead 1 (square)",
        "Lead 2 (sawtooth)", "Pad 2 (warm)", "Sitar"),
        "velocities": (50, 80, 110), "name": "experiments_clips_original"},
    "reference": {"width": 1.0, "epochs": 100, "max_train_clips": 0, "max_val_clips": 0,
                  "study_epochs": 100},
    "raw_audio": {"epochs": 30},
    "learned_spectrogram": {"epochs": 10, "dft_steps": 3000},
    "effect": {"sweeps_per_wave": 30, "sweep_seconds": 4.0, "epochs": 100, "name": "experiments_effect_original"},
}


def at_scale(settings: ExperimentsSettings) -> ExperimentsSettings:
    """The settings a run uses: as given, or with the original write-ups' sizes."""
    if settings.scale == "default":
        return settings
    parts = {name: dataclasses.replace(getattr(settings, name), **values) for name, values in ORIGINAL_SCALE.items()}
    return dataclasses.replace(settings, **parts)


# --- reading the [experiments] table ------------------------------------------------------------
def load_settings(path: str | Path | None = None, overrides: typing.Iterable[str] = ()) -> ExperimentsSettings:
    """The `[experiments]` table of a TOML file (or the defaults), then `key=value` overrides
    (`reference.epochs=5` or `experiments.reference.epochs=5`)."""
    raw: dict = {}
    if path is not None:
        raw = read_toml(path, "settings file", "use configs/experiments.toml").get("experiments", {})
    settings = build(ExperimentsSettings, apply_overrides(raw, overrides, drop_prefix="experiments"), RULES,
                     "experiments.")
    if settings.scale not in SCALES:
        raise PipelineError(f"settings key experiments.scale is {settings.scale!r}; choose default or original")
    return settings


def _not_negative(key: str, value) -> None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
        raise PipelineError(f"settings key {key} = {value!r} is negative; use 0 or more")


RULES = Rules(noun="settings key", check=_not_negative)
