"""Model: the reference Conv2D f0 regressor, the pitch-bin variant, label encodings, Predictor.

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
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from pipeline import constants as C
from pipeline.backend import import_keras
from pipeline.config import Config, ModelConfig
from pipeline.errors import PipelineError
from pipeline.pitch import hz_to_midi, midi_to_hz

REFERENCE_FILTERS = (64, 128, 128, 256)  # the original experiment's four Conv2D layers
CONV_KERNEL = (3, 3)
POOL_SIZE = (2, 2)
BIN_MARGIN_SEMITONES = 1        # pitch bins reach this far beyond the note range and its detune
DECODE_HALF_WIDTH_BINS = 4      # soft-argmax window: argmax +- this many bins (CREPE uses 4)
# Modulation spectrum (bins variant): below about 130 Hz a note's harmonics are closer than
# the 256-sample window resolves, but they beat at f0 in every frequency row over time; the
# magnitude of an FFT over each row's 90 frames shows that beat, up to half the frame rate.
FRAME_RATE = C.SAMPLE_RATE / C.HOP               # 285.7 frames per second
MODULATION_ROWS = 256           # frequency rows used, 0-4 kHz, where the harmonics of low notes lie
MODULATION_BANDS = 8            # rows averaged into this many bands after the FFT
MODULATION_FFT = 512            # zero-padded: 0.56 Hz between modulation bins
MODULATION_LOW_HZ = 25.0        # kept modulation range: below MIDI 36 (65 Hz) with margin ...
MODULATION_HIGH_HZ = FRAME_RATE / 2  # ... up to the frame rate's Nyquist


# --- label encodings -------------------------------------------------------------------
@dataclass(frozen=True)
class RegressionEncoding:
    """One number per clip: the target in `target` units, standardised with training stats."""
    target: str
    mean: float
    std: float
    kind: str = "regression"

    n_outputs = 1

    def _raw(self, hz):
        hz = np.asarray(hz, dtype=np.float64)
        return {"midi": hz_to_midi, "log_hz": np.log2, "hz": lambda h: h}[self.target](hz)

    def encode(self, hz) -> np.ndarray:
        return ((self._raw(hz) - self.mean) / self.std).astype(np.float32)[:, None]

    def decode(self, outputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raw = np.asarray(outputs, dtype=np.float64).reshape(-1) * self.std + self.mean
        if self.target == "midi":
            hz = midi_to_hz(raw)
        elif self.target == "log_hz":
            hz = 2.0 ** raw
        else:
            hz = raw
        # a regressor has no notion of confidence: every estimate is reported as voiced
        return np.maximum(hz, 0.0), np.ones(len(raw))

    def loss(self, outputs: np.ndarray, targets: np.ndarray) -> float:
        return float(np.mean((np.asarray(outputs, np.float64) - targets) ** 2))

    @classmethod
    def fit(cls, target: str, train_hz) -> RegressionEncoding:
        raw = cls(target, 0.0, 1.0)._raw(train_hz)
        return cls(target, float(raw.mean()), float(max(raw.std(), 1e-6)))


@dataclass(frozen=True)
class BinEncoding:
    """A softmax over pitch bins `1 / bins_per_semitone` semitones apart from `low_midi`."""
    low_midi: float
    bins_per_semitone: int
    n_bins: int
    sigma_bins: float
    kind: str = "bins"

    @property
    def n_outputs(self) -> int:
        return self.n_bins

    @property
    def centers(self) -> np.ndarray:
        """Bin centres as MIDI numbers."""
        return self.low_midi + np.arange(self.n_bins) / self.bins_per_semitone

    def encode(self, hz) -> np.ndarray:
        # a label beyond the bins (a dataset wider than the model) is pinned to the nearest edge
        position = np.clip((hz_to_midi(hz) - self.low_midi) * self.bins_per_semitone, 0, self.n_bins - 1)
        distance = np.arange(self.n_bins)[None, :] - position[:, None]
        blurred = np.exp(-0.5 * (distance / max(self.sigma_bins, 1e-3)) ** 2)
        return (blurred / blurred.sum(axis=1, keepdims=True)).astype(np.float32)

    def decode(self, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Weighted average of the bins around the peak; confidence = their probability mass."""
        probs = np.asarray(probs, dtype=np.float64)
        peak = probs.argmax(axis=1)
        window = peak[:, None] + np.arange(-DECODE_HALF_WIDTH_BINS, DECODE_HALF_WIDTH_BINS + 1)
        inside = (window >= 0) & (window < self.n_bins)
        window = np.clip(window, 0, self.n_bins - 1)
        weights = np.take_along_axis(probs, window, axis=1) * inside
        mass = weights.sum(axis=1)
        midi = (weights * self.centers[window]).sum(axis=1) / np.maximum(mass, 1e-12)
        return midi_to_hz(midi), np.clip(mass, 0.0, 1.0)

    def loss(self, probs: np.ndarray, targets: np.ndarray) -> float:
        return float(-np.mean(np.sum(targets * np.log(np.clip(probs, 1e-7, 1.0)), axis=1)))

    @classmethod
    def for_config(cls, cfg: Config) -> BinEncoding:
        """Bins over the dataset's note range, widened by its largest detune plus a margin."""
        margin = BIN_MARGIN_SEMITONES + math.ceil(cfg.data.detune_max_cents / 100.0)
        low, high = cfg.data.note_low - margin, cfg.data.note_high + margin
        bps = cfg.model.bins_per_semitone
        sigma = cfg.model.label_smoothing_cents / 100.0 * bps
        return cls(float(low), bps, (high - low) * bps + 1, sigma)


def make_encoding(cfg: Config, variant: str, train_hz) -> RegressionEncoding | BinEncoding:
    if variant in ("bins", "stream"):
        return BinEncoding.for_config(cfg)
    return RegressionEncoding.fit(cfg.model.target, train_hz)


def encoding_from_dict(raw: dict) -> RegressionEncoding | BinEncoding:
    kinds = {"regression": RegressionEncoding, "bins": BinEncoding}
    fields = dict(raw)
    return kinds[fields.pop("kind")](**fields)


def encoding_to_dict(encoding) -> dict:
    return asdict(encoding)


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

    from pipeline.stream_network import custom_layers as stream_layers

    return {"ModulationSpectrum": ModulationSpectrum, **stream_layers()}


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
        from pipeline.stream_network import build_stream

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


# --- using a trained model ------------------------------------------------------------------
def sidecar_path(model_path: str | Path) -> Path:
    """models/NAME/model.keras -> models/NAME/model.json."""
    return Path(model_path).with_suffix(".json")


def read_metadata(model_path: Path) -> dict:
    json_path = sidecar_path(model_path)
    fix = "retrain it with make train (or python -m pipeline train)"
    try:
        meta = json.loads(json_path.read_text())
    except FileNotFoundError:
        raise PipelineError(f"model metadata {json_path} is missing; {fix}") from None
    except (OSError, ValueError) as exc:
        raise PipelineError(f"model metadata {json_path} is unreadable ({exc}); {fix}") from None
    if not isinstance(meta, dict) or meta.get("format") != C.MODEL_FORMAT:
        raise PipelineError(f"{json_path} is not a model description written by this pipeline; {fix}")
    if meta.get("format_version") != C.MODEL_FORMAT_VERSION:
        raise PipelineError(f"model {model_path} has format version {meta.get('format_version')}, this code "
                            f"reads version {C.MODEL_FORMAT_VERSION}; {fix}")
    return meta


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
                                f"(or python -m pipeline train) or pass --model PATH")
        meta = read_metadata(path)
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

