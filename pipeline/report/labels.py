"""A labels file for `pipeline evaluate --labels`: every row read and checked, each bad row named.

The file is a CSV with a header: a `path` column (relative to the audio folder, or absolute) and
a label in a `frequency` (Hz), `note` (A4, C#4, Db4, Cs4) or `midi` (0-127, fractions allowed)
column; any other columns (instrument, segment, velocity, ...) are kept for the tables, so a
dataset's manifest.csv works as it is. One row per line: a quoted line break is not read.

What a bad row costs is its own line, never more: a row that is not UTF-8, not one CSV row,
longer than MAX_LINE_BYTES, or that has a missing, unreadable or out-of-range value, a file that
is not there, or a file listed again (the later row is the bad one) is named by its line number
and left out; the other rows are scored. A file is read a line at a time, so memory follows the
good rows, and at most MAX_NAMED bad rows are named (the rest are counted). Only a file that
cannot be a labels file at all (missing, not UTF-8 text, no header with `path` and a label
column) raises PipelineError.
"""

from __future__ import annotations

import csv
import math
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.core import constants as C
from pipeline.core.errors import PipelineError
from pipeline.core.pitch import hz_to_midi, midi_to_hz, note_to_midi

LABEL_COLUMNS = ("frequency", "note", "midi")   # the first one a row fills is its label
NUMBER_COLUMNS = ("detune_cents",)              # other columns the tables compute with: numbers or empty
MIN_HZ, MAX_HZ = float(midi_to_hz(C.MIDI_MIN)), float(midi_to_hz(C.MIDI_MAX))   # 8.2 to 12543.9 Hz
AGREE_CENTS = 600.0     # a row's frequency, note and midi must lie within half an octave of each other
MAX_LINE_BYTES = 65_536
MAX_NAMED = 1000
FIX = "save it as UTF-8 CSV with a path column and a frequency, note or midi column"


@dataclass(frozen=True)
class Labels:
    """The good rows (`path`, `file`: where the audio is, `label_hz`, `line`, and the file's other
    columns), one message per bad row ("line N: ..."), and how many rows the file holds."""
    frame: pd.DataFrame
    problems: tuple[str, ...]
    rows: int


class _BadRow(Exception):
    """Why one row is left out."""


def read_labels(csv_path: str | Path, audio_dir: str | Path) -> Labels:
    """Read and check every row of a labels CSV; paths resolve against `audio_dir`."""
    csv_path = Path(csv_path)
    _check_file(csv_path)
    reader = _Reader(csv_path, Path(audio_dir))
    with open(csv_path, "rb") as fh:
        for number, raw in _lines(fh):
            reader.take(number, raw)
    return reader.result()


def valid_hz(hz) -> float | None:
    """`hz` as a float when it is a finite frequency of the MIDI range (8.2 to 12543.9 Hz), else None."""
    try:
        hz = float(hz)
    except (TypeError, ValueError):
        return None
    return hz if math.isfinite(hz) and MIN_HZ * (1 - 1e-9) <= hz <= MAX_HZ * (1 + 1e-9) else None


# --- the file, a line at a time ------------------------------------------------------------------
def _check_file(path: Path) -> None:
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise PipelineError(f"labels file {path} not found; pass a CSV with path,frequency or path,note columns") \
            from None
    except OSError as exc:
        raise PipelineError(f"labels file {path} cannot be read ({exc.strerror}); {FIX}") from None
    if not stat.S_ISREG(mode):
        raise PipelineError(f"labels file {path} is not a regular file (a folder or a device); pass a CSV file")


def _lines(fh):
    """(line number, bytes without the line break) of each line; a line longer than MAX_LINE_BYTES
    comes as None, having been read past in pieces."""
    number = 0
    while True:
        raw = fh.readline(MAX_LINE_BYTES + 2)
        if not raw:
            return
        number += 1
        if not raw.endswith(b"\n") and len(raw) > MAX_LINE_BYTES:
            while raw and not raw.endswith(b"\n"):
                raw = fh.readline(MAX_LINE_BYTES)
            yield number, None
            continue
        yield number, raw.rstrip(b"\r\n")


def _cut(value: str, width: int = 40) -> str:
    """A cell's text for a message, quoted, at most `width` characters of it."""
    return repr(value if len(value) <= width else value[:width] + "...")


def _shown(path: str, width: int = 120) -> str:
    """A path for a message: as it is when printable, else quoted; at most `width` characters."""
    return path if path.isprintable() and len(path) <= width and path == path.strip() else _cut(path, width)


class _Reader:
    """The header, then each row: checked, kept or named."""

    def __init__(self, path: Path, audio_dir: Path):
        self.path, self.audio_dir = path, audio_dir
        self.header: list[str] | None = None
        self.good: list[tuple[int, list[str], str, float]] = []
        self.seen: dict[str, tuple[int, float]] = {}
        self.problems: list[str] = []
        self.bad = 0
        self.rows = 0

    def take(self, number: int, raw: bytes | None) -> None:
        if raw is not None and not raw.strip():
            return  # a blank line is no row
        if self.header is None:
            self.header = self._header(number, raw)
            return
        self.rows += 1
        try:
            cells = self._cells(raw)
            self.good.append((number, *self._check(number, cells)))
        except _BadRow as why:
            self.bad += 1
            if len(self.problems) < MAX_NAMED:
                self.problems.append(f"line {number}: {why}")

    # --- the header ---------------------------------------------------------------------------
    def _header(self, number: int, raw: bytes | None) -> list[str]:
        if raw is None:
            raise PipelineError(f"labels file {self.path} has a first line over {MAX_LINE_BYTES:,} bytes; {FIX}")
        if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
            raise PipelineError(f"labels file {self.path} is UTF-16 text; {FIX}")
        try:
            text = raw.decode("utf-8").removeprefix("\ufeff")
            names = [name.strip() for name in next(csv.reader([text], strict=True))]
        except (UnicodeDecodeError, csv.Error, StopIteration):
            raise PipelineError(f"labels file {self.path} line {number} is not a CSV header in UTF-8; {FIX}") \
                from None
        named = [n for n in names if n]
        twice = sorted({n for n in named if named.count(n) > 1})
        if twice:
            raise PipelineError(f"labels file {self.path} names the column(s) {', '.join(twice)} twice; "
                                "keep one of each")
        if "path" not in names or not set(LABEL_COLUMNS) & set(names):
            found = ", ".join(_cut(n, 20) for n in named[:8]) or "none"
            raise PipelineError(f"labels file {self.path} needs a path column and a frequency, note or midi "
                                f"column; it has {found}")
        return names

    # --- a row ---------------------------------------------------------------------------------
    def _cells(self, raw: bytes | None) -> dict[str, str]:
        if raw is None:
            raise _BadRow(f"longer than {MAX_LINE_BYTES:,} bytes; one row per file, one line per row")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _BadRow(f"not UTF-8 text (byte {exc.start + 1}); save the file as UTF-8") from None
        if "\x00" in text:
            raise _BadRow("a NUL byte; remove it")
        try:
            cells = next(csv.reader([text], strict=True))
        except (csv.Error, StopIteration):
            raise _BadRow("not one CSV row (an unclosed quote?); fix its quotes") from None
        while len(cells) > len(self.header) and not cells[-1].strip():
            cells.pop()  # trailing empty cells, as some spreadsheets write them
        if len(cells) != len(self.header):
            raise _BadRow(f"{len(cells)} cell{'' if len(cells) == 1 else 's'} where the header has {len(self.header)}; "
                          "give one cell per column")
        return {name: cell for name, cell in zip(self.header, cells) if name}

    def _check(self, number: int, cells: dict[str, str]) -> tuple[list[str], str, float]:
        path = cells["path"].strip()
        if not path:
            raise _BadRow("has no path")
        hz = _label(cells)
        for column in NUMBER_COLUMNS:
            value = cells.get(column, "").strip()
            if value and not math.isfinite(_number(column, value)):
                raise _BadRow(f"{column} {_cut(value)} is not a finite number")
        file = path if os.path.isabs(path) else os.path.join(self.audio_dir, path)
        key = os.path.normpath(os.path.abspath(file))
        if key in self.seen:
            first, first_hz = self.seen[key]
            if math.isclose(first_hz, hz, rel_tol=1e-9):
                raise _BadRow(f"{_shown(path)} is listed again (first on line {first}); list each file once")
            raise _BadRow(f"{_shown(path)} is listed again with another label ({hz:g} Hz; line {first} says "
                          f"{first_hz:g} Hz); keep the right row")
        _check_audio(path, file)
        self.seen[key] = (number, hz)
        return [cells[name].strip() or None for name in self.header if name], file, hz

    # --- the result ----------------------------------------------------------------------------
    def result(self) -> Labels:
        if self.header is None:
            raise PipelineError(f"labels file {self.path} is empty; {FIX}")
        if not self.rows:
            raise PipelineError(f"labels file {self.path} lists no rows under its header; add a row per file")
        problems = list(self.problems)
        if self.bad > len(self.problems):
            problems.append(f"{self.path}: {self.bad - len(self.problems):,} more bad rows not listed")
        names = [n for n in self.header if n]
        frame = pd.DataFrame([cells for _, cells, _, _ in self.good], columns=names, dtype=object)
        for name in names:
            if name != "path":
                frame[name] = _typed(frame[name])
        frame["file"] = [file for _, _, file, _ in self.good]
        frame["label_hz"] = np.array([hz for _, _, _, hz in self.good], dtype=np.float64)
        frame["line"] = np.array([number for number, _, _, _ in self.good], dtype=np.int64)
        return Labels(frame, tuple(problems), self.rows)


# --- one row's values ----------------------------------------------------------------------------
def _number(column: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise _BadRow(f"{column} {_cut(text)} is not a number") from None


def _label(cells: dict[str, str]) -> float:
    """The row's label in Hz: its frequency, else its note, else its midi; every one given must be
    valid, and they must agree within AGREE_CENTS."""
    given: dict[str, float] = {}
    for column in LABEL_COLUMNS:
        text = cells.get(column, "").strip()
        if not text:
            continue
        if column == "note":
            midi = note_to_midi(text)
            if midi is None:
                raise _BadRow(f"note {_cut(text)} is not a note name from C-1 to G9 (like A4, C#4, Db4, Cs4)")
            given[column] = float(midi_to_hz(midi))
        elif column == "midi":
            midi = _number(column, text)
            if not (math.isfinite(midi) and C.MIDI_MIN <= midi <= C.MIDI_MAX):
                raise _BadRow(f"midi {_cut(text)} is not a number from {C.MIDI_MIN} to {C.MIDI_MAX}")
            given[column] = float(midi_to_hz(midi))
        else:
            hz = valid_hz(_number(column, text))
            if hz is None:
                raise _BadRow(f"frequency {_cut(text)} is not a frequency from {MIN_HZ:.1f} to {MAX_HZ:.1f} Hz "
                              f"(MIDI {C.MIDI_MIN} to {C.MIDI_MAX})")
            given[column] = hz
    if not given:
        raise _BadRow(f"{_shown(cells['path'].strip())} has no frequency, note or midi; give one")
    (first, hz), *others = given.items()
    for column, other in others:
        apart = abs(float(hz_to_midi(other) - hz_to_midi(hz))) * 100
        if apart > AGREE_CENTS:
            raise _BadRow(f"{first} and {column} disagree by {apart:.0f} cents; fix one of them")
    return hz


def _check_audio(path: str, file: str) -> None:
    try:
        mode = os.stat(file).st_mode
    except (FileNotFoundError, NotADirectoryError):
        raise _BadRow(f"{_shown(path)} not found (looked for {_shown(file)}); fix the path") from None
    except (OSError, ValueError) as exc:
        raise _BadRow(f"{_shown(path)} cannot be read ({getattr(exc, 'strerror', None) or exc}); fix the path") \
            from None
    if not stat.S_ISREG(mode):
        raise _BadRow(f"{_shown(path)} is not a file (a folder?); list audio files")


def _typed(column: pd.Series) -> pd.Series:
    """A column of numbers as numbers (a manifest's velocity, bend, ...), anything else as text."""
    numbers = pd.to_numeric(column, errors="coerce")
    if (numbers.notna() | column.isna()).all() and np.isfinite(numbers.dropna().to_numpy(np.float64)).all():
        return numbers
    return column
