"""Confidence of a pitch estimate, per frame: is the frame loud enough, and is it periodic?

`pipeline predict` reports, per 330 ms frame, the product of the model's own confidence and
two factors computed here from the audio alone, each 0..1:
- energy: the frame's RMS over its 5,280 samples, in dB, on two ramps multiplied together:
  0 at -90 dBFS rising to 1 at -70 dBFS, and 0 at 40 dB below the file's loudest frame rising
  to 1 at 20 dB below it (the dataset drops segments more than 40 dB below their note's
  loudest, so the model never learned such frames).
- periodicity: from YIN's cumulative mean normalised difference d'(lag) over the lags of
  30 Hz to 8 kHz (de Cheveigne & Kawahara 2002), which is near 0 for a periodic frame and near
  1 for noise: 1 where its minimum is at most 0.2, 0 where it is 0.8 or more, linear between
  (on 800 rendered dataset clips the minimum is 0.012 at the median and under 0.14 for 95%;
  white, pink and brown noise give 0.92 or more; a tone in white noise at 0 dB SNR about 0.5).
"""

from __future__ import annotations

import numpy as np

from pipeline.core import constants as C
from pipeline.dsp.yin import cumulative_mean_normalized_difference

# energy score, from the frame's RMS over its 5,280 samples (a ramp in dB, 0 at the floor, 1 at full)
ENERGY_FLOOR_DBFS = -90.0       # absolute: at or below this a frame is silence and is not analysed
ENERGY_FULL_DBFS = -70.0        # (16-bit dither is about -101 dBFS; each window is peak-normalised anyway)
ENERGY_FLOOR_DB_BELOW_LOUDEST = 40.0  # as gate.min_rms_db_below_note: the model never saw quieter segments
ENERGY_FULL_DB_BELOW_LOUDEST = 20.0
# periodicity score, from YIN's cumulative mean normalised difference d' (de Cheveigne & Kawahara 2002):
# its minimum over the lags of 30 Hz .. 8 kHz is ~0 for a periodic frame and ~1 for noise
PERIODICITY_FMIN_HZ = 30.0
PERIODICITY_MIN_LAG = 2         # samples: SAMPLE_RATE / 2 = 8 kHz, the Nyquist frequency
PERIODICITY_MAX_LAG = -(-C.SAMPLE_RATE // int(PERIODICITY_FMIN_HZ))  # 534 samples
APERIODIC_DPRIME = 0.8          # min d' at or above this: score 0 (noise: 0.92 and up; notes: 95% under 0.14)
PERIODIC_DPRIME = 0.2           # min d' at or below this: score 1


def _ramp(x: np.ndarray, zero_at: float, one_at: float) -> np.ndarray:
    return np.clip((np.asarray(x, dtype=np.float64) - zero_at) / (one_at - zero_at), 0.0, 1.0)


def frame_levels(padded: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """RMS in dBFS of the 5,280-sample windows starting at `starts` of the padded audio."""
    total = np.concatenate([[0.0], np.cumsum(np.square(padded, dtype=np.float64))])
    power = (total[starts + C.CLIP_SAMPLES] - total[starts]) / C.CLIP_SAMPLES
    return 10.0 * np.log10(np.maximum(power, 10.0 ** (C.SILENCE_DB / 10.0)))


def energy_score(levels_db: np.ndarray) -> np.ndarray:
    """0..1 per frame from its RMS (dBFS), absolute and relative to the loudest frame."""
    levels_db = np.asarray(levels_db, dtype=np.float64)
    if levels_db.size == 0:
        return levels_db
    absolute = _ramp(levels_db, ENERGY_FLOOR_DBFS, ENERGY_FULL_DBFS)
    relative = _ramp(levels_db - levels_db.max(), -ENERGY_FLOOR_DB_BELOW_LOUDEST,
                     -ENERGY_FULL_DB_BELOW_LOUDEST)
    return absolute * relative


def yin_dprime_min(clips: np.ndarray) -> np.ndarray:
    """(N, 5280) windows -> (N,) minimum of YIN's d'(lag) over lags 2..534 (8 kHz .. 30 Hz)."""
    dprime, _ = cumulative_mean_normalized_difference(clips, PERIODICITY_MAX_LAG)
    return dprime[:, PERIODICITY_MIN_LAG:].min(axis=1)


def periodicity_score(clips: np.ndarray) -> np.ndarray:
    """0..1 per window: 1 for a clearly periodic frame, 0 for noise."""
    return _ramp(yin_dprime_min(clips), APERIODIC_DPRIME, PERIODIC_DPRIME)
