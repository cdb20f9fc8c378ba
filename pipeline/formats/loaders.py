"""A split of an export, streamed: as a PyTorch IterableDataset or as a tf.data.Dataset.

    from pipeline.formats.loaders import torch_dataset, tf_dataset
    clips = torch_dataset("exports/default/webdataset", "train", shuffle=1000)  # torch IterableDataset
    clips = tf_dataset("exports/default/tfrecord", "train")                      # tf.data.Dataset

Both read their shards as streams, a sample at a time: memory does not grow with the dataset. Each
sample is a dict of `audio` (float32 in [-1, 1]; with decode=False the WAV file's bytes), every label
and NSynth's columns, by the names the manifest and docs/dataset-formats.md give them.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.core.audio_format import ClipFormat
from pipeline.core.backend import import_tensorflow
from pipeline.core.errors import PipelineError
from pipeline.formats.export import read_record, record_columns
from pipeline.formats.tfrecord import feature_spec
from pipeline.formats.wav import decode_wav


def torch_dataset(folder: str | Path, split: str, shuffle: int = 0, seed: int = 0, decode: bool = True):
    """The clips of `split` in a WebDataset export folder as a torch IterableDataset (see
    pipeline.formats.torch_loader.WebDatasetClips): give it to a DataLoader, with workers if you like."""
    try:
        import torch  # noqa: F401  (the loader's module imports it)
    except ImportError:
        raise PipelineError("torch_dataset needs PyTorch: pip install torch (a CPU build will do)") from None
    from pipeline.formats.torch_loader import WebDatasetClips

    return WebDatasetClips(folder, split, shuffle=shuffle, seed=seed, decode=decode)


def tf_dataset(folder: str | Path, split: str, decode: bool = True):
    """The clips of `split` in a TFRecord export folder as a tf.data.Dataset of dicts: `audio`
    float32 (samples,) decoded by tf.audio.decode_wav (its bytes with decode=False), whole numbers
    int64, every other number float64 (exact; NaN where missing), text as tf.string, lists as vectors."""
    tf = import_tensorflow()
    record = read_record(folder)
    if split not in record["splits"]:
        raise PipelineError(f"the export in {folder} has no {split} split; it has {', '.join(record['splits'])}")
    columns = record_columns(record)
    spec = feature_spec(columns)
    fmt = ClipFormat.from_dict(record.get("audio"))
    native = fmt.file_format == "wav" and fmt.sample_format == "int16"  # all tf.audio.decode_wav reads
    raw = {"float": tf.float64, "floats": tf.float64, "ints": tf.int64, "bools": tf.uint8}

    def parse(serialized):
        example = tf.io.parse_single_example(serialized, spec)
        out = {}
        for c in columns:
            value = example[c.name]
            if c.kind == "audio" and decode:
                value = tf.audio.decode_wav(value, desired_channels=1).audio[:, 0] if native else \
                    tf.ensure_shape(tf.numpy_function(_decode, [value], tf.float32, stateful=False), [None])
            elif c.kind == "float":
                value = tf.reshape(tf.io.decode_raw(value, tf.float64), [])
            elif c.kind in raw:
                value = tf.io.decode_raw(value, raw[c.kind])
                value = tf.cast(value, tf.bool) if c.kind == "bools" else value
            out[c.name] = value
        return out

    files = [str(Path(folder) / name) for name in record["splits"][split]]
    return tf.data.TFRecordDataset(files).map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def _decode(data: bytes):
    """FLAC, 24-bit and float WAV clips, which tf.audio.decode_wav does not read: through soundfile."""
    return decode_wav(bytes(data))[0].astype("float32")
