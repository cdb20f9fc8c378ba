"""Label encodings: how a pitch in Hz becomes a network's target and its output becomes Hz.

- `RegressionEncoding`: one number per clip (MIDI number, log2 Hz or Hz), standardised with the
  training set's statistics; decoded with confidence 1 (a regressor has no notion of it).
- `BinEncoding`: a softmax over pitch bins `1 / bins_per_semitone` semitones apart, trained on
  Gaussian-blurred targets as CREPE does, decoded with a weighted average around the peak
  whose probability mass is the confidence.

numpy only: prediction decodes with these without importing TensorFlow.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from pipeline.core.config import Config
from pipeline.core.pitch import hz_to_midi, midi_to_hz

BIN_MARGIN_SEMITONES = 1        # pitch bins reach this far beyond the note range and its detune
DECODE_HALF_WIDTH_BINS = 4      # soft-argmax window: argmax +- this many bins (CREPE uses 4)
DECODE_FRAME_BINS = 2           # the frame model's: +- 50 cents (its bins are 25 cents apart)


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


@dataclass(frozen=True)
class FrameEncoding:
    """One sigmoid per pitch bin, `n_bins` bins `1200 / bins_per_octave` cents apart from `low_hz`
    (the frame network's candidates). A voiced frame's target is a Gaussian (sigma `sigma_bins`)
    around its pitch; an unvoiced one's is all zeros. Decoded as CREPE does: the activations of
    the bins around the largest, averaged in cents; the confidence is the largest activation."""
    low_hz: float
    bins_per_octave: int
    n_bins: int
    sigma_bins: float = 1.0
    kind: str = "frames"

    @property
    def n_outputs(self) -> int:
        return self.n_bins

    def position(self, hz) -> np.ndarray:
        """Fractional bin of each frequency (NaN for 0 Hz: unvoiced)."""
        hz = np.asarray(hz, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(hz > 0, self.bins_per_octave * np.log2(np.where(hz > 0, hz, 1.0) / self.low_hz), np.nan)

    def encode(self, hz) -> np.ndarray:
        position = self.position(hz)
        distance = np.arange(self.n_bins)[None, :] - np.clip(position, 0, self.n_bins - 1)[:, None]
        targets = np.exp(-0.5 * (distance / self.sigma_bins) ** 2)
        return np.where(np.isfinite(position)[:, None], targets, 0.0).astype(np.float32)

    def decode(self, activations: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, n_bins) activations -> (Hz, confidence 0..1) per frame."""
        acts = np.asarray(activations, dtype=np.float64).reshape(-1, self.n_bins)
        peak = acts.argmax(axis=1)
        window = peak[:, None] + np.arange(-DECODE_FRAME_BINS, DECODE_FRAME_BINS + 1)
        inside = (window >= 0) & (window < self.n_bins)
        weights = np.take_along_axis(acts, np.clip(window, 0, self.n_bins - 1), axis=1) * inside
        position = (weights * window).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-12)
        return self.low_hz * 2.0 ** (position / self.bins_per_octave), acts.max(axis=1) if len(acts) else np.zeros(0)

    def loss(self, activations: np.ndarray, targets: np.ndarray) -> float:
        p = np.clip(np.asarray(activations, np.float64), 1e-7, 1 - 1e-7)
        return float(-np.mean(targets * np.log(p) + (1 - targets) * np.log(1 - p)))


def make_encoding(cfg: Config, variant: str, train_hz) -> RegressionEncoding | BinEncoding | FrameEncoding:
    if variant == "frames":
        from pipeline.dsp.log_spectrum import grid_hz
        from pipeline.model.frame_network import FIRST_CANDIDATE, candidate_step, candidates

        per = cfg.model.frame_bins_per_octave
        # at least a bin wide: a pitch between two bins then still peaks near 0.9, and the largest
        # activation (the confidence) does not depend on where within a bin the pitch falls
        sigma = max(1.0, cfg.model.label_smoothing_cents * per / 1200.0)
        return FrameEncoding(float(grid_hz([FIRST_CANDIDATE])[0]), per, candidates(candidate_step(cfg.model)), sigma)
    if variant in ("bins", "stream"):
        return BinEncoding.for_config(cfg)
    return RegressionEncoding.fit(cfg.model.target, train_hz)


def encoding_from_dict(raw: dict) -> RegressionEncoding | BinEncoding:
    kinds = {"regression": RegressionEncoding, "bins": BinEncoding, "frames": FrameEncoding}
    fields = dict(raw)
    return kinds[fields.pop("kind")](**fields)


def encoding_to_dict(encoding) -> dict:
    return asdict(encoding)
