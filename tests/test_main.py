"""`python -m pipeline` and stop signals, as a user's terminal sends them: Ctrl-C (SIGINT to the job's
process group), SIGTERM (kill) and SIGHUP (a closed terminal) stop any command with one line and exit
128 + the signal's number, also while the command line is still being imported; signals that follow
during the stop are ignored; a signal ignored from the start (nohup) stays ignored.

The command waited on is `pipeline predict - --summary`, which reads audio from standard input: it
waits there, cheaply, for as long as a test needs, and its stop has a clean-up to do (its scratch
folder). Some tests run the program through a small driver that does one real thing at a chosen
moment (send the process a signal as a module starts to be imported, or as the stop's clean-up runs),
then runs `python -m pipeline` itself (runpy)."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from pipeline.core.errors import STOPPED
from tests.conftest import REPO, like_a_terminal

HANG = 30.0       # bound on a wait: only a hang reaches it
LET_IT_STOP = 1.0
SIGNALS = {"ctrl-c": signal.SIGINT, "term": signal.SIGTERM, "hup": signal.SIGHUP}


def wav_bytes(seconds: float = 3.0) -> bytes:
    """A 440 Hz tone as a 16-bit WAV file's bytes (96 KB for 3 s: more than the 64 KiB stdin is read by)."""
    t = np.arange(round(seconds * 16000)) / 16000
    out = io.BytesIO()
    sf.write(out, (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 16000, format="WAV", subtype="PCM_16")
    return out.getvalue()


def driver(setup: str = "") -> list[str]:
    """The command line of `python -m pipeline` run by runpy after `setup` (Python code) ran."""
    code = f"import os, runpy, signal, sys\n{setup}\nrunpy.run_module('pipeline', run_name='__main__', alter_sys=True)"
    return [sys.executable, "-c", code]


STARTED: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def nothing_left_running():
    """A test that fails leaves no program waiting on its standard input."""
    yield
    while STARTED:
        proc = STARTED.pop()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate(timeout=HANG)


def start(tmp_path: Path, preexec=like_a_terminal, program: list[str] | None = None) -> subprocess.Popen:
    """`pipeline predict - --summary` in its own process group (a terminal's job), SIGINT at its
    default, its scratch folders under tmp_path/scratch, standard input a pipe this test writes."""
    env = {**os.environ, "TMPDIR": str(tmp_path / "scratch"), "PYTHONPATH": str(REPO)}
    (tmp_path / "scratch").mkdir(exist_ok=True)
    command = (program or [sys.executable, "-m", "pipeline"]) + ["predict", "-", "--summary"]
    proc = subprocess.Popen(command, cwd=REPO, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True, preexec_fn=preexec)
    STARTED.append(proc)
    return proc


def caught(pid: int) -> set[int]:
    """The signals the process has a handler for (Linux's SigCgt)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            mask = int(line.split()[1], 16)
            return {n for n in range(1, 65) if mask >> (n - 1) & 1}
    return set()


def wait_for(ready, proc: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + HANG
    while not ready():
        assert proc.poll() is None, f"ended before {what}: {proc.communicate()[1].decode()[-2000:]}"
        assert time.monotonic() < deadline, f"never {what}"
        time.sleep(0.001)


def reading_stdin(proc: subprocess.Popen, tmp_path: Path) -> None:
    """Give it the first 64 KiB of a WAV file and wait until it has saved them: the command runs."""
    proc.stdin.write(wav_bytes()[:70000])
    proc.stdin.flush()
    saved = lambda: any(p.stat().st_size for p in (tmp_path / "scratch").glob("pipeline-predict-*/stdin"))  # noqa: E731
    wait_for(saved, proc, "reading standard input")


def stopped(proc: subprocess.Popen) -> tuple[int, list[str]]:
    """The exit code and stderr's lines of a program stopped by a signal. It is given LET_IT_STOP s to end
    with its standard input open; then its input is closed: a signal that the kernel gave to one of a
    library's threads (numpy's and scipy's OpenBLAS start some) while the main thread waited in read()
    is acted on when that read returns (only Python's main thread runs handlers)."""
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=LET_IT_STOP)
    _, err = proc.communicate(timeout=HANG)
    return proc.returncode, err.decode().splitlines()


def assert_stopped_tidily(proc: subprocess.Popen, signum: int, tmp_path: Path) -> None:
    code, lines = stopped(proc)
    assert (code, lines) == (128 + signum, [STOPPED])
    assert list((tmp_path / "scratch").iterdir()) == []       # the stop removed its scratch folder


# --- during a command ----------------------------------------------------------------------------
@pytest.mark.parametrize("how", list(SIGNALS))
def test_a_stop_signal_during_a_command_is_one_line_and_128_plus_its_number(tmp_path, how):
    proc = start(tmp_path)
    reading_stdin(proc, tmp_path)
    if how == "ctrl-c":
        os.killpg(proc.pid, signal.SIGINT)
    else:
        os.kill(proc.pid, SIGNALS[how])
    assert_stopped_tidily(proc, SIGNALS[how], tmp_path)


def test_stop_signals_during_the_stop_are_ignored(tmp_path):
    """Ctrl-C; while the stop removes the scratch folder, SIGTERM, Ctrl-C and SIGHUP arrive: the stop
    finishes as the first signal asked (one line, 130, no folder left)."""
    mark = tmp_path / "more_signals_sent"
    setup = (f"import shutil\nreal = shutil.rmtree\n"
             f"def rmtree(*args, **kwargs):\n"
             f"    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):\n"
             f"        os.kill(os.getpid(), s)\n"
             f"    open({str(mark)!r}, 'w').close()\n"
             f"    return real(*args, **kwargs)\n"
             f"shutil.rmtree = rmtree")
    proc = start(tmp_path, program=driver(setup))
    reading_stdin(proc, tmp_path)
    os.killpg(proc.pid, signal.SIGINT)
    assert_stopped_tidily(proc, signal.SIGINT, tmp_path)
    assert mark.exists(), "the stop's clean-up did not run: nothing was tested"


# --- while the command line is being imported -------------------------------------------------------
def on_import_of(module: str, signum: int, mark: Path) -> str:
    """Setup code that sends the process `signum` as `module` starts to be imported (the first time)."""
    return (f"class Stop:\n"
            f"    def find_spec(self, name, path=None, target=None):\n"
            f"        if name == {module!r}:\n"
            f"            sys.meta_path.remove(self)\n"
            f"            open({str(mark)!r}, 'w').close()\n"
            f"            os.kill(os.getpid(), {int(signum)})\n"
            f"        return None\n"
            f"sys.meta_path.insert(0, Stop())")


# pipeline.cli: the command line itself, before its handlers are set; datetime: imported by numpy's C
# extension as it loads (a Python exception raised inside comes out as numpy's ImportError)
IMPORTS = [(how, module) for module in ("pipeline.cli", "datetime") for how in SIGNALS]


@pytest.mark.parametrize("how, module", IMPORTS, ids=[f"{h}@{m}" for h, m in IMPORTS])
def test_a_stop_signal_while_a_module_is_imported_is_one_line(tmp_path, how, module):
    mark = tmp_path / "sent"
    proc = start(tmp_path, program=driver(on_import_of(module, SIGNALS[how], mark)))
    code, lines = stopped(proc)
    assert mark.exists()
    assert (code, lines) == (128 + SIGNALS[how], [STOPPED])


# each signal at a few moments soon after the program set its handlers (its imports, argument parsing,
# the model's loading, the read): never a traceback, always the one line
EARLY = [(how, delay) for how in ("ctrl-c", "term") for delay in (0.0, 0.005, 0.02, 0.06, 0.15, 0.4)]


@pytest.mark.parametrize("how, delay", EARLY, ids=[f"{h}+{d}s" for h, d in EARLY])
def test_a_stop_signal_early_in_the_program_is_one_line(tmp_path, how, delay):
    proc = start(tmp_path)
    wait_for(lambda: signal.SIGTERM in caught(proc.pid), proc, "setting its handlers")
    time.sleep(delay)
    if how == "ctrl-c":
        os.killpg(proc.pid, signal.SIGINT)
    else:
        os.kill(proc.pid, SIGNALS[how])
    code, lines = stopped(proc)
    assert (code, lines) == (128 + SIGNALS[how], [STOPPED])


# --- nohup: an ignored signal stays ignored ---------------------------------------------------------
def nohup():
    like_a_terminal()
    signal.signal(signal.SIGHUP, signal.SIG_IGN)


@pytest.mark.parametrize("when", ["while importing", "during the command"])
def test_a_signal_ignored_from_the_start_stays_ignored(tmp_path, when):
    """Under nohup, SIGHUP (the terminal closing) is ignored before the program starts: it neither stops
    the program while it is imported nor later; the command finishes its work."""
    mark = tmp_path / "sent"
    program = driver(on_import_of("pipeline.cli", signal.SIGHUP, mark)) if when == "while importing" else None
    proc = start(tmp_path, preexec=nohup, program=program)
    if when == "during the command":
        reading_stdin(proc, tmp_path)
        os.kill(proc.pid, signal.SIGHUP)
        mark.touch()
    wait_for(mark.exists, proc, "sent SIGHUP")
    time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()[1].decode()
    out, err = proc.communicate(wav_bytes(), timeout=HANG)
    assert proc.returncode == 0, err.decode()
    assert out.decode().startswith("-: 440.") and " A4 " in out.decode()
