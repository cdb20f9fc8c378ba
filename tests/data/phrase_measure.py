"""Measuring a rendered phrase against its label from the audio alone: mono 44.1 kHz -> 16 kHz
(soxr), YIN (tests/yin.py), compared on the label's clean frames with the label averaged over
the span each YIN frame compared (vibrato moves inside a window)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import soxr

from pipeline.core.constants import RENDER_RATE
from pipeline.data.phrase_labels import window_label
from pipeline.data.phrase_midi import BLOCK
from pipeline.dsp.frame_pitch import yin

SR = 16_000
STEP_SPREAD_CENTS = 80.0   # a frame whose window holds a label jump this big (trill step, legato
                           # step) has no single f0 to compare with; such frames are left out


@dataclass(frozen=True)
class Accuracy:
    frames: int              # frames compared
    rpa: float               # share within 50 cents
    rpa10: float             # share within 10 cents
    median_cents: float      # median |error|
    p95_cents: float
    median_signed: float     # median signed error (measured - label): a tuning offset
    errors: np.ndarray

    def line(self) -> str:
        return (f"frames={self.frames} RPA50={100 * self.rpa:.2f}% RPA10={100 * self.rpa10:.2f}% "
                f"median|err|={self.median_cents:.2f}c "
                f"p95={self.p95_cents:.2f}c bias={self.median_signed:+.2f}c")


def to_16k(audio: np.ndarray) -> np.ndarray:
    return soxr.resample(audio.astype(np.float32), RENDER_RATE, SR, quality="VHQ")


def measure(audio: np.ndarray, label, frames: np.ndarray | None = None) -> Accuracy:
    """Accuracy of the label against YIN on the audio, over `frames` (default: the label's clean
    frames) minus frames whose window straddles a label jump of STEP_SPREAD_CENTS or more."""
    frames = label.clean if frames is None else frames
    track = yin(to_16k(audio), label.times)
    mean, spread = window_label(np.repeat(label.block_cents, BLOCK), np.nan_to_num(track.window))
    use = frames & (spread < STEP_SPREAD_CENTS) & np.isfinite(mean)
    measured = 1200 * np.log2(np.where(np.isfinite(track.f0_hz), track.f0_hz, 1e-9) / 440.0) + 6900
    err = measured[use] - mean[use]
    err = np.where(np.isfinite(err), err, 1e4)
    a = np.abs(err)
    if len(a) == 0:
        return Accuracy(0, float("nan"), float("nan"), float("nan"), float("nan"), float("nan"), err)
    return Accuracy(int(len(a)), float(np.mean(a <= 50)), float(np.mean(a <= 10)), float(np.median(a)),
                    float(np.percentile(a, 95)),
                    float(np.median(err)), err)
