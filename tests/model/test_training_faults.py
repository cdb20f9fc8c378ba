"""Nothing lost in training (issue 21): a run stopped or killed at a random moment resumes to the
weights of an uninterrupted run; Ctrl-C stops it within two seconds keeping the last finished
epoch; a full disk during training or the report is one line; training deletes only what it
wrote and writes through no link; non-finite inputs are refused where they enter.

The moments are drawn from a seeded generator, so a failure can be replayed."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from pipeline.core.artifacts import sha256_file
from pipeline.core.config import to_toml
from pipeline.core.errors import PipelineError
from pipeline.model.checkpoints import CHECKPOINT_DIR, CHECKPOINT_FILE
from pipeline.model.training import train
from tests.conftest import REPO, TINY_MODEL, built, like_a_terminal, tiny_config
from tests.test_faults import INTERRUPTED, mount_tmpfs, stderr_lines, temporary_files

RNG = random.Random(21)
EPOCHS = 5
STREAM = ('model.variant="stream"', "model.harmonic_units=[8,4]", "model.encoder_units=[16]", "model.head_units=16",
          f"train.epochs={EPOCHS}", "train.compare_reference=false")


@pytest.fixture(scope="module")
def data_root(tiny_dataset, tmp_path_factory) -> Path:
    """A root whose data/ holds the shared tiny dataset with its features."""
    root = tmp_path_factory.mktemp("training_faults")
    built(tiny_config(root, *TINY_MODEL, *STREAM), tiny_dataset)
    return root


def config_in(folder: Path, data_root: Path, *overrides: str):
    """A tiny stream model's config writing models/ under `folder`, reading the shared data/."""
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "data").exists():
        (folder / "data").symlink_to(data_root / "data")
    return tiny_config(folder, *TINY_MODEL, *STREAM, *overrides)


def quietly(function, *args):
    with contextlib.redirect_stdout(io.StringIO()) as out:
        result = function(*args)
    return result, out.getvalue()


def weights(cfg) -> list[np.ndarray]:
    from pipeline.model.networks import Predictor

    return Predictor.load(cfg.model_dir / "model.keras").network.get_weights()


@pytest.fixture(scope="module")
def uninterrupted(data_root, tmp_path_factory):
    cfg = config_in(tmp_path_factory.mktemp("whole"), data_root)
    quietly(train, cfg)
    return weights(cfg), (cfg.model_dir / "history.csv").read_text()


# --- stopped or killed at a random moment, then resumed -------------------------------------------
def start_training(config: Path) -> tuple[subprocess.Popen, list[str]]:
    """`pipeline train` as a terminal's job; its stdout lines are collected as they come."""
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "train", "--config", str(config)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=like_a_terminal)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True).start()
    return proc, lines


SIGNALS = {"ctrl-c": signal.SIGINT, "term": signal.SIGTERM, "hup-group": signal.SIGHUP, "kill": signal.SIGKILL}
# each way of stopping once: after a seeded random number of finished epochs, a seeded random moment into the next
KILLS = [(how, RNG.randint(1, EPOCHS - 2), round(RNG.uniform(0.0, 0.6), 2)) for how in SIGNALS]


@pytest.mark.parametrize("how, epochs, extra", KILLS, ids=[f"{h}@{e}+{x}s" for h, e, x in KILLS])
def test_a_stopped_training_resumes_to_the_weights_of_an_uninterrupted_run(data_root, uninterrupted, tmp_path, how,
                                                                           epochs, extra):
    cfg = config_in(tmp_path, data_root)
    config = tmp_path / "train.toml"
    config.write_text(to_toml(cfg))
    proc, lines = start_training(config)
    deadline = time.monotonic() + 300
    while not any(re.search(rf"epoch\s+{epochs}/{EPOCHS}", line) for line in lines) and proc.poll() is None:
        assert time.monotonic() < deadline, "no epoch line"
        time.sleep(0.01)
    time.sleep(extra)
    assert proc.poll() is None, "the run finished before it could be stopped"
    sent = time.monotonic()
    (os.killpg if how.endswith("group") or how == "ctrl-c" else os.kill)(proc.pid, SIGNALS[how])
    _, err = proc.communicate(timeout=60)
    took = time.monotonic() - sent
    if how != "kill":   # a stop: one line, the signal's exit code, within two seconds
        assert proc.returncode == 128 + SIGNALS[how] and stderr_lines(err) == [INTERRUPTED], err[-2000:]
        assert took < 2.0, f"the stop took {took:.1f} s"
    state = json.loads(bytes(np.load(cfg.model_dir / CHECKPOINT_DIR / CHECKPOINT_FILE)["state"]).decode())
    assert state["epochs_done"] >= epochs   # the last finished epoch is kept
    assert not (cfg.model_dir / "model.keras").exists()

    _, out = quietly(train, cfg)   # resumed: the same function the CLI runs
    assert f"resuming after epoch {state['epochs_done']}" in out
    whole_weights, whole_history = uninterrupted
    for mine, theirs in zip(weights(cfg), whole_weights, strict=True):
        np.testing.assert_allclose(mine, theirs, rtol=1e-4, atol=1e-6)
    assert (cfg.model_dir / "history.csv").read_text().count("\n") == whole_history.count("\n")
    assert temporary_files(cfg.model_dir) == [] and not (cfg.model_dir / CHECKPOINT_DIR).exists()


# --- a full disk -----------------------------------------------------------------------------------
def test_a_full_disk_during_training_is_one_line_and_leaves_no_temporary_file(data_root, tmp_path):
    cfg = config_in(tmp_path, data_root, "train.epochs=1")
    config = tmp_path / "train.toml"
    config.write_text(to_toml(cfg))
    mount_tmpfs(cfg.model_dir, "900k")   # smaller than the first checkpoint
    try:
        done = subprocess.run([sys.executable, "-m", "pipeline", "train", "--config", str(config)], cwd=REPO,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-3000:]
        assert stderr_lines(done.stderr) == [f"error: disk full while writing {cfg.model_dir}/{CHECKPOINT_DIR}/"
                                             f"{CHECKPOINT_FILE}; free space and run the same command again"]
        assert temporary_files(cfg.model_dir) == []
    finally:
        subprocess.run(["umount", str(cfg.model_dir)], check=True)


def test_a_full_disk_during_the_report_is_one_line(trained_tiny, tmp_path):
    cfg = dataclasses.replace(trained_tiny, root=str(tmp_path),
                              report=dataclasses.replace(trained_tiny.report, baselines=()))
    shutil.copytree(trained_tiny.data_dir, cfg.data_dir)
    shutil.copytree(trained_tiny.model_dir, cfg.model_dir)
    config = tmp_path / "report.toml"
    config.write_text(to_toml(cfg))
    mount_tmpfs(cfg.report_dir, "40k")
    try:
        done = subprocess.run([sys.executable, "-m", "pipeline", "report", "--config", str(config)], cwd=REPO,
                              capture_output=True, text=True, timeout=300)
        lines = stderr_lines(done.stderr)
        assert done.returncode == 2 and "Traceback" not in done.stderr and len(lines) == 1, done.stderr[-3000:]
        assert lines[0].startswith(f"error: disk full while writing {cfg.report_dir}/")
        assert temporary_files(cfg.report_dir) == [] and not (cfg.report_dir / "report.md").exists()
    finally:
        subprocess.run(["umount", str(cfg.report_dir)], check=True)


# --- only its own files, never through a link --------------------------------------------------------
def test_training_deletes_only_its_own_files(data_root, tmp_path):
    """A user's files in the model folder and in checkpoints/ survive a run that finishes (the folder
    stays for them); what earlier versions and dead runs left there is removed."""
    cfg = config_in(tmp_path, data_root, "train.epochs=1")
    checkpoints = cfg.model_dir / CHECKPOINT_DIR
    checkpoints.mkdir(parents=True)
    users = [cfg.model_dir / "notes.txt", checkpoints / "mine.keras", checkpoints / ".hidden"]
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    ours = [checkpoints / "last.keras", checkpoints / "state.json",
            checkpoints / f".{CHECKPOINT_FILE}.{dead.stdout.strip()}.tmp.npz"]
    for path in users + ours:
        path.write_bytes(b"x")
    quietly(train, cfg)
    assert all(path.read_bytes() == b"x" for path in users)
    assert not any(path.exists() for path in ours) and sorted(p.name for p in checkpoints.iterdir()) == [
        ".hidden", "mine.keras"]
    assert (cfg.model_dir / "model.keras").is_file()


@pytest.mark.parametrize("planted", ["checkpoints", "reference", "model.onnx", "checkpoints/checkpoint.npz"])
def test_a_link_planted_in_the_model_folder_is_one_line_and_nothing_is_written_through_it(data_root, tmp_path,
                                                                                           planted):
    cfg = config_in(tmp_path / "project", data_root, "train.compare_reference=true")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("mine")
    link = cfg.model_dir / planted
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(outside if "." not in planted else outside / "precious.txt")
    with pytest.raises(PipelineError, match=f"{re.escape(str(link))} is a symbolic link .* remove the link") as err:
        train(cfg)
    assert "\n" not in str(err.value)
    assert sorted(p.name for p in outside.iterdir()) == ["precious.txt"]
    assert (outside / "precious.txt").read_text() == "mine"


def test_a_folder_where_training_writes_a_file_is_one_line(data_root, tmp_path):
    cfg = config_in(tmp_path, data_root)
    (cfg.model_dir / "model.keras").mkdir(parents=True)
    with pytest.raises(PipelineError, match="model.keras is a folder where training writes a file"):
        train(cfg)


# --- numbers that are not finite ---------------------------------------------------------------------
def test_features_or_labels_that_are_not_finite_are_refused_naming_the_row(data_root, tmp_path):
    cfg = config_in(tmp_path, data_root)
    (tmp_path / "data").unlink()
    shutil.copytree(data_root / "data", tmp_path / "data")
    features = np.load(cfg.data_dir / "features" / "val.npy", mmap_mode="r+")
    features[3, 100, 40] = np.inf
    features.flush()
    with pytest.raises(PipelineError, match=r"features/val.npy row 3 holds a value that is not finite .* features"):
        train(cfg)
    features[3, 100, 40] = 0.0
    features.flush()
    manifest = cfg.data_dir / "manifest.csv"
    header, *rows = manifest.read_text().splitlines()
    column = header.split(",").index("frequency")
    row = next(i for i, line in enumerate(rows) if ",train," in line)
    cells = rows[row].split(",")
    cells[column] = "nan"
    rows[row] = ",".join(cells)
    manifest.write_text("\n".join([header, *rows]) + "\n")
    done_path = cfg.data_dir / "features" / "done.json"
    done = json.loads(done_path.read_text())
    done["manifest_sha256"] = sha256_file(manifest)   # as if the features had been built from this manifest
    done_path.write_text(json.dumps(done))
    with pytest.raises(PipelineError, match=r"manifest.csv gives .* the frequency nan, not a number of Hz"):
        train(cfg)
