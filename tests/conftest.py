"""Shared fixtures: tiny real datasets rendered with FluidSynth and the small TimGM6mb font."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.core.config import Config, load_config

REPO = Path(__file__).resolve().parents[1]
TEST_SOUNDFONT = "/usr/share/sounds/sf2/TimGM6mb.sf2"
TINY_INSTRUMENTS = '["Violin", "Acoustic Grand Piano", "Flute", "Trumpet", "Clarinet"]'


@pytest.fixture(autouse=True, scope="session")
def library_logs_on_the_console():
    """The library logs (it never prints); the CLI shows those lines on stdout and stderr. Tests that
    call the library directly read them the same way, with capsys."""
    from pipeline.cli import configure_logging

    configure_logging()


def tiny_phrase_config(root: Path, *overrides: str) -> Config:
    """Phrases only: one of TimGM6mb's square lead, one sawtooth tone, two voices (male, soprano),
    2.5 s each, all in train (a random split with no test or validation share)."""
    font = REPO / "soundfonts" / "TimGM6mb.sf2"
    return load_config(None, [f'root="{root}"', "name=phr", f'data.soundfonts=["{font}"]',
                              'data.instruments=["Lead 1 (square)"]', "data.notes=false", "phrases.enabled=true",
                              "phrases.seconds=2.5", "phrases.per_instrument=1", "phrases.instruments=[]",
                              'tones.kinds=["sawtooth"]', "phrases.tones=1", "phrases.voices=2",
                              'phrases.registers=["male", "soprano"]', "split.test=random", "split.test_share=0.0",
                              "split.val_share=0.0", "data.workers=1", *overrides])


def tiny_config(root: Path, *overrides: str) -> Config:
    """A few notes of a few instruments; Flute is the held-out test instrument."""
    base = [f'root="{root}"', f'data.soundfonts=["{TEST_SOUNDFONT}"]', f"data.instruments={TINY_INSTRUMENTS}",
            "data.note_low=57", "data.note_high=81", "data.velocities=[100]", "data.shard_size=8",
            'split.test_instruments=["Flute"]', "split.val_share=0.2"]
    return load_config(None, [*base, *overrides])


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Config:
    """A built tiny dataset (about 125 notes, 375 clips), shared by every test that only reads it."""
    from pipeline.data.dataset import build_dataset

    cfg = tiny_config(tmp_path_factory.mktemp("tiny"))
    build_dataset(cfg)
    return cfg


def built(cfg: Config, dataset: Config | None = None, trained: bool = False) -> Config:
    """`cfg` with its dataset (a copy of `dataset`'s, or rendered), its features and, when `trained`,
    its model; what the stages print kept off stdout."""
    import contextlib
    import io
    import shutil

    from pipeline.data.features import build_features

    with contextlib.redirect_stdout(io.StringIO()):
        if dataset is not None:
            shutil.copytree(dataset.data_dir, cfg.data_dir)
        else:
            from pipeline.data.dataset import build_dataset

            build_dataset(cfg)
        build_features(cfg)
        if trained:
            from pipeline.model.training import train

            train(cfg)
    return cfg


def run_cli(*args: str, env: dict | None = None, cwd: Path = REPO) -> subprocess.CompletedProcess:
    """Run `python -m pipeline ARGS` as a user would; returns the finished process."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "pipeline", *args], capture_output=True, text=True,
                          env=full_env, cwd=cwd, timeout=600)


# --- a real trained model, shared ---------------------------------------------------------
TINY_MODEL = ("model.width=0.0625", "model.dense_units=[32]", "model.reference_width=0.0625",
              "train.batch_size=16", "train.schedule=\"constant\"", "train.learning_rate=0.003")


@pytest.fixture(scope="session")
def trained_tiny(tiny_dataset, tmp_path_factory) -> Config:
    """The shared tiny dataset with its features and a small trained model: the bins model
    (6 epochs, enough for confident estimates) and the comparison reference regressor (1 epoch),
    for the tests that need a real model. Read-only: copy what a test changes."""
    return built(tiny_config(tmp_path_factory.mktemp("trained"), *TINY_MODEL, "train.epochs=6",
                             "train.reference_epochs=1", "train.compare_reference=true"), tiny_dataset, trained=True)


# --- slow tests -------------------------------------------------------------------------------
# `make test-fast` (pytest -m "not slow") leaves these out; `make test` and CI run everything. Measured
# with --durations on 2 busy cores (docs/testing.md): a file over about 20 s, or a test over 5 s in a
# file that is otherwise quick. A key is a file or a test (its parametrised cases included).
SLOW = {
    "tests/test_make.py": "make in a copy of the repository, up to a trained model (about 2 min)",
    "tests/test_faults.py": "stages killed at random moments and resumed, damaged outputs repaired (2 min)",
    "tests/test_bench.py": "the benchmarks' quick run",
    "tests/test_packaging.py": "builds the wheel; the light install reaches PyPI",
    "tests/experiments/test_experiments.py": "the write-ups' experiments, trained",
    "tests/report/test_report_e2e.py": "the report end to end on a trained model, with the baselines",
    "tests/model/test_training.py": "training, distributed training over two workers and two devices",
    "tests/model/test_training_promises.py": "a run killed and resumed, early stopping, the reference targets",
    "tests/model/test_checkpoints.py": "a killed run and five damaged checkpoints, trained again",
    "tests/inference/test_prediction.py": "trains the bins model it predicts with",
    "tests/data/test_dataset.py": "a dozen dataset builds (sources, workers, sox, augmentation, resume)",
    "tests/data/test_cluster.py": "a local Dask cluster, workers killed",
    "tests/data/test_configurable_audio.py": "44.1 kHz FLAC and 22.05 kHz 24-bit builds, trained and exported (40 s)",
    "tests/data/test_accuracy.py": "loads MuseScore_General and FluidR3 (tens of MB each)",
    "tests/test_cli.py::test_sox_is_needed_only_by_builds_that_run_it": "two dataset builds",
    "tests/test_cli.py::test_interrupted_build_resumes_to_the_same_dataset": "a build stopped and resumed",
    "tests/test_cli.py::test_train_keeps_tensorflows_start_up_lines_off_the_terminal": "starts TensorFlow",
}


def is_slow(nodeid: str) -> bool:
    test = nodeid.split("[")[0]
    return nodeid.split("::")[0] in SLOW or test in SLOW


def pytest_collection_modifyitems(config, items):
    for item in items:
        if is_slow(item.nodeid):
            item.add_marker(pytest.mark.slow)


# --- skips are never silent ---------------------------------------------------------------
# Modules whose absence fails the tests that need them instead of skipping them. `make test`
# installs the cluster and formats extras (in [all]), so a missing Dask or pyarrow there is a broken
# install, not an option (the formats tests once skipped in CI, unnoticed, for want of [formats]).
# PIPELINE_TEST_REQUIRE adds more, comma-separated (.ci/run adds torchcrepe once it installed it).
REQUIRED_MODULES = ("dask", "distributed", "pyarrow")


def required_modules() -> set[str]:
    extra = os.environ.get("PIPELINE_TEST_REQUIRE", "")
    return {*REQUIRED_MODULES, *(name.strip() for name in extra.split(",") if name.strip())}


def skip_reason(report) -> str:
    longrepr = report.longrepr
    reason = str(longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else longrepr)
    return reason.removeprefix("Skipped: ")


def _fail_a_required_skip(report) -> None:
    """A skip for want of a required module becomes a failure that names the module."""
    import re

    if not report.skipped or hasattr(report, "wasxfail"):
        return
    reason = skip_reason(report)
    wanted = sorted(m for m in required_modules() if re.search(rf"(?<![\w.]){re.escape(m)}(?![\w])", reason))
    if wanted:
        fix = ("make test installs it (pip install -e .[all,test])" if set(wanted) & set(REQUIRED_MODULES)
               else "install it (see .ci/run) or drop it from PIPELINE_TEST_REQUIRE")
        report.outcome = "failed"
        report.longrepr = f"skipped for want of {', '.join(wanted)}, which this test run requires ({reason}); {fix}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    _fail_a_required_skip(report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector):
    report = yield
    _fail_a_required_skip(report)   # a module-level importorskip skips the whole file
    return report


def pytest_terminal_summary(terminalreporter):
    """Every skip, loudly, after the run: a skipped test is a promise nobody checked."""
    skipped = terminalreporter.stats.get("skipped", [])
    if not skipped:
        return
    terminalreporter.write_sep("!", f"{len(skipped)} SKIPPED: these checks did not run", red=True, bold=True)
    for report in skipped:
        terminalreporter.write_line(f"SKIPPED {report.nodeid}: {skip_reason(report)}", red=True, bold=True)
    terminalreporter.write_line("Install what they need (.ci/run does), or list the module in PIPELINE_TEST_REQUIRE "
                                "to make such a skip fail.", red=True)


# --- processes ------------------------------------------------------------------------------
def process_running(process) -> bool:
    """Still running (a zombie counts as ended)."""
    import psutil

    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def assert_processes_gone(processes, within: float) -> None:
    """Every process has ended within `within` seconds; else the assertion names those left,
    with their command lines."""
    import time

    import psutil

    def command(process) -> str:
        try:
            return " ".join(process.cmdline())[-120:]
        except psutil.Error:
            return "?"

    deadline = time.monotonic() + within
    left = list(processes)
    while left and time.monotonic() < deadline:
        left = [p for p in left if process_running(p)]
        time.sleep(0.05)
    assert not left, f"processes left behind: {[(p.pid, command(p)) for p in left]}"


def like_a_terminal() -> None:
    """preexec_fn for a stage run as a user runs it in a terminal: SIGINT at its default. A shell
    that started the tests in the background (`make test &`) ignores SIGINT, its children inherit
    that, and the pipeline keeps an inherited ignore (as `nohup` users expect)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
