"""`python -m pipeline` and the `pipeline` program.

A stop signal (Ctrl-C, SIGTERM, SIGHUP) that arrives while the command line is still being
imported (a second or more on a busy machine) ends the program as a later one does: one line,
exit 128 + the signal's number, no traceback. A signal ignored from the start (nohup) stays ignored.
"""

import signal
import sys

from pipeline.core.errors import STOP_SIGNALS, STOPPED, stop


def _early_stop(signum, frame):
    stop(signum, frame, ignore_more=False)


def run() -> int:
    for signum in STOP_SIGNALS:
        if signal.getsignal(signum) is not signal.SIG_IGN:
            signal.signal(signum, _early_stop)
    try:
        from pipeline.cli import main

        return main()
    except KeyboardInterrupt as exc:  # before the command line took over, or after it let go
        progress = sys.modules.get("pipeline.core.progress")
        if progress is not None:   # a bar the stop cut short has no newline
            progress.end_line()
        print(STOPPED, file=sys.stderr)
        return 128 + getattr(exc, "signum", signal.SIGINT)


if __name__ == "__main__":
    sys.exit(run())
