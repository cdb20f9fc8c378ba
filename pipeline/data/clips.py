"""The dataset on disk: manifest.csv, the clips' WAV files and their paths, and the rows of a split.

The data stage writes a dataset through these functions and every later stage reads it
through them; they are also all a user's own training code needs:

    manifest = load_manifest("data/default")          # one row per clip, labels included
    audio = read_clips("data/default", manifest)      # (N, 5280) float32 in [-1, 1] (the default clips)
    test = split_rows(manifest, "test")               # the rows whose features are test.npy

Layout of a dataset folder (data/NAME/):

    manifest.csv                       one row per kept clip, MANIFEST_COLUMNS, in plan order
    clips/SOURCE/INSTRUMENT/NAME.wav   16 kHz mono 16-bit WAVs of CLIP_SAMPLES samples each, or
                                       the rate, length, sample format and container (.flac) that
                                       dataset.json's "audio" records; SOURCE is the soundfont's slug
                                       (fluidr3_gm) or synthetic
    dataset.json, build.json           what the data set holds and how it was built; how the last build went
    shards/KEY.csv                     the data stage's record of a finished shard: its rows, the clips'
                                       sha256 (pipeline.data.dataset writes and checks them)

Functions that read take the dataset folder, or a Config (its data_dir): `load_manifest(cfg)`
and `load_manifest(cfg.data_dir)` read the same file.
"""

from __future__ import annotations

import hashlib
import io
import re
import struct
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pipeline.core import constants as C
from pipeline.core.artifacts import check_inside, read_json, sha256_bytes, write_if_changed
from pipeline.core.audio_format import DEFAULT_FORMAT, WAV_HEADER_BYTES, ClipFormat
from pipeline.core.errors import PipelineError
from pipeline.core.pitch import note_name

if TYPE_CHECKING:
    import pandas as pd

PHRASES_FILE = "phrases.csv"     # the phrases of a dataset (pipeline/data/phrase_build.py)
FRAMES_FILE = "frames.csv"       # every phrase's frame table in one

MANIFEST_FILE = "manifest.csv"
CLIPS_DIR = "clips"
SHARDS_DIR = "shards"      # the data stage's record of each finished shard: KEY.csv
DATASET_FILE = "dataset.json"
BUILD_FILE = "build.json"  # written last by every data build that finishes: make's target for the stage
MANIFEST_COLUMNS = ["path", "source", "instrument", "instrument_name", "timbre", "program", "family", "midi", "note",
                    "variant", "detune_cents", "bend", "frequency", "nominal_frequency", "velocity", "segment",
                    "offset_ms", "split", "sha256", "peak_dbfs", "rms_dbfs", "sounding_ms", "augment", "snr_db",
                    "audit_hz", "audit_confidence", "audit_cents", "label_rule"]
# read as text whatever they look like: OPL-3_FM_128M.sf2 names its presets "000", "040", ...
TEXT_COLUMNS = {name: str for name in ("path", "source", "instrument", "instrument_name", "timbre", "note", "segment",
                                       "split", "sha256", "augment", "label_rule")}
# what every stage reads: a manifest without one of these is refused with one line
REQUIRED_COLUMNS = ("path", "split", "sha256", "frequency")
SAMPLE_WIDTH_BITS = 16
# a clip's name: <instrument>_<note>_<midi>_<frequency>_<segment>_v<velocity> (_t<variant> for a synthetic
# tone); the frequency is the nominal label (the manifest's nominal_frequency where the audit changed it)
CLIP_NAME_RE = re.compile(r"(?:^|_)[A-G]s?-?\d_(\d{1,3})_(\d+(?:\.\d+)?)_(?:" + "|".join(C.SEGMENT_NAMES) + ")(?:_|$)")


def _folder(data_dir) -> Path:
    """The dataset folder from a path or from anything with a data_dir (a Config)."""
    return Path(getattr(data_dir, "data_dir", data_dir))


# --- names and paths -------------------------------------------------------------------------
def clip_name(instrument_slug: str, midi: int, frequency: float, segment: str, velocity: int,
              variant: int | None = None, suffix: str = ".wav") -> str:
    """violin, 69, 440.0, sustain, 100 -> 'violin_A4_69_440.00_sustain_v100.wav'; a synthetic tone
    (which has no velocity) is named by its variant: 'sine_A4_69_440.00_sustain_t0.wav'."""
    last = f"v{velocity}" if variant is None else f"t{variant}"
    return f"{instrument_slug}_{note_name(midi)}_{midi}_{frequency:.2f}_{segment}_{last}{suffix}"


def source_slug(source: str) -> str:
    """A source's folder name: 'FluidR3_GM.sf2' -> 'fluidr3_gm', 'synthetic' -> 'synthetic'."""
    stem = source.rsplit(".", 1)[0] if source.lower().endswith((".sf2", ".sf3")) else source
    return re.sub(r"[^a-z0-9]+", "_", stem.lower()).strip("_") or "font"


def clip_relpath(source: str, instrument_slug: str, name: str) -> str:
    """Where a clip lives, relative to the dataset folder: the manifest's `path` column. Two sources
    share instrument names, so the source comes first."""
    return f"{CLIPS_DIR}/{source_slug(source)}/{instrument_slug}/{name}"


def manifest_path(data_dir) -> Path:
    return _folder(data_dir) / MANIFEST_FILE


# --- writing ---------------------------------------------------------------------------------
def wav_bytes(pcm: np.ndarray, rate: int = C.SAMPLE_RATE) -> bytes:
    """A mono 16-bit WAV file (16 kHz unless told) as bytes (no timestamps: same samples, same bytes).

    The canonical 44-byte header, built here: byte for byte what libsndfile writes for
    PCM_16, without its virtual-file round trip (a tenth of the cost)."""
    return _wav(np.ascontiguousarray(pcm, dtype="<i2").tobytes(), rate, SAMPLE_WIDTH_BITS, WAVE_FORMAT_PCM)


WAVE_FORMAT_PCM, WAVE_FORMAT_IEEE_FLOAT = 1, 3


def _wav(data: bytes, rate: int, bits: int, tag: int) -> bytes:
    """The canonical 44-byte header (no PEAK chunk, whose timestamp would change the bytes) and the data."""
    block = bits // 8
    return b"".join([b"RIFF", struct.pack("<I", 36 + len(data)), b"WAVEfmt ",
                     struct.pack("<IHHIIHH", 16, tag, 1, rate, rate * block, block, bits),
                     b"data", struct.pack("<I", len(data)), data])


def clip_bytes(samples: np.ndarray, fmt: ClipFormat) -> bytes:
    """A clip's file in `fmt`: `samples` as postprocessing.quantize gives them (int16; int32 holding
    24-bit values; float32). WAV headers are built here; FLAC is libsndfile's (libFLAC's encoder,
    deterministic: same samples and library, same bytes)."""
    if fmt.file_format == "flac":
        import soundfile as sf

        buffer = io.BytesIO()
        wide = samples.astype(np.int32) << 8 if fmt.sample_format == "int24" else samples  # libsndfile's top 24 bits
        sf.write(buffer, wide, fmt.rate, format="FLAC", subtype="PCM_24" if fmt.sample_format == "int24" else "PCM_16")
        return buffer.getvalue()
    if fmt.sample_format == "int16":
        return wav_bytes(samples, fmt.rate)
    if fmt.sample_format == "int24":
        data = np.ascontiguousarray(samples, dtype="<i4").view(np.uint8).reshape(-1, 4)[:, :3].tobytes()
        return _wav(data, fmt.rate, 24, WAVE_FORMAT_PCM)
    return _wav(np.ascontiguousarray(samples, dtype="<f4").tobytes(), fmt.rate, 32, WAVE_FORMAT_IEEE_FLOAT)


def write_clip(data_dir: str | Path, relpath: str, data: bytes) -> bool:
    """Write a clip's bytes at `relpath` (inside `data_dir`) atomically, every byte, a full disk
    naming the file; not fsynced: the data stage syncs a shard's clips at once before writing
    the record that lists them. A file that already holds these bytes is left alone (its inode
    and mtime too): re-rendering a damaged shard rewrites only its damaged clips. True if written."""
    return write_if_changed(check_inside(data_dir, relpath), data, sync=False)


def clip_intact(data_dir: str | Path, relpath: str, sha256: str, fmt: ClipFormat = DEFAULT_FORMAT) -> bool:
    """Whether the clip at `relpath` is there with the bytes whose sha256 its record holds."""
    size = fmt.fixed_bytes
    if size is None:
        return file_intact(data_dir, relpath, sha256)
    try:
        with open(check_inside(data_dir, relpath), "rb") as fh:
            data = fh.read(size + 1)
    except OSError:
        return False
    return len(data) == size and sha256_bytes(data) == sha256


def file_intact(data_dir: str | Path, relpath: str, sha256: str) -> bool:
    """Whether the file at `relpath` (of any length: a phrase, its frame table) is there with the
    bytes whose sha256 its record holds."""
    try:
        with open(check_inside(data_dir, relpath), "rb") as fh:
            return hashlib.file_digest(fh, "sha256").hexdigest() == sha256
    except OSError:
        return False


def write_manifest(data_dir: str | Path, manifest: pd.DataFrame) -> bool:
    """manifest.csv, atomically, and only when its content changes, so that make sees a new mtime
    (and the features stage runs) only then. True if written."""
    return write_if_changed(manifest_path(data_dir), manifest.to_csv(index=False).encode())


# --- reading ---------------------------------------------------------------------------------
def load_manifest(data_dir) -> pd.DataFrame:
    """The manifest of the dataset in `data_dir` (a folder, or a Config). PipelineError, one line, if
    it is missing, empty, unreadable or lacks one of REQUIRED_COLUMNS."""
    import pandas as pd

    path = manifest_path(data_dir)
    if not path.is_file():
        raise PipelineError(f"no dataset at {path}; build it first with make data (or pipeline data)")
    fix = "delete it and run make data (or pipeline data) again"
    try:
        frame = pd.read_csv(path, keep_default_na=False, na_values=[""], dtype=TEXT_COLUMNS)
    except pd.errors.EmptyDataError:
        raise PipelineError(f"manifest {path} is empty; {fix}") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, ValueError) as exc:
        raise PipelineError(f"manifest {path} is unreadable ({exc}); {fix}") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise PipelineError(f"manifest {path} lacks the column(s) {', '.join(missing)}; {fix}")
    return frame


def check_split(split: str) -> None:
    if split not in C.SPLITS:
        raise PipelineError(f"unknown split {split!r}; choose one of {', '.join(C.SPLITS)}")


def split_rows(manifest: pd.DataFrame, split: str) -> pd.DataFrame:
    """The manifest rows of one split, in manifest order (index reset): row i of the split's
    features (features/SPLIT.npy) is the spectrogram of row i here."""
    check_split(split)
    return manifest[manifest["split"] == split].reset_index(drop=True)


def read_clip(path: str | Path, data: bytes | None = None, fmt: ClipFormat = DEFAULT_FORMAT) -> np.ndarray:
    """One dataset clip as float32 in [-1, 1], from its file or from its bytes (`data`); `fmt`: the
    dataset's clips (`dataset_format`), the default 16 kHz 330 ms ones unless told.

    A 16-bit WAV this package wrote (the canonical 44-byte header of `wav_bytes`) is decoded with
    numpy, a seventh of libsndfile's cost per clip and the same values (int16 / 32768, exact);
    anything else goes through soundfile."""
    if data is None:
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except OSError as exc:
            raise PipelineError(f"cannot read audio {path} ({exc}); rebuild the dataset with make data") from None
    if data[:WAV_HEADER_BYTES] == _canonical_header(fmt.rate, fmt.samples) and \
            len(data) == WAV_HEADER_BYTES + 2 * fmt.samples:
        return np.frombuffer(data, dtype="<i2", offset=WAV_HEADER_BYTES).astype(np.float32) / np.float32(32768)
    return read_clip_soundfile(path, data, fmt)


@lru_cache(maxsize=8)
def _canonical_header(rate: int = C.SAMPLE_RATE, samples: int = C.CLIP_SAMPLES) -> bytes:
    return wav_bytes(np.zeros(samples, dtype=np.int16), rate)[:WAV_HEADER_BYTES]


def read_clip_soundfile(path: str | Path, data: bytes, fmt: ClipFormat = DEFAULT_FORMAT,
                        any_length: bool = False) -> np.ndarray:
    """read_clip through libsndfile: any WAV or FLAC holding one clip (or, `any_length`, a phrase);
    checks its rate, its channels and its length."""
    import soundfile as sf

    try:
        audio, rate = sf.read(io.BytesIO(data), dtype="float32")
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise PipelineError(f"cannot read audio {path} ({exc}); rebuild the dataset with make data") from None
    if rate != fmt.rate or audio.ndim != 1 or not (any_length or len(audio) == fmt.samples):
        what, length = ("phrase", "") if any_length else ("clip", f"{fmt.samples} ")
        raise PipelineError(f"{what} {path} is not {length}mono samples at {fmt.rate} Hz; rebuild the dataset "
                            "with make data")
    return audio


def dataset_format(data_dir) -> ClipFormat:
    """The clips of the dataset in `data_dir` (a folder, or a Config): dataset.json's "audio" record;
    the default clips for a dataset built before it was recorded, or none built yet."""
    info = read_json(_folder(data_dir) / DATASET_FILE) or {}
    try:
        return ClipFormat.from_dict(info.get("audio"))
    except ValueError:
        raise PipelineError(f"{_folder(data_dir) / DATASET_FILE} has a damaged 'audio' record; "
                            "run make data (or pipeline data) again") from None


def resample_clips(clips: np.ndarray, rate: int, to_rate: int) -> np.ndarray:
    """(N, samples) float32 clips at `rate` -> (N, samples * to_rate / rate) at `to_rate` (libsoxr, very
    high quality, each clip alone: what `pipeline predict` does to a file)."""
    if rate == to_rate:
        return clips
    import soxr

    return np.stack([soxr.resample(clip, rate, to_rate, quality="VHQ") for clip in clips]) if len(clips) else \
        np.zeros((0, round(clips.shape[1] * to_rate / rate)), np.float32)


def read_phrase(path: str | Path, fmt: ClipFormat = DEFAULT_FORMAT) -> np.ndarray:
    """A phrase (any length, mono, at the rate and in the format of `fmt`: the dataset's, as the data
    stage writes it) as float32 in [-1, 1]."""
    data = Path(path).read_bytes() if Path(path).is_file() else b""
    if len(data) > WAV_HEADER_BYTES and data[:4] == b"RIFF" and \
            data[20:36] == _canonical_header(fmt.rate, fmt.samples)[20:36]:
        return np.frombuffer(data, dtype="<i2", offset=WAV_HEADER_BYTES).astype(np.float32) / np.float32(32768)
    return read_clip_soundfile(path, data, fmt, any_length=True)


def read_clips(data_dir, frame: pd.DataFrame, rate: int | None = None) -> np.ndarray:
    """The clips of the manifest rows in `frame` as a (N, samples) float32 array, (N, 5280) for the
    default clips; `data_dir` is the dataset folder (or a Config). `rate`: resampled to it (the
    model's and the trackers' 16 kHz), else at the dataset's own rate."""
    folder = _folder(data_dir)
    fmt = dataset_format(folder)
    out = np.empty((len(frame), fmt.samples), dtype=np.float32)
    for i, rel in enumerate(frame["path"]):
        out[i] = read_clip(folder / rel, fmt=fmt)
    return out if rate is None else resample_clips(out, fmt.rate, rate)


def load_phrases(data_dir) -> pd.DataFrame:
    """phrases.csv of a dataset folder (or a Config)."""
    import pandas as pd

    folder = Path(getattr(data_dir, "data_dir", data_dir))
    try:
        return pd.read_csv(folder / PHRASES_FILE, keep_default_na=False, na_values=[""],
                           dtype={"timbre": str, "augment": str, "path": str})
    except FileNotFoundError:
        raise PipelineError(f"{folder / PHRASES_FILE} not found; build phrases with phrases.enabled = true "
                            "and make data") from None


def load_frames(data_dir) -> pd.DataFrame:
    """frames.csv of a dataset folder (or a Config): one row per 10 ms frame of every phrase."""
    import pandas as pd

    folder = Path(getattr(data_dir, "data_dir", data_dir))
    try:
        return pd.read_csv(folder / FRAMES_FILE, keep_default_na=False, dtype={"flag": str, "path": str})
    except FileNotFoundError:
        raise PipelineError(f"{folder / FRAMES_FILE} not found; build phrases with phrases.enabled = true "
                            "and make data") from None
