"""Per-frame truth: a recording's f0 contour from a CSV, for `pipeline evaluate` on contours.

Where: for `song.wav`, `song.csv` or else `song.f0.csv`, beside the audio or in a truth folder
(at the audio's relative place there, or at its top). What (the layouts of CREPE's output and
of MDB-stem-synth's annotations, and anything hand-made alike):
- a header naming `time` and `frequency` (any case; `f0` or `hz` for frequency also do), and
  optionally `voiced` or `confidence`; other columns are ignored;
- or no header: two or three columns of numbers, in that order;
- separated by commas, tabs or spaces; blank lines and lines starting with `#` are skipped.

Frequency is in Hz, 0 where the frame is unvoiced. Where a `voiced` or `confidence` column is
given, a frame is voiced when that value is at least 0.5 (a 0/1 flag, or a confidence as CREPE
writes it) and its frequency is positive. Times are in seconds, increasing.

Every problem is one PipelineError that names the file and the row (the line of the file,
counting from 1, the header included) and says what to fix: a missing column, a value that is
not a number, a negative frequency or time, times out of order, an empty file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.core.errors import PipelineError
from pipeline.report.frame_metrics import Contour

# song.csv first: song.f0.csv may be `pipeline predict`'s own output; song.frames.csv: this project's phrases
TRUTH_SUFFIXES = (".csv", ".f0.csv", ".frames.csv")
TIME_NAMES = ("time", "times", "time_s", "timestamp", "t")
FREQUENCY_NAMES = ("frequency", "f0", "frequency_hz", "f0_hz", "freq", "hz", "pitch")
VOICING_NAMES = ("voiced", "voicing", "confidence")
VOICED_AT = 0.5                  # a voicing or confidence value at least this marks a voiced frame
WORDS = {"true": 1.0, "false": 0.0, "yes": 1.0, "no": 0.0}   # a voiced column written as words
LAYOUT = "time,frequency rows (seconds, Hz, 0 for unvoiced)"


def truth_path(audio: str | Path, audio_dir: str | Path, truth_dir: str | Path | None = None) -> Path | None:
    """The truth CSV of an audio file under `audio_dir`, or None (see the module docstring)."""
    audio = Path(audio)
    if truth_dir is None:
        folders = [audio.parent]
    else:
        relative = audio.parent.relative_to(audio_dir) if audio.is_relative_to(audio_dir) else Path()
        folders = [Path(truth_dir) / relative, Path(truth_dir)]
    for folder in folders:
        for suffix in TRUTH_SUFFIXES:
            candidate = folder / f"{audio.stem}{suffix}"
            if candidate.is_file():
                return candidate
    return None


def _fields(line: str) -> list[str]:
    return [f.strip() for f in line.split(",")] if "," in line else line.split()


def _column(names: list[str], wanted: tuple[str, ...]) -> int | None:
    return next((names.index(n) for n in wanted if n in names), None)


def _columns(path: Path, row: int, fields: list[str]) -> tuple[list[int], bool]:
    """(the time, frequency and maybe voicing columns' indices, whether this row is a header)."""
    if _is_number(fields[0]):
        if len(fields) not in (2, 3):
            raise PipelineError(f"{path}, row {row}: {len(fields)} columns without a header; write {LAYOUT}, "
                                "with an optional third column voiced or confidence, or add a header")
        return list(range(len(fields))), False
    names = [f.strip().strip('"').lower() for f in fields]
    time, frequency = _column(names, TIME_NAMES), _column(names, FREQUENCY_NAMES)
    for index, what in ((time, "time"), (frequency, "frequency")):
        if index is None:
            raise PipelineError(f"{path}, row {row}: no {what} column in the header ({', '.join(fields)}); "
                                f"name the columns time,frequency (and optionally voiced or confidence)")
    voicing = _column(names, VOICING_NAMES)
    return [time, frequency] + ([] if voicing is None else [voicing]), True


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _number(path: Path, row: int, what: str, text: str) -> float:
    value = WORDS.get(text.lower()) if what == "voiced" else None
    if value is None:
        try:
            value = float(text)
        except ValueError:
            raise PipelineError(f"{path}, row {row}: {what} {text!r} is not a number; write {LAYOUT}") from None
    if not np.isfinite(value):
        raise PipelineError(f"{path}, row {row}: {what} {text!r} is not a finite number; write {LAYOUT}")
    return value


def _parse(path: Path, text: str) -> tuple[np.ndarray, np.ndarray, bool]:
    """(rows (N, 2 or 3) float64, their line numbers, whether a voicing column was given)."""
    columns, values, lines = None, [], []
    for row, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = _fields(line)
        if columns is None:
            columns, header = _columns(path, row, fields)
            if header:
                continue
        if len(fields) <= max(columns):
            names = ("time", "frequency", "voiced")[:len(columns)]
            raise PipelineError(f"{path}, row {row}: {len(fields)} value(s) where {','.join(names)} are needed "
                                f"(a missing column); write {LAYOUT}")
        values.append([_number(path, row, what, fields[i]) for what, i in zip(("time", "frequency", "voiced"),
                                                                               columns)])
        lines.append(row)
    if not values:
        raise PipelineError(f"{path}: no frames (an empty file); write {LAYOUT}, one per frame")
    return np.array(values, dtype=np.float64), np.array(lines), len(columns) == 3


def _check(path: Path, table: np.ndarray, lines: np.ndarray, voicing: bool) -> None:
    time, frequency = table[:, 0], table[:, 1]
    checks = [(time < 0, 0, "time {} is negative; times are seconds from the start of the audio"),
              (frequency < 0, 1, "frequency {} is negative; use 0 for an unvoiced frame"),
              (np.r_[False, np.diff(time) <= 0], 0, "time {} is not after the previous row's; rows must be "
                                                    "in time order, one per frame")]
    if voicing:
        checks.append(((table[:, 2] < 0) | (table[:, 2] > 1), 2, "voiced {} is outside 0..1; write 0 or 1, "
                                                                 "or a confidence"))
    bad = [(int(np.argmax(mask)), column, message) for mask, column, message in checks if mask.any()]
    if bad:
        index, column, message = min(bad)
        raise PipelineError(f"{path}, row {lines[index]}: {message.format(f'{table[index, column]:g}')}")
    if len(time) < 2:
        raise PipelineError(f"{path}: only one frame; a contour needs at least two {LAYOUT}")


def read_truth(path: str | Path) -> Contour:
    """The contour a truth CSV gives (see the module docstring); PipelineError naming file and row."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise PipelineError(f"{path}: not a text file; write {LAYOUT}") from None
    except OSError as exc:
        raise PipelineError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    text, scored = _without_flags(text)
    table, lines, voicing = _parse(path, text)
    _check(path, table, lines, voicing)
    voiced = table[:, 1] > 0
    if voicing:
        voiced &= table[:, 2] >= VOICED_AT
    return Contour(table[:, 0], table[:, 1], voiced, scored)


def _without_flags(text: str) -> tuple[str, np.ndarray | None]:
    """A phrase's frame table (this project's NAME.frames.csv: time,f0_hz,voiced,clean,flag): the
    text with its flag column gone, and which frames are to be scored (no flag). Other layouts
    are returned as they are."""
    lines = text.splitlines()
    header = lines[0].strip().lower().split(",") if lines else []
    if "flag" not in header:
        return text, None
    at = header.index("flag")
    rows = [line.split(",") for line in lines if line.strip()]
    scored = np.array([len(r) <= at or not r[at].strip() for r in rows[1:]])
    kept = [",".join(f for i, f in enumerate(r) if i != at) for r in rows]
    return "\n".join(kept), scored
