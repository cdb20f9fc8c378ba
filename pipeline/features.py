"""Features: one 513x90 magnitude spectrogram per clip, stored per split as memory-mappable .npy.

`spectrogram` is the pure function (arrays in, arrays out); `build_features` is the
file-to-file stage; `load_split` is how training and evaluation read its outputs.

Scaling, applied to scipy's magnitude spectrogram (mode="magnitude", scaling="density"):
- linear: the magnitude itself (tiny values; store as float32, float16 loses them);
- log: ln(magnitude + LOG_EPSILON), the default;
- db: 20 log10(magnitude + LOG_EPSILON).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import scipy.fft

from pipeline import constants as C
from pipeline import workers
from pipeline.artifacts import atomic_path, ensure_dir, fingerprint, sha256_file, write_json
from pipeline.clips import check_split, load_manifest, manifest_path, read_clip, split_rows
from pipeline.config import Config
from pipeline.errors import PipelineError

if TYPE_CHECKING:
    import pandas as pd

DONE_FILE = "done.json"
FEATURES_DIR = "features"
FEATURES_VERSION = 1            # bump when the stored features change for the same config
# Floor added to the magnitude before the log: about 120 dB below full scale and above
# the 16-bit quantisation noise, so silence maps to one value instead of dither patterns.
LOG_EPSILON = 1e-6


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


# clips per FFT call: their buffers stay in the core's L2 (measured: 2 beats 8, 16 is slower than a loop)
CACHE_BATCH = 2
SCALINGS = ("log", "db", "linear")


def _spectrogram_into(clips: np.ndarray, scaling: str, out: np.ndarray) -> None:
    window, density = spectrogram_window()
    frames = np.lib.stride_tricks.sliding_window_view(clips, C.WINDOW_LENGTH, axis=-1)[:, ::C.HOP]
    frames = frames - np.mean(frames, axis=-1, keepdims=True)  # scipy's detrend="constant"
    frames *= window
    spectrum = scipy.fft.rfft(frames, n=C.N_FFT, axis=-1)
    spectrum.view(np.float32)[...] *= density
    _scale_into(np.abs(spectrum), scaling, out.transpose(0, 2, 1))


@lru_cache(maxsize=1)
def spectrogram_window() -> tuple[np.ndarray, np.float32]:
    """scipy's window and density scale, as the float32 values its complex64 path uses."""
    window = (_periodic_hann() if C.WINDOW == "hann" else _scipy_window()).astype(np.complex64)
    density = np.sqrt(1.0 / (C.SAMPLE_RATE * (window * window).sum()))
    return window.real.copy(), np.float32(density.real)


def _periodic_hann() -> np.ndarray:
    """scipy.signal.get_window("hann", 256), computed as scipy's general_cosine does (a test
    checks the bits): importing scipy.signal would cost each worker a second."""
    fac = np.linspace(-np.pi, np.pi, C.WINDOW_LENGTH + 1)
    hann = np.zeros(C.WINDOW_LENGTH + 1)
    for k, a in enumerate((0.5, 0.5)):
        hann += a * np.cos(k * fac)
    return hann[:-1]


def _scipy_window() -> np.ndarray:
    import scipy.signal

    return scipy.signal.get_window(C.WINDOW, C.WINDOW_LENGTH)


def _scale_into(magnitude: np.ndarray, scaling: str, out: np.ndarray) -> None:
    """Write the documented scaling of a float32 magnitude into `out`, in place in `magnitude`
    first (contiguous, cheaper than computing into a transposed view), then one copy."""
    if scaling == "log":  # ln(magnitude + LOG_EPSILON), in float32 as numpy computes it
        np.log(np.add(magnitude, LOG_EPSILON, out=magnitude), out=magnitude)
    elif scaling == "db":  # 20 log10(magnitude + LOG_EPSILON)
        np.multiply(np.log10(np.add(magnitude, LOG_EPSILON, out=magnitude), out=magnitude), 20.0, out=magnitude)
    out[...] = magnitude


# --- the stage -------------------------------------------------------------------------
def features_dir(cfg: Config) -> Path:
    return cfg.data_dir / FEATURES_DIR


def split_path(cfg: Config, split: str) -> Path:
    return features_dir(cfg) / f"{split}.npy"


def _stamp(cfg: Config) -> dict:
    """What the features depend on; done.json must match it for the stage to be skipped."""
    return {"version": FEATURES_VERSION, "manifest_sha256": sha256_file(manifest_path(cfg.data_dir)),
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
    frame = load_manifest(cfg.data_dir)
    stamp = _stamp(cfg)
    if _is_current(cfg, stamp):
        print(f"features for {cfg.name} are up to date ({features_dir(cfg)})")
        return json.loads((features_dir(cfg) / DONE_FILE).read_text())
    ensure_dir(features_dir(cfg))
    (features_dir(cfg) / DONE_FILE).unlink(missing_ok=True)
    start = time.perf_counter()
    counts, pending = {}, []
    with _local_pool(cfg) as pool, contextlib.ExitStack() as files:  # files are renamed into place last
        for split in C.SPLITS:
            rows = split_rows(frame, split)
            file = files.enter_context(_split_file(split_path(cfg, split)))
            pending += _start_split(cfg, rows, file, f"features-{_stamp_key(stamp)}-{split}", pool)
            counts[split] = len(rows)
        for future in pending:  # every split's shards share the workers: no wait between splits
            future.result()
    seconds = time.perf_counter() - start
    total = sum(counts.values())
    done = {**stamp, "counts": counts, "shape": list(C.SPEC_SHAPE), "seconds": round(seconds, 2),
            "clips_per_second": round(total / max(seconds, 1e-9), 1)}
    write_json(features_dir(cfg) / DONE_FILE, done)
    print(f"features: {total} clips ({', '.join(f'{s} {n}' for s, n in counts.items())}) "
          f"in {seconds:.1f} s, {done['clips_per_second']:.0f} clips/s -> {features_dir(cfg)}")
    return done


@contextlib.contextmanager
def _local_pool(cfg: Config):
    """Worker processes for the shards (None: one worker, or a Dask cluster). Processes, not
    threads: the numpy glue around the FFTs holds the GIL often enough that two threads reach
    only 1.5x one; two processes reach about 2x."""
    count = workers.worker_count(cfg.data.workers)
    if cfg.data.scheduler or count <= 1:
        yield None
        return
    with workers.spawn_pool(count) as pool:
        yield pool


@contextlib.contextmanager
def _split_file(path: Path):
    """A temporary file beside `path`, renamed into place when the block ends without error."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        yield tmp, fh


def _start_split(cfg: Config, rows: pd.DataFrame, file: tuple, key: str, pool) -> list:
    """Write one split's .npy shard by shard; returns the futures of the shards still running.

    A shard is `features.batch_size` consecutive rows of the split. Each worker reads its
    shard's clips and writes its rows at their offset in the file (the .npy header is written
    first, the file sized), in any order; no memory map and no rows through the parent, so
    memory (RSS included) stays at a few shards whatever the size of the dataset. With
    data.scheduler the shards run on the Dask cluster and the client writes what comes back;
    every clip's spectrogram depends on that clip alone, so the file is byte-identical either way.
    `key` names the split's shards on the cluster.
    """
    tmp, fh = file
    writer = _RowWriter(fh, np.dtype(cfg.features.dtype), (len(rows), *C.SPEC_SHAPE))
    starts = range(0, len(rows), cfg.features.batch_size)
    if cfg.data.scheduler:
        _fill_on_cluster(cfg, rows, writer, starts, key)
        return []
    size, paths = cfg.features.batch_size, [str(cfg.data_dir / p) for p in rows["path"]]
    jobs = [(paths[start:start + size], cfg.features.scaling, cfg.features.dtype, str(tmp), writer.position(start))
            for start in starts]
    if pool is None:
        for job in jobs:
            featurize_files_into(*job)
        return []
    return [pool.submit(featurize_files_into, *job) for job in jobs]


class _RowWriter:
    """An .npy file (the header np.save writes) whose row blocks are written at their offsets."""

    def __init__(self, fh, dtype: np.dtype, shape: tuple[int, ...]):
        np.lib.format.write_array_header_1_0(fh, {"descr": np.lib.format.dtype_to_descr(dtype),
                                                  "fortran_order": False, "shape": shape})
        fh.flush()
        self.fd, self.dtype, self.offset = fh.fileno(), dtype, fh.tell()
        self.row_bytes = int(np.prod(shape[1:])) * dtype.itemsize
        os.ftruncate(self.fd, self.offset + shape[0] * self.row_bytes)

    def position(self, start: int) -> int:
        return self.offset + start * self.row_bytes

    def write(self, start: int, rows: np.ndarray) -> None:
        _pwrite_all(self.fd, np.ascontiguousarray(rows, dtype=self.dtype), self.position(start))


def _pwrite_all(fd: int, rows: np.ndarray, position: int) -> None:
    data = memoryview(rows).cast("B")
    while data:
        written = os.pwrite(fd, data, position)
        data, position = data[written:], position + written


def featurize_files_into(paths: list[str], scaling: str, dtype: str, npy_path: str, position: int) -> None:
    """A local worker's shard: read the clips, write their spectrograms at `position` of the file."""
    rows = featurize(paths, scaling, dtype)
    fd = os.open(npy_path, os.O_WRONLY)
    try:
        _pwrite_all(fd, rows, position)
    finally:
        os.close(fd)


def featurize(names: list[str], scaling: str, dtype: str, wavs: list[bytes] | None = None) -> np.ndarray:
    """A shard's (N, 513, 90) spectrograms in the stored dtype, from the clip files, or from
    their WAV bytes (`wavs`, what a cluster worker gets)."""
    clips = np.stack([read_clip(name, data) for name, data in zip(names, wavs or [None] * len(names))])
    return spectrogram(clips, scaling).astype(dtype, copy=False)


def _fill_on_cluster(cfg: Config, rows: pd.DataFrame, writer: _RowWriter, starts: range, key: str) -> None:
    """Send each shard's WAV bytes to the cluster, write the spectrograms that come back."""
    size, paths = cfg.features.batch_size, list(rows["path"])

    def job_args(start: int) -> tuple:
        names = paths[start:start + size]
        wavs = [(cfg.data_dir / name).read_bytes() for name in names]
        return names, cfg.features.scaling, cfg.features.dtype, wavs

    jobs = [(f"{key}-{start}", start, lambda start=start: job_args(start)) for start in starts]
    workers.run_on_cluster(cfg.data.scheduler, featurize, jobs, writer.write,
                           "check the workers' logs (they need this package and soundfile)", CLUSTER_SHARDS_IN_FLIGHT)


CLUSTER_SHARDS_IN_FLIGHT = 8  # bounds the client's memory: inputs and results of 8 shards at most


def _stamp_key(stamp: dict) -> str:
    """A short name for this build's inputs: keeps two builds' task keys apart on one scheduler."""
    return fingerprint(stamp)[:12]


# --- reading the outputs ------------------------------------------------------------------
def load_split(cfg: Config, split: str) -> tuple[np.ndarray, pd.DataFrame]:
    """(memory-mapped (N, 513, 90) features, the manifest rows of that split in the same order)."""
    check_split(split)
    fix = f"run make features (or python -m pipeline features) for {cfg.name}"
    done = features_dir(cfg) / DONE_FILE
    try:
        recorded = json.loads(done.read_text()).get("manifest_sha256")
    except (OSError, ValueError):
        raise PipelineError(f"features for {cfg.name} are missing or unfinished ({done} not readable); "
                            f"{fix}") from None
    if recorded != sha256_file(manifest_path(cfg.data_dir)):
        raise PipelineError(f"features for {cfg.name} were built from an older dataset; {fix}")
    path = split_path(cfg, split)
    try:
        features = np.load(path, mmap_mode="r")
    except FileNotFoundError:
        raise PipelineError(f"features file {path} is missing; {fix}") from None
    except (OSError, ValueError) as exc:
        raise PipelineError(f"features file {path} is corrupt ({exc}); delete it and {fix}") from None
    rows = split_rows(load_manifest(cfg.data_dir), split)
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
