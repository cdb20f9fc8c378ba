"""Shared by the export tests: the tiny dataset exported in every format, and a copy of it with a
frame table (what phrase datasets carry) exported too."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pandas as pd
import pytest

from pipeline.data.clips import load_manifest
from pipeline.formats import export as E
from pipeline.formats.table import FRAMES_FILE

SHARD = 64   # clips per shard: several shards per split in the tiny dataset
FORMATS = ("parquet", "webdataset", "tfrecord", "nsynth")


def frames_for(manifest: pd.DataFrame) -> pd.DataFrame:
    """A frame table as phrases will have one: 10 ms frames, f0 the label, the last third unvoiced."""
    rows = []
    for i, (path, hz) in enumerate(zip(manifest["path"], manifest["frequency"])):
        count = 20 + i % 7   # lengths differ from clip to clip
        time = np.arange(count) * 0.01
        rows.append(pd.DataFrame({"path": path, "time": time, "f0_hz": hz * (1 + time / 1000),
                                  "voiced": np.arange(count) < 2 * count // 3}))
    return pd.concat(rows, ignore_index=True)


@pytest.fixture(scope="session")
def exported(tiny_dataset, tmp_path_factory):
    pytest.importorskip("pyarrow", reason="pip install -e .[formats]")
    out = tmp_path_factory.mktemp("exports")
    done = E.export_dataset(tiny_dataset, FORMATS, out, shard_size=SHARD)
    return tiny_dataset, out, done


@pytest.fixture(scope="session")
def framed(tiny_dataset, tmp_path_factory):
    """A copy of the tiny dataset (clips hard-linked) with a frame table, exported."""
    from pipeline.core.config import load_config

    pytest.importorskip("pyarrow", reason="pip install -e .[formats]")
    root = tmp_path_factory.mktemp("framed")
    cfg = load_config(None, [f'root="{root}"', f'name="{tiny_dataset.name}"'])
    shutil.copytree(tiny_dataset.data_dir, cfg.data_dir, copy_function=os.link)
    frames_for(load_manifest(cfg.data_dir)).to_csv(cfg.data_dir / FRAMES_FILE, index=False)
    E.export_dataset(cfg, FORMATS[:3], root / "out", shard_size=SHARD)
    return cfg, root / "out"
