"""Training's checkpoints when they are damaged: a run killed after its first epoch leaves
models/NAME/checkpoints/checkpoint.npz (weights, optimizer, best weights, state); the next run resumes
from it when it is whole, and starts over, finishing a whole model, when it is damaged, lacks a part, does
not fit the network or was made for other settings ("a damaged checkpoint only means starting over").
A tiny frame model: seconds."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.core.config import to_toml
from pipeline.model.checkpoints import CHECKPOINT_FILE
from pipeline.model.training import CHECKPOINT_DIR, train
from tests.conftest import REPO, built, like_a_terminal, tiny_config

EPOCHS = 6
FRAME_MODEL = ('features.kind="frames"', 'model.variant="frames"', "model.frame_units=[4, 8, 4]",
               f"train.epochs={EPOCHS}", "train.patience=100", "train.compare_reference=false",
               'data.instruments=["Violin", "Flute"]', "data.note_low=60", "data.note_high=72")


@pytest.fixture(scope="module")
def killed_run(tmp_path_factory):
    """A config whose training was killed (SIGKILL) as soon as its first checkpoint was written."""
    root = tmp_path_factory.mktemp("checkpoints")
    cfg = built(tiny_config(root, *FRAME_MODEL))
    config = root / "frames.toml"
    config.write_text(to_toml(cfg))
    checkpoint = cfg.model_dir / CHECKPOINT_DIR / CHECKPOINT_FILE
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "train", "--config", str(config)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=like_a_terminal)
    deadline = time.monotonic() + 300
    while proc.poll() is None and not checkpoint.is_file() and time.monotonic() < deadline:
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL and not (cfg.model_dir / "model.keras").exists(), \
        "the run finished before it could be killed"
    done = read_checkpoint(checkpoint)["state"]["epochs_done"]
    assert 1 <= done < EPOCHS
    return cfg, done


def run_again(killed_run, tmp_path, damage) -> str:
    """A copy of the killed run's folder, damaged by damage(checkpoint folder), trained again: what it
    printed; the run must end with a whole model of every epoch."""
    cfg, _ = killed_run
    copy = tmp_path / "copy"
    shutil.copytree(Path(cfg.root), copy)
    again = tiny_config(copy, *FRAME_MODEL)
    damage(again.model_dir / CHECKPOINT_DIR)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        train(again)
    history = pd.read_csv(again.model_dir / "history.csv")
    assert list(history["epoch"]) == list(range(1, EPOCHS + 1))
    assert (again.model_dir / "model.keras").is_file() and (again.model_dir / "model.onnx").is_file()
    assert not (again.model_dir / CHECKPOINT_DIR).exists()
    return out.getvalue()


def read_checkpoint(path: Path) -> dict:
    """The checkpoint's arrays by name, its state decoded."""
    with np.load(path, allow_pickle=False) as archive:
        arrays = dict(archive)
    return {**arrays, "state": json.loads(bytes(arrays["state"]).decode())}


def rewrite_checkpoint(folder: Path, change) -> None:
    """The checkpoint rewritten after change(arrays by name, state dict) edited it in place."""
    arrays = read_checkpoint(folder / CHECKPOINT_FILE)
    state = arrays.pop("state")
    change(arrays, state)
    arrays.setdefault("state", np.frombuffer(json.dumps(state).encode(), dtype=np.uint8))
    np.savez(folder / CHECKPOINT_FILE, **arrays)


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def test_a_whole_checkpoint_is_resumed(killed_run, tmp_path):
    out = run_again(killed_run, tmp_path, lambda folder: None)
    assert f"resuming after epoch {killed_run[1]}" in out


@pytest.mark.parametrize("damage", [
    lambda folder: truncate(folder / CHECKPOINT_FILE),
    lambda folder: (folder / CHECKPOINT_FILE).write_bytes(b"PK\x03\x04 not a checkpoint"),
    lambda folder: rewrite_checkpoint(folder, lambda arrays, state: state.update(fingerprint="0" * 64)),
    lambda folder: rewrite_checkpoint(folder, lambda arrays, state: arrays.pop("weights0")),
    lambda folder: rewrite_checkpoint(folder, lambda arrays, state: arrays.update(weights0=np.zeros((3, 3)))),
    lambda folder: rewrite_checkpoint(folder, lambda arrays, state: state["arrays"].update(optimizer=1)),
    lambda folder: rewrite_checkpoint(folder, lambda arrays, state: arrays.update(state=np.zeros(0, np.uint8))),
], ids=["truncated", "garbled", "of other settings", "a weight missing", "a weight of another shape",
        "optimizer cut short", "state empty"])
def test_a_damaged_checkpoint_means_starting_over(killed_run, tmp_path, damage):
    out = run_again(killed_run, tmp_path, damage)
    assert "resuming" not in out
