"""Features: one 513x90 magnitude spectrogram per clip, stored per split as memory-mappable .npy.

`spectrogram` is the pure function (arrays in, arrays out); `build_features` is the
file-to-file stage; `load_split` is how training and evaluation read its outputs.

Scaling, applied to scipy's magnitude spectrogram (mode="magnitude", scaling="density"):
- linear: the magnitude itself (tiny values; store as float32, float16 loses them);
- log: ln(magnitude + LOG_EPSILON), the default;
- db: 20 log10(magnitude + LOG_EPSILON).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.fft
import scipy.signal

from pipeline import constants as C
from pipeline.artifacts import atomic_path, ensure_dir, sha256_file, write_json
from pipeline.config import Config
from pipeline.errors import PipelineError

DONE_FILE = "done.json"
FEATURES_DIR = "features"


# --- the pure function ---------------------------------------------------------------
def spectrogram(clips: np.ndarray, scaling: str = "log", out: np.ndarray | None = None) -> np.ndarray:
    """(N, 5280) clips -> (N, 513, 90) float32 scaled magnitude spectrograms, written into `out`
    (any float dtype, e.g. rows of a memory map) when given.

    Bit for bit what `scipy.signal.spectrogram(clip, mode="magnitude")` and the scaling give
    per clip (tests and `make bench` check it), computed for the whole batch at once: the same
    float32 operations in the same order, minus scipy's detours that cannot change a value
    (a complex64 window and scale where both are real, an extra transpose).
    """
    clips = np.asarray(clips, dtype=np.float32)
    if clips.ndim == 1:
        clips = clips[None, :]
    if clips.ndim != 2 or clips.shape[1] != C.CLIP_SAMPLES:
        raise PipelineError(f"spectrogram expects clips of shape (N, {C.CLIP_SAMPLES}), got {clips.shape}; "
                            f"cut audio into {C.CLIP_SAMPLES}-sample clips at {C.SAMPLE_RATE} Hz first")
    if scaling not in SCALINGS:
        raise PipelineError(f"unknown spectrogram scaling {scaling!r}; choose log, db or linear")
    if out is None:
        out = np.empty((len(clips), *C.SPEC_SHAPE), dtype=np.float32)
    elif out.shape != (len(clips), *C.SPEC_SHAPE):
        raise PipelineError(f"spectrogram output has shape {out.shape}, expected ({len(clips)}, "
                            f"{C.SPEC_SHAPE[0]}, {C.SPEC_SHAPE[1]})")
    for start in range(0, len(clips), CACHE_BATCH):
        _spectrogram_into(clips[start:start + CACHE_BATCH], scaling, out[start:start + CACHE_BATCH])
    return out


CACHE_BATCH = 8  # clips per FFT call: their buffers stay in cache (measured: 4-8 beat 32, 256 is slower than a loop)
SCALINGS = ("log", "db", "linear")


def _spectrogram_into(clips: np.ndarray, scaling: str, out: np.ndarray) -> None:
    window, density = _window()
    frames = np.lib.stride_tricks.sliding_window_view(clips, C.WINDOW_LENGTH, axis=-1)[:, ::C.HOP]
    frames = frames - np.mean(frames, axis=-1, keepdims=True)  # scipy's detrend="constant"
    frames *= window
    spectrum = scipy.fft.rfft(frames, n=C.N_FFT, axis=-1)
    spectrum.view(np.float32)[...] *= density
    _scale_into(np.abs(spectrum), scaling, out.transpose(0, 2, 1))


@lru_cache(maxsize=1)
def _window() -> tuple[np.ndarray, np.float32]:
    """scipy's Hann window and density scale, as the float32 values its complex64 path uses."""
    window = scipy.signal.get_window(C.WINDOW, C.WINDOW_LENGTH).astype(np.complex64)
    density = np.sqrt(1.0 / (C.SAMPLE_RATE * (window * window).sum()))
    return window.real.copy(), np.float32(density.real)


def _scale_into(magnitude: np.ndarray, scaling: str, out: np.ndarray) -> None:
    """Write the documented scaling of a float32 magnitude into `out` (magnitude is scratch)."""
    if scaling == "linear":
        out[...] = magnitude
    elif scaling == "log":  # ln(magnitude + LOG_EPSILON), in float32 as numpy computes it
        np.log(np.add(magnitude, C.LOG_EPSILON, out=magnitude), out=out)
    else:  # db: 20 log10(magnitude + LOG_EPSILON)
        np.multiply(np.log10(np.add(magnitude, C.LOG_EPSILON, out=magnitude), out=magnitude), 20.0, out=out)


# --- reading the dataset ---------------------------------------------------------------
def _manifest(cfg: Config) -> pd.DataFrame:
    from pipeline.dataset import load_manifest

    return load_manifest(cfg)


def _read_clips(cfg: Config, frame: pd.DataFrame) -> np.ndarray:
    from pipeline.dataset import read_clips

    return read_clips(cfg, frame)


# --- the stage -------------------------------------------------------------------------
def features_dir(cfg: Config) -> Path:
    return cfg.data_dir / FEATURES_DIR


def split_path(cfg: Config, split: str) -> Path:
    return features_dir(cfg) / f"{split}.npy"


def _stamp(cfg: Config) -> dict:
    """What the features depend on; done.json must match it for the stage to be skipped."""
    manifest = cfg.data_dir / "manifest.csv"
    return {"version": C.FEATURES_VERSION, "manifest_sha256": sha256_file(manifest),
            "features": cfg.to_dict()["features"]}


def _is_current(cfg: Config, stamp: dict) -> bool:
    done = features_dir(cfg) / DONE_FILE
    try:
        recorded = json.loads(done.read_text())
    except (OSError, ValueError):
        return False
    if {k: recorded.get(k) for k in stamp} != stamp:
        return False
    return all(split_path(cfg, s).is_file() for s in C.SPLITS)


def build_features(cfg: Config) -> dict:
    """Write features/{train,val,test}.npy and done.json (last); skip when already current."""
    frame = _manifest(cfg)
    stamp = _stamp(cfg)
    if _is_current(cfg, stamp):
        print(f"features for {cfg.name} are up to date ({features_dir(cfg)})")
        return json.loads((features_dir(cfg) / DONE_FILE).read_text())
    ensure_dir(features_dir(cfg))
    (features_dir(cfg) / DONE_FILE).unlink(missing_ok=True)
    start = time.perf_counter()
    counts = {}
    for split in C.SPLITS:
        rows = frame[frame["split"] == split]
        _write_split(cfg, rows, split_path(cfg, split), split)
        counts[split] = len(rows)
    seconds = time.perf_counter() - start
    total = sum(counts.values())
    done = {**stamp, "counts": counts, "shape": list(C.SPEC_SHAPE), "seconds": round(seconds, 2),
            "clips_per_second": round(total / max(seconds, 1e-9), 1)}
    write_json(features_dir(cfg) / DONE_FILE, done)
    print(f"features: {total} clips ({', '.join(f'{s} {n}' for s, n in counts.items())}) "
          f"in {seconds:.1f} s, {done['clips_per_second']:.0f} clips/s -> {features_dir(cfg)}")
    return done


def _workers(cfg: Config) -> int:
    return cfg.data.workers or os.cpu_count() or 1


def _write_split(cfg: Config, rows: pd.DataFrame, path: Path, split: str) -> None:
    """Write a temporary .npy beside `path` shard by shard, then rename it into place.

    A shard is `features.batch_size` consecutive rows of the split. Locally, threads suffice for
    the parallelism (libsndfile and the FFTs release the GIL); with data.scheduler the shards
    run on the Dask cluster, and since every clip's spectrogram depends on that clip alone, the
    file is byte-identical either way. Each shard's rows are written at their offset in the
    file as they come, in any order; no memory map, so the process's memory (RSS included)
    stays at a few shards whatever the size of the dataset.
    """
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        writer = _RowWriter(fh, np.dtype(cfg.features.dtype), (len(rows), *C.SPEC_SHAPE))
        starts = range(0, len(rows), cfg.features.batch_size)
        if cfg.data.scheduler:
            _fill_on_cluster(cfg, rows, writer, starts, split)
        else:
            _fill_locally(cfg, rows, writer, starts)


class _RowWriter:
    """An .npy file (the header np.save writes) whose row blocks are written at their offsets."""

    def __init__(self, fh, dtype: np.dtype, shape: tuple[int, ...]):
        np.lib.format.write_array_header_1_0(fh, {"descr": np.lib.format.dtype_to_descr(dtype),
                                                  "fortran_order": False, "shape": shape})
        fh.flush()
        self.fd, self.dtype, self.offset = fh.fileno(), dtype, fh.tell()
        self.row_bytes = int(np.prod(shape[1:])) * dtype.itemsize
        os.ftruncate(self.fd, self.offset + shape[0] * self.row_bytes)

    def write(self, start: int, rows: np.ndarray) -> None:
        data = memoryview(np.ascontiguousarray(rows, dtype=self.dtype)).cast("B")
        position = self.offset + start * self.row_bytes
        while data:
            written = os.pwrite(self.fd, data, position)
            data, position = data[written:], position + written


def _fill_locally(cfg: Config, rows: pd.DataFrame, writer: _RowWriter, starts: range) -> None:
    size = cfg.features.batch_size

    def fill(start: int) -> None:
        clips = _read_clips(cfg, rows.iloc[start:start + size])
        writer.write(start, spectrogram(clips, cfg.features.scaling))

    with ThreadPoolExecutor(max_workers=_workers(cfg)) as pool:
        list(pool.map(fill, starts))


def _fill_on_cluster(cfg: Config, rows: pd.DataFrame, writer: _RowWriter, starts: range, split: str) -> None:
    """Send each shard's WAV bytes to the cluster, write the spectrograms that come back."""
    from pipeline.cluster import run_on_cluster

    size, paths = cfg.features.batch_size, list(rows["path"])
    tag = _stamp_key(cfg)

    def wavs(start: int) -> tuple:
        names = paths[start:start + size]
        return names, [(cfg.data_dir / name).read_bytes() for name in names], cfg.features.scaling, cfg.features.dtype

    jobs = [(f"features-{tag}-{split}-{start}", start, lambda start=start: wavs(start)) for start in starts]
    run_on_cluster(cfg.data.scheduler, featurize_wavs, jobs, writer.write,
                   "check the workers' logs (they need this package and soundfile)", CLUSTER_SHARDS_IN_FLIGHT)


CLUSTER_SHARDS_IN_FLIGHT = 8  # bounds the client's memory: inputs and results of 8 shards at most


def featurize_wavs(names: list[str], wavs: list[bytes], scaling: str, dtype: str) -> np.ndarray:
    """A cluster worker's shard: WAV bytes -> (N, 513, 90) spectrograms in the stored dtype."""
    from pipeline.dataset import read_clip

    clips = np.stack([read_clip(name, data) for name, data in zip(names, wavs)])
    return spectrogram(clips, scaling).astype(dtype, copy=False)


def _stamp_key(cfg: Config) -> str:
    """A short name for this build's inputs: keeps two builds' task keys apart on one scheduler."""
    return hashlib.sha256(json.dumps(_stamp(cfg), sort_keys=True).encode()).hexdigest()[:12]


# --- reading the outputs ------------------------------------------------------------------
def load_split(cfg: Config, split: str) -> tuple[np.ndarray, pd.DataFrame]:
    """(memory-mapped (N, 513, 90) features, the manifest rows of that split in the same order)."""
    if split not in C.SPLITS:
        raise PipelineError(f"unknown split {split!r}; choose one of {', '.join(C.SPLITS)}")
    fix = f"run make features (or python -m pipeline features) for {cfg.name}"
    done = features_dir(cfg) / DONE_FILE
    try:
        recorded = json.loads(done.read_text()).get("manifest_sha256")
    except (OSError, ValueError):
        raise PipelineError(f"features for {cfg.name} are missing or unfinished ({done} not readable); "
                            f"{fix}") from None
    if recorded != sha256_file(cfg.data_dir / "manifest.csv"):
        raise PipelineError(f"features for {cfg.name} were built from an older dataset; {fix}")
    path = split_path(cfg, split)
    try:
        features = np.load(path, mmap_mode="r")
    except FileNotFoundError:
        raise PipelineError(f"features file {path} is missing; {fix}") from None
    except (OSError, ValueError) as exc:
        raise PipelineError(f"features file {path} is corrupt ({exc}); delete it and {fix}") from None
    frame = _manifest(cfg)
    rows = frame[frame["split"] == split].reset_index(drop=True)
    if features.shape != (len(rows), *C.SPEC_SHAPE):
        raise PipelineError(f"features file {path} has shape {features.shape}, expected "
                            f"({len(rows)}, {C.SPEC_SHAPE[0]}, {C.SPEC_SHAPE[1]}) for the manifest; {fix}")
    return features, rows


def dataset_hash(cfg: Config) -> str:
    """The manifest's sha256 recorded when the features were built: names the training data."""
    try:
        return json.loads((features_dir(cfg) / DONE_FILE).read_text())["manifest_sha256"]
    except (OSError, ValueError, KeyError):
        raise PipelineError(f"features for {cfg.name} are missing or unfinished; "
                            f"run make features (or python -m pipeline features)") from None
