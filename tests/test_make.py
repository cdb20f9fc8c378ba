"""make as a user runs it, in a copy of the repository, on a tiny config: only what changed is
rebuilt, settings that change no output rebuild nothing, and a second make touches no file.

The copy reuses this virtualenv (a symlink) and fresh set-up stamps, so make installs nothing."""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from pipeline.core.config import to_toml
from tests.conftest import REPO, TINY_MODEL, tiny_config

CONFIG = "configs/tiny.toml"
NAME = "tiny"
# a few notes per instrument and a one-epoch tiny model: seconds per stage
SETTINGS = ("data.note_low=60", "data.note_high=67", *TINY_MODEL, "train.epochs=1", "train.compare_reference=false")
OUTPUTS = ("data", "models")
TARGET = "train"   # the report stage's rule is alike, and each stage run starts TensorFlow: seconds
STAGE_LINE = re.compile(r"-m pipeline (\w+) --config")


def copy_repository(dest: Path) -> None:
    """What make needs: the Makefile, its set-up inputs and the package (not the outputs)."""
    for name in ("Makefile", "pyproject.toml", "scripts", "pipeline"):
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(src, dest / name)
    if sys.prefix != sys.base_prefix:           # this interpreter's virtualenv serves as the copy's .venv
        (dest / ".venv").symlink_to(sys.prefix)
    stamps = dest / ".make"
    stamps.mkdir()
    for stamp in ("system", "venv"):            # newer than pyproject.toml: make sees the set-up as done
        (stamps / stamp).touch()


def make(repo: Path, *targets: str, settings: str = "") -> list[str]:
    """Run make; return the pipeline stages it ran, in order."""
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "CONFIG", "SET")}
    args = ["make", "--no-print-directory", f"CONFIG={CONFIG}", *targets]
    if sys.prefix == sys.base_prefix:
        args.append(f"PY={sys.executable}")
    if settings:
        args.append(f"SET={settings}")
    done = subprocess.run(args, cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return STAGE_LINE.findall(done.stdout)


def mtimes(repo: Path, *folders: str) -> dict[str, int]:
    """Every output file's modification time (ns), by path."""
    return {str(p.relative_to(repo)): p.stat().st_mtime_ns
            for folder in folders for p in (repo / folder).rglob("*") if p.is_file()}


def changed(before: dict, after: dict) -> set[str]:
    return {path for path in before.keys() | after.keys() if before.get(path) != after.get(path)}


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """A copy of the repository with the pipeline built up to the model by `make train`."""
    repo = tmp_path_factory.mktemp("make_repo")
    copy_repository(repo)
    cfg = dataclasses.replace(tiny_config(Path("."), *SETTINGS), name=NAME)
    (repo / "configs").mkdir()
    (repo / CONFIG).write_text(to_toml(cfg))
    python = str(repo / ".venv" / "bin" / "python") if (repo / ".venv").exists() else sys.executable
    code = "import pipeline.core.config; print(pipeline.core.config.__file__)"
    found = subprocess.run([python, "-c", code], cwd=repo, capture_output=True, text=True, check=True).stdout.strip()
    assert Path(found).resolve().is_relative_to(repo.resolve()), f"the copy runs {found}, not its own code"
    assert make(repo, TARGET) == ["data", "features", "train"]
    return repo


@pytest.fixture()
def built(repo) -> Path:
    """The copy, brought up to date (a test that fails midway must not spoil the next)."""
    make(repo, TARGET)
    return repo


def test_a_second_make_runs_nothing_and_touches_no_file(built):
    before = mtimes(built, *OUTPUTS)
    assert make(built, TARGET) == []
    assert make(built, "data") == []
    assert changed(before, mtimes(built, *OUTPUTS)) == set()


def test_workers_and_scheduler_change_no_stage(built):
    """They decide only where the work runs: no stage reruns (a scheduler nobody listens on
    would fail any stage that tried to use it)."""
    before = mtimes(built, *OUTPUTS)
    assert make(built, TARGET, settings='data.workers=1 data.scheduler="tcp://127.0.0.1:9"') == []
    assert changed(before, mtimes(built, *OUTPUTS)) == set()


def test_a_training_knob_retrains_without_rendering_or_featurizing(built):
    data = f"data/{NAME}"
    before = mtimes(built, *OUTPUTS)
    assert make(built, TARGET, settings="train.epochs=2") == ["train"]
    touched = changed(before, mtimes(built, *OUTPUTS))
    assert not {p for p in touched if p.startswith(f"{data}/") and not p.startswith(f"{data}/.params/")}
    assert {f"{data}/.params/train.json", f"models/{NAME}/model.keras"} <= touched
    assert list(pd.read_csv(built / "models" / NAME / "history.csv")["epoch"]) == [1, 2]
    assert make(built, TARGET) == ["train"]       # and back


def test_a_change_to_the_training_code_retrains_but_does_not_render(built):
    before = mtimes(built, "data")
    (built / "pipeline" / "model" / "training.py").touch()
    assert make(built, TARGET) == ["train"]
    assert changed(before, mtimes(built, "data")) == set()


def test_params_leaves_an_unchanged_file_alone(built, tmp_path):
    """`pipeline params` is what make runs before every stage: an unchanged slice keeps its mtime."""
    params = tmp_path / "train.json"   # a copy: make's own would look changed and retrain
    shutil.copy2(built / "data" / NAME / ".params" / "train.json", params)
    before, text = params.stat().st_mtime_ns, params.read_text()
    command = [sys.executable, "-m", "pipeline", "params", "train", "--config", CONFIG, "--out", str(params)]
    subprocess.run(command, cwd=built, check=True, capture_output=True)
    assert params.stat().st_mtime_ns == before and params.read_text() == text
    subprocess.run([*command, "--set", "train.epochs=3"], cwd=built, check=True, capture_output=True)
    assert params.stat().st_mtime_ns != before and '"epochs": 3' in params.read_text()


def test_a_change_to_a_data_module_reruns_the_data_stage_and_nothing_renders(built):
    """The data stage runs again, finds every shard done (the same clips, untouched) and the
    manifest's content unchanged, so it leaves the manifest alone: the features do not run."""
    data = f"data/{NAME}"
    before = mtimes(built, *OUTPUTS)
    (built / "pipeline" / "data" / "rendering.py").touch()
    assert make(built, TARGET) == ["data"]
    assert changed(before, mtimes(built, *OUTPUTS)) == {f"{data}/build.json"}  # make's target for the stage


def test_after_a_data_module_change_a_second_make_runs_nothing(built):
    (built / "pipeline" / "data" / "postprocessing.py").touch()
    assert make(built, TARGET) == ["data"]
    assert make(built, TARGET) == []


def test_an_edit_of_the_features_stage_that_changes_no_feature_checks_once_and_retrains_nothing(built):
    """The stage runs (its code changed), finds every split intact without reading it, writes its
    build.json (make's target) and leaves done.json, what training reads, alone."""
    data = f"data/{NAME}"
    stage = built / "pipeline" / "data" / "features.py"
    stage.write_text(stage.read_text() + "# a comment\n")
    before = mtimes(built, *OUTPUTS)
    assert make(built, TARGET) == ["features"]
    assert changed(before, mtimes(built, *OUTPUTS)) == {f"{data}/features/build.json"}
    assert make(built, TARGET) == []


def test_every_stage_depends_on_every_module_its_entry_imports(built):
    """make's prerequisites of each stage's target hold the import closure of its entry module, and a
    module the stage does not import (the report's) is not among the data stage's."""
    from pipeline.core.imports import stage_sources

    database = subprocess.run(["make", "-pnq", f"CONFIG={CONFIG}", TARGET], cwd=built, capture_output=True,
                              text=True).stdout
    rules = {line.split(":", 1)[0]: set(line.split(":", 1)[1].split()) for line in database.splitlines()
             if line.startswith(("data/", "models/")) and ":" in line and not line.startswith("#")}
    entries = {f"data/{NAME}/build.json": "pipeline.data.dataset",
               f"data/{NAME}/features/build.json": "pipeline.data.features",
               f"models/{NAME}/model.keras": "pipeline.model.training"}
    for target, entry in entries.items():
        assert set(stage_sources([entry])) <= rules[target], target
    assert "pipeline/report/reporting.py" not in rules[f"data/{NAME}/build.json"]
