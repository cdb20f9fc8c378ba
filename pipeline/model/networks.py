"""Networks: the reference Conv2D f0 regressor, the pitch-bin variant, the Keras Predictor.

Both variants read the 513x90 spectrogram, standardise it with training-set statistics
held inside the model, add a channel axis and an input dropout, then run four Conv2D +
MaxPooling2D + Dropout blocks (64, 128, 128, 256 filters times the width), Flatten and
two Dense layers. They differ as follows:
- reference: the original experiment. Valid padding at full time resolution; one linear
  output regressing the standardised target (MIDI number, log2 Hz or Hz); MSE loss, MAE.
- bins: the improved variant. Averages `time_pool` frames first (3x cheaper), adds a
  modulation-spectrum branch for the low notes, and ends in a softmax over pitch bins
  (`bins_per_semitone` per semitone over the note range) trained on Gaussian-blurred
  targets as CREPE does, decoded with a weighted average around the peak, whose
  probability mass is the confidence.

TensorFlow is imported inside functions only: importing this module stays fast.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from pipeline.core import constants as C
from pipeline.core.backend import import_keras
from pipeline.core.config import ModelConfig
from pipeline.core.errors import PipelineError
from pipeline.model.encodings import encoding_from_dict
from pipeline.model.metadata import check_model_file, keras_model_id, read_metadata

REFERENCE_FILTERS = (64, 128, 128, 256)  # the original experiment's four Conv2D layers
CONV_KERNEL = (3, 3)
POOL_SIZE = (2, 2)
# Modulation spectrum (bins variant): below about 130 Hz a note's harmonics are closer than
# the 256-sample window resolves, but they beat at f0 in every frequency row over time; the
# magnitude of an FFT over each row's 90 frames shows that beat, up to half the frame rate.
FRAME_RATE = C.SAMPLE_RATE / C.HOP               # 285.7 frames per second
MODULATION_ROWS = 256           # frequency rows used, 0-4 kHz, where the harmonics of low notes lie
MODULATION_BANDS = 8            # rows averaged into this many bands after the FFT
MODULATION_FFT = 512            # zero-padded: 0.56 Hz between modulation bins
MODULATION_LOW_HZ = 25.0        # kept modulation range: below MIDI 36 (65 Hz) with margin ...
MODULATION_HIGH_HZ = FRAME_RATE / 2  # ... up to the frame rate's Nyquist


# --- the network -------------------------------------------------------------------------
def conv_filters(width: float) -> tuple[int, ...]:
    return tuple(max(1, round(f * width)) for f in REFERENCE_FILTERS)


@functools.cache
def custom_layers() -> dict:
    """Layers of ours that a saved model refers to; defined on first use so Keras loads late."""
    keras = import_keras()
    from keras import ops

    class ModulationSpectrum(keras.layers.Layer):
        """(N, 513, 90) -> (N, bands, modulation bins): log |FFT over time| of the low rows.

        Harmonics closer than the window resolves beat at f0 in each row; this FFT turns
        that beat into a peak at f0, which the convolutions on 3-frame averages cannot see.
        """

        def call(self, x):
            x = x[:, :MODULATION_ROWS, :]
            x = (x - ops.mean(x, axis=-1, keepdims=True)) * np.hanning(C.N_FRAMES).astype("float32")
            real, imag = ops.rfft(x, fft_length=MODULATION_FFT)
            magnitude = ops.sqrt(real * real + imag * imag + 1e-9)
            low, high = modulation_range()
            magnitude = magnitude[:, :, low:high]
            bands = ops.reshape(magnitude, (-1, MODULATION_BANDS, MODULATION_ROWS // MODULATION_BANDS,
                                            high - low))
            return ops.log(ops.mean(bands, axis=2) + 1e-3)

    from pipeline.model.frame_network import custom_layers as frame_layers
    from pipeline.model.stream_network import custom_layers as stream_layers

    return {"ModulationSpectrum": ModulationSpectrum, **stream_layers(), **frame_layers()}


def modulation_range() -> tuple[int, int]:
    """First and past-the-last kept bin of the modulation FFT."""
    freqs = np.fft.rfftfreq(MODULATION_FFT, 1.0 / FRAME_RATE)
    kept = np.flatnonzero((freqs >= MODULATION_LOW_HZ) & (freqs <= MODULATION_HIGH_HZ))
    return int(kept[0]), int(kept[-1]) + 1


def build_network(model_cfg: ModelConfig, variant: str, n_outputs: int, input_mean: float = 0.0,
                  input_std: float = 1.0, width: float | None = None):
    """The Keras model; `input_mean`/`input_std` standardise the scaled spectrogram inside it.

    The reference body uses valid padding at full time resolution, as the original did.
    The bins body first averages `time_pool` frames (the pitch of a note barely moves in
    10 ms, and this cuts the convolutions' cost by that factor), pads so the short time
    axis survives four poolings, and adds the modulation-spectrum branch.
    """
    if variant == "stream":
        from pipeline.model.stream_network import build_stream

        return build_stream(model_cfg, n_outputs, input_mean, input_std)
    keras = import_keras()
    from keras import layers

    improved = variant == "bins"
    inputs = keras.Input(shape=C.SPEC_SHAPE, name="spectrogram")
    standard = layers.Normalization(axis=None, mean=input_mean, variance=input_std ** 2,
                                    name="standardize")(inputs)
    x = layers.Reshape((*C.SPEC_SHAPE, 1), name="add_channel")(standard)
    x = layers.Dropout(model_cfg.input_dropout, name="input_dropout")(x)
    if improved and model_cfg.time_pool > 1:
        x = layers.AveragePooling2D((1, model_cfg.time_pool), padding="same", name="time_pool")(x)
    padding = "same" if improved else "valid"
    for i, filters in enumerate(conv_filters(model_cfg.width if width is None else width), start=1):
        x = layers.Conv2D(filters, CONV_KERNEL, padding=padding, activation="relu", name=f"conv{i}")(x)
        x = layers.MaxPooling2D(POOL_SIZE, padding=padding, name=f"pool{i}")(x)
        x = layers.Dropout(model_cfg.dropout, name=f"dropout{i}")(x)
    x = layers.Flatten(name="flatten")(x)
    if improved and model_cfg.modulation:
        m = custom_layers()["ModulationSpectrum"](name="modulation", dtype="float32")(standard)
        m = layers.Flatten(name="modulation_flatten")(m)
        m = layers.Dropout(model_cfg.dropout, name="modulation_dropout")(m)
        x = layers.Concatenate(name="merge")([x, m])
    for i, units in enumerate(model_cfg.dense_units, start=1):
        x = layers.Dense(units, activation="relu", name=f"dense{i}")(x)
    # float32 outputs keep the softmax and the regression stable under mixed precision
    if improved:
        outputs = layers.Dense(n_outputs, activation="softmax", dtype="float32", name="pitch_bins")(x)
    else:
        outputs = layers.Dense(1, activation="linear", dtype="float32", name="f0")(x)
    return keras.Model(inputs, outputs, name=f"f0_{variant}")


class Predictor:
    """A trained model plus its metadata: scaled spectrograms in, (Hz, confidence) out."""

    def __init__(self, network, metadata: dict):
        self.network = network
        self.metadata = metadata
        self.encoding = encoding_from_dict(metadata["encoding"])

    @property
    def scaling(self) -> str:
        return self.metadata["scaling"]

    @property
    def variant(self) -> str:
        return self.metadata["variant"]

    @classmethod
    def load(cls, path: str | Path) -> Predictor:
        path = Path(path)
        if not path.is_file():
            raise PipelineError(f"model {path} not found; train one with make train "
                                "(or python -m pipeline train) or give the path of a trained model")
        meta = read_metadata(path)
        # the very file its metadata describes (a flipped byte would still load)
        check_model_file(path, meta, embedded_id=keras_model_id(path))
        keras = import_keras()
        try:
            network = keras.saving.load_model(path, compile=False, custom_objects=custom_layers())
        except Exception as exc:  # Keras raises many types for a bad file
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise PipelineError(f"model {path} cannot be loaded ({first[:200]}); "
                                f"retrain it with make train") from None
        return cls(network, meta)

    def outputs(self, spectrograms: np.ndarray, batch_size: int = C.PREDICT_BATCH) -> np.ndarray:
        """The network's raw outputs, batch by batch (spectrograms may be a memory map)."""
        n = len(spectrograms)
        if n == 0:
            return np.zeros((0, self.encoding.n_outputs), dtype=np.float32)
        if tuple(spectrograms.shape[1:]) != C.SPEC_SHAPE:
            raise PipelineError(f"the model expects spectrograms of shape (N, {C.SPEC_SHAPE[0]}, "
                                f"{C.SPEC_SHAPE[1]}), got {tuple(spectrograms.shape)}")
        parts = [np.asarray(self.network.predict_on_batch(
                     np.asarray(spectrograms[i:i + batch_size], dtype=np.float32)))
                 for i in range(0, n, batch_size)]
        return np.concatenate(parts).astype(np.float32)

    def predict(self, spectrograms: np.ndarray,
                batch_size: int = C.PREDICT_BATCH) -> tuple[np.ndarray, np.ndarray]:
        """(N, 513, 90) spectrograms, already scaled with `self.scaling` -> (Hz, confidence 0..1)."""
        hz, confidence = self.encoding.decode(self.outputs(spectrograms, batch_size))
        return hz.astype(np.float64), confidence.astype(np.float64)

