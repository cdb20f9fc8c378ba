"""Batches: what each training step sees, drawn reproducibly from the stored features.

Every epoch's order comes from (seed, epoch) and every step's random changes from
(seed, step), so a resumed run sees the very batches an uninterrupted one would. For the
stream model two changes make it hold up on recordings it never saw:
- level: each example is played up to `train.level_db` quieter. The clips are stored at a
  -1 dBFS peak, but `pipeline predict` reads a whole recording at once, where a window in a
  quiet passage is far below its loudest; in the log spectrogram a gain g is
  ln(g * magnitude + eps), computed exactly from the stored ln(magnitude + eps);
- noise: `train.noise_share` of each batch is replaced by unpitched sound (coloured noise
  with random spectral shapes and envelopes) whose target is flat over every pitch bin, so
  the model's confidence (the probability mass around its peak) is low where there is no
  pitch, as it is for silence.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.core import constants as C
from pipeline.dsp.spectrogram import LOG_EPSILON

NOISE_BANK = 512                # unpitched examples generated once per training run
NOISE_SLOPE_DB = (-9.0, 3.0)    # spectral slope per octave of the noise examples


@dataclass(frozen=True)
class Changes:
    """The per-example changes of the stream model's batches (none for the other models)."""
    level_db: float = 0.0
    noise_share: float = 0.0
    scaling: str = "log"
    seed: int = 0


def epoch_batches(n: int, batch: int, seed: int, first_epoch: int, epochs: int) -> np.ndarray:
    """(epochs x steps, batch) clip indices; epoch e's order depends only on (seed, e)."""
    batch = min(batch, n)
    steps = n // batch
    orders = [np.random.default_rng([seed, e]).permutation(n)[:steps * batch].reshape(steps, batch)
              for e in range(first_epoch, epochs)]
    return np.concatenate(orders) if orders else np.zeros((0, batch), dtype=np.int64)


def change_level(x: np.ndarray, gain_db: np.ndarray, scaling: str) -> np.ndarray:
    """(N, 513, 90) scaled spectrograms as if each clip were `gain_db` (N,) louder (negative: quieter)."""
    gain = (10.0 ** (np.asarray(gain_db, dtype=np.float32) / 20.0))[:, None, None]
    if scaling == "linear":
        return x * gain
    log = x if scaling == "log" else x * np.float32(np.log(10.0) / 20.0)
    quieter = np.log(np.maximum(np.exp(log) - LOG_EPSILON, 0.0) * gain + LOG_EPSILON)
    return quieter if scaling == "log" else quieter * np.float32(20.0 / np.log(10.0))


def noise_clips(count: int, seed: int) -> np.ndarray:
    """(count, 5280) unpitched clips: coloured noise, band-limited at random, under random envelopes,
    peak-normalised and quantised to 16 bits as the dataset's clips are."""
    rng = np.random.default_rng([seed, 7])
    freqs = np.fft.rfftfreq(C.CLIP_SAMPLES, 1.0 / C.SAMPLE_RATE)
    octaves = np.log2(np.maximum(freqs, 20.0) / 1000.0)
    out = np.empty((count, C.CLIP_SAMPLES), dtype=np.float32)
    t = np.linspace(0.0, 1.0, C.CLIP_SAMPLES)
    for i in range(count):
        slope = rng.uniform(*NOISE_SLOPE_DB)
        low, high = np.sort(rng.uniform(np.log2(30.0), np.log2(8000.0), 2))
        shape = 10.0 ** (slope * octaves / 20.0) * ((np.log2(np.maximum(freqs, 1.0)) >= low - 1)
                                                   & (np.log2(np.maximum(freqs, 1.0)) <= high + 1))
        spectrum = (rng.standard_normal(len(freqs)) + 1j * rng.standard_normal(len(freqs))) * shape
        audio = np.fft.irfft(spectrum, C.CLIP_SAMPLES)
        onset, decay = rng.uniform(0.0, 0.6), rng.uniform(0.5, 20.0)
        audio *= np.where(t < onset, rng.uniform(0.0, 1.0), np.exp(-decay * (t - onset) * rng.uniform(0, 1)))
        peak = np.abs(audio).max()
        out[i] = np.round(audio / max(peak, 1e-12) * C.PEAK_NORMALIZE_LINEAR * 32767) / 32768
    return out


class BatchMaker:
    """Gathers a step's rows from the memory map and applies the step's changes."""

    def __init__(self, features: np.ndarray, hz: np.ndarray, encoding, changes: Changes):
        self.features, self.hz, self.encoding, self.changes = features, hz, encoding, changes
        self.noise = None
        if changes.noise_share > 0:
            from pipeline.dsp.spectrogram import spectrogram

            self.noise = spectrogram(noise_clips(NOISE_BANK, changes.seed), changes.scaling)

    def __call__(self, index: np.ndarray, step: int) -> tuple[np.ndarray, np.ndarray]:
        index = np.sort(index)  # ascending rows read the memory map sequentially
        x = np.asarray(self.features[index], dtype=np.float32)
        y = self.encoding.encode(self.hz[index])
        c = self.changes
        if not (c.level_db or self.noise is not None):
            return x, y
        rng = np.random.default_rng([c.seed, int(step)])
        if self.noise is not None:
            swap = np.flatnonzero(rng.random(len(index)) < c.noise_share)
            x[swap] = self.noise[rng.integers(0, len(self.noise), len(swap))]
            y[swap] = 1.0 / y.shape[1]
        if c.level_db:
            x = change_level(x, -rng.uniform(0.0, c.level_db, len(index)), c.scaling)
        return x, y


def make_dataset(maker: BatchMaker, batches: np.ndarray, first_step: int = 0):
    """tf.data over index batches; step s of the run (counted from its first epoch) is `first_step + s`."""
    import tensorflow as tf

    steps = np.arange(first_step, first_step + len(batches), dtype=np.int64)
    n_outputs = maker.encoding.n_outputs

    def load(index, step):
        x, y = tf.numpy_function(maker, [index, step], (tf.float32, tf.float32), stateful=False)
        x.set_shape((None, *C.SPEC_SHAPE))
        y.set_shape((None, n_outputs))
        return x, y

    return (tf.data.Dataset.from_tensor_slices((batches, steps))
            .map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            .prefetch(tf.data.AUTOTUNE))
