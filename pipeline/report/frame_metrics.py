"""Frame metrics: a pitch contour scored against its per-frame truth, with mir_eval.melody.

A `Contour` is frame times in seconds, f0 in Hz and a voicing decision per frame. Frequency 0
means no pitch at all; a frame may carry a pitch and still be unvoiced (our model under its
confidence threshold, SwiftF0, CREPE, pYIN's best guess), as in mir_eval: raw pitch and chroma
accuracy read that pitch, the voicing measures read the decision.

`align(truth, estimate)` is mir_eval.melody.to_cent_voicing with a 10 ms hop: both series on
a grid from 0 s every 10 ms (pitch interpolated linearly in cents, voicing held), the estimate
padded with unvoiced frames or cut to the truth's length. `score(aligned)` applies mir_eval's
own measures to those arrays: voicing recall and false alarm, raw pitch and raw chroma accuracy
at 50 and 10 cents, overall accuracy (50 cents). Beside them, on the same frames:
- median absolute error in cents: truth-voiced frames where the estimate has a pitch;
- octave errors: the share of truth-voiced frames whose error lies within 50 cents of a nonzero
  multiple of 1200 cents (pipeline.core.pitch.octave_errors).

`Pooled` sums files one at a time, so memory does not grow with their number. Its `frames` row
counts every frame once: each measure over all files' frames of its own denominator (truth-voiced
frames for the recall, the pitch and chroma accuracies and the octave errors, truth-unvoiced
frames for the false alarm, every frame for the overall accuracy), which equals mir_eval on the
files' aligned frames joined end to end; the median comes from a histogram with 0.1-cent bins.
Its `files` row is the mean over files of each file's figure (files where the measure's
denominator is empty left out), as MIREX averages.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from pipeline.core import constants as C
from pipeline.core.errors import PipelineError
from pipeline.core.pitch import octave_errors

EVALUATION_HOP_SECONDS = 0.010   # mir_eval's common grid, and the hop every tracker runs at where it can
FINE_TOLERANCE = 10.0            # cents, the strict raw pitch and chroma accuracy
MIR_EVAL_BASE_HZ = 10.0          # mir_eval.melody.hz2cents' reference: cents above 10 Hz
HISTOGRAM_STEP_CENTS = 0.1       # the pooled median's resolution
HISTOGRAM_TOP_CENTS = 2400.0     # errors beyond two octaves share the last bin
# the measures, in the order tables show them, with a short label; rates are shown as percentages
FRAME_METRICS = {
    "voicing_recall": "voicing recall",
    "voicing_false_alarm": "voicing false alarm",
    "rpa50": f"RPA {C.CENT_TOLERANCE:g} cents",
    "rpa10": f"RPA {FINE_TOLERANCE:g} cents",
    "rca50": f"RCA {C.CENT_TOLERANCE:g} cents",
    "rca10": f"RCA {FINE_TOLERANCE:g} cents",
    "overall_accuracy": "overall accuracy",
    "median_abs_cents": "median abs error (cents)",
    "octave_error_rate": "octave errors",
}
RATES = tuple(k for k in FRAME_METRICS if k != "median_abs_cents")
COUNTS = ("frames", "voiced_frames", "unvoiced_frames", "pitched_frames")
# each measure's denominator (a count above): how files pool
DENOMINATOR = {"voicing_recall": "voiced_frames", "voicing_false_alarm": "unvoiced_frames",
               "rpa50": "voiced_frames", "rpa10": "voiced_frames", "rca50": "voiced_frames",
               "rca10": "voiced_frames", "overall_accuracy": "frames", "octave_error_rate": "voiced_frames",
               "median_abs_cents": "pitched_frames"}


@dataclass(frozen=True)
class Contour:
    """Frame times (s, increasing), f0 in Hz (0: no pitch) and voicing (bool), one per frame; a
    truth may also say which frames are to be scored (`scored`; None: all of them): the frames a
    dataset flags as untrusted (pipeline/data/phrase_labels.py) are left out of every measure."""
    time: np.ndarray
    frequency: np.ndarray
    voiced: np.ndarray
    scored: np.ndarray | None = None

    def __post_init__(self):
        time = np.asarray(self.time, dtype=np.float64).reshape(-1)
        frequency = np.asarray(self.frequency, dtype=np.float64).reshape(-1)
        voiced = np.asarray(self.voiced).reshape(-1).astype(bool)
        if not len(time) == len(frequency) == len(voiced):
            raise PipelineError(f"a contour needs one time, frequency and voicing per frame; got {len(time)}, "
                                f"{len(frequency)} and {len(voiced)}")
        with np.errstate(invalid="ignore"):
            frequency = np.where(np.isfinite(frequency) & (frequency > 0), frequency, 0.0)
        object.__setattr__(self, "time", time)
        object.__setattr__(self, "frequency", frequency)
        object.__setattr__(self, "voiced", voiced & (frequency > 0))

    @classmethod
    def from_frequency(cls, time, frequency) -> Contour:
        """Voiced wherever the frequency is positive (a truth file, Praat's answer)."""
        frequency = np.asarray(frequency, dtype=np.float64)
        with np.errstate(invalid="ignore"):
            return cls(time, frequency, np.isfinite(frequency) & (frequency > 0))

    def __len__(self) -> int:
        return len(self.time)


@dataclass(frozen=True)
class Aligned:
    """Truth and estimate on mir_eval's grid: voicing 0/1 and cents above 10 Hz (0: no pitch)."""
    ref_voicing: np.ndarray
    ref_cent: np.ndarray
    est_voicing: np.ndarray
    est_cent: np.ndarray

    @property
    def pitched(self) -> np.ndarray:
        """Truth-voiced frames where the estimate has a pitch: where the error in cents is defined."""
        return (self.ref_voicing > 0) & (self.est_cent != 0) & (self.ref_cent != 0)

    def errors(self) -> np.ndarray:
        """Signed error in cents on the pitched frames."""
        return (self.est_cent - self.ref_cent)[self.pitched]


def cents_to_hz(cent: np.ndarray) -> np.ndarray:
    """mir_eval's cents back to Hz; NaN where there is no pitch (0)."""
    cent = np.asarray(cent, dtype=np.float64)
    return np.where(cent != 0, MIR_EVAL_BASE_HZ * 2.0 ** (cent / 1200.0), np.nan)


def align(truth: Contour, estimate: Contour, hop: float = EVALUATION_HOP_SECONDS) -> Aligned:
    """Both contours on mir_eval's common grid (mir_eval.melody.to_cent_voicing, `hop` seconds).

    An estimate of fewer than two frames is taken as unvoiced throughout.
    """
    from mir_eval import melody

    if len(truth) < 2:
        raise PipelineError(f"a truth contour needs at least two frames, got {len(truth)}")
    if len(estimate) < 2:
        estimate = Contour(truth.time, np.zeros(len(truth)), np.zeros(len(truth), dtype=bool))
    ref_freq = np.where(truth.voiced, truth.frequency, 0.0)
    with warnings.catch_warnings():   # a hand-made truth may have an irregular hop: linear in cents is still right
        warnings.simplefilter("ignore", UserWarning)
        arrays = melody.to_cent_voicing(truth.time, ref_freq, estimate.time, estimate.frequency.copy(),
                                        est_voicing=estimate.voiced.astype(np.float64), hop=hop)
    arrays = [np.asarray(a, dtype=np.float64) for a in arrays]
    if truth.scored is not None:                 # each grid frame takes the nearest truth frame's say
        grid = np.arange(len(arrays[0])) * hop
        nearest = np.clip(np.searchsorted(truth.time, grid), 1, len(truth) - 1)
        nearest -= (grid - truth.time[nearest - 1]) < (truth.time[nearest] - grid)
        keep = np.asarray(truth.scored, dtype=bool)[nearest]
        arrays = [a[keep] for a in arrays]
    return Aligned(*arrays)


def score(aligned: Aligned) -> dict:
    """mir_eval's measures on aligned frames, the median |error| and the octave errors, and the counts."""
    from mir_eval import melody

    a = aligned
    frames = (a.ref_voicing, a.ref_cent, a.est_voicing, a.est_cent)
    with warnings.catch_warnings():   # "no voiced frames" is a legitimate answer for a silent file
        warnings.simplefilter("ignore", UserWarning)
        result = {
            "voicing_recall": melody.voicing_recall(a.ref_voicing, a.est_voicing),
            "voicing_false_alarm": melody.voicing_false_alarm(a.ref_voicing, a.est_voicing),
            "rpa50": melody.raw_pitch_accuracy(*frames, cent_tolerance=C.CENT_TOLERANCE),
            "rpa10": melody.raw_pitch_accuracy(*frames, cent_tolerance=FINE_TOLERANCE),
            "rca50": melody.raw_chroma_accuracy(*frames, cent_tolerance=C.CENT_TOLERANCE),
            "rca10": melody.raw_chroma_accuracy(*frames, cent_tolerance=FINE_TOLERANCE),
            "overall_accuracy": melody.overall_accuracy(*frames, cent_tolerance=C.CENT_TOLERANCE),
        }
    result = {key: float(value) for key, value in result.items()}
    errors = a.errors()
    voiced = int((a.ref_voicing > 0).sum())
    result["median_abs_cents"] = float(np.median(np.abs(errors))) if len(errors) else float("nan")
    result["octave_error_rate"] = float(octave_errors(errors).sum() / voiced) if voiced else float("nan")
    result.update(frames=len(a.ref_voicing), voiced_frames=voiced, unvoiced_frames=int((a.ref_voicing == 0).sum()),
                  pitched_frames=len(errors))
    return result


def score_contours(truth: Contour, estimate: Contour, hop: float = EVALUATION_HOP_SECONDS) -> tuple[dict, Aligned]:
    """`score(align(truth, estimate))`, with the aligned frames."""
    aligned = align(truth, estimate, hop)
    return score(aligned), aligned


# --- many files ----------------------------------------------------------------------------------
class Pooled:
    """One estimator's figures over many files, added one file at a time in constant memory."""

    def __init__(self):
        self.files = 0
        self.counts = dict.fromkeys(COUNTS, 0)
        self.weighted = dict.fromkeys(DENOMINATOR, 0.0)      # sum of value x denominator
        self.file_sums = dict.fromkeys(FRAME_METRICS, 0.0)   # sum of per-file values (non-empty denominators)
        self.file_counts = dict.fromkeys(FRAME_METRICS, 0)
        self.histogram = np.zeros(int(round(HISTOGRAM_TOP_CENTS / HISTOGRAM_STEP_CENTS)) + 1, dtype=np.int64)

    def add(self, scores: dict, aligned: Aligned) -> None:
        self.files += 1
        for key in COUNTS:
            self.counts[key] += int(scores[key])
        for key, denominator in DENOMINATOR.items():
            if scores[denominator] > 0:
                if key != "median_abs_cents":
                    self.weighted[key] += scores[key] * scores[denominator]
                self.file_sums[key] += scores[key]
                self.file_counts[key] += 1
        bins = np.minimum(np.abs(aligned.errors()) / HISTOGRAM_STEP_CENTS, len(self.histogram) - 1).astype(np.int64)
        self.histogram += np.bincount(bins, minlength=len(self.histogram))

    def _median(self) -> float:
        total = int(self.histogram.sum())
        if not total:
            return float("nan")
        index = int(np.searchsorted(np.cumsum(self.histogram), (total + 1) / 2))
        return (index + 0.5) * HISTOGRAM_STEP_CENTS

    def frames_row(self) -> dict:
        """Every frame counts once (see the module docstring)."""
        row = {key: (self.weighted[key] / self.counts[DENOMINATOR[key]] if self.counts[DENOMINATOR[key]]
                     else float("nan")) for key in FRAME_METRICS if key != "median_abs_cents"}
        row["median_abs_cents"] = self._median()
        return {key: row[key] for key in FRAME_METRICS} | {"files": self.files, **self.counts}

    def files_row(self) -> dict:
        """Every file counts once: the mean of each file's figure."""
        row = {key: self.file_sums[key] / self.file_counts[key] if self.file_counts[key] else float("nan")
               for key in FRAME_METRICS}
        return row | {"files": self.files, **self.counts}
