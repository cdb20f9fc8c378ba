"""The report and `pipeline evaluate` end to end, with a real trained model (tests/conftest.py's
trained_tiny): their numbers must be what the metrics give on their own predictions, and those
predictions what the model gives when asked directly."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.core.config import load_config, to_toml
from pipeline.data.clips import load_manifest, read_clips, split_rows
from pipeline.dsp.fine_pitch import YIN_BELOW_HZ, refine_estimates
from pipeline.report.metrics import METRICS, summary
from tests.conftest import run_cli

BASELINE_CLIPS = 6
REPORT_SETTINGS = ('report.baselines=["pyin", "praat", "swift_f0"]', f"report.max_baseline_clips={BASELINE_CLIPS}")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_same_metrics(got: dict, want: dict, where: str) -> None:
    """metrics.json against summary(): counts exactly, the rest as far as predictions.csv's
    6 significant digits carry (0.01 cents)."""
    for key in METRICS:
        if key in ("count", "missing"):
            assert got[key] == want[key], f"{where}: {key}"
        elif want[key] is None or np.isnan(want[key]):
            assert got[key] is None, f"{where}: {key}"
        else:
            assert got[key] == pytest.approx(want[key], rel=1e-4, abs=0.02), f"{where}: {key}"


@pytest.fixture(scope="module")
def report(trained_tiny, tmp_path_factory):
    """`pipeline report` on the trained tiny model, run as a user would, into a fresh reports/."""
    root = tmp_path_factory.mktemp("report")
    for folder in ("data", "models"):   # read the shared model and features; write only reports/
        (root / folder).symlink_to(Path(trained_tiny.root) / folder)
    config = root / "tiny.toml"
    config.write_text(to_toml(dataclasses.replace(trained_tiny, root=str(root))))
    # what a killed report left: its temporary file (of a process that is gone), and a user's file
    (root / "reports" / trained_tiny.name).mkdir(parents=True)
    (root / "reports" / trained_tiny.name / f".report.md.{dead_pid()}.tmp.md").write_text("half")
    (root / "reports" / trained_tiny.name / "notes.md").write_text("mine")
    done = run_cli("report", "--config", str(config), *[a for s in REPORT_SETTINGS for a in ("--set", s)])
    assert done.returncode == 0, done.stderr[-3000:]
    cfg = load_config(config, REPORT_SETTINGS)
    return cfg, done.stdout


def dead_pid() -> int:
    return int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout)


def test_report_removes_what_a_killed_report_left_and_nothing_else(report):
    cfg, _ = report
    assert sorted(p.name for p in cfg.report_dir.glob(".*")) == []
    assert (cfg.report_dir / "notes.md").read_text() == "mine"


def test_report_metrics_are_the_summary_of_its_own_predictions(report):
    cfg, stdout = report
    predictions = pd.read_csv(cfg.report_dir / "predictions.csv")
    metrics = json.loads((cfg.report_dir / "metrics.json").read_text())
    subset = predictions["baseline_clip"].astype(bool)
    assert subset.sum() == BASELINE_CLIPS < len(predictions)
    assert set(metrics["estimators"]) == {"model", "model@baseline_clips", "network", "network@baseline_clips",
                                          "reference", "reference@baseline_clips", "pyin", "praat", "swift_f0"}
    for name, got in metrics["estimators"].items():
        column = name.split("@")[0] + "_hz"
        rows = predictions[subset] if name.endswith("@baseline_clips") or name in metrics["baselines"] else predictions
        assert_same_metrics(got, summary(rows["frequency"], rows[column]), name)
    assert metrics["estimators"]["pyin"]["count"] == BASELINE_CLIPS
    assert predictions.loc[~subset, "pyin_hz"].isna().all()   # the trackers ran on the subset only
    assert "RPA 50 cents" in stdout and "report in" in stdout


def test_report_predictions_are_the_models_own_on_the_test_split(report, trained_tiny):
    from pipeline.data.feature_files import load_split
    from pipeline.model.networks import Predictor

    cfg, _ = report
    predictions = pd.read_csv(cfg.report_dir / "predictions.csv")
    features, rows = load_split(trained_tiny, "test")
    assert list(predictions["path"]) == list(rows["path"])
    # predictions.csv keeps 6 significant digits
    np.testing.assert_allclose(predictions["frequency"], rows["frequency"], rtol=6e-6)
    for name, folder in (("network", trained_tiny.model_dir), ("reference", trained_tiny.model_dir / "reference")):
        hz, confidence = Predictor.load(folder / "model.keras").predict(features)
        np.testing.assert_allclose(predictions[f"{name}_hz"], hz, rtol=6e-6, err_msg=name)
        np.testing.assert_allclose(predictions[f"{name}_confidence"], confidence, rtol=6e-6, atol=1e-6)
    # the model's answer: the network's made fine from each clip's audio; from C4 up never moved by a semitone
    network = predictions["network_hz"].to_numpy()
    fine = refine_estimates(read_clips(trained_tiny.data_dir, rows), network)
    np.testing.assert_allclose(predictions["model_hz"], fine, rtol=6e-6)
    high = network >= YIN_BELOW_HZ
    assert np.nanmax(np.abs(1200 * np.log2(fine[high] / network[high]))) < 100
    assert not np.allclose(fine, network, rtol=1e-4)
    metrics = json.loads((cfg.report_dir / "metrics.json").read_text())
    manifest = load_manifest(trained_tiny.data_dir)
    assert metrics["dataset"]["manifest_sha256"] == _sha256(trained_tiny.data_dir / "manifest.csv")
    assert metrics["dataset"]["test_clips"] == len(split_rows(manifest, "test")) == len(predictions)


def test_report_plot_is_a_png_with_a_line_per_estimator(report):
    import matplotlib.image

    cfg, _ = report
    path = cfg.report_dir / "by_pitch.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = matplotlib.image.imread(path)            # fails on a truncated or corrupt file
    assert image.ndim == 3 and image.shape[0] > 600 and image.shape[1] > 800
    rgb = image[..., :3].reshape(-1, 3)
    assert np.mean(rgb.min(axis=1) < 0.9) > 0.01      # more than a blank page
    # matplotlib's default cycle: one saturated colour per estimator's line (6 ran)
    saturated = rgb[(rgb.max(axis=1) - rgb.min(axis=1)) > 0.4]
    assert len(np.unique(np.round(saturated, 1), axis=0)) >= 6


def test_report_page_names_every_estimator_and_the_subset(report):
    cfg, _ = report
    page = (cfg.report_dir / "report.md").read_text()
    metrics = json.loads((cfg.report_dir / "metrics.json").read_text())
    summary_header = next(line for line in page.splitlines() if line.startswith("| metric |"))
    for name, row in metrics["estimators"].items():
        assert f"| {row['title']} |" in summary_header + " |", name
    for title in ("pYIN", "Praat", "SwiftF0"):
        assert title in summary_header
    assert f"Baselines ran on {BASELINE_CLIPS} of {metrics['dataset']['test_clips']} test clips" in page
    assert "![Prediction errors by pitch](by_pitch.png)" in page
    assert (cfg.report_dir / "config.toml").read_text() == to_toml(cfg)


def test_evaluate_with_the_real_model_scores_its_estimates_against_the_labels(trained_tiny, tmp_path, capsys):
    """`pipeline evaluate` on a folder of the dataset's own test clips, labeled by their names: its table
    holds the manifest's labels beside the estimates, and its numbers are those estimates' errors counted
    here, by hand, not by the metrics module or the prediction functions it calls. (The tiny model is too
    rough on the held-out flute to judge its estimates: the shipped model's regression set in
    tests/report/test_folder_evaluation.py does that.)"""
    from pipeline.cli import main

    model = trained_tiny.model_dir / "model.keras"
    test = split_rows(load_manifest(trained_tiny.data_dir), "test")
    chosen = test.iloc[np.linspace(0, len(test) - 1, 12).round().astype(int)]
    notes = tmp_path / "notes"
    notes.mkdir()
    for path in chosen["path"]:
        shutil.copy(trained_tiny.data_dir / path, notes / Path(path).name)
    label = {Path(p).name: hz for p, hz in zip(chosen["path"], chosen["frequency"])}

    code = main(["evaluate", str(notes), "--model", str(model), "--output", str(tmp_path / "out")])
    out, err = capsys.readouterr()
    written = pd.read_csv(tmp_path / "out" / "predictions.csv")
    assert sorted(written["path"]) == sorted(label)
    truth = written["path"].map(label).to_numpy()
    np.testing.assert_allclose(written["frequency"], truth, atol=0.0051)   # names carry 2 decimals
    hz = written["model_hz"].to_numpy()
    found = np.isfinite(hz) & (hz > 0)
    assert found.sum() >= 6, "the tiny model found no pitch in most clips: train it longer"
    assert code == (1 if (~found).any() else 0), err
    assert len([line for line in err.splitlines() if line.startswith("error: ")]) == (~found).sum(), err
    assert "RPA 50 cents" in out
    error = np.where(found, 1200 * np.log2(np.where(found, hz, 1.0) / truth), np.nan)

    model_row = json.loads((tmp_path / "out" / "metrics.json").read_text())["estimators"]["model"]
    octaves = np.round(error / 1200)
    assert model_row["count"] == 12 and model_row["missing"] == (~found).sum()
    assert model_row["rpa50"] == pytest.approx(np.mean(np.abs(np.nan_to_num(error, nan=1e9)) < 50))
    assert model_row["rpa10"] == pytest.approx(np.mean(np.abs(np.nan_to_num(error, nan=1e9)) < 10))
    assert model_row["median_abs_cents"] == pytest.approx(np.median(np.abs(error[found])), abs=0.02)
    assert model_row["octave_error_rate"] == pytest.approx(
        np.mean(found & (octaves != 0) & (np.abs(error - 1200 * octaves) < 50)))
