"""The frame network: an f0 distribution every 10 ms from the log-frequency spectra around that frame.

Input: the frame and `frame_context` frames on each side (pipeline/dsp/log_spectrum.py: two
windows, 448 bins 25 cents apart), (T, 2, 448). Per frame:
1. level: each frame's log magnitudes less their maximum (a gain is a constant in the log),
   floored at FLOOR (about -120 dB) and scaled to [-1, 1];
2. harmonic stack: for every candidate pitch (the output bins, from 25 Hz to 4.4 kHz,
   `frame_bins_per_octave` an octave: every grid bin at 48, every second at 24), the two spectra
   at the grid bins of 0.5, 1, 1.5, 2, 3, 4, 5 and 6 times the candidate:
   on a log-frequency grid a multiple is a fixed offset, so this is slicing, and a harmonic
   pattern looks the same at every pitch (0.5 and 1.5 tell a note from the one an octave up);
3. per candidate and frame, a dense layer over those 16 values (shared by every candidate);
4. a convolution over the 2 x frame_context + 1 frames (per candidate: a vibrato or a trill
   moves the pitch across candidates, so context never averages pitches);
5. two more dense layers per candidate, then one logit per candidate: a sigmoid each, trained
   with binary cross-entropy on Gaussian-blurred targets (all zeros where nothing is pitched),
   as CREPE does. The largest activation is the frame's confidence.

Everything is a 1x1 or a (k x 1) convolution over a (frames x candidates) image, which ONNX
Runtime runs fast (pipeline/model/frame_export.py writes the graph that slides along a recording).
TensorFlow is imported inside functions only.
"""

from __future__ import annotations

import functools

import numpy as np

from pipeline.core.backend import import_keras
from pipeline.core.config import ModelConfig
from pipeline.dsp.log_spectrum import BINS_PER_OCTAVE, GRID_BINS, WINDOWS

HARMONICS = (0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0)
CANDIDATE_SPAN = 357               # grid bins from the lowest candidate to the highest: 25 Hz .. 4.4 kHz
FIRST_CANDIDATE = BINS_PER_OCTAVE  # the grid bin of candidate 0: 25 Hz, an octave above the grid's start
FLOOR = 14.0                       # ln units under the frame's maximum: about 122 dB


def harmonic_offsets() -> tuple[int, ...]:
    """Grid bins from a candidate to each harmonic (rounded: at most 12.5 cents off)."""
    return tuple(int(round(BINS_PER_OCTAVE * np.log2(h))) for h in HARMONICS)


def candidate_step(model_cfg: ModelConfig) -> int:
    """Grid bins between candidates (1: 25 cents, 2: 50 cents)."""
    return BINS_PER_OCTAVE // model_cfg.frame_bins_per_octave


def candidates(step: int) -> int:
    return CANDIDATE_SPAN // step + 1


def padded_bins() -> int:
    """Grid bins the stack reads, past the top of the grid for the highest candidates' harmonics."""
    return FIRST_CANDIDATE + CANDIDATE_SPAN + 1 + max(harmonic_offsets())


def context_frames(model_cfg: ModelConfig) -> int:
    return 2 * model_cfg.frame_context + 1


@functools.cache
def custom_layers() -> dict:
    """The frame network's layers without weights; defined on first use (Keras loads late)."""
    keras = import_keras()
    from keras import ops

    @keras.saving.register_keras_serializable("pipeline")
    class HarmonicFrames(keras.layers.Layer):
        """(N, T, 2, 448) log spectra -> (N, T, candidates, 2 * harmonics): levelled, floored,
        padded, and each candidate's harmonics side by side; candidates `step` grid bins apart."""

        def __init__(self, step: int = 1, **kwargs):
            super().__init__(**kwargs)
            self.step = int(step)

        def get_config(self):
            return {**super().get_config(), "step": self.step}

        def call(self, x):
            x = x - ops.max(x, axis=(2, 3), keepdims=True)
            x = ops.maximum(x, -FLOOR) * (2.0 / FLOOR) + 1.0
            x = ops.pad(x, [(0, 0), (0, 0), (0, 0), (0, padded_bins() - GRID_BINS)], constant_values=-1.0)
            first = FIRST_CANDIDATE
            parts = [x[:, :, :, first + o:first + o + CANDIDATE_SPAN + 1:self.step] for o in harmonic_offsets()]
            stacked = ops.concatenate(parts, axis=2)                       # (N, T, 2 H, P)
            return ops.transpose(stacked, (0, 1, 3, 2))

        def compute_output_shape(self, input_shape):
            return (input_shape[0], input_shape[1], candidates(self.step), len(WINDOWS) * len(HARMONICS))

    return {"HarmonicFrames": HarmonicFrames}


def build_frame_network(model_cfg: ModelConfig, frames: int | None = None):
    """The Keras model: (N, T, 2, 448) -> (N, T - 2 context, candidates) sigmoid activations.
    `frames` fixes T (None: any, at least 2 x context + 1)."""
    keras = import_keras()
    from keras import layers

    first, temporal, dense = model_cfg.frame_units
    inputs = keras.Input(shape=(frames, len(WINDOWS), GRID_BINS), name="log_spectra")
    step = candidate_step(model_cfg)
    x = custom_layers()["HarmonicFrames"](step, name="harmonic_frames")(inputs)
    x = layers.Dense(first, activation="relu", name="harmonic")(x)
    x = layers.Conv2D(temporal, (context_frames(model_cfg), 1), activation="relu", name="temporal")(x)
    x = layers.Dense(dense, activation="relu", name="candidate")(x)
    x = layers.Dense(1, dtype="float32", name="logit")(x)
    x = layers.Reshape((-1, candidates(step)))(x)
    outputs = layers.Activation("sigmoid", dtype="float32", name="activation")(x)
    return keras.Model(inputs, outputs, name="f0_frames")
