"""What every export holds, row by row: the audio file's bytes, every manifest column, NSynth's labels
and the audio's shape; for a dataset with frame tables (phrases), each clip's frames as three lists.

    columns = export_columns(manifest, frames)      # [Column(name, kind)], the same in every format
    for shard in plan_shards(manifest, 1000):       # a split's rows in manifest order, cut in shards
        batch = read_batch(data_dir, shard, frames) # the rows with their bytes, each checked by sha256

A clip's bytes are the WAV file's, unchanged: their sha256 is the manifest's `sha256`. Column kinds:
`text` (the manifest's text columns and any it read as text), `int` (int64: whole numbers with
none missing), `float` (float64, missing as null), `ints` (list of int64: `qualities`),
`floats`/`bools` (lists: the frame tables' `frame_time`, `frame_f0_hz`, `frame_voiced`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pipeline.core.artifacts import check_inside, sha256_bytes
from pipeline.core.errors import PipelineError
from pipeline.core.instruments import NSYNTH_FAMILIES, NSYNTH_QUALITIES, NSYNTH_SOURCES, nsynth_labels
from pipeline.data.clips import MANIFEST_COLUMNS, TEXT_COLUMNS
from pipeline.formats.wav import wav_shape

if TYPE_CHECKING:
    import pandas as pd

# Phrases: one table for the dataset, a row per 10 ms frame of each clip (path, time, f0_hz, voiced).
FRAMES_FILE = "frames.csv"
FRAME_COLUMNS = {"frame_time": ("time", "floats"), "frame_f0_hz": ("f0_hz", "floats"),
                 "frame_voiced": ("voiced", "bools"), "frame_trusted": ("flag", "bools")}
AUDIO = "audio"
# NSynth's fields beside ours (its `pitch` is our `midi`, its `velocity` ours); `instrument_id` is its
# `instrument` (our `instrument` is the instrument's slug)
NSYNTH_COLUMNS = {"note_str": "text", "instrument_str": "text", "instrument_id": "int", "instrument_family": "int",
                  "instrument_family_str": "text", "instrument_source": "int", "instrument_source_str": "text",
                  "qualities": "ints"}
SHAPE_COLUMNS = {"sample_rate": "int", "num_samples": "int"}
REVERB_EFFECTS = ("room", "fluid_reverb")


@dataclass(frozen=True)
class Column:
    name: str
    kind: str   # text, int, float, ints, floats, bools, audio


@dataclass(frozen=True)
class Shard:
    split: str
    index: int
    count: int                # shards in the split
    rows: pd.DataFrame        # the manifest's rows with NSynth's columns (nsynth_columns)
    manifest_rows: list[int]  # where they are in the manifest


@dataclass
class Batch:
    shard: Shard
    rows: pd.DataFrame        # every column but the audio and the frames
    audio: list[bytes]
    files: list[Path]         # where each clip's file is
    frames: dict[str, list[np.ndarray]] | None


def export_columns(manifest: pd.DataFrame, frames: dict | None, names=MANIFEST_COLUMNS,
                   nsynth: bool = True) -> list[Column]:
    """The columns of every export of this table (the manifest's `names`, or phrases.csv's), in
    order. A column is text (the manifest's text columns), int where pandas read it as whole
    numbers, else float; NSynth's labels beside the notes' (not the phrases')."""
    import pandas as pd

    def kind(c: str) -> str:
        if c in TEXT_COLUMNS or not pd.api.types.is_numeric_dtype(manifest[c]):
            return "text"
        return "int" if pd.api.types.is_integer_dtype(manifest[c]) else "float"

    kinds = [Column(c, kind(c)) for c in names]
    extra = [Column(name, kind) for name, kind in {**SHAPE_COLUMNS, **(NSYNTH_COLUMNS if nsynth else {})}.items()]
    framed = [Column(name, kind) for name, (_, kind) in FRAME_COLUMNS.items()] if frames is not None else []
    return [Column(AUDIO, "audio"), *kinds, *extra, *framed]


def nsynth_columns(manifest: pd.DataFrame) -> pd.DataFrame:
    """The manifest with NSynth's labels beside its own: `instrument_family(_str)` and
    `instrument_source(_str)` from the GM program (pipeline.core.instruments.nsynth_labels),
    `instrument_id` numbering the (source, instrument) pairs in sorted order, `instrument_str`
    (`string_acoustic_004`), `note_str` (NSynth's key `string_acoustic_004-069-100`, then the segment
    and the variant, unique per clip) and `qualities` (NSynth's ten; `reverb` set by a room)."""
    labels = {int(p): nsynth_labels(int(p)) for p in manifest["program"].unique()}
    pairs = sorted(set(zip(manifest["source"], manifest["instrument"])))
    ids = {pair: i for i, pair in enumerate(pairs)}
    family = manifest["program"].map(lambda p: labels[int(p)][0])
    source = manifest["program"].map(lambda p: labels[int(p)][1])
    instrument_id = [ids[pair] for pair in zip(manifest["source"], manifest["instrument"])]
    instrument_str = [f"{f}_{s}_{i:03d}" for f, s, i in zip(family, source, instrument_id)]
    note_str = [f"{inst}-{int(m):03d}-{int(v):03d}-{seg}-{int(var)}" for inst, m, v, seg, var in
                zip(instrument_str, manifest["midi"], manifest["velocity"], manifest["segment"], manifest["variant"])]
    reverb = NSYNTH_QUALITIES.index("reverb")
    qualities = [[int(q == reverb and any(e in str(a) for e in REVERB_EFFECTS)) for q in range(len(NSYNTH_QUALITIES))]
                 for a in manifest["augment"]]
    out = manifest.assign(note_str=note_str, instrument_str=instrument_str, instrument_id=instrument_id,
                          instrument_family=family.map(NSYNTH_FAMILIES.index), instrument_family_str=family,
                          instrument_source=source.map(NSYNTH_SOURCES.index), instrument_source_str=source,
                          qualities=qualities)
    if out["note_str"].duplicated().any():
        twice = out.loc[out["note_str"].duplicated(), "note_str"].iloc[0]
        raise PipelineError(f"two clips would share the NSynth key {twice}; the manifest lists a clip twice: "
                            "rebuild the dataset with make data")
    return out


def plan_shards(manifest: pd.DataFrame, shard_size: int, nsynth: bool = True) -> list[Shard]:
    """Each split's rows (NSynth's columns added to notes), in table order, in shards of `shard_size` rows."""
    from pipeline.core import constants as C

    if shard_size < 1:
        raise PipelineError(f"shard size {shard_size} is not a positive number of clips; choose one like 1000")
    rows = nsynth_columns(manifest.reset_index(drop=True)) if nsynth else manifest.reset_index(drop=True)
    shards = []
    for split in C.SPLITS:
        part = rows[rows["split"] == split]
        count = -(-len(part) // shard_size)
        for i in range(count):
            piece = part.iloc[i * shard_size:(i + 1) * shard_size]
            shards.append(Shard(split, i, count, piece.reset_index(drop=True), [int(r) for r in piece.index]))
    return shards


def read_frames(data_dir: Path) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] | None:
    """{clip path: (time, f0_hz, voiced)} from the dataset's frame table (FRAMES_FILE), or None when
    the dataset has none (single-note clips)."""
    import pandas as pd

    path = Path(data_dir) / FRAMES_FILE
    if not path.is_file():
        return None
    try:
        table = pd.read_csv(path, dtype={"path": str, "flag": str}, keep_default_na=False)
    except (ValueError, OSError) as exc:
        raise PipelineError(f"frame table {path} is unreadable ({exc}); rebuild the dataset") from None
    missing = {"path", *(source for source, _ in FRAME_COLUMNS.values())} - set(table.columns)
    if missing:
        raise PipelineError(f"frame table {path} lacks the column(s) {', '.join(sorted(missing))}; rebuild the dataset")
    trusted = table["flag"].fillna("").astype(str) == ""
    return {key: (group["time"].to_numpy(np.float64), group["f0_hz"].to_numpy(np.float64),
                  group["voiced"].to_numpy().astype(bool), trusted[group.index].to_numpy())
            for key, group in table.groupby("path", sort=False)}


def read_batch(data_dir: Path, shard: Shard, frames: dict | None) -> Batch:
    """A shard's rows with their audio (each file's bytes, checked against the manifest's sha256), its
    shape, and its frames. PipelineError, one line, for a clip missing or changed since the build."""
    audio, files, rates, lengths = [], [], [], []
    for path, sha in zip(shard.rows["path"], shard.rows["sha256"]):
        files.append(check_inside(data_dir, path))
        try:
            data = files[-1].read_bytes()
        except OSError as exc:
            raise PipelineError(f"cannot read clip {path} ({exc.strerror}); run make data to repair the dataset, "
                                "then export again") from None
        if sha256_bytes(data) != sha:
            raise PipelineError(f"clip {path} changed since the dataset was built (its sha256 is not the "
                                "manifest's); run make data to repair it, then export again")
        rate, _, length = wav_shape(data, path)
        audio.append(data)
        rates.append(rate)
        lengths.append(length)
    rows = shard.rows.assign(sample_rate=rates, num_samples=lengths)
    return Batch(shard, rows, audio, files, _frames(shard, frames))


def _frames(shard: Shard, frames: dict | None) -> dict[str, list[np.ndarray]] | None:
    if frames is None:
        return None
    missing = [p for p in shard.rows["path"] if p not in frames]
    if missing:
        raise PipelineError(f"the frame table has no frames for {missing[0]}; rebuild the dataset")
    return {name: [frames[p][i] for p in shard.rows["path"]] for i, name in enumerate(FRAME_COLUMNS)}


def records(batch: Batch, columns: list[Column]) -> list[dict]:
    """The batch's rows as plain Python values (None for a missing number), the audio left out and a
    phrase's frames as lists: what the WebDataset and NSynth exports write as JSON."""
    wanted = [c for c in columns if c.kind not in ("audio", "floats", "bools")]
    convert = {"text": lambda v: v if isinstance(v, str) else None, "int": int, "ints": lambda v: [int(x) for x in v],
               "float": lambda v: None if _missing(v) else float(v)}
    out = [{c.name: convert[c.kind](row[c.name]) for c in wanted}
           for row in batch.rows[[c.name for c in wanted]].to_dict("records")]
    for name, values in (batch.frames or {}).items():
        for meta, value in zip(out, values):
            meta[name] = value.tolist()
    return out


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))
