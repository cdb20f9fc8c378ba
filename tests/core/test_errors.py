"""A stop by signal that Python swallows on its way up (raised in a finalizer) is not lost: the
CLI still ends as a stop, 128 + the signal, with its one line, not as the error that followed it."""

from __future__ import annotations

import contextlib
import gc
import io
import signal
import sys

import pytest

from pipeline import cli
from pipeline.core.errors import STOPPED, PipelineError, stop, stop_received

# Python reports the exception it swallowed: that is the case under test
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


class StoppedInFinalizer:
    """Receives a SIGTERM while Python finalizes it (as multiprocessing's Popen finalizer did)."""

    def __del__(self):
        stop(signal.SIGTERM, None, ignore_more=False)


def test_a_stop_raised_in_a_finalizer_is_remembered():
    stop_received(forget=True)
    StoppedInFinalizer()
    gc.collect()
    assert stop_received(forget=True) == signal.SIGTERM
    assert stop_received() is None


def test_the_cli_ends_a_swallowed_stop_as_a_stop(monkeypatch):
    def broken_by_the_stop(args):
        StoppedInFinalizer()
        gc.collect()
        raise PipelineError("a worker process died")

    monkeypatch.setattr(cli, "_cmd_config", broken_by_the_stop)
    monkeypatch.setattr(sys, "unraisablehook", sys.__unraisablehook__)   # Python's own: it prints to stderr
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = cli.main(["config"])
    assert code == 128 + signal.SIGTERM
    assert err.getvalue().strip().splitlines() == [STOPPED]   # no "Exception ignored in", no worker line


def test_the_cli_forgets_the_stop_of_an_earlier_call(monkeypatch):
    monkeypatch.setattr(cli, "_cmd_config", lambda args: (StoppedInFinalizer(), gc.collect(), 0)[-1])
    with contextlib.redirect_stderr(io.StringIO()):
        assert cli.main(["config"]) == 128 + signal.SIGTERM
    monkeypatch.setattr(cli, "_cmd_config", lambda args: 0)
    assert cli.main(["config"]) == 0


def test_a_stop_waits_for_multiprocessing_to_finish_cleaning_up_a_semaphore():
    """Cut between unlinking a semaphore and telling the resource tracker, a stop made the tracker print
    a leak warning at exit: there, as in an import, the stop waits (it is sent again right after)."""
    from types import SimpleNamespace as Frame

    from pipeline.core import errors

    def frame(path, name, back=None):
        return Frame(f_code=Frame(co_filename=path, co_name=name), f_back=back)

    ours = frame("/repo/pipeline/core/workers.py", "collect")
    cleanup = frame("/usr/lib/python3.11/multiprocessing/synchronize.py", "_cleanup", ours)
    telling = frame("/usr/lib/python3.11/multiprocessing/resource_tracker.py", "_send", cleanup)
    assert errors.stop_must_wait(cleanup) and errors.stop_must_wait(telling)
    assert not errors.stop_must_wait(ours)
    assert not errors.stop_must_wait(frame("/usr/lib/python3.11/multiprocessing/synchronize.py", "acquire", ours))
