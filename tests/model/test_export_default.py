"""`pipeline export --default`, what `make shipped-model` runs after training: a trained frame model
becomes the package's default model (pipeline/models/default.onnx and .json), checked at every load,
and `pipeline predict` without --model then uses it. Run in a copy of the package, so the real shipped
model is never touched."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from pipeline.core.config import to_toml
from pipeline.inference.predictor import default_model_path
from tests.conftest import REPO, built, tiny_config

FRAME_MODEL = ('features.kind="frames"', 'model.variant="frames"', "model.frame_units=[4, 8, 4]", "train.epochs=1",
               "train.compare_reference=false", 'data.instruments=["Violin", "Flute"]', "data.note_low=60",
               "data.note_high=72")


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def pipeline_in(package_root, *args: str) -> subprocess.CompletedProcess:
    """`python -m pipeline ARGS` running the package copy under `package_root`."""
    env = {**os.environ, "PYTHONPATH": str(package_root)}
    return subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=package_root, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def trained_frame_model(tmp_path_factory):
    """A tiny frame model trained one epoch on a few notes, and its config file."""
    root = tmp_path_factory.mktemp("frame_model")
    cfg = built(tiny_config(root, *FRAME_MODEL), trained=True)
    config = root / "frames.toml"
    config.write_text(to_toml(cfg))
    return cfg, config


def test_export_default_installs_the_model_that_predict_then_uses(trained_frame_model, tmp_path):
    cfg, config = trained_frame_model
    shipped = {p.name: sha256(p) for p in default_model_path().parent.iterdir()}
    copy = tmp_path / "copy"
    shutil.copytree(REPO / "pipeline", copy / "pipeline", ignore=shutil.ignore_patterns("__pycache__"))
    installed = copy / "pipeline" / "models"

    done = pipeline_in(copy, "export", "--config", str(config), "--default")
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"installed {installed / 'default.onnx'}" in done.stdout
    exported = cfg.model_dir / "model.onnx"
    assert (installed / "default.onnx").read_bytes() == exported.read_bytes()
    meta = json.loads((installed / "default.json").read_text())
    assert meta == json.loads((cfg.model_dir / "model.json").read_text())
    assert meta["files"]["onnx"] == sha256(exported)
    assert meta["variant"] == "frames" and not list(installed.glob(".*"))          # no temporary file left
    assert {p.name: sha256(p) for p in default_model_path().parent.iterdir()} == shipped   # the real one untouched

    t = np.arange(16000) / 16000
    note = tmp_path / "a4.wav"
    sf.write(note, (0.4 * sum(np.sin(2 * np.pi * 440 * k * t) / k for k in range(1, 6))).astype(np.float32), 16000)
    by_default = pipeline_in(copy, "predict", str(note), "--output", str(tmp_path / "default"))
    named = pipeline_in(copy, "predict", str(note), "--model", str(cfg.model_dir / "model.keras"),
                        "--output", str(tmp_path / "named"))
    shipped_one = pipeline_in(REPO, "predict", str(note), "--output", str(tmp_path / "shipped"))
    assert by_default.returncode == named.returncode == shipped_one.returncode == 0, by_default.stderr
    csv = "a4.f0.csv"
    assert (tmp_path / "default" / csv).read_text() == (tmp_path / "named" / csv).read_text()
    assert (tmp_path / "default" / csv).read_text() != (tmp_path / "shipped" / csv).read_text()

    data = bytearray((installed / "default.onnx").read_bytes())      # a damaged install is refused
    data[len(data) // 2] ^= 0x01
    (installed / "default.onnx").write_bytes(bytes(data))
    damaged = pipeline_in(copy, "predict", str(note), "--output", str(tmp_path / "damaged"))
    assert damaged.returncode == 2 and "is damaged" in damaged.stderr and "reinstall" in damaged.stderr
