"""A split of a WebDataset export as a PyTorch IterableDataset, streamed shard by shard.

    from pipeline.formats.torch_loader import WebDatasetClips
    clips = WebDatasetClips("exports/default/webdataset", "train", shuffle=1000)
    loader = torch.utils.data.DataLoader(clips, batch_size=64, num_workers=2)
    for batch in loader:
        audio, hz = batch["audio"], batch["frequency"]     # (64, 5280) float32, (64,) float64

Memory is flat in the dataset's size: each DataLoader worker reads its own tar shards (shard i goes
to worker i mod workers) one sample at a time, plus the shuffle buffer. A sample is a dict: `audio`
(float32 in [-1, 1], the WAV's samples; its bytes with decode=False), every label (a missing number
as NaN), NSynth's `qualities` and a phrase's frames as tensors, and `key`. This module imports torch
(import it only to use it; pipeline.formats.loaders.torch_dataset does).
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import numpy as np
import torch

from pipeline.core.errors import PipelineError
from pipeline.formats.export import read_record, record_columns
from pipeline.formats.wav import decode_wav
from pipeline.formats.webdataset import iter_samples

_LIST_DTYPES = {"ints": torch.int64, "floats": torch.float64, "bools": torch.bool}


class WebDatasetClips(torch.utils.data.IterableDataset):
    """The clips of one split of a WebDataset export (`folder`), in shard order, or shuffled within
    a buffer of `shuffle` samples (and the shards' order shuffled), differently each epoch
    (`set_epoch`) and the same for the same seed and epoch."""

    def __init__(self, folder: str | Path, split: str, shuffle: int = 0, seed: int = 0, decode: bool = True):
        super().__init__()
        record = read_record(folder)
        if split not in record["splits"]:
            raise PipelineError(f"the export in {folder} has no {split} split; it has {', '.join(record['splits'])}")
        self.files = [Path(folder) / name for name in record["splits"][split]]
        self.clips = record.get("split_clips", {}).get(split)
        self.kinds = {c.name: c.kind for c in record_columns(record)}
        self.shuffle, self.seed, self.decode, self.epoch = shuffle, seed, decode, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        if self.clips is None:
            raise TypeError("this export does not record its splits' sizes")
        return self.clips

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        rng = random.Random(f"{self.seed}/{self.epoch}/{worker}")
        files = list(self.files)
        if self.shuffle:
            rng.shuffle(files)
        samples = (self.sample(key, members) for path in files[worker::workers] for key, members in iter_samples(path))
        return _shuffled(samples, self.shuffle, rng) if self.shuffle else samples

    def sample(self, key: str, members: dict) -> dict:
        meta = json.loads(members["json"])
        out = {}
        for name, value in meta.items():
            kind = self.kinds.get(name)
            if kind in _LIST_DTYPES:
                out[name] = torch.tensor(value, dtype=_LIST_DTYPES[kind])
            elif kind == "float":
                out[name] = math.nan if value is None else value
            else:
                out[name] = value
        data = members["wav"] if "wav" in members else members["flac"]
        if self.decode:
            audio, _ = decode_wav(data, key)
            out["audio"] = torch.from_numpy(np.ascontiguousarray(audio))
        else:
            out["audio"] = data
        out["key"] = key
        return out


def _shuffled(samples, size: int, rng: random.Random):
    """A shuffle buffer: yields a random one of the `size` samples held as each new one comes."""
    buffer = []
    for sample in samples:
        if len(buffer) < size:
            buffer.append(sample)
            continue
        i = rng.randrange(size)
        yield buffer[i]
        buffer[i] = sample
    rng.shuffle(buffer)
    yield from buffer
