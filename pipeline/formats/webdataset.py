"""WebDataset tar shards: a sample per clip, for streaming training (PyTorch, the `webdataset` library).

    FOLDER/train-000000.tar, train-000001.tar, ..., val-000000.tar, test-000000.tar

Each sample is two members with the same key (the clip's path without `.wav`, dots made `_`):
`KEY.wav` (`KEY.flac` for a FLAC dataset), the clip's file bytes, and `KEY.json`, every other
column (NaN as null; a phrase's frames as lists). Members are written in manifest order with fixed
owners and times, so the same dataset gives the same bytes.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

from pipeline.formats.table import Batch, Column, records

SUFFIX = ".tar"
AUDIO_SUFFIXES = (".wav", ".flac")  # the data stage's containers (pipeline.core.audio_format)


def shard_name(split: str, index: int, count: int) -> str:
    return f"{split}-{index:06d}{SUFFIX}"


def sample_key(path: str) -> str:
    """'clips/timgm6mb/violin/violin_A4_69_440.00_sustain_v100.wav' -> 'clips/timgm6mb/violin/violin_A4_69_440_00_
    sustain_v100': WebDataset keys end at the first dot of a member's name."""
    stem = path.rsplit(".", 1)[0] if path.endswith(AUDIO_SUFFIXES) else path
    folder, _, name = stem.rpartition("/")
    return f"{folder}/{name.replace('.', '_')}" if folder else name.replace(".", "_")


def _member(name: str, data: bytes) -> tuple[tarfile.TarInfo, io.BytesIO]:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode, info.uname, info.gname = len(data), 0, 0o644, "", ""
    return info, io.BytesIO(data)


def write_shard(path: Path, batch: Batch, columns: list[Column]) -> None:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for data, clip, meta in zip(batch.audio, batch.rows["path"], records(batch, columns)):
            key = sample_key(clip)
            tar.addfile(*_member(f"{key}.{clip.rsplit('.', 1)[-1]}", data))
            tar.addfile(*_member(f"{key}.json", json.dumps(meta, sort_keys=True).encode()))


def iter_samples(path: Path):
    """(key, {extension: bytes}) of each sample of a tar shard, read as a stream (one sample in memory)."""
    key, members = None, {}
    with tarfile.open(path, "r|") as tar:
        for info in tar:
            if not info.isfile():
                continue
            folder, _, name = info.name.rpartition("/")
            stem, _, extension = name.partition(".")
            this = f"{folder}/{stem}" if folder else stem
            if this != key and members:
                yield key, members
                members = {}
            key = this
            members[extension] = tar.extractfile(info).read()
    if members:
        yield key, members
