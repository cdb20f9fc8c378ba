"""The frame model's batches: each step's examples (pipeline/data/frame_examples.py) become log
spectra of their frame and its context (pipeline/dsp/log_spectrum.py), computed here from the
split's audio, with the step's random changes:
- level: every example is played up to `train.level_db` quieter, so that the log floor (the
  faintest a frame can be) meets quiet passages as it will in a recording;
- noise: `train.noise_share` of the examples are replaced by unpitched sound (white, pink or
  brown noise, or silence, at a random level), whose target is all zeros;
- tones: `train.tone_share` of the examples are replaced by plain tones (a sine, or one to three
  partials of random levels, at a random pitch from 27.5 Hz to 4.2 kHz, steady or with vibrato),
  whose target is their exact f0: the datasets hold few of them, and a lone partial is what a
  flute's upper register or a whistle sounds like.
As with the clip models' batches, every step's changes come from (seed, step), so a resumed run
sees the very batches an uninterrupted one would.
"""

from __future__ import annotations

import numpy as np

from pipeline.dsp.log_spectrum import GRID_BINS, HOP, PAD, WINDOWS, spectra_at_samples

NOISE_COLOURS = (0.0, -3.0, -6.0)       # dB per octave: white, pink, brown
SILENCE_SHARE = 0.2                      # of the unpitched examples: digital silence


def context_offsets(context: int) -> np.ndarray:
    return np.arange(-context, context + 1) * HOP


def spectra_around(audio: np.ndarray, centres: np.ndarray, context: int) -> np.ndarray:
    """(B, 2 context + 1, 2, GRID_BINS) log spectra of the frames around each centre (a sample of
    `audio`, float or 16-bit; every window must lie inside it)."""
    samples = (np.asarray(centres, np.int64)[:, None] + context_offsets(context)[None, :]).reshape(-1)
    return spectra_at_samples(audio, samples).reshape(len(centres), 2 * context + 1, len(WINDOWS), GRID_BINS)


TONE_RANGE_HZ = (27.5, 4200.0)


def plain_tones(rng: np.random.Generator, count: int, length: int, centre: int) -> tuple[np.ndarray, np.ndarray]:
    """(count, length) tones of one to three partials and their f0 at sample `centre` (Hz)."""
    t = np.arange(length) / 16000.0
    f0 = np.exp(rng.uniform(*np.log(TONE_RANGE_HZ), count))
    depth = np.where(rng.random(count) < 0.5, rng.uniform(0, 100, count), 0.0)     # vibrato, cents
    rate, phase = rng.uniform(3, 9, count), rng.uniform(0, 2 * np.pi, count)
    out = np.zeros((count, length), dtype=np.float32)
    at = np.zeros(count)
    for i in range(count):
        cents = depth[i] * np.sin(2 * np.pi * rate[i] * t + phase[i])
        hz = f0[i] * 2.0 ** (cents / 1200.0)
        turns = np.cumsum(hz) / 16000.0
        partials = 1 + int(rng.integers(0, 3)) if rng.random() < 0.5 else 1
        for n in range(1, partials + 1):
            if n * hz.max() < 7600:
                out[i] += (rng.uniform(0.1, 1.0) if n > 1 else 1.0) * np.sin(2 * np.pi * n * turns)
        out[i] *= 10 ** (rng.uniform(-40, 0) / 20) / max(np.abs(out[i]).max(), 1e-9)
        at[i] = hz[centre]
    return out, at


def unpitched(rng: np.random.Generator, count: int, length: int) -> np.ndarray:
    """(count, length) noise of random colour and level, or silence."""
    out = np.zeros((count, length), dtype=np.float32)
    freqs = np.fft.rfftfreq(length, 1.0 / 16000)
    octaves = np.log2(np.maximum(freqs, 20.0) / 1000.0)
    for i in range(count):
        if rng.random() < SILENCE_SHARE:
            continue
        slope = NOISE_COLOURS[rng.integers(len(NOISE_COLOURS))]
        shape = 10 ** (slope * octaves / 20)
        spectrum = (rng.standard_normal(len(freqs)) + 1j * rng.standard_normal(len(freqs))) * shape
        noise = np.fft.irfft(spectrum, length)
        out[i] = noise / max(np.abs(noise).max(), 1e-12) * 10 ** (rng.uniform(-60, 0) / 20)
    return out


class FrameBatchMaker:
    """A step's examples: their spectra, with the step's level changes and unpitched swaps, and targets."""

    def __init__(self, audio: np.ndarray, examples: np.ndarray, encoding, context: int, level_db: float,
                 noise_share: float, seed: int, tone_share: float = 0.0):
        self.audio = audio
        self.centres = examples[:, 0].astype(np.int64)
        self.hz = examples[:, 1].astype(np.float64)
        self.encoding, self.context = encoding, context
        self.level_db, self.noise_share, self.tone_share, self.seed = level_db, noise_share, tone_share, seed
        self.span = PAD + context * HOP

    @property
    def shapes(self) -> tuple[tuple, tuple]:
        return (None, 2 * self.context + 1, len(WINDOWS), GRID_BINS), (None, 1, self.encoding.n_outputs)

    def __call__(self, index: np.ndarray, step: int) -> tuple[np.ndarray, np.ndarray]:
        index = np.sort(index)
        rng = np.random.default_rng([self.seed, int(step)])
        centres, hz = self.centres[index], self.hz[index].copy()
        segments = self.audio[centres[:, None] + np.arange(-self.span, self.span)[None, :]].astype(np.float32) / 32768
        segments *= (10.0 ** (-rng.uniform(0.0, self.level_db, len(index)) / 20.0))[:, None].astype(np.float32)
        draw = rng.random(len(index))
        swap = np.flatnonzero(draw < self.noise_share)
        segments[swap] = unpitched(rng, len(swap), segments.shape[1])
        hz[swap] = 0.0
        tones = np.flatnonzero((draw >= self.noise_share) & (draw < self.noise_share + self.tone_share))
        segments[tones], hz[tones] = plain_tones(rng, len(tones), segments.shape[1], self.span)
        x = spectra_around(segments.reshape(-1), np.arange(len(index)) * segments.shape[1] + self.span, self.context)
        return x, self.encoding.encode(hz)[:, None, :]


def validation_inputs(audio: np.ndarray, examples: np.ndarray, context: int, limit: int,
                      seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, Hz) of at most `limit` validation examples, drawn once, spectra computed once."""
    rng = np.random.default_rng([seed, 11])
    chosen = np.sort(rng.permutation(len(examples))[:limit])
    centres = examples[chosen, 0].astype(np.int64)
    inputs = [spectra_around(audio, centres[i:i + 256], context) for i in range(0, len(centres), 256)]
    x = np.concatenate(inputs) if inputs else np.zeros((0, 2 * context + 1, len(WINDOWS), GRID_BINS), np.float32)
    return x, examples[chosen, 1].astype(np.float64)
