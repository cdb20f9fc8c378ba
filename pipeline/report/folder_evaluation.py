"""Evaluate a folder of labeled notes (`pipeline evaluate`): labels, estimates, the report's tables.

Labels come from a CSV (`path,frequency`, `path,note` or `path,midi`; a dataset's
manifest.csv works as-is) or from the file names (`A4.wav`, `Cs4.wav`, `C#4.wav`, `Db4.wav`,
or the dataset's own clip names, whose frequency field carries the detune). The model's
estimates (one f0 per file, pipeline.inference.prediction.summarize_files) are scored with the
report's metrics and written as the report's tables.

`evaluate_folder(audio_dir, model_path, labels_csv, output_dir)` is the whole command with
plain values; the command line only prints what it returns.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.core.errors import PipelineError
from pipeline.core.pitch import hz_to_midi, midi_to_hz, note_name, note_to_midi
from pipeline.data.clips import CLIP_NAME_RE
from pipeline.report.baselines import BaselineResult, baseline_names, run_baseline_on_files
from pipeline.report.labels import read_labels, valid_hz
from pipeline.report.pitch_plot import PLOT_TITLE
from pipeline.report.reporting import Estimator, predictions_table, write_report

log = logging.getLogger(__name__)

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg")
EVALUATION_DIR = "evaluation"   # the tables' folder inside AUDIO_DIR when no output folder is given
# an estimate function: the files' paths -> Hz per file (NaN where it failed), or (Hz, one message or None per file)
Estimate = Callable[[Sequence[str]], object]


# --- labels ------------------------------------------------------------------------------------
def label_from_name(path: str | Path) -> float | None:
    """The frequency a file's name gives: the dataset's frequency field, or a note name.

    Accepts `A4.wav`, `Cs4.wav`, `C#4.wav`, `Db4.wav`, a note name as one `_`/`-`/space-separated
    token (`piano_A4.wav`), and the dataset's `violin_A4_69_440.00_sustain_v100.wav`, whose
    frequency field carries the detune that the note name leaves out.
    """
    stem = Path(path).stem
    match = CLIP_NAME_RE.search(stem)
    if match:
        return valid_hz(match.group(2))   # None for a frequency outside the MIDI range: no label
    midi = note_to_midi(stem)
    if midi is None:
        found = {m for m in map(note_to_midi, re.split(r"[_\-\s.]+", stem)) if m is not None}
        midi = found.pop() if len(found) == 1 else None   # two different notes: ambiguous
    return None if midi is None else float(midi_to_hz(midi))


def audio_files(audio_dir: str | Path) -> list[Path]:
    """Every audio file under AUDIO_DIR, sorted; PipelineError when the folder is missing or has none."""
    audio_dir = Path(audio_dir)
    if not audio_dir.is_dir():
        raise PipelineError(f"audio folder {audio_dir} not found; pass a folder of labeled audio")
    files = sorted(p for p in audio_dir.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
    if not files:
        raise PipelineError(f"no audio files ({', '.join(AUDIO_SUFFIXES)}) under {audio_dir}; "
                            "point evaluate at a folder of notes such as A4.wav, or of recordings with truth CSVs")
    return files


def labels_from_names(audio_dir: str | Path) -> pd.DataFrame:
    """Every audio file under AUDIO_DIR, labeled by its name (label_hz NaN when the name has none)."""
    audio_dir = Path(audio_dir)
    files = audio_files(audio_dir)
    return pd.DataFrame({"path": [str(p.relative_to(audio_dir)) for p in files],
                         "file": [str(p) for p in files],
                         "label_hz": [label_from_name(p) for p in files]})


# --- estimates ---------------------------------------------------------------------------------
def _normalise_estimates(result, n: int) -> tuple[np.ndarray, list[str | None]]:
    """An estimator returns hz (N,) with NaN for a failed file, or (hz, errors) with a message per failure."""
    errors: list[str | None] = [None] * n
    if isinstance(result, tuple) and len(result) == 2 and not np.isscalar(result[0]):
        result, errors = result
        errors = [None if e is None or (isinstance(e, float) and np.isnan(e)) else str(e) for e in errors]
    hz = np.asarray(result, dtype=np.float64).reshape(-1)
    if len(hz) != n or len(errors) != n:
        raise PipelineError(f"the pitch estimator returned {len(hz)} values for {n} files; "
                            "this is a bug in pipeline.inference.prediction, please report it")
    return hz, errors


def require_model(model_path: str | Path) -> Path:
    """The model file's path; PipelineError when it is not there."""
    model_path = Path(model_path)
    if not model_path.is_file():
        raise PipelineError(f"model {model_path} not found; run make train or give the path of a trained model")
    return model_path


def model_estimator(model_path: str | Path, refine: bool = True) -> Estimate:
    """The trained model as an estimator: pipeline.inference.prediction.summarize_files(paths, model_path)."""
    model_path = require_model(model_path)

    def estimate(paths: Sequence[str]):
        from pipeline.inference import prediction
        return prediction.summarize_files(list(paths), model_path, with_errors=True, refine=refine)

    return estimate


def estimate_labels(labels: pd.DataFrame, estimate: Estimate) -> tuple[pd.DataFrame, list[str]]:
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
        # a labels file's rows are named by their line too (pipeline.report.labels)
        names = [f"line {line}: {path}" for line, path in zip(frame["line"], frame["path"])] if "line" in frame \
            else frame["path"]
        for path, file, error, value in zip(names, frame["file"], errors, hz):
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


# --- the whole command -------------------------------------------------------------------------
@dataclass(frozen=True)
class FolderEvaluation:
    """What `evaluate_folder` found: a predictions row per labeled file that exists (a failed
    estimate is a miss), one message per problem, and the summary table it wrote (None when
    no file could be evaluated)."""
    predictions: pd.DataFrame
    problems: tuple[str, ...]
    files: int                        # files listed (by the labels CSV) or found
    summary: pd.DataFrame | None
    output_dir: Path | None

    @property
    def ok(self) -> bool:
        return not self.problems and self.summary is not None


def evaluate_folder(audio_dir: str | Path, model_path: str | Path | None = None, labels_csv: str | Path | None = None,
                    output_dir: str | Path | None = None, estimate: Estimate | None = None,
                    refine: bool = True, baselines: Sequence[str] | str = ()) -> FolderEvaluation:
    """Label every note in `audio_dir` (from `labels_csv`, else from the file names), estimate its
    pitch with the model at `model_path` (default: the shipped model; its estimates made fine
    unless `refine` is False) or with `estimate`, and with each of `baselines` (the median of its
    voiced frames over the whole file), and write the report's tables to `output_dir` (default:
    AUDIO_DIR/evaluation). With baselines, every estimator's speed is measured (files/s)."""
    from pipeline.inference.predictor import default_model_path

    audio_dir = Path(audio_dir)
    names = baseline_names(baselines)
    if labels_csv:  # every row checked: a bad row is named by its line (pipeline.report.labels)
        read = read_labels(labels_csv, audio_dir)
        labels, problems, listed = read.frame, list(read.problems), read.rows
    else:
        labels, problems = labels_from_names(audio_dir), []
        listed = len(labels)
    model_path = Path(model_path) if model_path else default_model_path()
    estimate = estimate or model_estimator(model_path, refine)
    started = time.perf_counter()
    frame, more = estimate_labels(labels, estimate)
    seconds = time.perf_counter() - started
    problems += more
    if not len(frame):
        return FolderEvaluation(frame, tuple(problems), listed, None, None)
    results = [run_baseline_on_files(name, frame["file"].tolist()) for name in names]
    relative = dict(zip(frame["file"], frame["path"]))
    for result in results:
        if result.skipped:
            log.warning(f"baseline {result.name} skipped: {result.skipped}")
        problems += [f"{relative[file]}: {message}" for file, message in result.info.get("failed", [])]
    speed = len(frame) / seconds if names and seconds > 0 else math.nan
    output = Path(output_dir) if output_dir else audio_dir / EVALUATION_DIR
    table = write_folder_evaluation(frame, output, {"audio_dir": str(audio_dir), "model": str(model_path)},
                                    results, speed)
    return FolderEvaluation(frame, tuple(problems), listed, table, output)


def write_folder_evaluation(frame: pd.DataFrame, out_dir: str | Path, context: dict,
                            baselines: Sequence[BaselineResult] = (), model_speed: float = math.nan) -> pd.DataFrame:
    """The report's files for `pipeline evaluate`: the model's estimates in frame['estimate'], and
    each baseline's beside them."""
    estimates = {"model": frame["estimate"].to_numpy()}
    estimators = [Estimator("model", "model", "model", model_speed, details={"path": context.get("model")})]
    for result in baselines:
        estimators.append(Estimator(result.name, result.info["title"], "baseline", result.clips_per_second,
                                    skipped=result.skipped, details=result.info))
        if result.hz is not None:
            estimates[result.name] = result.hz
    audio_dir = context.get("audio_dir", "a folder")
    intro = [f"Model `{context.get('model')}` on {len(frame)} labeled files."]
    if baselines:
        intro.append("Baselines: each tracker over the whole file, the median of its voiced frames. Speeds are "
                     "files per second, from reading each file.")
    page = {"title": f"Evaluation of {audio_dir}", "intro": intro,
            "plot_title": f"{PLOT_TITLE} ({Path(audio_dir).name or audio_dir})",
            "reproduce": [f"`pipeline evaluate {audio_dir} --model {context.get('model')}"
                          + (f" --baselines {','.join(r.name for r in baselines)}`" if baselines else "`")],
            "metrics": {"context": context}}
    return write_report(predictions_table(frame, estimates), estimators, out_dir, page)
