"""What a prediction writes: one file per recording, in CSV, NPZ or JSON, and a summary table.

Every format holds the same three columns, one row per frame:
- `csv` (the default): CREPE's layout, a `time,frequency,confidence` header, then the rows;
- `npz`: numpy arrays `time`, `frequency`, `confidence` (float64), read with `np.load`;
- `json`: `{"time": [...], "frequency": [...], "confidence": [...]}`, the numbers rounded as the CSV's.
song.wav gives song.f0.csv (.npz, .json), beside the audio or in the output folder. Every file is
written atomically: a stopped run leaves each whole or absent.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pipeline.core.artifacts import write_bytes
from pipeline.core.errors import PipelineError

FORMATS = ("csv", "npz", "json")
SUFFIX = ".f0"                   # song.wav -> song.f0.csv, CREPE's name
COLUMNS = ("time", "frequency", "confidence")
DECIMALS = (6, 3, 6)             # seconds, Hz, confidence: as CREPE writes them
PLOT_SUFFIX = ".png"


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise PipelineError(f"output format {fmt!r} is not one of {', '.join(FORMATS)}")
    return fmt


def output_path(audio_path: str | Path, output_dir: str | Path | None = None, fmt: str = "csv") -> Path:
    """song.wav -> song.f0.FMT, beside the audio or in `output_dir`."""
    audio_path = Path(audio_path)
    folder = Path(output_dir) if output_dir is not None else audio_path.parent
    return folder / f"{audio_path.stem}{SUFFIX}.{check_format(fmt)}"


def plot_path(out: Path) -> Path:
    """song.f0.csv -> song.f0.png: the picture beside the numbers."""
    return out.with_suffix(PLOT_SUFFIX)


def prediction_bytes(time: np.ndarray, frequency: np.ndarray, confidence: np.ndarray, fmt: str = "csv") -> bytes:
    """The frames in one of FORMATS."""
    arrays = [np.asarray(a, dtype=np.float64) for a in (time, frequency, confidence)]
    if check_format(fmt) == "csv":
        rows = "".join(f"{t:.6f},{f:.3f},{c:.6f}\n" for t, f, c in zip(*arrays))
        return ("time,frequency,confidence\n" + rows).encode()
    if fmt == "json":
        columns = {name: np.round(a, d).tolist() for name, a, d in zip(COLUMNS, arrays, DECIMALS)}
        return (json.dumps(columns, separators=(",", ":")) + "\n").encode()
    buffer = io.BytesIO()
    np.savez(buffer, **dict(zip(COLUMNS, arrays)))
    return buffer.getvalue()


def write_prediction(out: str | Path, time: np.ndarray, frequency: np.ndarray, confidence: np.ndarray,
                     fmt: str = "csv") -> Path:
    """Write the frames to `out` (atomically) in `fmt`; returns `out`."""
    write_bytes(out, prediction_bytes(time, frequency, confidence, fmt))
    return Path(out)


def write_csv(out_csv: str | Path, time: np.ndarray, frequency: np.ndarray, confidence: np.ndarray) -> Path:
    """CREPE's layout: a `time,frequency,confidence` header, one row per frame; written atomically."""
    return write_prediction(out_csv, time, frequency, confidence, "csv")


def table_bytes(rows: Sequence[dict], fmt: str = "csv") -> bytes:
    """Rows of equal keys (a summary per file) as CSV, JSON (a list of objects) or NPZ (a column each)."""
    keys = list(rows[0]) if rows else []
    if check_format(fmt) == "json":
        return (json.dumps(list(rows), indent=1) + "\n").encode()
    if fmt == "npz":
        buffer = io.BytesIO()
        np.savez(buffer, **{k: np.array([r[k] for r in rows]) for k in keys})
        return buffer.getvalue()
    table = io.StringIO()
    writer = csv.writer(table, lineterminator="\n")
    writer.writerow(keys)
    writer.writerows([r[k] for k in keys] for r in rows)
    return table.getvalue().encode()


def write_table(out: str | Path, rows: Sequence[dict], fmt: str = "csv") -> Path:
    write_bytes(out, table_bytes(rows, fmt))
    return Path(out)
