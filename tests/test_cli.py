"""The command line as a user meets it: one clear line per mistake, no traceback, a non-zero exit."""

import os
import signal
import subprocess
import sys
import time
from importlib import metadata

import pytest

from pipeline.config import to_toml
from tests.conftest import REPO, run_cli, tiny_config


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
    ('data.soundfont="/nowhere/FluidR3.sf2"', ("soundfont /nowhere/FluidR3.sf2 not found", "apt-get install")),
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
    """The default resampler is libsoxr in-process: no sox on PATH, still a dataset."""
    config = write_config(tmp_path, "data.note_high=59")
    proc = run_cli("data", "--config", str(config), env={"PATH": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    assert list((tmp_path / "data").rglob("*.wav"))


def test_unwritable_output_folder(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    config = write_config(tmp_path, f'root="{blocker}"')
    assert_one_line_error(run_cli("data", "--config", str(config)), "cannot create output folder")


def test_unreadable_config_file(tmp_path):
    broken = tmp_path / "broken.toml"
    broken.write_text("[data\nnote_low = 3")
    assert_one_line_error(run_cli("data", "--config", str(broken)), "not valid TOML")
    assert_one_line_error(run_cli("data", "--config", str(tmp_path / "none.toml")), "not found")


def _start_build(config):
    # a shell started in the background ignores SIGINT and children inherit that: undo it
    return subprocess.Popen([sys.executable, "-m", "pipeline", "data", "--config", str(config)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


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
    assert capsys.readouterr().out.strip() == f"pipeline {metadata.version('pitch-pipeline')}"


def test_train_keeps_tensorflows_start_up_lines_off_the_terminal():
    """oneDNN's notice and absl's pre-init warning are written while TensorFlow loads; the
    import is the only thing silenced, so a real error still reaches stderr."""
    code = ("from pipeline.model import import_keras; import sys; import_keras(); "
            "print('after', file=sys.stderr); import keras; keras.ops.convert_to_tensor([1.0])")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={k: v for k, v in os.environ.items() if not k.startswith("TF_CPP")})
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "after"
