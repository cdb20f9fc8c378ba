"""Progress bars for the long stages: tqdm on stderr, shown on a terminal or when asked.

A bar is shown when stderr is a terminal, never in a pipe, a log file or CI, unless asked: the
command line's --progress / --no-progress, or PIPELINE_PROGRESS=1 / 0 in the environment (which
also reaches worker processes). Stages call `bar(...)`; `shown()` says whether one would appear.
"""

from __future__ import annotations

import os
import sys

PROGRESS_VARIABLE = "PIPELINE_PROGRESS"   # "1": always, "0": never, unset: on a terminal
MIN_INTERVAL = 0.5                         # seconds between redraws


def set_shown(shown: bool | None) -> None:
    """Show bars always (True), never (False) or on a terminal only (None), for this process and
    the processes it starts."""
    if shown is None:
        os.environ.pop(PROGRESS_VARIABLE, None)
    else:
        os.environ[PROGRESS_VARIABLE] = "1" if shown else "0"


def shown() -> bool:
    asked = os.environ.get(PROGRESS_VARIABLE, "").strip()
    if asked in ("0", "1"):
        return asked == "1"
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


def bar(iterable=None, *, total: float | None = None, desc: str = "", unit: str = "it", **options):
    """A tqdm bar on stderr (disabled unless `shown()`); use it as tqdm: a context manager, or
    around an iterable. Cleared, not left, when it closes early (an error keeps its one line)."""
    from tqdm import tqdm

    options.setdefault("mininterval", MIN_INTERVAL)
    options.setdefault("dynamic_ncols", True)
    disable = options.pop("disable", False) or not shown()
    return tqdm(iterable, total=total, desc=desc, unit=unit, file=_BarStream(), disable=disable, **options)


class _BarStream:
    """sys.stderr for the bars, remembering whether the last bar left the cursor at the start of a
    line: a stop can cut a bar short between its text and its newline (it lands inside tqdm), and
    the stop's line must not be glued to the bar's."""
    at_line_start = True

    def write(self, text: str):
        if text:
            _BarStream.at_line_start = text.endswith(("\n", "\r"))
        return sys.stderr.write(text)

    def __getattr__(self, name: str):   # flush, fileno, isatty, encoding: stderr's own
        return getattr(sys.stderr, name)


def end_line() -> None:
    """Begin a new line on stderr if a bar's text was left without its newline (before a last line)."""
    if not _BarStream.at_line_start:
        sys.stderr.write("\n")
        _BarStream.at_line_start = True


def plural(count: int, noun: str, plural_noun: str | None = None) -> str:
    """'1 worker', '2 workers', '1 frame', '0 frames'."""
    return f"{count:,} {noun if count == 1 else plural_noun or noun + 's'}"
