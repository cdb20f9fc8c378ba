"""Evaluate contours (`pipeline evaluate` on per-frame truth): the model and the peers, frame by frame.

For every audio file under AUDIO_DIR with a truth CSV (pipeline.report.truth_contours), one
file at a time: the file read once (mono, 16 kHz); the model's frames
(pipeline.inference.prediction.predict, 10 ms hop; a frame is voiced where its confidence is at
least the threshold); each baseline's frames (pipeline.report.baselines.contour: the whole file,
10 ms hop where the tracker has one, voiced as the tracker decides); each scored against the
truth with mir_eval on a common 10 ms grid (pipeline.report.frame_metrics) and timed, from the
audio in memory to the frames, the file's reading and resampling added to every tracker.

A file whose audio or truth cannot be used is named in one line and left out; a baseline that
fails on a file is named too, and scored there as having answered nothing, so every estimator
is judged on the same frames.

Outputs (OUTPUT, default AUDIO_DIR/evaluation): per_file.csv (a row per file and estimator,
written as the files go), overall.csv (per estimator, frames pooled and the mean over files),
evaluation.json (all of it: settings, versions, problems), accuracy.png (the measures side by
side) and worst_files.png (truth against every estimate on the model's worst files).
Memory holds one file's audio and frames, a row of numbers per file, and the few worst
files' contours for the plot.
"""

from __future__ import annotations

import csv
import heapq
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.core import constants as C
from pipeline.core.artifacts import AtomicFile, atomic_path, sha256_file, tool_versions, write_json
from pipeline.core.errors import PipelineError
from pipeline.core.measure import machine
from pipeline.report import baselines as B
from pipeline.report.contour_plots import plot_accuracy, plot_worst_files
from pipeline.report.folder_evaluation import EVALUATION_DIR, audio_files, require_model
from pipeline.report.frame_metrics import (
    COUNTS,
    EVALUATION_HOP_SECONDS,
    FINE_TOLERANCE,
    FRAME_METRICS,
    RATES,
    Contour,
    Pooled,
    cents_to_hz,
    score_contours,
)
from pipeline.report.reporting import json_safe
from pipeline.report.truth_contours import read_truth, truth_path

log = logging.getLogger(__name__)

MODES = ("auto", "notes", "contours")
MODEL_VOICING = 0.5              # the model's frames at or above this confidence are voiced (as CREPE's are read)
WORST_FILES = 4                  # drawn in worst_files.png
WARM_UP_SAMPLES = C.SAMPLE_RATE // 2   # the untimed first run of each tracker
TRUTH_OVERRUN_SECONDS = 1.0      # a truth that runs this far past its audio's end is named: the wrong file?
PER_FILE_COLUMNS = ["path", "estimator", "duration_s", "seconds", *COUNTS, *FRAME_METRICS]


def choose_mode(audio_dir: str | Path, mode: str = "auto", labels_csv=None, truth_dir=None) -> str:
    """`notes` or `contours`: as asked; else notes with a labels CSV, contours with a truth folder,
    and otherwise contours when some audio file has a truth CSV beside it."""
    if mode not in MODES:
        raise PipelineError(f"unknown evaluation mode {mode!r}; choose from {', '.join(MODES)}")
    if mode != "auto":
        return mode
    if labels_csv or truth_dir:
        return "notes" if labels_csv else "contours"
    has_truth = any(truth_path(a, audio_dir, truth_dir) for a in audio_files(audio_dir))
    return "contours" if has_truth else "notes"


@dataclass
class Tracker:
    """One estimator of a contour evaluation and its running totals."""
    name: str
    title: str
    kind: str                                   # "model" or "baseline"
    track: Callable[[np.ndarray], Contour]      # mono 16 kHz audio -> frames
    info: dict = field(default_factory=dict)
    pooled: Pooled = field(default_factory=Pooled)
    seconds: float = 0.0
    audio_seconds: float = 0.0

    def speed(self) -> dict:
        files = self.pooled.files
        return {"seconds_per_file": self.seconds / files if files else math.nan,
                "realtime_factor": self.audio_seconds / self.seconds if self.seconds > 0 else math.nan}


def model_tracker(model=None, threshold: float = MODEL_VOICING) -> Callable[[np.ndarray], Contour]:
    """The model's frames through pipeline.inference.prediction.predict (10 ms hop); voiced at
    confidence >= threshold. `model`: None (the shipped one), a path, or a loaded predictor."""
    from pipeline.inference.prediction import predict

    def track(audio: np.ndarray) -> Contour:
        times, frequency, confidence = predict(audio, C.SAMPLE_RATE, model)
        return Contour(times, frequency, np.asarray(confidence) >= threshold)

    return track


@dataclass(frozen=True)
class ContourEvaluation:
    """What `evaluate_contours` found: the summary (frames pooled, a row per estimator that ran;
    None when no file could be scored), one message per problem, the baselines skipped and why."""
    summary: pd.DataFrame | None
    problems: tuple[str, ...]
    files: int                         # audio files found
    scored: int                        # files scored
    output_dir: Path | None
    skipped: dict[str, str]

    @property
    def ok(self) -> bool:
        return not self.problems and self.summary is not None


class WorstFiles:
    """The `count` files with the lowest model RPA, and their contours on the 10 ms grid."""

    def __init__(self, count: int = WORST_FILES):
        self.count, self.heap, self.order = count, [], 0

    def offer(self, rpa: float, item: dict) -> None:
        if not math.isfinite(rpa) or self.count < 1:
            return
        self.order += 1
        heapq.heappush(self.heap, (-rpa, -self.order, item))   # the best of the kept ones on top
        if len(self.heap) > self.count:
            heapq.heappop(self.heap)

    def items(self) -> list[dict]:
        return [item for _, _, item in sorted(self.heap, reverse=True)]   # worst first


def _hz(cent: np.ndarray, voicing: np.ndarray) -> np.ndarray:
    return np.where(voicing > 0, cents_to_hz(cent), np.nan).astype(np.float32)


def _score_file(rel: str, audio_path: Path, truth_file: Path, trackers: list[Tracker], writer,
                worst: WorstFiles, problems: list[str]) -> dict:
    """Score one file with every tracker; PipelineError when the file is left out."""
    truth = read_truth(truth_file)
    started = time.perf_counter()
    try:
        audio = B.read_mono(audio_path)
    except PipelineError as exc:
        raise PipelineError(f"{rel}: {str(exc).removeprefix(f'{audio_path}: ')}") from None
    reading = time.perf_counter() - started
    duration = len(audio) / C.SAMPLE_RATE
    if truth.time[-1] > duration + TRUTH_OVERRUN_SECONDS:
        problems.append(f"{rel}: its truth {truth_file.name} ends at {truth.time[-1]:.2f} s, after the audio "
                        f"({duration:.2f} s); check that it belongs to this file")
    answers = []
    for tracker in trackers:
        started = time.perf_counter()
        try:
            estimate = tracker.track(audio)
        except PipelineError as exc:
            if tracker.kind == "model":
                raise PipelineError(f"{rel}: {exc}") from None
            problems.append(f"{rel}: {exc}; scored as no answer")
            estimate = Contour(truth.time, np.zeros(len(truth)), np.zeros(len(truth), dtype=bool))
        answers.append((tracker, estimate, reading + time.perf_counter() - started))
    rows, plot = {}, {"path": rel}
    for tracker, estimate, seconds in answers:
        scores, aligned = score_contours(truth, estimate)
        tracker.pooled.add(scores, aligned)
        tracker.seconds += seconds
        tracker.audio_seconds += duration
        rows[tracker.name] = scores
        writer.writerow([rel, tracker.name, f"{duration:.3f}", f"{seconds:.4f}",
                         *[scores[k] for k in COUNTS], *[f"{scores[k]:.6g}" for k in FRAME_METRICS]])
        plot.setdefault("truth", _hz(aligned.ref_cent, aligned.ref_voicing))
        plot[tracker.name] = _hz(aligned.est_cent, aligned.est_voicing)
    worst.offer(rows[trackers[0].name]["rpa50"], plot)
    return rows


def warm_up(trackers: list[Tracker], skipped: dict[str, str]) -> list[Tracker]:
    """Each tracker run once, untimed, on half a second of a tone (a model's loading, pYIN's
    compilation, SwiftF0's session), so the timings are per file; a baseline that fails here
    joins `skipped`."""
    t = np.arange(WARM_UP_SAMPLES) / C.SAMPLE_RATE
    tone = (0.3 * np.sin(2 * np.pi * 220.0 * t)).astype(np.float32)
    ready = []
    for tracker in trackers:
        try:
            tracker.track(tone)
        except PipelineError as exc:
            if tracker.kind == "model":
                raise
            skipped[tracker.name] = str(exc)
            log.warning(f"baseline {tracker.name} skipped: {exc}")
            continue
        ready.append(tracker)
    return ready


def _trackers(model, voicing_threshold: float, names: Sequence[str], estimate) -> tuple[list[Tracker], dict]:
    """The model first, then each baseline that can run; and why the others cannot."""
    trackers = [Tracker("model", "model", "model", estimate or model_tracker(model, voicing_threshold),
                        {"path": str(model), "voicing": f"confidence >= {voicing_threshold:g}",
                         "hop_seconds": EVALUATION_HOP_SECONDS, "versions": _versions(("onnxruntime",))})]
    skipped = {}
    for name in B.baseline_names(names):
        info, why = B.availability(name)
        if why:
            skipped[name] = why
            log.warning(f"baseline {name} skipped: {why}")
            continue
        trackers.append(Tracker(name, info["title"], "baseline",
                                lambda audio, name=name: B.contour(name, audio), info))
    return trackers, skipped


def _versions(distributions: Sequence[str]) -> dict[str, str]:
    from importlib import metadata

    found = {}
    for name in distributions:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def evaluate_contours(audio_dir: str | Path, model_path: str | Path | None = None, truth_dir: str | Path | None = None,
                      output_dir: str | Path | None = None, baselines: Sequence[str] | str = (),
                      voicing_threshold: float = MODEL_VOICING,
                      estimate: Callable[[np.ndarray], Contour] | None = None) -> ContourEvaluation:
    """Score the model (at `model_path`, default the shipped one; or `estimate`) and `baselines`
    on every audio file under `audio_dir` that has a truth CSV (beside it or under `truth_dir`),
    and write the tables and plots to `output_dir` (default AUDIO_DIR/evaluation)."""
    from pipeline.inference.predictor import default_model_path

    audio_dir = Path(audio_dir)
    if not 0 <= voicing_threshold <= 1:
        raise PipelineError(f"the voicing threshold is a confidence from 0 to 1, got {voicing_threshold}")
    model = require_model(model_path) if model_path else default_model_path()
    trackers, skipped = _trackers(model, voicing_threshold, baselines, estimate)
    files = audio_files(audio_dir)
    pairs = [(str(a.relative_to(audio_dir)), a, truth_path(a, audio_dir, truth_dir)) for a in files]
    problems = [f"{rel}: no truth file ({Path(rel).stem}.csv or {Path(rel).stem}.f0.csv); left out"
                for rel, _, t in pairs if t is None]
    pairs = [p for p in pairs if p[2] is not None]
    if not pairs:
        raise PipelineError(f"no audio file under {audio_dir} has a truth CSV (NAME.csv or NAME.f0.csv with "
                            "time,frequency rows); add them beside the audio or give their folder")
    output = Path(output_dir) if output_dir else audio_dir / EVALUATION_DIR
    trackers = warm_up(trackers, skipped)
    worst, scored = WorstFiles(), 0
    with AtomicFile(output / "per_file.csv") as table:   # rows written as the files go; in place at the end
        with open(table.tmp, "w", newline="") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(PER_FILE_COLUMNS)
            for index, (rel, audio_path, truth_file) in enumerate(pairs, start=1):
                try:
                    rows = _score_file(rel, audio_path, truth_file, trackers, writer, worst, problems)
                except PipelineError as exc:
                    problems.append(str(exc))
                    continue
                scored += 1
                log.info(f"[{index}/{len(pairs)}] {rel}: RPA 50 cents "
                         + ", ".join(f"{name} {100 * r['rpa50']:.1f}%" for name, r in rows.items()))
        if scored:
            table.commit()
    if not scored:
        return ContourEvaluation(None, tuple(problems), len(files), 0, None, skipped)
    summary = _write_outputs(output, trackers, worst, skipped, problems, {
        "audio_dir": str(audio_dir), "truth_dir": None if truth_dir is None else str(truth_dir),
        "files": len(files), "files_scored": scored})
    return ContourEvaluation(summary, tuple(problems), len(files), scored, output, skipped)


def overall_table(trackers: list[Tracker]) -> pd.DataFrame:
    """A row per estimator and weighting: `frames` (every frame once) and `files` (every file once)."""
    records = []
    for t in trackers:
        for weighting, row in (("frames", t.pooled.frames_row()), ("files", t.pooled.files_row())):
            records.append({"estimator": t.name, "title": t.title, "kind": t.kind, "weighting": weighting,
                            **row, **t.speed()})
    return pd.DataFrame.from_records(records)


def _write_outputs(output: Path, trackers: list[Tracker], worst: WorstFiles, skipped: dict, problems: list[str],
                   context: dict) -> pd.DataFrame:
    table = overall_table(trackers)
    with atomic_path(output / "overall.csv") as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    summary = table[table["weighting"] == "frames"].reset_index(drop=True)
    titles = {t.name: t.title for t in trackers}
    plot_accuracy(summary, output / "accuracy.png", f"Frame accuracy on {context['audio_dir']}")
    plot_worst_files(worst.items(), titles, output / "worst_files.png")
    model = Path(trackers[0].info["path"])
    write_json(output / "evaluation.json", json_safe({
        "mode": "contours", **context,
        "settings": {"hop_seconds": EVALUATION_HOP_SECONDS, "cent_tolerances": [C.CENT_TOLERANCE, FINE_TOLERANCE],
                     "resampling": "mir_eval.melody.to_cent_voicing(hop=0.01): pitch linear in cents, voicing held",
                     "octave_error": "error within 50 cents of a nonzero multiple of 1200 cents",
                     "timing": "seconds from reading the file to the frames, per estimator, after one untimed "
                               "warm-up run each"},
        "model": {**trackers[0].info, "sha256": sha256_file(model) if model.is_file() else None},
        "estimators": {t.name: {"title": t.title, "kind": t.kind, **t.info, **t.speed(),
                                "frames": t.pooled.frames_row(), "files": t.pooled.files_row()} for t in trackers},
        "skipped_baselines": skipped, "problems": problems,
        "outputs": ["per_file.csv", "overall.csv", "accuracy.png", "worst_files.png"],
        "versions": tool_versions(), "machine": machine(),
    }))
    return summary


def format_contour_summary(summary: pd.DataFrame) -> str:
    """The frames-pooled summary as aligned text, estimators side by side (by name); the speed
    rows only when baselines ran beside the model."""
    header = ["metric", *summary["estimator"]]
    rows = [[label, *[_number(100 * v, 1) + "%" if key in RATES and math.isfinite(v) else _number(v, 1)
                      for v in summary[key]]] for key, label in FRAME_METRICS.items()]
    rows += [["files", *[str(int(v)) for v in summary["files"]]],
             ["frames (truth voiced)", *[f"{int(f)} ({int(v)})" for f, v in zip(summary["frames"],
                                                                                 summary["voiced_frames"])]]]
    if (summary["kind"] == "baseline").any():
        rows += [["seconds per file", *[_number(v, 2) for v in summary["seconds_per_file"]]],
                 ["x real time", *[_number(v, 0 if v >= 10 else 1) for v in summary["realtime_factor"]]]]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in
                               enumerate(zip(row, widths))) for row in [header, *rows])


def _number(value: float, digits: int) -> str:
    return f"{value:.{digits}f}" if math.isfinite(value) else "–"
