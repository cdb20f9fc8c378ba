"""What the README promises about training, checked on a real tiny model: a killed run resumes
to the very model an uninterrupted one gives, the saved model holds the best epoch's weights,
early stopping stops after `train.patience` epochs without improvement, and the reference
regressor trains on each of its targets and decodes back to Hz."""

from __future__ import annotations

import contextlib
import io
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.core.config import to_toml
from pipeline.core.pitch import cents, hz_to_midi
from pipeline.data.clips import load_manifest, split_rows
from pipeline.data.feature_files import load_split
from pipeline.model.networks import Predictor
from pipeline.model.training import train
from tests.conftest import REPO, TINY_MODEL, built, tiny_config

SCORES = ["loss", "val_loss", "val_cents_mean", "val_cents_median", "val_rpa50"]


@pytest.fixture(scope="module")
def data_root(tiny_dataset, tmp_path_factory) -> Path:
    """A root whose data/ holds the shared tiny dataset with its features."""
    root = tmp_path_factory.mktemp("promises")
    built(tiny_config(root, *TINY_MODEL), tiny_dataset)
    return root


def config_in(folder: Path, data_root: Path, *overrides: str):
    """A tiny-model config writing models/ under `folder`, reading the shared data/."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "data").symlink_to(data_root / "data")
    return tiny_config(folder, *TINY_MODEL, "train.compare_reference=false", *overrides)


def trained(cfg) -> tuple[dict, pd.DataFrame, str]:
    """Train quietly; (the model's metadata, its history.csv, what it printed)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        train(cfg)
    meta = Predictor.load(cfg.model_dir / "model.keras").metadata
    return meta, pd.read_csv(cfg.model_dir / "history.csv"), out.getvalue()


def estimates(cfg, split: str) -> np.ndarray:
    features, _ = load_split(cfg, split)
    return Predictor.load(cfg.model_dir / "model.keras").predict(features)[0]


# --- resume ------------------------------------------------------------------------------
def test_a_killed_run_resumes_to_the_model_an_uninterrupted_run_gives(data_root, tmp_path):
    """`kill -9` after the first epoch (no chance to tidy up), then the same command again:
    same history, same weights (to float tolerance) as a run that was never stopped."""
    epochs = ("train.epochs=4",)   # the default cosine schedule: the resumed epochs must get their rates
    whole = config_in(tmp_path / "whole", data_root, *epochs)
    _, whole_history, _ = trained(whole)

    killed = config_in(tmp_path / "killed", data_root, *epochs)
    config = tmp_path / "killed.toml"
    config.write_text(to_toml(killed))
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "train", "--config", str(config)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stdout:
            if re.search(r"epoch\s+1/4", line):
                proc.send_signal(signal.SIGKILL)
                break
    finally:
        proc.kill()
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, err[-3000:]
    assert not (killed.model_dir / "model.keras").exists(), "the run finished before it could be killed"

    _, history, out = trained(killed)
    resumed = re.search(r"resuming after epoch (\d+)", out)
    assert resumed and 1 <= int(resumed.group(1)) < 4, out[-2000:]
    assert list(history["epoch"]) == list(whole_history["epoch"]) == [1, 2, 3, 4]
    np.testing.assert_allclose(history[SCORES], whole_history[SCORES], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(estimates(killed, "test"), estimates(whole, "test"), rtol=1e-5)


# --- best epoch and early stopping --------------------------------------------------------
@pytest.fixture(scope="module")
def stopped_early(data_root, tmp_path_factory):
    """A constant, high learning rate: validation loss soon gets worse, and with patience 1
    the first epoch that does not improve is the last."""
    cfg = config_in(tmp_path_factory.mktemp("early"), data_root, "train.learning_rate=0.01", "train.epochs=12",
                    "train.patience=1")
    return cfg, *trained(cfg)


def test_the_saved_model_holds_the_best_epochs_weights_not_the_last(stopped_early):
    cfg, meta, history, _ = stopped_early
    best = int(history["val_loss"].idxmin())
    assert meta["training"]["best_epoch"] == history["epoch"][best]
    last = history.iloc[-1]
    assert history["epoch"][best] < last["epoch"], "every epoch improved: the test needs a worse last epoch"
    # the saved model scores the validation split as the best epoch did, not as the last one did
    _, rows = load_split(cfg, "val")
    error = np.abs(cents(rows["frequency"].to_numpy(), estimates(cfg, "val")))
    assert np.median(error) == pytest.approx(history["val_cents_median"][best], rel=1e-5)
    assert np.mean(error) == pytest.approx(history["val_cents_mean"][best], rel=1e-5)
    assert np.mean(error) != pytest.approx(last["val_cents_mean"], rel=1e-5)


def test_early_stopping_stops_after_patience_epochs_without_improvement(stopped_early):
    cfg, meta, history, out = stopped_early
    losses = history["val_loss"].to_numpy()
    stop = next(e for e in range(1, len(losses)) if losses[e] >= losses[:e].min()) + 1   # patience 1
    assert stop < cfg.train.epochs, "validation improved every epoch: nothing to stop"
    assert list(history["epoch"]) == list(range(1, stop + 1))
    assert meta["training"]["epochs_run"] == stop
    assert "early stop" in out


# --- the reference regressor's targets ------------------------------------------------------
@pytest.fixture(scope="module")
def references(data_root, tmp_path_factory) -> dict:
    """The reference regressor trained 3 epochs on each target."""
    found = {}
    for target in ("midi", "log_hz", "hz"):
        cfg = config_in(tmp_path_factory.mktemp(f"reference_{target}"), data_root, 'model.variant="reference"',
                        f'model.target="{target}"', "train.epochs=3")
        found[target] = (cfg, trained(cfg)[0])
    return found


@pytest.mark.parametrize("target, units", [("midi", hz_to_midi), ("log_hz", np.log2), ("hz", lambda hz: hz)])
def test_the_reference_regressor_learns_each_target_and_decodes_it_to_hz(references, target, units):
    cfg, meta = references[target]
    assert meta["variant"] == "reference" and meta["encoding"]["target"] == target
    train_hz = split_rows(load_manifest(cfg.data_dir), "train")["frequency"].to_numpy()
    # standardised with the training split's statistics, in the target's units
    assert meta["encoding"]["mean"] == pytest.approx(units(train_hz).mean(), rel=1e-9)
    assert meta["encoding"]["std"] == pytest.approx(units(train_hz).std(), rel=1e-9)
    hz = estimates(cfg, "train")
    # in Hz, not in the target's units (MIDI numbers, log2 Hz or standardised values are all
    # far below): the median estimate within an octave of the median label ...
    assert np.median(train_hz) / 2 < np.median(hz) < 2 * np.median(train_hz), np.median(hz)
    # ... and following the labels after three epochs
    assert np.corrcoef(np.log2(hz), np.log2(train_hz))[0, 1] > 0.7


def test_midi_and_log_hz_targets_train_the_same_network(references):
    """Standardised, log2 Hz and the MIDI number are the same target (one is an affine map of
    the other): the two models must estimate the same Hz, which fails if either decodes wrongly."""
    np.testing.assert_allclose(estimates(references["log_hz"][0], "test"), estimates(references["midi"][0], "test"),
                               rtol=1e-4)
