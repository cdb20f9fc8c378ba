"""Evaluation: how far pitch estimates are from the labels, as numbers and per-group tables.

Pure functions on arrays come first (`summary`, `by_group`); `evaluate_folder` and
`evaluate_folder_cli` apply them to a folder of labeled notes (`pipeline evaluate`).

Conventions (mir_eval.melody's, with every clip a voiced frame):
- an estimate that is NaN, infinite, zero or negative is a miss ("unvoiced"): it counts as
  wrong in every accuracy and rate, and is left out of the error averages, whose coverage
  `missing` reports;
- a pitch is correct within T cents when |error| < T (strict, as mir_eval);
- an octave error is an error within 50 cents of a nonzero multiple of 1200 cents.
"""

from __future__ import annotations

import re
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import constants as C
from pipeline.errors import PipelineError
from pipeline.rendering import hz_to_midi, midi_to_hz, note_name

# The summary's keys, in the order tables show them, with a short label each.
METRICS = {
    "count": "clips",
    "missing": "no estimate",
    "mae_hz": "MAE (Hz)",
    "mean_abs_cents": "mean abs error (cents)",
    "median_abs_cents": "median abs error (cents)",
    "rpa50": f"RPA {C.CENT_TOLERANCE:g} cents",
    "rpa10": f"RPA {C.FINE_CENT_TOLERANCE:g} cents",
    "rca": f"RCA {C.CENT_TOLERANCE:g} cents",
    "octave_error_rate": "octave errors",
}
GROUP_COLUMNS = ["count", "missing", "mean_abs_hz", "median_abs_hz", "mean_abs_cents", "median_abs_cents",
                 "within_50"]


# --- per-clip errors -----------------------------------------------------------------------
def voiced(est_hz) -> np.ndarray:
    """True where an estimate is a usable frequency (finite and positive)."""
    est = np.asarray(est_hz, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return np.isfinite(est) & (est > 0)


def cents_error(ref_hz, est_hz) -> np.ndarray:
    """Signed error 1200·log2(est/ref) per clip; NaN where the estimate is a miss."""
    ref = np.asarray(ref_hz, dtype=np.float64)
    est = np.asarray(est_hz, dtype=np.float64)
    ok = voiced(est)
    out = np.full(ref.shape, np.nan)
    out[ok] = 1200.0 * np.log2(est[ok] / ref[ok])
    return out


def _check_labels(ref: np.ndarray, est: np.ndarray) -> None:
    if ref.shape != est.shape or ref.ndim != 1:
        raise PipelineError(f"labels {ref.shape} and estimates {est.shape} differ in shape; "
                            "pass one estimate per labeled clip")
    if not np.all(np.isfinite(ref) & (ref > 0)):
        raise PipelineError("some reference frequencies are missing, zero or negative; "
                            "every labeled clip needs a frequency in Hz")


# --- the summary ---------------------------------------------------------------------------
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


def octave_errors(cents: np.ndarray) -> np.ndarray:
    """True where an error lies within 50 cents of a nonzero multiple of 1200 cents."""
    with np.errstate(invalid="ignore"):
        octaves = np.round(cents / 1200.0)
        return (octaves != 0) & (np.abs(cents - 1200.0 * octaves) < C.CENT_TOLERANCE)


def summary(ref_hz, est_hz) -> dict:
    """The headline figures for one estimator: see METRICS and the module's conventions."""
    ref = np.asarray(ref_hz, dtype=np.float64)
    est = np.asarray(est_hz, dtype=np.float64)
    _check_labels(ref, est)
    ok = voiced(est)
    cents = cents_error(ref, est)
    abs_cents, abs_hz = np.abs(cents[ok]), np.abs(est[ok] - ref[ok])
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
            rpa10=_mir_eval_accuracy(ref, est, C.FINE_CENT_TOLERANCE, chroma=False),
            rca=_mir_eval_accuracy(ref, est, C.CENT_TOLERANCE, chroma=True),
            octave_error_rate=float(octave_errors(cents).mean()),
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
    cents = cents_error(ref, est)
    work = frame[keys].copy()
    work["abs_hz"] = np.where(voiced(est), np.abs(est - ref), np.nan)
    work["abs_cents"] = np.abs(cents)
    work["missing"] = ~voiced(est)
    work["within_50"] = np.abs(cents) < C.CENT_TOLERANCE   # NaN compares False: a miss is outside
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


# --- labels for a folder of notes ----------------------------------------------------------
_PITCH_CLASS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
_ACCIDENTAL = {"": 0, "#": 1, "s": 1, "♯": 1, "b": -1, "♭": -1}
_NOTE = r"([A-Ga-g])(#|s|b|♯|♭)?(-?\d)"
NOTE_RE = re.compile(rf"^{_NOTE}$")
# the dataset's own clip names: <instrument>_<note>_<midi>_<frequency>_<segment>_v<velocity>
DATASET_NAME_RE = re.compile(r"(?:^|_)[A-G]s?-?\d_(\d{1,3})_(\d+(?:\.\d+)?)_(?:" + "|".join(C.SEGMENTS) + ")(?:_|$)")
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg")


def note_to_midi(text: str) -> int | None:
    """'A4' -> 69, 'Cs4'/'C#4' -> 61, 'Db4' -> 61, 'Cb4' -> 59; None if `text` is not a note name."""
    match = NOTE_RE.match(text.strip())
    if not match:
        return None
    letter, accidental, octave = match.groups()
    midi = (int(octave) + 1) * 12 + _PITCH_CLASS[letter.upper()] + _ACCIDENTAL[accidental or ""]
    return midi if C.MIDI_MIN <= midi <= C.MIDI_MAX else None


def label_from_name(path: str | Path) -> float | None:
    """The frequency a file's name gives: the dataset's frequency field, or a note name.

    Accepts `A4.wav`, `Cs4.wav`, `C#4.wav`, `Db4.wav`, a note name as one `_`/`-`/space-separated
    token (`piano_A4.wav`), and the dataset's `violin_A4_69_440.00_sustain_v100.wav`, whose
    frequency field carries the detune that the note name leaves out.
    """
    stem = Path(path).stem
    match = DATASET_NAME_RE.search(stem)
    if match:
        return float(match.group(2))
    midi = note_to_midi(stem)
    if midi is None:
        found = {m for m in map(note_to_midi, re.split(r"[_\-\s.]+", stem)) if m is not None}
        midi = found.pop() if len(found) == 1 else None   # two different notes: ambiguous
    return None if midi is None else float(midi_to_hz(midi))


def _label_from_row(row: pd.Series) -> float | None:
    if "frequency" in row and pd.notna(row["frequency"]):
        try:
            return float(row["frequency"])
        except ValueError:
            return None
    if "note" in row and isinstance(row["note"], str):
        midi = note_to_midi(row["note"])
        return None if midi is None else float(midi_to_hz(midi))
    if "midi" in row and pd.notna(row["midi"]):
        return float(midi_to_hz(float(row["midi"])))
    return None


def labels_from_csv(csv_path: str | Path, audio_dir: str | Path) -> pd.DataFrame:
    """Rows of a labels CSV (path + frequency, note or midi), paths resolved against AUDIO_DIR.

    Other columns (instrument, segment, ...) are kept, so a dataset's manifest.csv works as-is.
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise PipelineError(f"labels file {csv_path} not found; pass a CSV with path,frequency or path,note columns")
    try:
        frame = pd.read_csv(csv_path, keep_default_na=False, na_values=[""])
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise PipelineError(f"labels file {csv_path} is not a readable CSV ({exc}); fix or re-export it") from None
    if "path" not in frame.columns or not {"frequency", "note", "midi"} & set(frame.columns):
        raise PipelineError(f"labels file {csv_path} needs a path column and a frequency, note or midi column; "
                            f"it has {', '.join(map(str, frame.columns))}")
    frame = frame.copy()
    frame["file"] = [str(p if Path(p).is_absolute() else Path(audio_dir) / p) for p in frame["path"]]
    frame["label_hz"] = [_label_from_row(row) for _, row in frame.iterrows()]
    return frame


def labels_from_names(audio_dir: str | Path) -> pd.DataFrame:
    """Every audio file under AUDIO_DIR, labeled by its name (label_hz NaN when the name has none)."""
    audio_dir = Path(audio_dir)
    if not audio_dir.is_dir():
        raise PipelineError(f"audio folder {audio_dir} not found; pass a folder of labeled notes")
    files = sorted(p for p in audio_dir.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
    if not files:
        raise PipelineError(f"no audio files ({', '.join(AUDIO_SUFFIXES)}) under {audio_dir}; "
                            "point evaluate at a folder of notes such as A4.wav")
    return pd.DataFrame({"path": [str(p.relative_to(audio_dir)) for p in files],
                         "file": [str(p) for p in files],
                         "label_hz": [label_from_name(p) for p in files]})


# --- evaluating a folder ---------------------------------------------------------------------
Estimator = Callable[[Sequence[str]], object]


def _normalise_estimates(result, n: int) -> tuple[np.ndarray, list[str | None]]:
    """An estimator returns hz (N,) with NaN for a failed file, or (hz, errors) with a message per failure."""
    errors: list[str | None] = [None] * n
    if isinstance(result, tuple) and len(result) == 2 and not np.isscalar(result[0]):
        result, errors = result
        errors = [None if e is None or (isinstance(e, float) and np.isnan(e)) else str(e) for e in errors]
    hz = np.asarray(result, dtype=np.float64).reshape(-1)
    if len(hz) != n or len(errors) != n:
        raise PipelineError(f"the pitch estimator returned {len(hz)} values for {n} files; "
                            "this is a bug in pipeline.prediction, please report it")
    return hz, errors


def model_estimator(model_path: str | Path) -> Estimator:
    """The trained model as an estimator: pipeline.prediction.summarize_files(paths, model_path)."""
    model_path = Path(model_path)
    if not model_path.is_file():
        raise PipelineError(f"model {model_path} not found; run make train or pass --model PATH")

    def estimate(paths: Sequence[str]):
        from pipeline import prediction

        return prediction.summarize_files(list(paths), model_path, with_errors=True)

    return estimate


def evaluate_folder(labels: pd.DataFrame, estimate: Estimator) -> tuple[pd.DataFrame, list[str]]:
    """Estimate every labeled file; return (predictions, one message per failure).

    A labeled file that exists stays in the predictions even when the estimator failed on it,
    as a miss (NaN), so a failure never shrinks the denominator of the metrics.
    """
    problems: list[str] = []
    frame = labels.copy()
    unlabeled = frame["label_hz"].isna()
    for path in frame.loc[unlabeled, "path"]:
        problems.append(f"{path}: no pitch label; name the file like A4.wav, Cs4.wav or Db4.wav, "
                        "or list it in a --labels CSV with a frequency or note")
    absent = ~unlabeled & ~frame["file"].map(lambda f: Path(f).is_file())
    for path in frame.loc[absent, "path"]:
        problems.append(f"{path}: file not found; fix the path in the labels CSV")
    frame = frame[~unlabeled & ~absent].reset_index(drop=True)
    if len(frame):
        hz, errors = _normalise_estimates(estimate(frame["file"].tolist()), len(frame))
        for path, file, error, value in zip(frame["path"], frame["file"], errors, hz):
            if error is not None:
                problems.append(f"{path}: {error.removeprefix(f'{file}: ')}")   # name the file once
            elif not np.isfinite(value):
                problems.append(f"{path}: no pitch found (silent, empty or unreadable?)")
        frame["estimate"] = np.where([e is None for e in errors], hz, np.nan)
    return _with_label_columns(frame), problems


def _with_label_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """The report's label columns: frequency (the label), and its MIDI note and name where not given."""
    frame = frame.copy()
    frame["frequency"] = frame.pop("label_hz").astype(np.float64)
    nearest = np.round(hz_to_midi(frame["frequency"].to_numpy())).astype(int)
    if "midi" in frame.columns:   # a manifest's nominal note; a detuned clip may round to its neighbour
        nearest = np.where(frame["midi"].notna(), pd.to_numeric(frame["midi"], errors="coerce"), nearest)
    frame["midi"] = np.asarray(nearest, dtype=int)
    frame["note"] = [note_name(int(m)) for m in frame["midi"]]
    return frame


def evaluate_folder_cli(args, estimate: Estimator | None = None) -> int:
    """`pipeline evaluate AUDIO_DIR [--model M] [--labels CSV] [--output DIR]`: 0 if every file worked."""
    from pipeline.prediction import default_model_path
    from pipeline.reporting import print_summary, write_folder_evaluation

    audio_dir = Path(args.audio_dir)
    labels = labels_from_csv(args.labels, audio_dir) if args.labels else labels_from_names(audio_dir)
    model_path = Path(args.model) if args.model else default_model_path()
    estimate = estimate or model_estimator(model_path)
    frame, problems = evaluate_folder(labels, estimate)
    for message in problems:
        print(f"error: {message}", file=sys.stderr)
    if len(frame):
        output = Path(args.output) if args.output else audio_dir / "evaluation"
        summaries = write_folder_evaluation(frame, output, {"audio_dir": str(audio_dir), "model": str(model_path)})
        print_summary(summaries)
        print(f"tables in {output}")
    else:
        print("error: no file could be evaluated", file=sys.stderr)
    if problems:
        print(f"{len(problems)} of {len(labels)} files failed (those with a label count as misses)",
              file=sys.stderr)
    return 1 if problems or not len(frame) else 0
