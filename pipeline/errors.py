"""The one exception type users see: its message names the problem and the fix.

And the means to keep C libraries' own chatter off the user's terminal, where it would
bury that one line.
"""

import contextlib
import os
import sys


class PipelineError(Exception):
    """A problem with the user's input or environment, reported as one line by the CLI."""


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
