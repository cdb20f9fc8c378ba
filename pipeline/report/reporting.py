"""Reporting: the test split through the model(s) and the baselines, as tables, a plot and one page.

`build_report(cfg)` gathers the estimates (the stage); `write_report(predictions, estimators,
out_dir, context)` turns a predictions table into files (pure, testable without a model).

Outputs in reports/NAME/: predictions.csv (a row per test clip: labels and every estimate),
by_pitch.csv/.png, by_instrument.csv, by_segment.csv, by_velocity.csv, by_detuned.csv,
metrics.json, config.toml and report.md, written last because make takes it as the target.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.core import constants as C
from pipeline.core.artifacts import (
    atomic_path,
    remove_stale_temporaries,
    sha256_file,
    tool_versions,
    write_json,
    write_text,
)
from pipeline.core.errors import PipelineError
from pipeline.core.pitch import cents, hz_to_midi, midi_to_hz, note_name
from pipeline.report.metrics import GROUP_COLUMNS, METRICS, by_group, summary
from pipeline.report.pitch_plot import PLOT_TITLE, plot_by_pitch

log = logging.getLogger(__name__)

# file stem -> the predictions column each table groups by
GROUPINGS = {"by_pitch": "midi", "by_source": "source", "by_octave": "octave", "by_instrument": "instrument",
             "by_segment": "segment", "by_augmentation": "augmentation", "by_velocity": "velocity",
             "by_detuned": "detuned"}
LABEL_COLUMNS = ["path", "source", "instrument", "instrument_name", "family", "program", "midi", "note", "frequency",
                 "detune_cents", "bend", "velocity", "segment", "augment", "snr_db", "label_rule"]
SUBSET_COLUMN = "baseline_clip"   # True on the test clips the baselines ran on


@dataclass
class Estimator:
    """One column of estimates in the predictions table and how it was made."""
    name: str                       # predictions column is f"{name}_hz"
    title: str
    kind: str                       # "model" or "baseline"
    clips_per_second: float = float("nan")
    subset: bool = False            # ran only on the rows where SUBSET_COLUMN is True
    skipped: str | None = None      # why it has no column
    details: dict = field(default_factory=dict)

    @property
    def column(self) -> str:
        return f"{self.name}_hz"


# --- tables ------------------------------------------------------------------------------
def _rows(predictions: pd.DataFrame, est: Estimator) -> pd.DataFrame:
    if est.subset and SUBSET_COLUMN in predictions.columns:
        return predictions[predictions[SUBSET_COLUMN].astype(bool)]
    return predictions


def with_derived_columns(predictions: pd.DataFrame) -> pd.DataFrame:
    """Add the groupings derived from the labels: `octave` (of the label's nearest note, C to B),
    `detuned` (from detune_cents) and `augmentation` (each clip's effects by kind, e.g. room+noise)."""
    frame = predictions.copy()
    octaves = np.round(hz_to_midi(frame["frequency"].to_numpy())).astype(int) // 12 - 1
    frame["octave"] = [f"C{o}-B{o}" for o in octaves]
    if "detune_cents" in frame.columns:
        frame["detuned"] = np.where(frame["detune_cents"].abs() > 0, "detuned", "in tune")
    if "augment" in frame.columns:
        frame["augmentation"] = [augmentation_kinds(text) for text in frame["augment"].fillna("none")]
    return frame


def augmentation_kinds(label: str) -> str:
    """'room(rt60=0.62);pink(snr=7.5);mp3(64k)' -> 'noise+room+codec': the effects' kinds (hum50: noise), sorted."""
    kinds = {"white": "noise", "pink": "noise", "brown": "noise", "hum": "noise", "mp3": "codec", "ogg": "codec",
             "fluid_reverb": "room"}
    names = [part.split("(")[0] for part in str(label).split(";") if part and part != "none"]
    found = sorted({kinds.get(name, "noise" if name.startswith("hum") else name) for name in names})
    return "+".join(found) or "none"


def summaries(predictions: pd.DataFrame, estimators: list[Estimator]) -> pd.DataFrame:
    """One row per estimator that ran: the summary() figures and its speed.

    When the baselines ran on a subset, each model gets a second row on that subset, so
    the side-by-side comparison is on the very same clips.
    """
    ran = [e for e in estimators if not e.skipped]
    subset = any(e.subset for e in ran) and SUBSET_COLUMN in predictions.columns
    records = []
    for est in ran:
        rows = _rows(predictions, est)
        records.append({"estimator": est.name, "title": est.title, "kind": est.kind,
                        **summary(rows["frequency"], rows[est.column]), "clips_per_second": est.clips_per_second})
        if subset and est.kind == "model":
            rows = predictions[predictions[SUBSET_COLUMN].astype(bool)]
            records.append({"estimator": f"{est.name}@baseline_clips", "title": f"{est.title}, baseline clips",
                            "kind": est.kind, **summary(rows["frequency"], rows[est.column]),
                            "clips_per_second": est.clips_per_second})
    return pd.DataFrame.from_records(records)


def group_table(predictions: pd.DataFrame, estimators: list[Estimator], key: str) -> pd.DataFrame:
    """by_group() for every estimator that ran, stacked with an `estimator` column first."""
    parts = []
    for est in (e for e in estimators if not e.skipped):
        table = by_group(_rows(predictions, est), key, estimate=est.column)
        table.insert(0, "estimator", est.name)
        if key == "midi":   # name the note and its equal-tempered frequency beside the number
            table.insert(2, "note", [note_name(int(m)) for m in table["midi"]])
            table.insert(3, "note_hz", np.round(midi_to_hz(table["midi"].to_numpy()), 2))
        parts.append(table)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["estimator", key, *GROUP_COLUMNS])


def predictions_table(labels: pd.DataFrame, estimates: dict[str, np.ndarray],
                      confidences: dict[str, np.ndarray] | None = None) -> pd.DataFrame:
    """Labels (the manifest columns present) plus, per estimator, its Hz, signed error in cents and confidence."""
    frame = labels[[c for c in LABEL_COLUMNS if c in labels.columns]].reset_index(drop=True).copy()
    for name, hz in estimates.items():
        frame[f"{name}_hz"] = np.asarray(hz, dtype=np.float64)
        frame[f"{name}_cents"] = cents(frame["frequency"], hz)
        if confidences and name in confidences:
            frame[f"{name}_confidence"] = np.asarray(confidences[name], dtype=np.float64)
    return frame


# --- the page ----------------------------------------------------------------------------------
def _fmt(value, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return f"{value:.{digits}f}"


def _markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join([" --- "] * len(header)) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


PERCENT_METRICS = ("rpa50", "rpa10", "rca", "octave_error_rate")
CONVENTIONS = ("Raw pitch/chroma accuracy (RPA/RCA) follow mir_eval with every clip voiced: correct when "
               "the error is strictly under the tolerance. A clip with no estimate (unvoiced) counts as wrong "
               "in accuracies and is left out of the averages; an octave error lies within 50 cents of a nonzero "
               "multiple of 1200 cents. Model speed excludes the spectrogram; baseline speed includes all of "
               "each tracker's work.")


def summary_rows(table: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """The summary with metrics as rows and estimators side by side as columns."""
    header = ["metric", *table["title"]]
    rows = []
    for key, label in METRICS.items():
        cells = [f"{100 * v:.1f}%" if key in PERCENT_METRICS and math.isfinite(v) else _fmt(v)
                 for v in table[key]]
        rows.append([label, *cells])
    if np.isfinite(table["clips_per_second"].to_numpy(dtype=np.float64)).any():   # measured beside baselines
        rows.append(["speed (clips/s)", *[_fmt(v) for v in table["clips_per_second"]]])
    return header, rows


def _group_markdown(table: pd.DataFrame, key: str, estimators: list[Estimator]) -> str:
    """A group table, estimators side by side: median |cents| and share within 50 cents."""
    ran = [e for e in estimators if not e.skipped]
    values = sorted(table[key].unique(), key=lambda v: (str(type(v)), v))
    rows = []
    for value in values:
        cells = [str(value)]
        for est in ran:
            row = table[(table["estimator"] == est.name) & (table[key] == value)]
            cells.append("–" if row.empty else
                         f"{_fmt(row['median_abs_cents'].iloc[0])} · {100 * row['within_50'].iloc[0]:.0f}% "
                         f"(n={int(row['count'].iloc[0])})")
        rows.append(cells)
    header = [key, *[f"{e.title}: median ¢ · ≤50¢" for e in ran]]
    return _markdown_table(header, rows)


def markdown_page(summary_table: pd.DataFrame, tables: dict[str, pd.DataFrame], estimators: list[Estimator],
                  context: dict) -> str:
    header, rows = summary_rows(summary_table)
    parts = [f"# {context.get('title', 'Pitch report')}", "", *context.get("intro", []), "",
             "## Summary", "", _markdown_table(header, rows), "",
             CONVENTIONS, ""]
    skipped = [e for e in estimators if e.skipped]
    if skipped:
        parts += ["Skipped baselines:", *[f"- {e.name}: {e.skipped}" for e in skipped], ""]
    ranges = [f"{e.title} {e.details['range_hz'][0]:g}–{e.details['range_hz'][1]:g} Hz"
              for e in estimators if not e.skipped and "range_hz" in e.details]
    if ranges:
        parts += ["Tracker ranges (notes outside count as errors): " + "; ".join(ranges) + ".", ""]
    if "by_pitch" in tables:
        parts += ["## Errors by pitch", "", "![Prediction errors by pitch](by_pitch.png)", "",
                  "Per note: [by_pitch.csv](by_pitch.csv). Every clip: [predictions.csv](predictions.csv).", ""]
    for stem, key in GROUPINGS.items():
        if stem != "by_pitch" and stem in tables:
            parts += [f"## By {key}", "", _group_markdown(tables[stem], key, estimators), "",
                      f"[{stem}.csv]({stem}.csv)", ""]
    if context.get("reproduce"):
        parts += ["## Reproduce", "", *context["reproduce"], ""]
    return "\n".join(parts)


def json_safe(value):
    """NaN and infinities as null: metrics.json stays strict JSON."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def write_report(predictions: pd.DataFrame, estimators: list[Estimator], out_dir: str | Path,
                 context: dict | None = None) -> pd.DataFrame:
    """Write every report file from a predictions table; report.md last. Returns the summary table."""
    context = context or {}
    out_dir = Path(out_dir)
    frame = with_derived_columns(predictions)
    table = summaries(frame, estimators)
    tables = {stem: group_table(frame, estimators, key) for stem, key in GROUPINGS.items() if key in frame.columns}
    _write_csv(out_dir / "predictions.csv", predictions)
    for stem, grouped in tables.items():
        _write_csv(out_dir / f"{stem}.csv", grouped)
    if "by_pitch" in tables and len(tables["by_pitch"]):
        plot_by_pitch(tables["by_pitch"], estimators, out_dir / "by_pitch.png", context.get("plot_title", PLOT_TITLE))
    metrics = {"estimators": {row["estimator"]: row for row in table.to_dict("records")},
               "baselines": {e.name: asdict(e) for e in estimators if e.kind == "baseline"},
               **context.get("metrics", {})}
    write_json(out_dir / "metrics.json", json_safe(metrics))
    write_text(out_dir / "report.md", markdown_page(table, tables, estimators, context))
    return table


def _write_csv(path: Path, frame: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.6g")


def format_summary(table: pd.DataFrame) -> str:
    """The summary as aligned plain text, estimators side by side."""
    header, rows = summary_rows(table)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in
                               enumerate(zip(row, widths))) for row in [header, *rows])


def print_summary(table: pd.DataFrame) -> None:
    log.info(format_summary(table))


# --- the stage ------------------------------------------------------------------------------
def _model_estimates(cfg, features, rows, path: Path, name: str,
                     title: str) -> tuple[Estimator, np.ndarray, np.ndarray]:
    from pipeline.inference.predictor import load_predictor

    predictor = load_predictor(path)
    if features is None:                   # a frame model: each test clip's frames, summarised
        from pipeline.report.clip_estimates import frame_model_estimates

        started = time.perf_counter()
        hz, confidence = frame_model_estimates(cfg, rows, predictor)
        return _model_estimator(predictor, path, name, title, len(hz), time.perf_counter() - started), hz, confidence
    if predictor.scaling != cfg.features.scaling:
        raise PipelineError(f"model {path} expects {predictor.scaling!r} spectrograms but features.scaling is "
                            f"{cfg.features.scaling!r}; run make train to retrain on these features")
    started = time.perf_counter()
    hz, confidence = predictor.predict(features)
    return _model_estimator(predictor, path, name, title, len(hz), time.perf_counter() - started), hz, confidence


def _model_estimator(predictor, path: Path, name: str, title: str, clips: int, seconds: float) -> Estimator:
    meta = predictor.metadata
    details = {"path": str(path), "variant": predictor.variant, "params": meta.get("params"),
               "dataset_sha256": meta.get("dataset_sha256"), "training": meta.get("training")}
    title = title if title == predictor.variant else f"{title} ({predictor.variant})"
    return Estimator(name, title, "model", clips_per_second=clips / seconds if seconds > 0 else float("nan"),
                     details=details)


REFINE_BLOCK = 2048              # clips read at a time to refine the model's estimates: memory stays flat


def refined_estimates(cfg, rows: pd.DataFrame, hz: np.ndarray) -> np.ndarray:
    """The model's estimate of each test clip made fine from the clip's own partials, as
    `pipeline predict --summary` and `pipeline evaluate` make theirs (pipeline.dsp.fine_pitch)."""
    from pipeline.data.clips import read_clips
    from pipeline.dsp.fine_pitch import refine_estimates

    fine = np.array(hz, dtype=np.float64)
    for start in range(0, len(rows), REFINE_BLOCK):
        block = slice(start, start + REFINE_BLOCK)
        fine[block] = refine_estimates(read_clips(cfg.data_dir, rows.iloc[block], C.SAMPLE_RATE), fine[block])
    return fine


def baseline_rows(n: int, limit: int) -> np.ndarray:
    """Which test rows the baselines track: all, or `limit` evenly spaced through the manifest order
    (which runs by instrument, then pitch, so every instrument and register is sampled)."""
    if limit <= 0 or limit >= n:
        return np.ones(n, dtype=bool)
    mask = np.zeros(n, dtype=bool)
    mask[np.unique(np.linspace(0, n - 1, limit).round().astype(int))] = True
    return mask


def _baseline_estimates(cfg, rows: pd.DataFrame) -> tuple[list[Estimator], dict[str, np.ndarray], np.ndarray]:
    from pipeline.data.clips import read_clips
    from pipeline.report.baselines import run_baselines

    mask = baseline_rows(len(rows), cfg.report.max_baseline_clips)
    clips = read_clips(cfg.data_dir, rows[mask], C.SAMPLE_RATE) if cfg.report.baselines else None
    estimators, estimates = [], {}
    for name, result in run_baselines(cfg.report.baselines, clips).items():
        subset = not mask.all()
        estimators.append(Estimator(name, result.info["title"], "baseline", result.clips_per_second,
                                    subset=subset, skipped=result.skipped, details=result.info))
        if result.hz is not None:
            full = np.full(len(rows), np.nan)
            full[mask] = result.hz
            estimates[name] = full
    return estimators, estimates, mask


def _require_model(cfg) -> Path:
    path = cfg.model_dir / C.MODEL_FILE
    if not path.is_file():
        raise PipelineError(f"no trained model at {path}; run make train (or python -m pipeline train) first")
    return path


def build_report(cfg) -> pd.DataFrame:
    """Model(s) and baselines on the test split -> reports/NAME/. Returns the summary table."""
    from pipeline.core.config import to_toml
    from pipeline.data.clips import manifest_path
    from pipeline.data.feature_files import dataset_hash, load_split

    model_path = _require_model(cfg)
    remove_stale_temporaries(cfg.report_dir)  # what a killed report left
    if cfg.features.kind == "frames":      # the frame model reads each clip's audio itself
        from pipeline.data.clips import load_manifest, split_rows

        features, rows = None, split_rows(load_manifest(cfg.data_dir), "test")
    else:
        features, rows = load_split(cfg, "test")
    if not len(rows):
        raise PipelineError(f"the test split of {cfg.name} is empty; check split.* in the config and run make data")
    estimators, estimates, confidences = [], {}, {}
    models = [(model_path, "model", "model"), (cfg.model_dir / "reference" / C.MODEL_FILE, "reference", "reference")]
    for path, name, title in models:
        if path.is_file():
            est, estimates[name], confidences[name] = _model_estimates(cfg, features, rows, path, name, title)
            estimators.append(est)
    if "model" in estimates and features is not None:  # predict --summary's refinement, beside the network alone
        network = replace(estimators[0], name="network", title=f"{estimators[0].title}, network alone")
        estimators.insert(1, network)
        estimates["network"], confidences["network"] = estimates["model"], confidences["model"]
        started = time.perf_counter()
        estimates["model"] = refined_estimates(cfg, rows, estimates["network"])
        seconds = len(rows) / network.clips_per_second + time.perf_counter() - started
        estimators[0] = replace(estimators[0], clips_per_second=len(rows) / seconds)
    found, baseline_hz, mask = _baseline_estimates(cfg, rows)
    estimators += found
    estimates.update(baseline_hz)
    predictions = predictions_table(rows, estimates, confidences)
    if not mask.all():
        predictions[SUBSET_COLUMN] = mask
    data_hash = dataset_hash(cfg) if features is not None else sha256_file(manifest_path(cfg.data_dir))
    context = _stage_context(cfg, rows, estimators, data_hash, int(mask.sum()))
    write_text(cfg.report_dir / "config.toml", to_toml(cfg))
    table = write_report(predictions, estimators, cfg.report_dir, context)
    print_summary(table)
    log.info(f"report in {cfg.report_dir / 'report.md'}")
    return table


def _stage_context(cfg, rows: pd.DataFrame, estimators: list[Estimator], data_hash: str, n_baseline: int) -> dict:
    instruments = sorted(rows["instrument_name"].unique()) if "instrument_name" in rows else []
    intro = [f"Test split of dataset `{cfg.name}`: {len(rows)} clips"
             + (f" from {', '.join(instruments)}" if instruments else "")
             + f" (manifest sha256 `{data_hash[:12]}`, split.test = {cfg.split.test})."]
    stale = [e.name for e in estimators
             if e.kind == "model" and e.details.get("dataset_sha256") not in (None, data_hash)]
    if stale:
        intro.append(f"**Warning:** {', '.join(stale)} was trained on another build of the dataset; run make train.")
    if n_baseline < len(rows):
        intro.append(f"Baselines ran on {n_baseline} of {len(rows)} test clips, evenly spaced "
                     f"(report.max_baseline_clips); the models' rows 'baseline clips' are on the same clips.")
    return {
        "title": f"Pitch report: {cfg.name}",
        "plot_title": f"{PLOT_TITLE} (test split)",
        "intro": intro,
        "reproduce": [(f"`make report CONFIG=configs/{cfg.name}.toml` (or `python -m pipeline report --config "
                       f"configs/{cfg.name}.toml`); the operative config is [config.toml](config.toml).")],
        "metrics": {"dataset": {"name": cfg.name, "manifest_sha256": data_hash, "test_clips": len(rows),
                                "test_instruments": instruments, "baseline_clips": n_baseline},
                    "models": {e.name: e.details for e in estimators if e.kind == "model"},
                    "config": cfg.to_dict(), "versions": tool_versions()},
    }
