"""Parquet shards: pandas, pyarrow and the Hugging Face `datasets` library read them as they are.

    FOLDER/train-00000-of-00002.parquet, ..., val-00000-of-00001.parquet, test-...

`audio` is a struct of the WAV file's `bytes` and its `path` (the layout of `datasets`' Audio
feature); the schema's `huggingface` metadata names the features, so `load_dataset("parquet",
data_dir=FOLDER)` gives `audio` as Audio and each split by its file names (`val` is its
`validation`). Row groups of ROW_GROUP rows: a reader holds one at a time.
"""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.core.errors import PipelineError
from pipeline.formats.table import Batch, Column

SUFFIX = ".parquet"
ROW_GROUP = 256           # rows: about 2.7 MB of 330 ms clips, what a streaming reader holds
_ARROW = {"text": "string", "int": "int64", "float": "float64"}
_LISTS = {"ints": "int64", "floats": "float64", "bools": "bool"}


def shard_name(split: str, index: int, count: int) -> str:
    return f"{split}-{index:05d}-of-{count:05d}{SUFFIX}"


def hf_features(columns: list[Column]) -> dict:
    """The `datasets` features of the columns, as its JSON (Sequence: what every version reads)."""
    out = {}
    for c in columns:
        if c.kind == "audio":
            out[c.name] = {"_type": "Audio"}
        elif c.kind in _LISTS:
            out[c.name] = {"feature": {"dtype": _LISTS[c.kind], "_type": "Value"}, "_type": "Sequence"}
        else:
            out[c.name] = {"dtype": _ARROW[c.kind], "_type": "Value"}
    return out


def require_pyarrow():
    """pyarrow, or a one-line PipelineError saying how to install it."""
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401  (imported for the writer)
    except ImportError:
        raise PipelineError("the Parquet export needs pyarrow: pip install -e '.[formats]' "
                            "(or pick other formats with --format)") from None
    return pyarrow


def arrow_schema(columns: list[Column]):
    pa = require_pyarrow()

    def arrow_type(c: Column):
        if c.kind == "audio":
            return pa.struct([("bytes", pa.binary()), ("path", pa.string())])
        if c.kind in _LISTS:
            return pa.list_(pa.type_for_alias(_LISTS[c.kind]))
        return pa.type_for_alias(_ARROW[c.kind])

    metadata = {"huggingface": json.dumps({"info": {"features": hf_features(columns)}})}
    return pa.schema([(c.name, arrow_type(c)) for c in columns], metadata=metadata)


def write_shard(path: Path, batch: Batch, columns: list[Column]) -> None:
    """One shard's rows as a Parquet file at `path` (the caller renames it into place)."""
    pa = require_pyarrow()
    schema = arrow_schema(columns)
    arrays = []
    for c, field in zip(columns, schema):
        if c.kind == "audio":
            values = [{"bytes": data, "path": path_} for data, path_ in zip(batch.audio, batch.rows["path"])]
        elif c.name in (batch.frames or {}):
            values = [v.tolist() for v in batch.frames[c.name]]
        elif c.kind in ("text", "int", "float"):
            arrays.append(pa.array(batch.rows[c.name], type=field.type, from_pandas=True))
            continue
        else:
            values = list(batch.rows[c.name])
        arrays.append(pa.array(values, type=field.type))
    table = pa.Table.from_arrays(arrays, schema=schema)
    pa.parquet.write_table(table, path, row_group_size=ROW_GROUP, compression="zstd", write_statistics=False)
