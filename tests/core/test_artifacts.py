"""artifacts: a file appears under its name only by the rename of a finished temporary file, which was
fsynced first, its folder after; many small files are made durable by one syncfs before the record
that lists them. The calls are watched through wrappers of the real os.fsync, os.replace and syncfs
(each records its call, then does it), never by timing."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from pipeline.core import artifacts
from pipeline.core.artifacts import (
    TEMPORARY_RE,
    atomic_path,
    sync_filesystem,
    write_bytes,
    write_if_changed,
    write_json,
)


class Journal:
    """What reached the disk, in order: ("fsync", path), ("replace", source, target, the source's bytes
    and whether the target existed then), ("syncfs", path)."""

    def __init__(self):
        self.events: list[tuple] = []

    def of(self, kind: str) -> list[tuple]:
        return [e for e in self.events if e[0] == kind]

    def index(self, event: tuple) -> int:
        return self.events.index(event)

    def arrivals(self) -> dict[str, tuple]:
        """{final path: its last replace event}."""
        return {e[2]: e for e in self.of("replace")}


@pytest.fixture()
def journal(monkeypatch) -> Journal:
    journal = Journal()
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        journal.events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        return real_fsync(fd)

    def replace(src, dst, *args, **kwargs):
        src, dst = os.path.abspath(src), os.path.abspath(dst)
        data = Path(src).read_bytes() if os.path.isfile(src) else None
        journal.events.append(("replace", src, dst, data, os.path.exists(dst)))
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    if artifacts.LIBC is not None:
        real_syncfs = artifacts.LIBC.syncfs

        class Libc:   # the real libc, its syncfs watched
            @staticmethod
            def syncfs(fd):
                journal.events.append(("syncfs", os.readlink(f"/proc/self/fd/{fd}")))
                return real_syncfs(fd)

        monkeypatch.setattr(artifacts, "LIBC", Libc())
    return journal


def assert_arrived_whole(journal: Journal, path: Path, data: bytes | None = None, synced: bool = True) -> None:
    """`path` appeared by the rename of a temporary file beside it (this package's name for one), which
    held all of `data` then; with `synced`, that file was fsynced before and the folder after."""
    path = os.path.abspath(path)
    event = journal.arrivals().get(path)
    assert event is not None, f"{path} was not renamed into place"
    _, source, _, held, _ = event
    assert source != path and os.path.dirname(source) == os.path.dirname(path)
    assert TEMPORARY_RE.match(os.path.basename(source)), source
    if data is not None:
        assert held == data
    if synced:
        assert ("fsync", source) in journal.events[:journal.index(event)], f"{source} not fsynced before its rename"
        assert ("fsync", os.path.dirname(path)) in journal.events[journal.index(event):], "folder not fsynced"


def test_write_bytes_renames_a_finished_and_fsynced_temporary_file(journal, tmp_path):
    path = tmp_path / "out" / "a.bin"
    data = os.urandom(200_000)
    write_bytes(path, data)
    assert path.read_bytes() == data
    assert_arrived_whole(journal, path, data)
    assert journal.arrivals()[str(path)][4] is False      # nothing was at the name before the rename
    write_bytes(path, b"new")                              # a rewrite: the old file stays until the rename
    assert journal.arrivals()[str(path)][4] is True and path.read_bytes() == b"new"
    assert sorted(p.name for p in path.parent.iterdir()) == ["a.bin"]


def test_without_sync_it_still_renames_but_leaves_the_fsyncs_to_the_caller(journal, tmp_path):
    write_bytes(tmp_path / "clip.wav", b"RIFF", sync=False)
    assert_arrived_whole(journal, tmp_path / "clip.wav", b"RIFF", synced=False)
    assert journal.of("fsync") == []


def test_atomic_path_renames_what_a_writer_finished(journal, tmp_path):
    path = tmp_path / "rows.npy"
    with atomic_path(path) as tmp:
        np.save(tmp, np.arange(1000))
        assert not path.exists()
    assert_arrived_whole(journal, path, path.read_bytes())
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "never.npy") as tmp:
        np.save(tmp, np.arange(3))
        raise RuntimeError("the writer failed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rows.npy"]   # no name, no temporary file
    assert str(tmp_path / "never.npy") not in journal.arrivals()


def test_an_unchanged_file_is_not_written_again(journal, tmp_path):
    path = tmp_path / "data.json"
    write_json(path, {"a": 1})
    before = len(journal.events)
    assert write_if_changed(path, path.read_bytes()) is False
    assert journal.events[before:] == []
    assert write_if_changed(path, b"{}") is True
    assert_arrived_whole(journal, path, b"{}")


@pytest.mark.skipif(artifacts.LIBC is None, reason="syncfs is Linux's")
def test_sync_filesystem_calls_syncfs_on_the_folders_file_system(journal, tmp_path):
    sync_filesystem(tmp_path)
    assert journal.of("syncfs") == [("syncfs", str(tmp_path))]


@pytest.mark.skipif(artifacts.LIBC is None, reason="syncfs is Linux's")
def test_a_shards_record_is_written_after_its_clips_are_synced(journal, tmp_path):
    """The data stage, here in this process (one worker): every clip renamed into place, then one
    syncfs of the dataset's file system, then the shard's record, whole and fsynced."""
    from pipeline.data.dataset import build_dataset
    from tests.conftest import tiny_config

    cfg = tiny_config(tmp_path, 'data.instruments=["Violin"]', "data.note_low=69", "data.note_high=72",
                      "data.shard_size=2", "data.workers=1", 'split.test="random"', "split.test_share=0")
    manifest = build_dataset(cfg)
    records = sorted((cfg.data_dir / "shards").glob("*.csv"))
    assert len(records) == 2
    for record in records:
        assert_arrived_whole(journal, record, record.read_bytes())
        at = journal.index(journal.arrivals()[str(record)])
        syncs = [i for i, e in enumerate(journal.events[:at]) if e == ("syncfs", str(cfg.data_dir))]
        listed = [str(cfg.data_dir / line.split(",")[0]) for line in record.read_text().splitlines()[1:]]
        clips = [journal.index(journal.arrivals()[p]) for p in listed if os.path.exists(p)]
        assert clips and syncs and max(clips) < syncs[-1], record.name   # every clip it lists, then syncfs
    for path in manifest["path"]:
        assert_arrived_whole(journal, cfg.data_dir / path, synced=False)
    for name in ("manifest.csv", "dataset.json", "build.json"):
        assert_arrived_whole(journal, cfg.data_dir / name)


def test_every_report_file_arrives_whole_and_synced(journal, tmp_path):
    from pipeline.report.reporting import write_report
    from tests.report.test_reporting import fake_predictions

    predictions, estimators = fake_predictions()
    write_report(predictions, estimators, tmp_path)
    written = sorted(tmp_path.iterdir())
    assert len(written) >= 8
    for path in written:
        assert_arrived_whole(journal, path, path.read_bytes())
