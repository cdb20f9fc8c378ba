"""The command line as a user meets it: one clear line per mistake, no traceback, a non-zero exit."""

import dataclasses
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import pipeline
from pipeline.core.config import load_config, to_toml
from pipeline.data.clips import load_manifest, read_clip, split_rows
from tests.conftest import REPO, TEST_SOUNDFONT, like_a_terminal, run_cli, tiny_config


def write_config(tmp_path, *overrides):
    path = tmp_path / "tiny.toml"
    path.write_text(to_toml(tiny_config(tmp_path, *overrides)))
    return path


def assert_one_line_error(proc, *fragments):
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.mark.parametrize("override, fragments", [
    ('data.instruments=["Violn"]', ("unknown instrument 'Violn'", "Violin")),
    ("data.note_high=130", ("data.note_high = 130 is out of range",)),
    ('data.soundfont="/nowhere/FluidR3.sf2"', ("soundfont /nowhere/FluidR3.sf2 not found",)),
    ('data.soundfont="/nowhere/FluidR3_GM.sf2"', ("soundfont /nowhere/FluidR3_GM.sf2 not found",
                                                  "installed as /usr/share/sounds/sf2/FluidR3_GM.sf2")),
    ('data.soundfont="NoSuchFont.sf2"', ("soundfont NoSuchFont.sf2 not found in the soundfont folders",
                                         "PIPELINE_SOUNDFONT_PATH")),
    ("data.colour=1", ("unknown config key data.colour",)),
    ("data.velocities=[200]", ("data.velocities = 200 is out of range",)),
    ('split.test_instruments=["Cello"]', ("'Cello', which is not in data.instruments",)),
])
def test_bad_input_gets_one_line(tmp_path, override, fragments):
    config = write_config(tmp_path)
    assert_one_line_error(run_cli("data", "--config", str(config), "--set", override), *fragments)


def test_corrupt_soundfont(tmp_path):
    truncated = tmp_path / "truncated.sf2"
    truncated.write_bytes(open("/usr/share/sounds/sf2/TimGM6mb.sf2", "rb").read(100_000))
    config = write_config(tmp_path, f'data.soundfont="{truncated}"')
    assert_one_line_error(run_cli("data", "--config", str(config)), "is corrupt (truncated")
    garbled = tmp_path / "garbled.sf2"
    body = b"sfbkLIST" + b"\x07" * 64
    garbled.write_bytes(b"RIFF" + len(body).to_bytes(4, "little") + body)
    config = write_config(tmp_path, f'data.soundfont="{garbled}"')
    assert_one_line_error(run_cli("data", "--config", str(config)), "could not be loaded by FluidSynth")


def test_missing_fluidsynth_library(tmp_path):
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "fluidsynth.py").write_text("raise ImportError(\"Couldn't find the FluidSynth library.\")\n")
    config = write_config(tmp_path)
    proc = run_cli("data", "--config", str(config), env={"PYTHONPATH": f"{shadow}:{REPO}"})
    assert_one_line_error(proc, "FluidSynth library", "apt-get install libfluidsynth3")


def test_missing_sox(tmp_path):
    config = write_config(tmp_path, 'data.resampler="sox"')
    proc = run_cli("data", "--config", str(config), env={"PATH": str(tmp_path)})
    assert_one_line_error(proc, "sox program is missing", "apt-get install sox")


def test_sox_is_needed_only_by_builds_that_run_it(tmp_path):
    """The default resampler is libsoxr in-process: no sox on PATH, still the very dataset a
    build with sox at hand gives, every clip of the manifest on disk."""
    from pipeline.data.dataset import build_dataset

    config = write_config(tmp_path, "data.note_high=59")
    proc = run_cli("data", "--config", str(config), env={"PATH": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    data_dir = tmp_path / "data" / "default"
    built = load_manifest(data_dir)
    assert len(built) and set(built["midi"]) == {57, 58, 59}
    assert sorted(p.relative_to(data_dir).as_posix() for p in data_dir.rglob("*.wav")) == sorted(built["path"])
    with_sox = tiny_config(tmp_path / "with_sox", "data.note_high=59")
    build_dataset(with_sox)
    assert (with_sox.data_dir / "manifest.csv").read_bytes() == (data_dir / "manifest.csv").read_bytes()
    for path in built["path"]:
        assert (with_sox.data_dir / path).read_bytes() == (data_dir / path).read_bytes(), path


def test_check_reports_what_a_build_needs(tmp_path):
    """`pipeline check`: the resampler, the soundfont by checksum, the instruments; and a clear
    line when a tool the build needs is missing."""
    config = write_config(tmp_path)
    proc = run_cli("check", "--config", str(config))
    assert proc.returncode == 0, proc.stderr
    sha256 = hashlib.sha256(Path(TEST_SOUNDFONT).read_bytes()).hexdigest()
    assert sha256[:16] in proc.stdout and "TimGM6mb" in proc.stdout
    assert "instruments: 5 OK" in proc.stdout and "soxr" in proc.stdout
    assert "clips: 16000 Hz mono 16-bit WAV, 5,280 samples (330 ms)" in proc.stdout
    assert not list(tmp_path.glob("data/*")), "check wrote outputs"
    no_sox = run_cli("check", "--config", str(config), "--set", 'data.resampler="sox"', env={"PATH": str(tmp_path)})
    assert_one_line_error(no_sox, "sox program is missing", "apt-get install sox")


def test_params_writes_the_stage_slice_and_ignores_where_work_runs(tmp_path):
    """`pipeline params data`: the data stage's sections and the soundfont's checksum, without
    data.workers and data.scheduler; rewritten only when the slice changes."""
    config = write_config(tmp_path)
    out = tmp_path / "data.json"
    assert_one_line_error(run_cli("params", "data", "--config", str(config), "--out", str(out)),
                          "is not this folder", "make builds, checks and cleans only")   # make knows only "."
    assert not out.exists()
    assert run_cli("params", "data", "--config", str(config), "--out", str(out), cwd=tmp_path).returncode == 0
    text, mtime = out.read_text(), out.stat().st_mtime_ns
    params = json.loads(text)
    assert {"data", "augment", "gate", "split"} <= set(params) and "model" not in params
    assert "workers" not in params["data"] and "scheduler" not in params["data"]
    assert hashlib.sha256(Path(TEST_SOUNDFONT).read_bytes()).hexdigest() in text
    same = run_cli("params", "data", "--config", str(config), "--out", str(out), "--set", "data.workers=1",
                   "--set", 'data.scheduler="tcp://10.0.0.1:8786"', cwd=tmp_path)
    assert same.returncode == 0 and out.stat().st_mtime_ns == mtime and out.read_text() == text
    other = run_cli("params", "data", "--config", str(config), "--out", str(out), "--set", "data.seed=1", cwd=tmp_path)
    assert other.returncode == 0 and json.loads(out.read_text())["data"]["seed"] == 1


def test_features_from_the_command_line(tmp_path, tiny_dataset):
    """`pipeline features` writes the split files that load_split accepts, scipy's values bit for
    bit, and a second run leaves them alone."""
    import scipy.signal

    from pipeline.data.feature_files import load_split, split_path
    from pipeline.dsp.spectrogram import LOG_EPSILON

    config = write_config(tmp_path)
    cfg = load_config(config)
    shutil.copytree(tiny_dataset.data_dir, cfg.data_dir, ignore=shutil.ignore_patterns("features"))
    first = run_cli("features", "--config", str(config), "--workers", "2")
    assert first.returncode == 0, first.stderr
    features, rows = load_split(cfg, "train")
    assert len(rows) == len(split_rows(load_manifest(cfg.data_dir), "train")) > 0
    for i in (0, len(rows) - 1):
        _, _, magnitude = scipy.signal.spectrogram(read_clip(cfg.data_dir / rows["path"].iloc[i]), fs=16000,
                                                   window="hann", nperseg=256, noverlap=200, nfft=1024,
                                                   mode="magnitude")
        np.testing.assert_array_equal(features[i], np.log(magnitude + LOG_EPSILON).astype(np.float16))
    mtime = split_path(cfg, "train").stat().st_mtime_ns
    second = run_cli("features", "--config", str(config))
    assert second.returncode == 0 and "up to date" in second.stdout
    assert split_path(cfg, "train").stat().st_mtime_ns == mtime


def test_a_root_that_is_no_folder_is_one_line(tmp_path):
    """root (where data/, models/ and reports/ go) is an existing folder or a new one in an existing
    folder: a file, or a path whose folders do not exist (a typo that would plant an output tree
    somewhere unexpected), is refused before anything is written."""
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    for root, message in ((blocker, "is a file, not a folder"), (tmp_path / "typo" / "out", "is not in an existing "
                                                                 f"folder ({tmp_path / 'typo'} is missing)")):
        config = tmp_path / "root.toml"
        config.write_text(to_toml(dataclasses.replace(tiny_config(tmp_path), root=str(root))))
        assert_one_line_error(run_cli("data", "--config", str(config)), f"config root {root} {message}")
    assert not (tmp_path / "typo").exists()


def test_unreadable_config_file(tmp_path):
    broken = tmp_path / "broken.toml"
    broken.write_text("[data\nnote_low = 3")
    assert_one_line_error(run_cli("data", "--config", str(broken)), "not valid TOML")
    assert_one_line_error(run_cli("data", "--config", str(tmp_path / "none.toml")), "not found")


def _start_build(config):
    return subprocess.Popen([sys.executable, "-m", "pipeline", "data", "--config", str(config)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=like_a_terminal)


def _wait_for_shards(data_dir, count, proc):
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if len(list((data_dir / "shards").glob("*.csv"))) >= count:
            return
        time.sleep(0.05)
    raise AssertionError("the build finished or stalled before it could be interrupted")


def test_interrupted_build_resumes_to_the_same_dataset(tmp_path, tiny_dataset):
    config = write_config(tmp_path, "data.shard_size=2", "data.workers=1")
    data_dir = tmp_path / "data" / "default"

    proc = _start_build(config)
    _wait_for_shards(data_dir, 2, proc)
    proc.send_signal(signal.SIGINT)  # Ctrl-C
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err and "run the same command again" in err

    proc = _start_build(config)
    _wait_for_shards(data_dir, 6, proc)
    proc.kill()  # no chance to clean up
    proc.wait()
    assert not (data_dir / "manifest.csv").exists()

    done = run_cli("data", "--config", str(config))
    assert done.returncode == 0, done.stderr
    assert "clips/s" in done.stdout
    assert not [p for p in data_dir.rglob("*") if p.name.startswith(".")]  # no temp file survives
    assert (data_dir / "manifest.csv").read_bytes() == (tiny_dataset.data_dir / "manifest.csv").read_bytes()


def test_scheduler_flag_is_the_config_key():
    from pipeline.cli import build_parser, config_from_args

    args = build_parser().parse_args(["features", "--scheduler", "tcp://10.0.0.1:8786"])
    assert config_from_args(args).data.scheduler == "tcp://10.0.0.1:8786"


def test_every_option_has_help_and_there_is_a_version(capsys):
    from pipeline.cli import build_parser

    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # argparse has no public way to list them
    assert {"data", "features", "train", "report", "check", "predict", "evaluate", "params"} <= set(commands)
    for name, sub in [("pipeline", parser), *commands.items()]:
        for action in sub._actions:
            assert action.help, f"{name} {action.option_strings or action.dest} has no help text"
    with pytest.raises(SystemExit) as done:
        parser.parse_args(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"pipeline {pipeline.__version__}"


def test_train_keeps_tensorflows_start_up_lines_off_the_terminal():
    """oneDNN's notice and absl's pre-init warning are written while TensorFlow loads; the
    import is the only thing silenced, so a real error still reaches stderr."""
    code = ("from pipeline.core.backend import import_keras; import sys; import_keras(); "
            "print('after', file=sys.stderr); import keras; keras.ops.convert_to_tensor([1.0])")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={k: v for k, v in os.environ.items() if not k.startswith("TF_CPP")})
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "after"


# --- issue 25: the first hour -------------------------------------------------------------------
def test_without_a_config_every_command_uses_the_default_config_from_any_folder(tmp_path):
    """The bare command line, make and load_config() share one default config; its soundfonts are
    found by name, so `pipeline check` works outside the checkout."""
    bare, named = tmp_path / "bare.json", tmp_path / "named.json"
    assert run_cli("params", "train", "--out", str(bare), cwd=tmp_path).returncode == 0
    assert run_cli("params", "train", "--config", str(REPO / "configs" / "default.toml"), "--out", str(named)
                   ).returncode == 0
    assert bare.read_text() == named.read_text() and '"epochs": 8' in bare.read_text()  # not the built-in 30
    check = run_cli("check", cwd=tmp_path)
    assert check.returncode == 0, check.stderr
    for font in ("FluidR3_GM.sf2", "MuseScore_General.sf3", "TimGM6mb.sf2"):
        assert f"soundfont: {font} sha256" in check.stdout
    assert "(12 instruments)" in check.stdout and "instruments: 12 OK" in check.stdout
    printed = run_cli("config", "--set", "train.epochs=3", cwd=tmp_path)
    assert 'name = "default"' in printed.stdout and "epochs = 3" in printed.stdout


def test_only_the_stages_that_use_workers_take_workers():
    for command in ("train", "report", "check"):
        done = run_cli(command, "--workers", "2")
        assert done.returncode == 2 and "unrecognized arguments: --workers" in done.stderr


def test_predict_reads_folders_and_standard_input(tmp_path):
    notes = tmp_path / "notes"
    (notes / "sub").mkdir(parents=True)
    t = np.arange(16000) / 16000
    for name, hz in (("a4.wav", 440.0), ("sub/e5.flac", 659.26)):
        sf.write(notes / name, 0.4 * np.sin(2 * np.pi * hz * t), 16000)
    folder = run_cli("--progress", "predict", "--summary", "--jobs", "2", "notes", cwd=tmp_path)
    assert folder.returncode == 0, folder.stderr
    assert [line.split(",")[1].split()[0] for line in folder.stdout.splitlines()] == ["A4", "E5"]
    assert folder.stdout.splitlines()[0].startswith("notes/a4.wav: ") and "predict" in folder.stderr  # the bar
    piped = subprocess.run([sys.executable, "-m", "pipeline", "predict", "-"], input=(notes / "a4.wav").read_bytes(),
                           capture_output=True, cwd=tmp_path, timeout=300)
    assert piped.returncode == 0, piped.stderr
    rows = piped.stdout.decode().splitlines()
    assert rows[0] == "time,frequency,confidence" and len(rows) == 1 + 101
    assert abs(float(rows[50].split(",")[1]) - 440.0) < 5
    refused = run_cli("predict", "--no-refine", "notes", cwd=tmp_path)
    assert refused.returncode == 2 and "--no-refine applies to --summary only" in refused.stderr
