"""Shared by the export tests: the tiny dataset exported in every format, and a tiny dataset of
phrases (with their frame tables) exported too."""

from __future__ import annotations

import pytest

from pipeline.formats import export as E

SHARD = 64   # clips per shard: several shards per split in the tiny dataset
FORMATS = ("parquet", "webdataset", "tfrecord", "nsynth")


@pytest.fixture(scope="session")
def exported(tiny_dataset, tmp_path_factory):
    pytest.importorskip("pyarrow", reason="pyarrow: pip install -e .[formats]")
    out = tmp_path_factory.mktemp("exports")
    done = E.export_dataset(tiny_dataset, FORMATS, out, shard_size=SHARD)
    return tiny_dataset, out, done


@pytest.fixture(scope="session")
def framed(tmp_path_factory):
    """A tiny dataset of phrases (each with its frame table), exported: (config, the export's
    phrases folder)."""
    from pipeline.data.dataset import build_dataset
    from tests.conftest import tiny_phrase_config

    pytest.importorskip("pyarrow", reason="pyarrow: pip install -e .[formats]")
    root = tmp_path_factory.mktemp("framed")
    cfg = tiny_phrase_config(root, "split.val_share=0.4")
    build_dataset(cfg)
    E.export_dataset(cfg, FORMATS, root / "out", shard_size=2)
    return cfg, root / "out" / E.PHRASES_FOLDER
