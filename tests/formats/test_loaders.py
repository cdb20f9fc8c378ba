"""The loaders: a split of an export streamed as a tf.data.Dataset (from the TFRecords) and as a torch
IterableDataset (from the WebDataset tars), samples and labels equal to the dataset's, exactly."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from pipeline.core.errors import PipelineError
from pipeline.data.clips import MANIFEST_COLUMNS, load_frames, load_manifest, read_clips, split_rows


def column_equal(got, want: pd.Series) -> bool:
    if pd.api.types.is_float_dtype(want):
        return np.array_equal(np.asarray(got, np.float64), want.to_numpy(np.float64), equal_nan=True)
    if pd.api.types.is_integer_dtype(want):
        return [int(v) for v in got] == [int(v) for v in want]
    return [v.decode() if isinstance(v, bytes) else str(v) for v in got] == [str(v) for v in want]


def frame_groups(cfg) -> dict:
    return {p: g for p, g in load_frames(cfg).groupby("path")}


def test_tf_dataset_streams_a_split_exactly(exported):
    from pipeline.formats.loaders import tf_dataset

    cfg, out, _ = exported
    want = split_rows(load_manifest(cfg.data_dir), "val")
    rows = list(tf_dataset(out / "tfrecord", "val").as_numpy_iterator())
    assert np.array_equal(np.stack([r["audio"] for r in rows]), read_clips(cfg.data_dir, want))  # bit for bit
    for column in MANIFEST_COLUMNS:
        assert column_equal([r[column] for r in rows], want[column]), column
    assert rows[0]["frequency"].dtype == np.float64 and rows[0]["qualities"].shape == (10,)
    raw = list(tf_dataset(out / "tfrecord", "val", decode=False).as_numpy_iterator())
    assert [hashlib.sha256(r["audio"]).hexdigest() for r in raw] == list(want["sha256"])
    batch = next(iter(tf_dataset(out / "tfrecord", "train").batch(8)))
    assert tuple(batch["audio"].shape) == (8, 5280)
    with pytest.raises(PipelineError, match="no nope split"):
        tf_dataset(out / "tfrecord", "nope")


def test_tf_dataset_carries_frame_tables(framed):
    from pipeline.formats.loaders import tf_dataset

    cfg, out = framed
    frames = frame_groups(cfg)
    for row in tf_dataset(out / "tfrecord", "train").take(5).as_numpy_iterator():
        want = frames[row["path"].decode()]
        assert np.array_equal(row["frame_f0_hz"], want["f0_hz"]) and np.array_equal(row["frame_time"], want["time"])
        assert row["frame_voiced"].dtype == bool and np.array_equal(row["frame_voiced"], want["voiced"])


def test_torch_dataset_streams_a_split_exactly(exported):
    torch = pytest.importorskip("torch")
    from pipeline.formats.loaders import torch_dataset

    cfg, out, _ = exported
    want = split_rows(load_manifest(cfg.data_dir), "train")
    clips = torch_dataset(out / "webdataset", "train")
    assert len(clips) == len(want)
    batches = list(torch.utils.data.DataLoader(clips, batch_size=32))
    audio = torch.cat([b["audio"] for b in batches]).numpy()
    assert np.array_equal(audio, read_clips(cfg.data_dir, want))
    for column in MANIFEST_COLUMNS:
        got = [v for b in batches for v in (b[column].tolist() if torch.is_tensor(b[column]) else b[column])]
        assert column_equal(got, want[column]), column
    assert batches[0]["qualities"].shape == (32, 10)


def test_torch_workers_share_the_shards_and_shuffling_is_seeded(exported):
    torch = pytest.importorskip("torch")
    from pipeline.formats.loaders import torch_dataset

    cfg, out, _ = exported
    paths = list(split_rows(load_manifest(cfg.data_dir), "train")["path"])
    two = torch.utils.data.DataLoader(torch_dataset(out / "webdataset", "train", decode=False), batch_size=None,
                                      num_workers=2)
    assert sorted(s["path"] for s in two) == sorted(paths)   # each clip once, whichever worker read it

    def order(seed, epoch):
        clips = torch_dataset(out / "webdataset", "train", shuffle=50, seed=seed, decode=False)
        clips.set_epoch(epoch)
        return [s["path"] for s in clips]

    assert order(1, 0) == order(1, 0) != order(1, 1) and sorted(order(1, 1)) == sorted(paths)
    assert order(1, 0) != paths


def test_torch_dataset_carries_frame_tables(framed):
    pytest.importorskip("torch")
    from pipeline.formats.loaders import torch_dataset

    cfg, out = framed
    frames = frame_groups(cfg)
    for sample in torch_dataset(out / "webdataset", "train"):
        want = frames[sample["path"]]
        assert np.array_equal(sample["frame_f0_hz"].numpy(), want["f0_hz"])
        assert np.array_equal(sample["frame_voiced"].numpy(), want["voiced"])
