"""NSynth's layout: code written for NSynth's JSON/WAV release runs on the dataset.

    FOLDER/nsynth-train/examples.json   {note_str: {NSynth's fields, then ours}}
    FOLDER/nsynth-train/audio/NOTE_STR.wav
    FOLDER/nsynth-valid/..., FOLDER/nsynth-test/...

NSynth's fields: note (a number per clip), note_str, instrument (a number per source and instrument),
instrument_str, pitch (the label's MIDI note), velocity, sample_rate, qualities and qualities_str,
instrument_family(_str), instrument_source(_str). Ours follow under their own names, except our
`instrument` (`instrument_slug` here) and `note` (`note_name`), whose names NSynth's take. The
audio files are hard links to the dataset's clips where the file system allows (no space), else
copies. Unlike NSynth's 4 s notes, a clip is as long as the dataset's (330 ms).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from pipeline.core.artifacts import atomic_path, ensure_dir, write_bytes
from pipeline.core.instruments import NSYNTH_QUALITIES
from pipeline.formats.table import Batch, Column, Shard, records

FOLDERS = {"train": "nsynth-train", "val": "nsynth-valid", "test": "nsynth-test"}
PARTS = ".parts"    # a split's examples, a file per shard, until the split's examples.json is written
EXAMPLES = "examples.json"
RENAMED = {"instrument": "instrument_slug", "note": "note_name"}


def shard_name(split: str, index: int, count: int) -> str:
    """Where a shard's part of examples.json waits (its audio goes straight to audio/)."""
    return f"{FOLDERS[split]}/{PARTS}/{index:05d}-of-{count:05d}.json"


def nsynth_example(meta: dict, note: int) -> dict:
    """One examples.json entry from a clip's columns (table.record)."""
    ours = {RENAMED.get(k, k): v for k, v in meta.items()}
    qualities = meta["qualities"]
    return {"note": note, "note_str": meta["note_str"], "instrument": meta["instrument_id"],
            "instrument_str": meta["instrument_str"], "pitch": meta["midi"], "velocity": meta["velocity"],
            "sample_rate": meta["sample_rate"], "qualities": qualities,
            "qualities_str": [q for q, on in zip(NSYNTH_QUALITIES, qualities) if on],
            "instrument_family": meta["instrument_family"], "instrument_family_str": meta["instrument_family_str"],
            "instrument_source": meta["instrument_source"], "instrument_source_str": meta["instrument_source_str"],
            **{k: v for k, v in ours.items() if k not in ("instrument_id",)}}


def link_or_copy(source: Path, target: Path, data: bytes) -> None:
    """`target` as a hard link to `source` (atomic: it exists whole or not at all), or a copy of
    `data` where the file system cannot link (another device)."""
    if target.exists():
        return
    try:
        os.link(source, target)
    except OSError:
        write_bytes(target, data, sync=False)


def write_shard(path: Path, batch: Batch, columns: list[Column]) -> None:
    """Link the shard's clips into the split's audio/, then write its part of examples.json at `path`."""
    split_dir = path.parent.parent
    audio = ensure_dir(split_dir / "audio")
    entries = {}
    for i, (data, clip, meta) in enumerate(zip(batch.audio, batch.files, records(batch, columns))):
        link_or_copy(clip, audio / f"{meta['note_str']}{Path(clip).suffix}", data)  # .wav, or .flac
        entries[meta["note_str"]] = nsynth_example(meta, batch.shard.manifest_rows[i])
    path.write_text(json.dumps(entries))


def finish(folder: Path, shards: list[Shard]) -> None:
    """Each split's parts joined into its examples.json (keys in manifest order), a part at a time (memory
    holds one shard's entries), then the parts removed."""
    for split in dict.fromkeys(s.split for s in shards):
        parts = [folder / shard_name(split, s.index, s.count) for s in shards if s.split == split]
        with atomic_path(folder / FOLDERS[split] / EXAMPLES, sync=False) as tmp, open(tmp, "w") as out:
            out.write("{")
            for i, part in enumerate(parts):
                text = part.read_text().strip()
                out.write(("," if i else "") + text[1:-1])   # a shard is never empty
            out.write("}")
        for part in parts:
            part.unlink()
        (folder / FOLDERS[split] / PARTS).rmdir()
