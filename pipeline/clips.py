"""The dataset on disk: manifest.csv, the clips' WAV files and their paths, and the rows of a split.

The data stage writes a dataset through these functions and every later stage reads it
through them; they are also all a user's own training code needs:

    manifest = load_manifest("data/default")          # one row per clip, labels included
    audio = read_clips("data/default", manifest)      # (N, 5280) float32 in [-1, 1]
    test = split_rows(manifest, "test")               # the rows whose features are test.npy

Layout of a dataset folder (data/NAME/):

    manifest.csv                       one row per kept clip, MANIFEST_COLUMNS, in plan order
    clips/INSTRUMENT/NAME.wav          16 kHz mono 16-bit WAVs of CLIP_SAMPLES samples each

Functions that read take the dataset folder, or a Config (its data_dir): `load_manifest(cfg)`
and `load_manifest(cfg.data_dir)` read the same file.
"""

from __future__ import annotations

import io
import os
import re
import struct
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pipeline import constants as C
from pipeline.artifacts import atomic_path, ensure_dir
from pipeline.errors import PipelineError
from pipeline.pitch import note_name

if TYPE_CHECKING:
    import pandas as pd

MANIFEST_FILE = "manifest.csv"
CLIPS_DIR = "clips"
MANIFEST_COLUMNS = ["path", "instrument", "instrument_name", "program", "family", "midi", "note", "detune_cents",
                    "bend", "frequency", "velocity", "segment", "split", "sha256", "peak_dbfs", "rms_dbfs",
                    "sounding_ms", "augment", "snr_db"]
WAV_HEADER_BYTES = 44
SAMPLE_WIDTH_BITS = 16
# a clip's name: <instrument>_<note>_<midi>_<frequency>_<segment>_v<velocity>; the frequency is the label
CLIP_NAME_RE = re.compile(r"(?:^|_)[A-G]s?-?\d_(\d{1,3})_(\d+(?:\.\d+)?)_(?:" + "|".join(C.SEGMENTS) + ")(?:_|$)")


def _folder(data_dir) -> Path:
    """The dataset folder from a path or from anything with a data_dir (a Config)."""
    return Path(getattr(data_dir, "data_dir", data_dir))


# --- names and paths -------------------------------------------------------------------------
def clip_name(instrument_slug: str, midi: int, frequency: float, segment: str, velocity: int) -> str:
    """violin, 69, 440.0, sustain, 100 -> 'violin_A4_69_440.00_sustain_v100.wav'."""
    return f"{instrument_slug}_{note_name(midi)}_{midi}_{frequency:.2f}_{segment}_v{velocity}.wav"


def clip_relpath(instrument_slug: str, name: str) -> str:
    """Where a clip lives, relative to the dataset folder: the manifest's `path` column."""
    return f"{CLIPS_DIR}/{instrument_slug}/{name}"


def manifest_path(data_dir) -> Path:
    return _folder(data_dir) / MANIFEST_FILE


# --- writing ---------------------------------------------------------------------------------
def wav_bytes(pcm: np.ndarray) -> bytes:
    """A 16 kHz mono 16-bit WAV file as bytes (no timestamps: same samples, same bytes).

    The canonical 44-byte header, built here: byte for byte what libsndfile writes for
    PCM_16, without its virtual-file round trip (a tenth of the cost)."""
    data = np.ascontiguousarray(pcm, dtype="<i2").tobytes()
    block = SAMPLE_WIDTH_BITS // 8
    return b"".join([b"RIFF", struct.pack("<I", 36 + len(data)), b"WAVEfmt ",
                     struct.pack("<IHHIIHH", 16, 1, 1, C.SAMPLE_RATE, C.SAMPLE_RATE * block, block,
                                 SAMPLE_WIDTH_BITS),
                     b"data", struct.pack("<I", len(data)), data])


def write_clip(data_dir: str | Path, relpath: str, data: bytes) -> None:
    """Write a clip's bytes at `relpath` atomically: a dot-name in the same folder, then a rename
    (remove_stale_clips removes an interrupted one). Without mkstemp's random name and Path
    round trips: three of these per note."""
    folder, name = os.path.split(os.path.join(data_dir, relpath))
    tmp = os.path.join(folder, f".{name}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    except FileNotFoundError:
        ensure_dir(folder)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.replace(tmp, os.path.join(folder, name))


def remove_stale_clips(data_dir: str | Path, keep: set[str]) -> None:
    """Delete the temporary files of an interrupted build and every clip whose path is not in `keep`."""
    for path in (Path(data_dir) / CLIPS_DIR).rglob("*"):
        if path.is_file() and (path.name.startswith(".") or clip_relpath(path.parent.name, path.name) not in keep):
            path.unlink()


def write_manifest(data_dir: str | Path, manifest: pd.DataFrame) -> None:
    """manifest.csv, atomically: the last file of a build, the one make waits for."""
    with atomic_path(manifest_path(data_dir)) as tmp:
        manifest.to_csv(tmp, index=False)


# --- reading ---------------------------------------------------------------------------------
def load_manifest(data_dir) -> pd.DataFrame:
    """The manifest of the dataset in `data_dir` (a folder, or a Config); PipelineError if missing."""
    import pandas as pd

    path = manifest_path(data_dir)
    if not path.is_file():
        raise PipelineError(f"no dataset at {path}; build it first with make data (or pipeline data)")
    try:
        return pd.read_csv(path, keep_default_na=False, na_values=[""])
    except (pd.errors.ParserError, UnicodeDecodeError, OSError) as exc:
        raise PipelineError(f"manifest {path} is unreadable ({exc}); delete it and run make data again") from None


def check_split(split: str) -> None:
    if split not in C.SPLITS:
        raise PipelineError(f"unknown split {split!r}; choose one of {', '.join(C.SPLITS)}")


def split_rows(manifest: pd.DataFrame, split: str) -> pd.DataFrame:
    """The manifest rows of one split, in manifest order (index reset): row i of the split's
    features (features/SPLIT.npy) is the spectrogram of row i here."""
    check_split(split)
    return manifest[manifest["split"] == split].reset_index(drop=True)


def read_clip(path: str | Path, data: bytes | None = None) -> np.ndarray:
    """One dataset clip as float32 in [-1, 1], from its file or from its WAV bytes (`data`).

    A clip this package wrote (the canonical 44-byte header of `wav_bytes`) is decoded with
    numpy, a seventh of libsndfile's cost per clip and the same values (int16 / 32768, exact);
    anything else goes through soundfile."""
    if data is None:
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except OSError as exc:
            raise PipelineError(f"cannot read audio {path} ({exc}); rebuild the dataset with make data") from None
    if data[:WAV_HEADER_BYTES] == _canonical_header() and len(data) == WAV_HEADER_BYTES + 2 * C.CLIP_SAMPLES:
        return np.frombuffer(data, dtype="<i2", offset=WAV_HEADER_BYTES).astype(np.float32) / np.float32(32768)
    return read_clip_soundfile(path, data)


@lru_cache(maxsize=1)
def _canonical_header() -> bytes:
    return wav_bytes(np.zeros(C.CLIP_SAMPLES, dtype=np.int16))[:WAV_HEADER_BYTES]


def read_clip_soundfile(path: str | Path, data: bytes) -> np.ndarray:
    """read_clip through libsndfile: any WAV (or FLAC...) holding one clip; checks rate and length."""
    import soundfile as sf

    try:
        audio, rate = sf.read(io.BytesIO(data), dtype="float32")
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise PipelineError(f"cannot read audio {path} ({exc}); rebuild the dataset with make data") from None
    if rate != C.SAMPLE_RATE or audio.ndim != 1 or len(audio) != C.CLIP_SAMPLES:
        raise PipelineError(f"clip {path} is not {C.CLIP_SAMPLES} mono samples at {C.SAMPLE_RATE} Hz; "
                            "rebuild the dataset with make data")
    return audio


def read_clips(data_dir, frame: pd.DataFrame) -> np.ndarray:
    """The clips of the manifest rows in `frame` as a (N, 5280) float32 array; `data_dir` is the
    dataset folder (or a Config)."""
    folder = _folder(data_dir)
    out = np.empty((len(frame), C.CLIP_SAMPLES), dtype=np.float32)
    for i, rel in enumerate(frame["path"]):
        out[i] = read_clip(folder / rel)
    return out
