"""The export stage (`pipeline export-dataset`): a built dataset in Parquet, WebDataset, TFRecord and
NSynth's layout, under exports/NAME/ (or a folder of your choice):

    exports/NAME/README.md          the dataset card, with the `configs` that point `datasets` at parquet/
    exports/NAME/parquet/           train-00000-of-00002.parquet, ...        (pipeline.formats.parquet)
    exports/NAME/webdataset/        train-000000.tar, ...                    (pipeline.formats.webdataset)
    exports/NAME/tfrecord/          train-00000-of-00002.tfrecord, ...       (pipeline.formats.tfrecord)
    exports/NAME/nsynth/            nsynth-train/examples.json, audio/ ...   (pipeline.formats.nsynth)
    exports/NAME/build.json         written last by every export that finishes (make's target)

Each format's folder holds _export.json: the fingerprint of what it was made from (the manifest's
sha256, the frame table's, the shard size, EXPORT_VERSION), its columns and every file's
size. A format whose record matches and whose files are all there at their sizes is left alone, so a
second run does nothing. Otherwise the format is written into `.FORMAT.partial/`, a shard per file
(each renamed into place when whole), and swapped in for the old folder when every shard is done: a
reader never sees half an export, and a stopped run resumes at the first shard it had not finished
(the partial folder's plan says which dataset it was for; another one starts it afresh).
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from pipeline.core.artifacts import (
    atomic_path,
    ensure_dir,
    fingerprint,
    read_json,
    remove_stale_temporaries,
    sha256_file,
    sync_filesystem,
    write_if_changed,
    write_json,
)
from pipeline.core.config import Config
from pipeline.core.errors import PipelineError
from pipeline.data.card import CARD_FILE, card_text
from pipeline.data.clips import DATASET_FILE, dataset_format, load_manifest, manifest_path
from pipeline.formats import nsynth, parquet, tfrecord, webdataset
from pipeline.formats.table import FRAMES_FILE, Column, export_columns, plan_shards, read_batch, read_frames

log = logging.getLogger(__name__)

EXPORTS_ROOT = "exports"
EXPORT_VERSION = 1      # bump when what a format writes changes: every export is made again
FORMATS: dict[str, ModuleType] = {"parquet": parquet, "webdataset": webdataset, "tfrecord": tfrecord,
                                  "nsynth": nsynth}
SHARD_SIZE = 2000       # clips per shard: about 21 MB of 330 ms clips
RECORD_FILE = "_export.json"   # "_": pyarrow and pandas skip it when reading a folder
PLAN_FILE = "plan.json"
BUILD_FILE = "build.json"
PHRASES_FOLDER = "phrases"     # exports/NAME/phrases/FORMAT: the phrases, with their frame tables


@dataclass(frozen=True)
class Exported:
    format: str
    folder: Path
    clips: int
    files: int
    bytes: int
    seconds: float
    written: bool       # False: it was up to date


def export_dir(cfg: Config) -> Path:
    """Where `pipeline export-dataset` writes by default: ROOT/exports/NAME."""
    return Path(cfg.root) / EXPORTS_ROOT / cfg.name


def export_dataset(cfg: Config, formats=tuple(FORMATS), out: str | Path | None = None,
                   shard_size: int = SHARD_SIZE) -> list[Exported]:
    """Export data/NAME in each of `formats` under `out` (default exports/NAME), each only when it is
    not up to date; then the card (README.md) and build.json. Returns what each format holds."""
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise PipelineError(f"unknown export format(s) {', '.join(unknown)}; choose from {', '.join(FORMATS)}")
    if "parquet" in formats:
        parquet.require_pyarrow()   # before anything is written
    data_dir = cfg.data_dir
    manifest = load_manifest(data_dir)
    summary = read_json(data_dir / DATASET_FILE)
    if summary is None:
        raise PipelineError(f"{data_dir / DATASET_FILE} is missing or garbled; run make data (or pipeline data)")
    folder = ensure_dir(Path(out) if out is not None else export_dir(cfg))
    # what the files hold comes from the manifest, the clips it names (by sha256) and the frame table;
    # dataset.json only shapes the card, which is written anew (when changed) by every run
    source = {"version": EXPORT_VERSION, "shard_size": shard_size, "manifest": sha256_file(manifest_path(data_dir)),
              "frames": None}
    shards = plan_shards(manifest, shard_size)
    done = [_export(name, folder, source, export_columns(manifest, None), shards, data_dir, None)
            for name in formats if len(manifest)]
    done += _export_phrases(data_dir, folder / PHRASES_FOLDER, formats, shard_size)
    configs = {s.replace("val", "validation"): f"parquet/{s}-*{parquet.SUFFIX}" for s in dict.fromkeys(
        sh.split for sh in shards)} if (folder / "parquet" / RECORD_FILE).is_file() else None
    write_if_changed(folder / CARD_FILE, card_text(summary, manifest, configs, loading=LOADING).encode())
    write_json(folder / BUILD_FILE, {str(e.folder.relative_to(folder)): {
        "clips": e.clips, "files": e.files, "bytes": e.bytes, "seconds": round(e.seconds, 3), "written": e.written}
        for e in done})
    return done


def _export_phrases(data_dir: Path, folder: Path, formats, shard_size: int) -> list[Exported]:
    """The phrases (phrases.csv) in every format but NSynth's, under exports/NAME/phrases/, each row
    with its frames as lists (frame_time, frame_f0_hz, frame_voiced, frame_trusted)."""
    from pipeline.data.clips import PHRASES_FILE, load_phrases
    from pipeline.data.phrase_build import PHRASE_COLUMNS

    if not (data_dir / PHRASES_FILE).is_file():
        return []
    phrases = load_phrases(data_dir)
    frames = read_frames(data_dir)
    source = {"version": EXPORT_VERSION, "shard_size": shard_size, "manifest": sha256_file(data_dir / PHRASES_FILE),
              "frames": sha256_file(data_dir / FRAMES_FILE)}
    columns = export_columns(phrases, frames, PHRASE_COLUMNS, nsynth=False)
    shards = plan_shards(phrases, shard_size, nsynth=False)
    return [_export(name, ensure_dir(folder), source, columns, shards, data_dir, frames)
            for name in formats if name != "nsynth"]


def _export(name: str, folder: Path, source: dict, columns: list[Column], shards: list, data_dir: Path,
            frames) -> Exported:
    started = time.perf_counter()
    module = FORMATS[name]
    final, partial, old = folder / name, folder / f".{name}.partial", folder / f".{name}.old"
    _finish_swap(final, partial, old)
    key = fingerprint({**source, "format": name})
    record = read_json(final / RECORD_FILE)
    if record is not None and record.get("fingerprint") == key and _intact(final, record):
        log.info(f"export {name}: up to date ({record['clips']} clips in {final})")
        return _result(name, final, record, time.perf_counter() - started, written=False)
    plan = read_json(partial / PLAN_FILE)
    if plan is None or plan.get("fingerprint") != key:
        shutil.rmtree(partial, ignore_errors=True)
        write_json(ensure_dir(partial) / PLAN_FILE, {"fingerprint": key})
    remove_stale_temporaries(partial, recursive=True)
    resumed = made = 0
    for shard in shards:
        target = partial / module.shard_name(shard.split, shard.index, shard.count)
        if target.is_file():
            resumed += 1
            continue
        made += len(shard.rows)
        batch = read_batch(data_dir, shard, frames)
        with atomic_path(target, sync=False) as tmp:
            module.write_shard(tmp, batch, columns)
    if hasattr(module, "finish"):
        module.finish(partial, shards)
    record = {"fingerprint": key, "format": name, "source": source, "clips": sum(len(s.rows) for s in shards),
              "audio": dataset_format(data_dir).to_dict(),  # the clips' rate, length, sample format, container
              "columns": [[c.name, c.kind] for c in columns], "splits": _splits(module, shards),
              "split_clips": {split: sum(len(s.rows) for s in shards if s.split == split)
                              for split in dict.fromkeys(s.split for s in shards)},
              "files": {str(p.relative_to(partial)): p.stat().st_size for p in sorted(partial.rglob("*"))
                        if p.is_file() and p.name != PLAN_FILE}}
    write_json(partial / RECORD_FILE, record)
    (partial / PLAN_FILE).unlink()
    sync_filesystem(partial)
    _finish_swap(final, partial, old)
    seconds = time.perf_counter() - started
    done = _result(name, final, record, seconds, written=True)
    log.info(f"export {name}: {done.clips} clips in {done.files} files, {done.bytes / 2**20:.1f} MiB, "
             f"{seconds:.1f} s ({made / seconds:.0f} clips/s){f', resumed after {resumed} shards' if resumed else ''}"
             f" -> {final}")
    return done


def _splits(module: ModuleType, shards: list) -> dict:
    """{split: [its files]} (NSynth: its folder)."""
    if module is nsynth:
        return {s.split: nsynth.FOLDERS[s.split] for s in shards}
    out: dict[str, list[str]] = {}
    for s in shards:
        out.setdefault(s.split, []).append(module.shard_name(s.split, s.index, s.count))
    return out


def _result(name: str, folder: Path, record: dict, seconds: float, written: bool) -> Exported:
    files = record["files"]
    return Exported(name, folder, record["clips"], len(files), sum(files.values()), seconds, written)


def _intact(folder: Path, record: dict) -> bool:
    """Every file the record lists is there, at its size (a stat each)."""
    try:
        return all(os.stat(folder / rel).st_size == size for rel, size in record["files"].items())
    except (OSError, KeyError, AttributeError, TypeError):
        return False


def _finish_swap(final: Path, partial: Path, old: Path) -> None:
    """Put a finished partial folder in place of the old one, or finish a swap a stop interrupted:
    final -> old, partial -> final, old removed. A partial folder without its record is not finished."""
    if (partial / RECORD_FILE).is_file():
        if final.exists():
            shutil.rmtree(old, ignore_errors=True)
            final.rename(old)
        partial.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def read_record(folder: str | Path) -> dict:
    """A format folder's export.json; PipelineError if it has none (not exported, or not finished)."""
    record = read_json(Path(folder) / RECORD_FILE)
    if record is None:
        raise PipelineError(f"{folder} holds no finished export ({RECORD_FILE} missing); run pipeline export-dataset")
    return record


def record_columns(record: dict) -> list[Column]:
    return [Column(name, kind) for name, kind in record["columns"]]


LOADING = """## Loading

The exported files (`pipeline export-dataset`; the project's `docs/dataset-formats.md` has more):

```python
from datasets import load_dataset, Audio                  # Hugging Face: this folder's configs name the files
ds = load_dataset("parquet", data_dir="parquet")          # train, validation, test; `audio` is an Audio feature
ds = ds.cast_column("audio", Audio(decode=False))         # the WAV bytes, without torchcodec

import pandas as pd                                       # pandas: one split
train = pd.read_parquet("parquet", filters=[("split", "=", "train")])

from pipeline.formats.loaders import torch_dataset, tf_dataset
clips = torch_dataset("webdataset", "train")              # a torch IterableDataset, streamed from the tar shards
clips = tf_dataset("tfrecord", "train")                   # a tf.data.Dataset, streamed from the TFRecords
```

`nsynth/` is NSynth's layout (`nsynth-train/examples.json` and `audio/`), NSynth's fields beside ours."""
