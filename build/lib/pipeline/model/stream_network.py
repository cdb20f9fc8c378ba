"""The stream network: one softmax over pitch bins per 513x90 window, built to slide.

Per window of 90 spectrogram frames (one 330 ms clip):
1. Spectral path, on frames averaged `time_pool` at a time:
   - each frame's log magnitudes less their mean over frequency (a level change is a constant
     in the log, so this frame is the same at any level);
   - a harmonic stack: for every candidate pitch (`pitch_resolution` per semitone) and every
     ratio in `harmonics` (0.5, 1, 2, 3, ...), the magnitude at that multiple of the candidate,
     interpolated between the two nearest FFT bins. Pitch becomes a position and a harmonic
     pattern looks the same at every pitch, so what is learned for one note serves them all;
   - a small MLP shared by every candidate reads its harmonics (`harmonic_units`), a dense
     layer reads all candidates of the frame (`encoder_units`);
   - dilated convolutions over the pooled frames (valid, residual) and the window's mean.
2. Modulation path, on the full-rate frames: under about 130 Hz a note's harmonics are closer
   than the 256-sample window resolves, but they beat at f0 in every frequency row. Narrow
   bands (4 rows) are transformed over the window's 90 frames by a fixed Hann-windowed DFT at
   log-spaced frequencies from 24 to 142 Hz; the magnitudes are averaged within groups of
   bands (so beats in different phases add up instead of cancelling) and logged.
3. A dense head and the softmax.

Nothing but the pooling's stride depends on where a window starts: pipeline.model.export writes
the form that slides along a whole recording's spectrogram in one pass.
"""

from __future__ import annotations

import functools

import numpy as np

from pipeline.core import constants as C
from pipeline.core.backend import import_keras
from pipeline.core.config import ModelConfig

FRAME_RATE = C.SAMPLE_RATE / C.HOP       # 285.7 spectrogram frames per second
BIN_HZ = C.SAMPLE_RATE / C.N_FFT         # 15.6 Hz between FFT bins
# the harmonic stack's candidates: from a fifth below A0 to past the top of any dataset's bins
STACK_LOW_MIDI, STACK_HIGH_MIDI = 14.0, 124.0
# modulation path
MODULATION_LOW_HZ, MODULATION_HIGH_HZ = 24.0, 142.0   # below A0 .. just under the frame rate's Nyquist
MODULATION_FREQS = 60                    # log-spaced, about 52 cents apart
MODULATION_ROWS = 4                      # FFT rows per band: 62.5 Hz, narrower than the harmonics it reads
MODULATION_BANDS = 64                    # bands from 0 Hz up: 0 .. 4 kHz
MODULATION_FLOOR = 1e-3                  # added to the mean magnitude before its log
MODULATION_UNITS = 256                   # the dense layer after the modulation path


def stack_candidates(model_cfg: ModelConfig) -> np.ndarray:
    """The harmonic stack's candidate pitches, as MIDI numbers."""
    per = model_cfg.pitch_resolution
    return STACK_LOW_MIDI + np.arange(int(round((STACK_HIGH_MIDI - STACK_LOW_MIDI) * per)) + 1) / per


@functools.cache
def _stack_taps(low: float, per: int, count: int, harmonics: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(count * H * 2,) FFT-bin indices and weights: candidate q, harmonic h reads
    w0 * x[i0] + w1 * x[i1] around h * f_q (nothing past the top bin)."""
    midi = low + np.arange(count) / per
    hz = 440.0 * 2.0 ** ((midi[:, None] - 69.0) / 12.0) * np.asarray(harmonics)[None, :]   # (count, H)
    position = hz / BIN_HZ
    inside = position < C.N_FREQ_BINS - 1
    lower = np.where(inside, np.floor(position), 0).astype(np.int64)
    frac = np.where(inside, position - lower, 0.0)
    indices = np.stack([lower, np.minimum(lower + 1, C.N_FREQ_BINS - 1)], axis=-1)
    weights = np.stack([(1.0 - frac) * inside, frac * inside], axis=-1).astype(np.float32)
    return indices.reshape(-1), weights.reshape(-1)


def stack_taps(model_cfg: ModelConfig) -> tuple[np.ndarray, np.ndarray]:
    count = len(stack_candidates(model_cfg))
    return _stack_taps(STACK_LOW_MIDI, model_cfg.pitch_resolution, count, tuple(model_cfg.harmonics))


def modulation_kernels() -> np.ndarray:
    """(90, 2M) Hann-windowed cosines then sines at the modulation frequencies, per window sum."""
    freqs = MODULATION_LOW_HZ * (MODULATION_HIGH_HZ / MODULATION_LOW_HZ) ** (
        np.arange(MODULATION_FREQS) / (MODULATION_FREQS - 1))
    t = np.arange(C.N_FRAMES)[:, None] / FRAME_RATE
    window = np.hanning(C.N_FRAMES)[:, None]
    phase = 2 * np.pi * freqs[None, :] * t
    return (np.concatenate([window * np.cos(phase), window * np.sin(phase)], axis=1) / window.sum()).astype("float32")


def receptive_field(model_cfg: ModelConfig) -> int:
    """Pooled frames one temporal-convolution output sees (kernel 3 at each dilation)."""
    return 1 + 2 * sum(model_cfg.temporal_dilations)


@functools.cache
def custom_layers() -> dict:
    """The stream network's layers without weights of their own; defined on first use (Keras loads late)."""
    keras = import_keras()
    from keras import ops

    @keras.saving.register_keras_serializable("pipeline")
    class ColumnCentre(keras.layers.Layer):
        """Each frame's values less their mean over frequency (the last axis)."""

        def call(self, x):
            return x - ops.mean(x, axis=-1, keepdims=True)

    @keras.saving.register_keras_serializable("pipeline")
    class HarmonicStack(keras.layers.Layer):
        """(..., 513) -> (..., candidates, harmonics): interpolated magnitudes at h * f_q."""

        def __init__(self, low: float, per: int, count: int, harmonics, **kwargs):
            super().__init__(**kwargs)
            self.low, self.per, self.count, self.harmonics = float(low), int(per), int(count), tuple(harmonics)
            indices, weights = _stack_taps(self.low, self.per, self.count, self.harmonics)
            self.indices, self.weights_ = indices.astype("int32"), weights

        def call(self, x):
            taps = ops.take(x, self.indices, axis=-1) * self.weights_
            shape = ops.shape(x)
            taps = ops.reshape(taps, (*shape[:-1], self.count, len(self.harmonics), 2))
            return ops.sum(taps, axis=-1)

        def compute_output_shape(self, input_shape):
            return (*input_shape[:-1], self.count, len(self.harmonics))

        def get_config(self):
            return {**super().get_config(), "low": self.low, "per": self.per, "count": self.count,
                    "harmonics": list(self.harmonics)}

    @keras.saving.register_keras_serializable("pipeline")
    class BandModulation(keras.layers.Layer):
        """(N, 90, 513) standardised frames -> (N, groups * M): log mean DFT magnitude over time
        of narrow bands, averaged within `groups` groups of bands."""

        def __init__(self, groups: int, **kwargs):
            super().__init__(**kwargs)
            self.groups = int(groups)
            self.kernels = modulation_kernels()

        def call(self, x):
            rows = MODULATION_BANDS * MODULATION_ROWS
            bands = ops.mean(ops.reshape(x[:, :, :rows], (-1, C.N_FRAMES, MODULATION_BANDS, MODULATION_ROWS)), -1)
            spectrum = ops.matmul(ops.transpose(bands, (0, 2, 1)), self.kernels)       # (N, bands, 2M)
            spectrum = ops.reshape(spectrum, (-1, MODULATION_BANDS, 2, MODULATION_FREQS))
            magnitude = ops.sqrt(ops.sum(spectrum * spectrum, axis=2) + 1e-12)          # (N, bands, M)
            grouped = ops.reshape(magnitude, (-1, self.groups, MODULATION_BANDS // self.groups, MODULATION_FREQS))
            logged = ops.log(ops.mean(grouped, axis=2) + MODULATION_FLOOR)
            return ops.reshape(logged, (-1, self.groups * MODULATION_FREQS))

        def compute_output_shape(self, input_shape):
            return (input_shape[0], self.groups * MODULATION_FREQS)

        def get_config(self):
            return {**super().get_config(), "groups": self.groups}

    return {"ColumnCentre": ColumnCentre, "HarmonicStack": HarmonicStack, "BandModulation": BandModulation}


def build_stream(model_cfg: ModelConfig, n_outputs: int, input_mean: float = 0.0, input_std: float = 1.0):
    """The Keras model of one window (see the module docstring)."""
    keras = import_keras()
    from keras import layers

    custom = custom_layers()
    pool = model_cfg.time_pool
    inputs = keras.Input(shape=C.SPEC_SHAPE, name="spectrogram")
    x = layers.Permute((2, 1), name="time_major")(inputs)
    standard = layers.Normalization(axis=None, mean=input_mean, variance=input_std ** 2, name="standardize")(x)
    y = layers.AveragePooling1D(pool, strides=pool, name="time_pool")(standard) if pool > 1 else standard
    y = custom["ColumnCentre"](name="centre")(y)
    count = len(stack_candidates(model_cfg))
    y = custom["HarmonicStack"](STACK_LOW_MIDI, model_cfg.pitch_resolution, count, model_cfg.harmonics,
                                name="harmonic_stack")(y)
    for i, units in enumerate(model_cfg.harmonic_units):
        y = layers.Dense(units, activation="relu", name=f"harmonic{i}")(y)
    y = layers.Reshape((C.N_FRAMES // pool, count * model_cfg.harmonic_units[-1]), name="candidates")(y)
    for i, units in enumerate(model_cfg.encoder_units):
        y = layers.Dense(units, activation="relu", name=f"encoder{i}")(y)
    for i, dilation in enumerate(model_cfg.temporal_dilations):
        z = layers.Conv1D(y.shape[-1], 3, dilation_rate=dilation, activation="relu", name=f"temporal{i}")(y)
        y = layers.Add(name=f"residual{i}")([layers.Cropping1D(dilation, name=f"crop{i}")(y), z])
    parts = [layers.GlobalAveragePooling1D(name="window_mean")(y)]
    if model_cfg.modulation:
        m = custom["BandModulation"](model_cfg.modulation_bands, name="modulation")(standard)
        parts.append(layers.Dense(MODULATION_UNITS, activation="relu", name="modulation_dense")(m))
    x = layers.Concatenate(name="merge")(parts) if len(parts) > 1 else parts[0]
    x = layers.Dense(model_cfg.head_units, activation="relu", name="head")(x)
    outputs = layers.Dense(n_outputs, activation="softmax", dtype="float32", name="pitch_bins")(x)
    return keras.Model(inputs, outputs, name="f0_stream")
