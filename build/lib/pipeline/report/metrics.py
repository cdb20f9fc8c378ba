"""Evaluation metrics: how far pitch estimates are from the labels, as numbers and per-group tables.

Pure functions on arrays and tables: `summary` (the headline figures of one estimator) and
`by_group` (the same per pitch, instrument, segment...). The report (pipeline.report.reporting) and
`pipeline evaluate` (pipeline.report.folder_evaluation) apply them.

Conventions (mir_eval.melody's, with every clip a voiced frame; see pipeline.core.pitch):
- an estimate that is NaN, infinite, zero or negative is a miss ("unvoiced"): it counts as
  wrong in every accuracy and rate, and is left out of the error averages, whose coverage
  `missing` reports;
- a pitch is correct within T cents when |error| < T (strict, as mir_eval);
- an octave error is an error within 50 cents of a nonzero multiple of 1200 cents.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from pipeline.core import constants as C
from pipeline.core.errors import PipelineError
from pipeline.core.pitch import cents, octave_errors, voiced, within

FINE_CENT_TOLERANCE = 10.0      # the stricter raw pitch accuracy (CENT_TOLERANCE is the usual one)
# The summary's keys, in the order tables show them, with a short label each.
METRICS = {
    "count": "clips",
    "missing": "no estimate",
    "mae_hz": "MAE (Hz)",
    "mean_abs_cents": "mean abs error (cents)",
    "median_abs_cents": "median abs error (cents)",
    "rpa50": f"RPA {C.CENT_TOLERANCE:g} cents",
    "rpa10": f"RPA {FINE_CENT_TOLERANCE:g} cents",
    "rca": f"RCA {C.CENT_TOLERANCE:g} cents",
    "octave_error_rate": "octave errors",
}
GROUP_COLUMNS = ["count", "missing", "mean_abs_hz", "median_abs_hz", "mean_abs_cents", "median_abs_cents",
                 "within_50"]


# --- the summary ---------------------------------------------------------------------------
def _check_labels(ref: np.ndarray, est: np.ndarray) -> None:
    if ref.shape != est.shape or ref.ndim != 1:
        raise PipelineError(f"labels {ref.shape} and estimates {est.shape} differ in shape; "
                            "pass one estimate per labeled clip")
    if not np.all(np.isfinite(ref) & (ref > 0)):
        raise PipelineError("some reference frequencies are missing, zero or negative; "
                            "every labeled clip needs a frequency in Hz")


def _mir_eval_accuracy(ref: np.ndarray, est: np.ndarray, tolerance: float, chroma: bool) -> float:
    """mir_eval's raw pitch/chroma accuracy with every clip voiced in the reference.

    mir_eval ignores the estimate's voicing in these measures and counts a frame only when
    its estimated frequency is nonzero, so a miss enters as 0 Hz to be counted wrong.
    """
    from mir_eval import melody

    est = np.where(voiced(est), est, 0.0)
    ones = np.ones(len(ref))
    ref_cent, est_cent = melody.hz2cents(ref), melody.hz2cents(est)
    measure = melody.raw_chroma_accuracy if chroma else melody.raw_pitch_accuracy
    with warnings.catch_warnings():   # "no voiced frames" is a legitimate all-miss result here
        warnings.simplefilter("ignore", UserWarning)
        return float(measure(ones, ref_cent, voiced(est).astype(float), est_cent, cent_tolerance=tolerance))


def summary(ref_hz, est_hz) -> dict:
    """The headline figures for one estimator: see METRICS and the module's conventions."""
    ref = np.asarray(ref_hz, dtype=np.float64)
    est = np.asarray(est_hz, dtype=np.float64)
    _check_labels(ref, est)
    ok = voiced(est)
    error = cents(ref, est)
    abs_cents, abs_hz = np.abs(error[ok]), np.abs(est[ok] - ref[ok])
    nan = float("nan")
    result = {
        "count": len(ref),
        "missing": int((~ok).sum()),
        "mae_hz": float(abs_hz.mean()) if ok.any() else nan,
        "mean_abs_cents": float(abs_cents.mean()) if ok.any() else nan,
        "median_abs_cents": float(np.median(abs_cents)) if ok.any() else nan,
        "rpa50": nan, "rpa10": nan, "rca": nan, "octave_error_rate": nan,
    }
    if len(ref):
        result.update(
            rpa50=_mir_eval_accuracy(ref, est, C.CENT_TOLERANCE, chroma=False),
            rpa10=_mir_eval_accuracy(ref, est, FINE_CENT_TOLERANCE, chroma=False),
            rca=_mir_eval_accuracy(ref, est, C.CENT_TOLERANCE, chroma=True),
            octave_error_rate=float(octave_errors(error).mean()),
        )
    return result


# --- per-group tables --------------------------------------------------------------------
def by_group(frame: pd.DataFrame, key: str | list[str], label: str = "frequency",
             estimate: str = "estimate") -> pd.DataFrame:
    """One row per value of `key`: count, misses, mean/median |error| in Hz and cents, share within 50 cents.

    Misses are left out of the error averages but count as outside 50 cents, as in summary().
    """
    keys = [key] if isinstance(key, str) else list(key)
    missing = [c for c in (*keys, label, estimate) if c not in frame.columns]
    if missing:
        raise PipelineError(f"cannot group the predictions: column(s) {', '.join(missing)} missing; "
                            "pass a frame with the label, the estimate and the grouping columns")
    est = frame[estimate].to_numpy(dtype=np.float64)
    ref = frame[label].to_numpy(dtype=np.float64)
    error = cents(ref, est)
    work = frame[keys].copy()
    work["abs_hz"] = np.where(voiced(est), np.abs(est - ref), np.nan)
    work["abs_cents"] = np.abs(error)
    work["missing"] = ~voiced(est)
    work["within_50"] = within(error, C.CENT_TOLERANCE)   # a miss is outside
    grouped = work.groupby(keys, sort=True, dropna=False)
    table = pd.DataFrame({
        "count": grouped.size(),
        "missing": grouped["missing"].sum().astype(int),
        "mean_abs_hz": grouped["abs_hz"].mean(),
        "median_abs_hz": grouped["abs_hz"].median(),
        "mean_abs_cents": grouped["abs_cents"].mean(),
        "median_abs_cents": grouped["abs_cents"].median(),
        "within_50": grouped["within_50"].mean(),
    })
    return table.reset_index()
