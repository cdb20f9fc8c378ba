"""The features stage: one 513x90 magnitude spectrogram per clip, stored per split as memory-mappable .npy
(clips of another rate or length: the shape `pipeline.dsp.spectrogram.Stft.for_clips` gives, in done.json).

`pipeline.dsp.spectrogram.spectrogram` is the pure function (arrays in, arrays out);
`build_features` is the file-to-file stage; `load_split` is how training and evaluation read
its outputs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pipeline.core import constants as C
from pipeline.core import progress, workers
from pipeline.core.artifacts import (
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
from pipeline.core.audio_format import DEFAULT_FORMAT, ClipFormat
from pipeline.core.config import Config
from pipeline.core.errors import PipelineError
from pipeline.data.clips import dataset_format, load_manifest, manifest_path, read_clip, split_rows
from pipeline.data.feature_files import BUILD_FILE, DONE_FILE, features_dir, record_path, split_path
from pipeline.dsp.spectrogram import Stft, spectrogram

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    import pandas as pd

FEATURES_VERSION = 1            # bump when the stored features change for the same config


# --- the stage -------------------------------------------------------------------------
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
    """What the features depend on: each split's record and done.json must match it (the clips'
    format where it is not the default: the stamps of features built before it was one stay)."""
    fmt = dataset_format(cfg.data_dir)
    return {"version": FEATURES_VERSION, "manifest_sha256": sha256_file(manifest_path(cfg.data_dir)),
            "features": cfg.to_dict()["features"], **fmt.stamp()}


def stft_of(fmt: ClipFormat) -> Stft:
    return Stft.for_clips(fmt.rate, fmt.samples)


def build_features(cfg: Config) -> dict:
    """Write features/{train,val,test}.npy, each followed by its record (SPLIT.record.json: rows,
    bytes, sha256, the inputs' fingerprint), then done.json (only when what it says changes: what
    training reads), then build.json (always: make's target). A split file intact and current is
    kept; a missing, damaged or stale one is rebuilt, alone. With features.kind = "frames": the
    frame model's examples instead (pipeline/data/frame_examples.py)."""
    if cfg.features.kind == "frames":
        from pipeline.data.frame_examples import build_frame_examples

        return build_frame_examples(cfg)
    frame = read_manifest(cfg)
    stamp = _stamp(cfg)
    done_path = ensure_dir(features_dir(cfg)) / DONE_FILE
    remove_stale_temporaries(features_dir(cfg))
    old = read_json(done_path)
    records, todo = _check_splits(cfg, frame, stamp, old)
    start = time.perf_counter()
    if todo or old != _done(stamp, records):
        if old is None or {k: old.get(k) for k in stamp} != stamp:
            done_path.unlink(missing_ok=True)  # other inputs: make and load_split see no features until done
        records.update(_build_splits(cfg, frame, stamp, todo))
    seconds = time.perf_counter() - start
    done = _done(stamp, records)
    if old != done:
        write_json(done_path, done)
    _settle(cfg)
    built = sum(len(split_rows(frame, s)) for s in todo)
    write_json(features_dir(cfg) / BUILD_FILE, {"splits_built": todo, "clips_built": built, "seconds": round(
        seconds, 2), "clips_per_second": round(built / max(seconds, 1e-9), 1) if built else None})
    counts = done["counts"]
    if todo:
        log.info("features: %d clips (%s); %s built in %.1f s -> %s", sum(counts.values()),
                 ", ".join(f"{s} {n}" for s, n in counts.items()), ", ".join(todo), seconds, features_dir(cfg))
    else:
        log.info("features for %s are up to date and intact (%s)", cfg.name, features_dir(cfg))
    return done


def _done(stamp: dict, records: dict) -> dict:
    """done.json: the stamp and each split's record (nothing that changes from one run to the next)."""
    if set(records) != set(C.SPLITS):
        return {}
    shape = stft_of(ClipFormat.from_dict(stamp.get("audio"))).shape
    return {**stamp, "splits": {s: records[s] for s in C.SPLITS}, "counts": {s: records[s]["rows"] for s in C.SPLITS},
            "shape": list(shape)}


def _check_splits(cfg: Config, frame: pd.DataFrame, stamp: dict, done: dict | None) -> tuple[dict, list[str]]:
    """({split: record} of the split files that are current and intact, [the splits to build])."""
    inputs = fingerprint(stamp)
    records, todo = {}, []
    done_ns = _mtime_ns(features_dir(cfg) / DONE_FILE)
    for split in C.SPLITS:
        record = read_json(record_path(cfg, split)) or {}
        current = record.get("inputs") == inputs and record.get("rows") == len(split_rows(frame, split))
        # the mtime vouches for a file only beside an intact done.json that lists the same record
        vouched = done_ns if (done or {}).get("splits", {}).get(split) == record else -1
        if current and _intact(split_path(cfg, split), record, vouched):
            records[split] = record
            continue
        if current:
            log.warning(f"features: {split_path(cfg, split)} is missing or damaged; rebuilding it")
        todo.append(split)
    return records, todo


def _intact(path: Path, record: dict, done_ns: int) -> bool:
    """The file is the one its record describes: its size, and every byte's sha256 unless the file
    is no newer than done.json (which `_settle` guarantees for a file checked or written by a run),
    so that a run with nothing to do reads no spectrogram."""
    try:
        stat = path.stat()
        if stat.st_size != record.get("bytes"):
            return False
        return stat.st_mtime_ns <= done_ns or sha256_file(path) == record.get("sha256")
    except OSError:
        return False


def _mtime_ns(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return -1


def _settle(cfg: Config) -> None:
    """A split file just written, or checked byte for byte against its record (a repair gave back
    the recorded bytes, or a `touch`), gets done.json's mtime: make does not ask again, and the next
    run trusts its size and mtime instead of reading it."""
    done_ns = (features_dir(cfg) / DONE_FILE).stat().st_mtime_ns
    for split in C.SPLITS:
        stat = split_path(cfg, split).stat()
        if stat.st_mtime_ns > done_ns:
            os.utime(split_path(cfg, split), ns=(stat.st_atime_ns, done_ns))


def _build_splits(cfg: Config, frame: pd.DataFrame, stamp: dict, todo: list[str]) -> dict:
    """Build the `todo` splits, each renamed into place with its record once its last shard is
    written (a stop keeps the splits done); returns their records."""
    inputs = fingerprint(stamp)
    clips = sum(len(split_rows(frame, split)) for split in todo)
    with contextlib.ExitStack() as stack, _local_pool(cfg) as pool:  # on a stop: workers first, then files
        bar = stack.enter_context(progress.bar(total=clips, unit="clip", desc="features"))
        files = {split: stack.enter_context(_SplitFile(cfg, split, split_rows(frame, split), inputs, bar))
                 for split in todo}
        if cfg.data.scheduler or pool is None:  # one split after the other
            for split, file in files.items():
                file.fill(f"features-{inputs[:12]}-{split}")
        else:  # every split's shards share the workers: no wait between splits
            pending = {pool.submit(featurize_files_into, *job): split
                       for split, file in files.items() for job in file.jobs()}
            for file in files.values():
                file.finish_if_done()
            workers.collect(pending, lambda split, rows: files[split].shard_done(rows), keep_finished=False)
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

    def __init__(self, cfg: Config, split: str, rows: pd.DataFrame, inputs: str, bar=None):
        self.cfg, self.split, self.rows, self.inputs, self.record = cfg, split, rows, inputs, None
        self.fmt = dataset_format(cfg.data_dir)
        self.bar = bar  # a progress bar counting clips, or None
        self.starts = range(0, len(rows), cfg.features.batch_size)
        self.remaining = len(self.starts)
        self.file = AtomicFile(split_path(cfg, split))
        self.fh = open(self.file.tmp, "r+b")
        try:
            self.writer = NpyRows(self.fh, self.file.tmp, cfg.features.dtype, (len(rows), *stft_of(self.fmt).shape))
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
                 str(self.file.tmp), self.writer.position(s), self.fmt) for s in self.starts]

    def fill(self, key: str) -> None:
        """Every shard here, one at a time (one worker), or on the cluster; then finish."""
        if self.cfg.data.scheduler:
            _fill_on_cluster(self.cfg, self.rows, self.writer, self.starts, key, self.fmt)
        else:
            for job in self.jobs():
                self._advance(featurize_files_into(*job))
        self.remaining = 0
        self.finish_if_done()

    def shard_done(self, rows: int = 0) -> None:
        self.remaining -= 1
        self._advance(rows)
        self.finish_if_done()

    def _advance(self, rows: int) -> None:
        if self.bar is not None:
            self.bar.update(rows)

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
                         position: int, fmt: ClipFormat = DEFAULT_FORMAT) -> int:
    """A local worker's shard: read and check the clips, write their spectrograms at `position`;
    returns how many it wrote."""
    rows = featurize(paths, scaling, dtype, sha256s=sha256s, fmt=fmt)
    fd = os.open(npy_path, os.O_WRONLY)
    try:
        pwrite_all(fd, rows, position, npy_path)
    finally:
        os.close(fd)
    return len(paths)


def featurize(names: list[str], scaling: str, dtype: str, wavs: list[bytes] | None = None,
              sha256s: list[str] | None = None, fmt: ClipFormat = DEFAULT_FORMAT) -> np.ndarray:
    """A shard's (N, 513, 90) spectrograms (clips of another `fmt`: its Stft's shape) in the stored
    dtype, from the clip files, or from their bytes (`wavs`, what a cluster worker gets); each clip
    checked against its sha256 in the manifest when `sha256s` are given."""
    wavs = wavs or [_read_bytes(name) for name in names]
    for name, data, expected in zip(names, wavs, sha256s or [None] * len(names)):
        if expected is not None and sha256_bytes(data) != expected:
            raise PipelineError(f"clip {name} does not match its sha256 in the manifest (changed or damaged "
                                "since it was built); run make data to rebuild it, then make features")
    clips = np.stack([read_clip(name, data, fmt) for name, data in zip(names, wavs)])
    return spectrogram(clips, scaling, stft=stft_of(fmt)).astype(dtype, copy=False)


def _read_bytes(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise PipelineError(f"cannot read clip {path} ({exc.strerror}); run make data to rebuild it, "
                            "then make features") from None


def _fill_on_cluster(cfg: Config, rows: pd.DataFrame, writer: NpyRows, starts: range, key: str,
                     fmt: ClipFormat) -> None:
    """Send each shard's WAV bytes to the cluster, write the spectrograms that come back."""
    size, paths, hashes = cfg.features.batch_size, list(rows["path"]), list(rows["sha256"])

    def job_args(start: int) -> tuple:
        names = paths[start:start + size]
        wavs = [_read_bytes(str(cfg.data_dir / name)) for name in names]
        return names, cfg.features.scaling, cfg.features.dtype, wavs, hashes[start:start + size], fmt

    jobs = [(f"{key}-{start}", start, lambda start=start: job_args(start)) for start in starts]
    workers.run_on_cluster(cfg.data.scheduler, featurize, jobs, writer.write,
                           "check the workers' logs (they need this package and soundfile)", CLUSTER_SHARDS_IN_FLIGHT)


CLUSTER_SHARDS_IN_FLIGHT = 8  # bounds the client's memory: inputs and results of 8 shards at most
