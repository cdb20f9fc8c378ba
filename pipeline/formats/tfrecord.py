"""TFRecord shards of tf.train.Example, for tf.data (TensorFlow writes and reads them).

    FOLDER/train-00000-of-00002.tfrecord, ..., val-..., test-...

Features: `audio`, the clip's file bytes (tf.audio.decode_wav reads them); text as bytes; whole
numbers as int64; every other number as its 8 float64 bytes (little-endian), so that labels come
back exactly (a float_list would round them to float32), NaN for a missing one; lists (NSynth's
`qualities`, a phrase's frames) as the raw bytes of int64, float64 or uint8 arrays.
`feature_spec(columns)` parses them; pipeline.formats.loaders.tf_dataset decodes them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.core.backend import import_tensorflow
from pipeline.formats.table import Batch, Column

SUFFIX = ".tfrecord"
RAW_DTYPES = {"float": "<f8", "ints": "<i8", "floats": "<f8", "bools": "u1"}


def shard_name(split: str, index: int, count: int) -> str:
    return f"{split}-{index:05d}-of-{count:05d}{SUFFIX}"


def feature_spec(columns: list[Column]) -> dict:
    """{column: tf.io.FixedLenFeature} of the examples: int64 scalars for `int`, strings else."""
    tf = import_tensorflow()
    return {c.name: tf.io.FixedLenFeature([], tf.int64 if c.kind == "int" else tf.string) for c in columns}


def write_shard(path: Path, batch: Batch, columns: list[Column]) -> None:
    tf = import_tensorflow()
    train = tf.train
    values = {c.name: _values(batch, c) for c in columns}
    with tf.io.TFRecordWriter(str(path)) as writer:
        for i in range(len(batch.audio)):
            feature = {}
            for c in columns:
                value = values[c.name][i]
                feature[c.name] = (train.Feature(int64_list=train.Int64List(value=[value])) if c.kind == "int"
                                   else train.Feature(bytes_list=train.BytesList(value=[value])))
            writer.write(train.Example(features=train.Features(feature=feature)).SerializeToString())


def _values(batch: Batch, c: Column) -> list:
    """A column's values as ints or bytes."""
    if c.kind == "audio":
        return batch.audio
    if c.kind == "int":
        return [int(v) for v in batch.rows[c.name]]
    if c.kind == "text":
        return [("" if not isinstance(v, str) else v).encode() for v in batch.rows[c.name]]
    source = batch.frames[c.name] if c.name in (batch.frames or {}) else batch.rows[c.name]
    dtype = RAW_DTYPES[c.kind]
    if c.kind == "float":
        return [np.array(v if v is not None else np.nan, dtype=dtype).tobytes() for v in source]
    return [np.asarray(v, dtype=dtype).tobytes() for v in source]
