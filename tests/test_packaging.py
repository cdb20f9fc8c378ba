"""The package as a user installs it: the wheel holds every module, the shipped model and the
default config; installed without extras into a fresh virtualenv (pip from PyPI), it predicts a
file from another folder and from Python in three lines, imports no TensorFlow, fits in a few
hundred MB, and a stage that needs an extra says which one."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import REPO

LIGHT_LIMIT_MB = 450     # the virtualenv: numpy, scipy, onnxruntime, pip and the rest, 335 MB on x86_64 Linux
HEAVY = ("tensorflow", "tensorflow-cpu", "keras", "pandas", "pyfluidsynth", "torch", "matplotlib", "librosa")


# as a new user's shell: none of this checkout's or this virtualenv's paths (PYTHONPATH would show
# pip the checkout's pitch_pipeline.egg-info as installed already)
CLEAN_ENV = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}


def run(*args, cwd: Path | None = None, timeout: int = 900) -> subprocess.CompletedProcess:
    done = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=CLEAN_ENV)
    assert done.returncode == 0, f"{args}: {done.stdout[-2000:]}{done.stderr[-3000:]}"
    return done


def folder_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink()) / 2**20


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """Built from a copy of what the wheel is made of: setuptools leaves build/ and an egg-info
    in the folder it builds in, which should not be the checkout."""
    import shutil

    source, out = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("wheel")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(REPO / name, source / name)
    shutil.copytree(REPO / "pipeline", source / "pipeline", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", out, source)
    (found,) = out.glob("pitch_pipeline-*.whl")
    return found


def test_the_wheel_holds_every_module_the_model_and_the_default_config(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {p.relative_to(REPO).as_posix() for p in (REPO / "pipeline").rglob("*.py")
               if "__pycache__" not in p.parts}
    assert modules and modules <= names, sorted(modules - names)
    for data in ("pipeline/models/default.onnx", "pipeline/models/default.json", "pipeline/configs/default.toml"):
        assert data in names
    assert any(name.endswith("licenses/LICENSE") for name in names)


@pytest.mark.slow
def test_a_light_install_predicts_from_anywhere_without_tensorflow(wheel, tmp_path):
    venv = tmp_path / "venv"
    run(getattr(sys, "_base_executable", sys.executable), "-m", "venv", venv)
    run(venv / "bin" / "python", "-m", "pip", "install", "-q", wheel)
    installed = run(venv / "bin" / "python", "-m", "pip", "list", "--format=freeze").stdout.lower()
    assert not [name for name in HEAVY if f"{name}==" in installed], installed
    assert folder_mb(venv) < LIGHT_LIMIT_MB

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    t = np.arange(int(1.0 * 44100)) / 44100
    sf.write(elsewhere / "note.wav", 0.5 * np.sin(2 * np.pi * 440.0 * t), 44100)
    shell = run(venv / "bin" / "pipeline", "predict", "note.wav", "--summary", cwd=elsewhere)
    assert shell.stdout.startswith("note.wav: 440.") and " A4 " in shell.stdout
    run(venv / "bin" / "pipeline", "predict", "note.wav", cwd=elsewhere)
    assert (elsewhere / "note.f0.csv").read_text().startswith("time,frequency,confidence\n")

    three_lines = ("import pipeline\n"
                   "time, frequency, confidence = pipeline.predict_from_file('note.wav')\n"
                   "print(round(float(frequency[confidence > 0.5].mean())))\n")
    check = "import sys; assert not {'tensorflow', 'keras', 'pandas'} & set(sys.modules), sorted(sys.modules)\n"
    python = run(venv / "bin" / "python", "-c", three_lines + check, cwd=elsewhere)
    assert python.stdout.strip() == "440"

    # a stage that needs an extra says which, in one line
    data = subprocess.run([venv / "bin" / "pipeline", "data"], cwd=elsewhere, capture_output=True, text=True,
                          timeout=300, env=CLEAN_ENV)
    assert data.returncode == 2 and "Traceback" not in data.stderr
    assert "pyfluidsynth" in data.stderr and "pitch-pipeline[data]" in data.stderr
    assert len(data.stderr.strip().splitlines()) == 1
