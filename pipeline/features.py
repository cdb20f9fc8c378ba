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
import os
import time
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import scipy.fft

from pipeline import constants as C
from pipeline import workers
from pipeline.artifacts import (
    AtomicFile,
    NpyRows,
    ensure_dir,
    fingerprint,
    pwrite_all,
    read_json,
    remove_stale_temporaries,
    sha256_bytes,
    sha256_file,
    write_json,
)
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


def spectrogram_columns(audio: np.ndarray, scaling: str = "log", block: int = 2048) -> np.ndarray:
    """(samples,) audio -> (513, T) float32 scaled magnitude columns, T = 1 + (samples - 256) // 56.

    Column j is the frame at sample 56 * j, computed with the very operations of `spectrogram`,
    so columns j .. j + 89 are bit for bit the spectrogram of the clip starting at sample
    56 * j: a recording's STFT is computed once and every window reads its columns from it.
    `block` columns at a time keep the FFT buffers small whatever the length."""
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    if scaling not in SCALINGS:
        raise PipelineError(f"unknown spectrogram scaling {scaling!r}; choose log, db or linear")
    if len(audio) < C.CLIP_SAMPLES:
        raise PipelineError(f"audio of {len(audio)} samples is shorter than one {C.CLIP_SAMPLES}-sample window; "
                            "pad it first")
    total = 1 + (len(audio) - C.WINDOW_LENGTH) // C.HOP
    out = np.empty((C.N_FREQ_BINS, total), dtype=np.float32)
    for start in range(0, total, block):
        count = min(block, total - start)
        piece = audio[start * C.HOP:(start + count - 1) * C.HOP + C.WINDOW_LENGTH]
        _spectrogram_into(piece[None, :], scaling, out[None, :, start:start + count])
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
RECORD_SUFFIX = ".record.json"   # features/SPLIT.record.json: what SPLIT.npy holds, written after it


def features_dir(cfg: Config) -> Path:
    return cfg.data_dir / FEATURES_DIR


def split_path(cfg: Config, split: str) -> Path:
    return features_dir(cfg) / f"{split}.npy"


def record_path(cfg: Config, split: str) -> Path:
    return features_dir(cfg) / f"{split}{RECORD_SUFFIX}"


def read_manifest(cfg: Config) -> pd.DataFrame:
    """The manifest, checked for what this stage reads: its columns, splits and clip paths."""
    path = manifest_path(cfg.data_dir)
    fix = "delete it and run make data (or pipeline data) again"
    try:
        frame = load_manifest(cfg.data_dir)
    except ValueError as exc:  # pandas' EmptyDataError: a zero-byte file
        raise PipelineError(f"manifest {path} is empty or unreadable ({exc}); {fix}") from None
    missing = [c for c in ("path", "split", "sha256") if c not in frame.columns]
    if missing:
        raise PipelineError(f"manifest {path} lacks the column(s) {', '.join(missing)}; {fix}")
    if frame.empty:
        raise PipelineError(f"manifest {path} lists no clips; check data.instruments and the note range, "
                            "then run make data")
    bad = frame[~frame["split"].isin(C.SPLITS) | frame["path"].isna() | frame["sha256"].isna()
                | frame["path"].astype(str).str.contains(r"^/|(?:^|/)\.\.(?:/|$)")]
    if len(bad):
        raise PipelineError(f"manifest {path} row {bad.index[0] + 2} has no valid path, sha256 or split "
                            f"({bad.iloc[0]['path']!r}); {fix}")
    return frame


def _stamp(cfg: Config) -> dict:
    """What the features depend on: each split's record and done.json must match it."""
    return {"version": FEATURES_VERSION, "manifest_sha256": sha256_file(manifest_path(cfg.data_dir)),
            "features": cfg.to_dict()["features"]}


def build_features(cfg: Config) -> dict:
    """Write features/{train,val,test}.npy, each followed by its record (SPLIT.record.json: rows,
    bytes, sha256, the inputs' fingerprint), then done.json. A split file intact and current (size
    and sha256 as recorded) is kept; a missing, damaged or stale one is rebuilt, alone."""
    frame = read_manifest(cfg)
    stamp = _stamp(cfg)
    done_path = ensure_dir(features_dir(cfg)) / DONE_FILE
    remove_stale_temporaries(features_dir(cfg))
    records, todo = _check_splits(cfg, frame, stamp)
    old = read_json(done_path)
    if not todo and old == _done(stamp, records, old):
        _settle(cfg)
        print(f"features for {cfg.name} are up to date and intact ({features_dir(cfg)})")
        return old
    if old is None or {k: old.get(k) for k in stamp} != stamp:
        done_path.unlink(missing_ok=True)  # other inputs: make and load_split see no features until done
    start = time.perf_counter()
    records.update(_build_splits(cfg, frame, stamp, todo))
    seconds = time.perf_counter() - start
    done = _done(stamp, records, {"seconds": round(seconds, 2), "clips_per_second": round(
        sum(len(split_rows(frame, s)) for s in todo) / max(seconds, 1e-9), 1)})
    if done_path.is_file() and old == _done(stamp, records, old):  # a repair gave back the recorded bytes
        _settle(cfg)
        done = old
    else:
        write_json(done_path, done)
    counts = done["counts"]
    print(f"features: {sum(counts.values())} clips ({', '.join(f'{s} {n}' for s, n in counts.items())}); "
          f"{', '.join(todo) or 'nothing'} built in {seconds:.1f} s -> {features_dir(cfg)}")
    return done


def _done(stamp: dict, records: dict, timing: dict | None) -> dict:
    """done.json: the stamp, each split's record, and the timing of the build that made them."""
    timing = {k: (timing or {}).get(k) for k in ("seconds", "clips_per_second")}
    return {**stamp, "splits": {s: records[s] for s in C.SPLITS}, "counts": {s: records[s]["rows"] for s in C.SPLITS},
            "shape": list(C.SPEC_SHAPE), **timing}


def _check_splits(cfg: Config, frame: pd.DataFrame, stamp: dict) -> tuple[dict, list[str]]:
    """({split: record} of the split files that are current and intact, [the splits to build])."""
    inputs = fingerprint(stamp)
    records, todo = {}, []
    for split in C.SPLITS:
        record = read_json(record_path(cfg, split)) or {}
        current = record.get("inputs") == inputs and record.get("rows") == len(split_rows(frame, split))
        if current and _intact(split_path(cfg, split), record):
            records[split] = record
            continue
        if current:
            print(f"features: {split_path(cfg, split)} is missing or damaged; rebuilding it")
        todo.append(split)
    return records, todo


def _intact(path: Path, record: dict) -> bool:
    """The file is the one its record describes: its size, then every byte's sha256."""
    try:
        return path.stat().st_size == record.get("bytes") and sha256_file(path) == record.get("sha256")
    except OSError:
        return False


def _settle(cfg: Config) -> None:
    """make rebuilds done.json (and retrains) when a split file is newer. A split file just
    checked against done.json's record (every byte: a repair gave back the recorded bytes, or a
    `touch`) gets done.json's mtime, so make neither asks again nor retrains for it."""
    done_ns = (features_dir(cfg) / DONE_FILE).stat().st_mtime_ns
    for split in C.SPLITS:
        stat = split_path(cfg, split).stat()
        if stat.st_mtime_ns > done_ns:
            os.utime(split_path(cfg, split), ns=(stat.st_atime_ns, done_ns))


def _build_splits(cfg: Config, frame: pd.DataFrame, stamp: dict, todo: list[str]) -> dict:
    """Build the `todo` splits, each renamed into place with its record once its last shard is
    written (a stop keeps the splits done); returns their records."""
    inputs = fingerprint(stamp)
    with contextlib.ExitStack() as stack, _local_pool(cfg) as pool:  # on a stop: workers first, then files
        files = {split: stack.enter_context(_SplitFile(cfg, split, split_rows(frame, split), inputs))
                 for split in todo}
        if cfg.data.scheduler or pool is None:  # one split after the other
            for split, file in files.items():
                file.fill(f"features-{inputs[:12]}-{split}")
        else:  # every split's shards share the workers: no wait between splits
            pending = {pool.submit(featurize_files_into, *job): split
                       for split, file in files.items() for job in file.jobs()}
            for file in files.values():
                file.finish_if_done()
            workers.collect(pending, lambda split, _: files[split].shard_done(), keep_finished=False)
        return {split: file.record for split, file in files.items()}


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


class _SplitFile:
    """One split's .npy under its temporary name, filled shard by shard (`features.batch_size`
    rows), then renamed into place and recorded. Each worker writes its shard's rows at their
    offset (the header first, the file allocated: a full disk shows at once), in any order; no
    memory map, no rows through the parent: memory stays at a few shards. On a Dask cluster the
    client writes what comes back; a clip's spectrogram depends on that clip alone, so the file
    is byte-identical either way."""

    def __init__(self, cfg: Config, split: str, rows: pd.DataFrame, inputs: str):
        self.cfg, self.split, self.rows, self.inputs, self.record = cfg, split, rows, inputs, None
        self.starts = range(0, len(rows), cfg.features.batch_size)
        self.remaining = len(self.starts)
        self.file = AtomicFile(split_path(cfg, split))
        self.fh = open(self.file.tmp, "r+b")
        try:
            self.writer = NpyRows(self.fh, self.file.tmp, cfg.features.dtype, (len(rows), *C.SPEC_SHAPE))
        except BaseException:
            self.__exit__()
            raise

    def __enter__(self) -> _SplitFile:
        return self

    def __exit__(self, *exc_info) -> None:
        self.fh.close()
        self.file.discard()  # a no-op once finished

    def jobs(self) -> list[tuple]:
        cfg, size, hashes = self.cfg, self.cfg.features.batch_size, list(self.rows["sha256"])
        paths = [str(cfg.data_dir / p) for p in self.rows["path"]]
        return [(paths[s:s + size], hashes[s:s + size], cfg.features.scaling, cfg.features.dtype,
                 str(self.file.tmp), self.writer.position(s)) for s in self.starts]

    def fill(self, key: str) -> None:
        """Every shard here, one at a time (one worker), or on the cluster; then finish."""
        if self.cfg.data.scheduler:
            _fill_on_cluster(self.cfg, self.rows, self.writer, self.starts, key)
        else:
            for job in self.jobs():
                featurize_files_into(*job)
        self.remaining = 0
        self.finish_if_done()

    def shard_done(self) -> None:
        self.remaining -= 1
        self.finish_if_done()

    def finish_if_done(self) -> None:
        """Once every shard is written: hash the file, fsync it, rename it, write its record."""
        if self.remaining or self.record is not None:
            return
        self.fh.close()
        tmp = self.file.tmp
        record = {"inputs": self.inputs, "rows": len(self.rows), "bytes": tmp.stat().st_size,
                  "sha256": sha256_file(tmp), "dtype": self.cfg.features.dtype}
        self.file.commit()
        write_json(record_path(self.cfg, self.split), record)
        self.record = record


def featurize_files_into(paths: list[str], sha256s: list[str], scaling: str, dtype: str, npy_path: str,
                         position: int) -> None:
    """A local worker's shard: read and check the clips, write their spectrograms at `position`."""
    rows = featurize(paths, scaling, dtype, sha256s=sha256s)
    fd = os.open(npy_path, os.O_WRONLY)
    try:
        pwrite_all(fd, rows, position, npy_path)
    finally:
        os.close(fd)


def featurize(names: list[str], scaling: str, dtype: str, wavs: list[bytes] | None = None,
              sha256s: list[str] | None = None) -> np.ndarray:
    """A shard's (N, 513, 90) spectrograms in the stored dtype, from the clip files, or from
    their WAV bytes (`wavs`, what a cluster worker gets); each clip checked against its sha256
    in the manifest when `sha256s` are given."""
    wavs = wavs or [_read_bytes(name) for name in names]
    for name, data, expected in zip(names, wavs, sha256s or [None] * len(names)):
        if expected is not None and sha256_bytes(data) != expected:
            raise PipelineError(f"clip {name} does not match its sha256 in the manifest (changed or damaged "
                                "since it was built); run make data to rebuild it, then make features")
    clips = np.stack([read_clip(name, data) for name, data in zip(names, wavs)])
    return spectrogram(clips, scaling).astype(dtype, copy=False)


def _read_bytes(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise PipelineError(f"cannot read clip {path} ({exc.strerror}); run make data to rebuild it, "
                            "then make features") from None


def _fill_on_cluster(cfg: Config, rows: pd.DataFrame, writer: NpyRows, starts: range, key: str) -> None:
    """Send each shard's WAV bytes to the cluster, write the spectrograms that come back."""
    size, paths, hashes = cfg.features.batch_size, list(rows["path"]), list(rows["sha256"])

    def job_args(start: int) -> tuple:
        names = paths[start:start + size]
        wavs = [_read_bytes(str(cfg.data_dir / name)) for name in names]
        return names, cfg.features.scaling, cfg.features.dtype, wavs, hashes[start:start + size]

    jobs = [(f"{key}-{start}", start, lambda start=start: job_args(start)) for start in starts]
    workers.run_on_cluster(cfg.data.scheduler, featurize, jobs, writer.write,
                           "check the workers' logs (they need this package and soundfile)", CLUSTER_SHARDS_IN_FLIGHT)


CLUSTER_SHARDS_IN_FLIGHT = 8  # bounds the client's memory: inputs and results of 8 shards at most


# --- reading the outputs ------------------------------------------------------------------
def load_split(cfg: Config, split: str) -> tuple[np.ndarray, pd.DataFrame]:
    """(memory-mapped (N, 513, 90) features, the manifest rows of that split in the same order).

    Checked cheaply against done.json: built from this manifest, and the file's header, shape,
    dtype and size as recorded (`pipeline features` checks every byte against the sha256)."""
    check_split(split)
    fix = f"run make features (or pipeline features) for {cfg.name}"
    done = read_json(features_dir(cfg) / DONE_FILE)
    if done is None:
        raise PipelineError(f"features for {cfg.name} are missing or unfinished "
                            f"({features_dir(cfg) / DONE_FILE} not readable); {fix}")
    if done.get("manifest_sha256") != sha256_file(manifest_path(cfg.data_dir)):
        raise PipelineError(f"features for {cfg.name} were built from an older dataset; {fix}")
    record = (done.get("splits") or {}).get(split) or {}
    path = split_path(cfg, split)
    try:
        features = np.load(path, mmap_mode="r")
    except FileNotFoundError:
        raise PipelineError(f"features file {path} is missing; {fix}") from None
    except (OSError, ValueError) as exc:
        raise PipelineError(f"features file {path} is corrupt ({exc}); {fix}") from None
    rows = split_rows(load_manifest(cfg.data_dir), split)
    if features.shape != (len(rows), *C.SPEC_SHAPE):
        raise PipelineError(f"features file {path} has shape {features.shape}, expected "
                            f"({len(rows)}, {C.SPEC_SHAPE[0]}, {C.SPEC_SHAPE[1]}) for the manifest; {fix}")
    if path.stat().st_size != record.get("bytes") or features.dtype != np.dtype(record.get("dtype", "V")):
        raise PipelineError(f"features file {path} is not the file done.json records (damaged, or from "
                            f"another build); {fix}")
    return features, rows


def dataset_hash(cfg: Config) -> str:
    """The manifest's sha256 recorded when the features were built: names the training data."""
    done = read_json(features_dir(cfg) / DONE_FILE) or {}
    if "manifest_sha256" not in done:
        raise PipelineError(f"features for {cfg.name} are missing or unfinished; run make features")
    return done["manifest_sha256"]
