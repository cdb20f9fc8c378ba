"""The one exception type users see: its message names the problem and the fix.

Also what the CLI says for the operating system's errors a user can fix (a full disk, a file
it may not read), how a stop by signal travels (`Interrupted`), and the means to keep C
libraries' own chatter off the user's terminal, where it would bury that one line.
"""

import contextlib
import errno
import os
import signal
import sys
import threading
import time

DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
NOT_PERMITTED = (errno.EACCES, errno.EPERM)


class PipelineError(Exception):
    """A problem with the user's input or environment, reported as one line by the CLI."""


STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))
STOPPED = "interrupted: finished outputs are kept; run the same command again to resume"


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or a termination signal (`signum`): the stage stops, keeps what it finished, and
    the CLI exits with 128 + signum. A KeyboardInterrupt, so code that handles Ctrl-C handles it."""

    def __init__(self, signum: int = signal.SIGINT):
        super().__init__(signum)
        self.signum = signum


def stop(signum: int, frame, ignore_more: bool = True) -> None:
    """A stop signal's handler (in the main thread): raise Interrupted(signum) where the program is; with
    `ignore_more`, the stop signals that follow are ignored (they would break the stop itself).

    Not inside an import: a C extension's import (numpy's) turns an exception raised in the modules it
    imports into its own ImportError (a traceback instead of the stop), and a library's `except
    ImportError` would then swallow the stop. Nor inside multiprocessing's clean-up of a semaphore (it
    unlinks it, then tells the resource tracker: cut between the two, the tracker prints a leak
    warning at exit). There the signal is sent again to the main thread as soon as the import or the
    clean-up is over (a thread watches the main thread's stack)."""
    _RECEIVED.setdefault("signum", signum)
    if stop_must_wait(frame) and not _PENDING.get("forced"):
        if "signum" not in _PENDING:
            _PENDING["signum"] = signum
            threading.Thread(target=_resend_after_import, args=(signum,), name="stop-after-import",
                             daemon=True).start()
        return
    _PENDING.clear()
    if ignore_more:
        for other in STOP_SIGNALS:
            signal.signal(other, signal.SIG_IGN)
    raise Interrupted(signum)


_PENDING: dict = {}           # "signum": a stop waiting for an import to end; "forced": the wait ran out
_RECEIVED: dict = {}          # "signum": the stop received, raised yet or not (see stop_received)
_SETTLING = threading.Lock()  # a stop resent after an import, or the CLI's settle_stop: one or the other
IMPORT_POLL_SECONDS = 0.001
IMPORT_WAIT_SECONDS = 5.0     # longer than any import: a program run by an import (not ours) still stops


def settle_stop() -> None:
    """The CLI has ended the run as a stop without an Interrupted (see stop_received): no stop signal
    that follows, nor one still waiting for an import to end, may interrupt its last words (it did:
    the stop's line printed twice, the second inside the first)."""
    with _SETTLING:
        _PENDING["settled"] = True
    for other in STOP_SIGNALS:
        signal.signal(other, signal.SIG_IGN)


def stop_received(forget: bool = False) -> int | None:
    """The first stop signal received since the last `forget`, if any, raised yet or not. An
    Interrupted raised where Python ignores exceptions (a finalizer of multiprocessing, a __del__) is
    lost on its way up, and one deferred by an import is not raised yet when a worker pool, broken
    by the same signal, fails first; the CLI asks here, so that such a stop still ends as one, not
    as a worker that died."""
    signum = _RECEIVED.get("signum")
    if forget:
        _RECEIVED.clear()
        _PENDING.pop("settled", None)
    return signum


# multiprocessing's clean-up of a named semaphore, which a stop must not cut in two
_CLEANUP_CODE = {("synchronize.py", "_cleanup"), ("resource_tracker.py", "unregister"),
                 ("resource_tracker.py", "_send")}


def stop_must_wait(frame) -> bool:
    """Whether a stop raised in `frame` must wait: an import, or multiprocessing's clean-up of a semaphore."""
    while frame is not None:
        code = frame.f_code
        if code.co_filename.startswith("<frozen importlib") or (
                "multiprocessing" in code.co_filename and (os.path.basename(code.co_filename), code.co_name)
                in _CLEANUP_CODE):
            return True
        frame = frame.f_back
    return False


def _resend_after_import(signum: int) -> None:
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)   # this thread never takes one
    main, deadline = threading.main_thread().ident, time.monotonic() + IMPORT_WAIT_SECONDS
    while stop_must_wait(sys._current_frames().get(main)) and time.monotonic() < deadline:
        time.sleep(IMPORT_POLL_SECONDS)
    with _SETTLING:
        if _PENDING.get("settled"):
            _PENDING.pop("signum", None)
            return                       # the CLI has already ended the run as this stop
        if time.monotonic() >= deadline:
            _PENDING["forced"] = True        # still importing: stop there
        else:
            _PENDING.pop("signum", None)     # should it land in the next import, it waits again
        signal.pthread_kill(main, signum)    # to the main thread: a call it waits in returns (EINTR)


def disk_full(path) -> PipelineError:
    return PipelineError(f"disk full while writing {path}; free space and run the same command again")


def os_error_message(exc: OSError) -> str | None:
    """One line for an OSError the user can fix (disk full, permission denied, read-only disk),
    naming the file; None for any other, which is a bug and keeps its traceback."""
    path = exc.filename if exc.filename is not None else "an output file"
    if exc.errno in DISK_FULL:
        return str(disk_full(path))
    if exc.errno in NOT_PERMITTED:
        return f"permission denied on {path}; make it readable (and its folder writable) for this user, " \
               "or choose another path"
    if exc.errno == errno.EROFS:
        return f"{path} is on a read-only file system; choose a writable location"
    return None


@contextlib.contextmanager
def silenced_stderr():
    """Point file descriptor 2 at /dev/null around a C library call that prints on its own."""
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
