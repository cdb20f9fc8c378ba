"""The dataset stage: render the planned shards in workers, gate and label the clips, split, write the manifest.

`build_dataset(cfg)` is the stage: it plans the notes and shards (pipeline.plan), renders the
shards that have no record yet in worker processes or on a Dask cluster (`render_shard`,
one per shard), assigns the splits (pipeline.splits) and writes manifest.csv last through
pipeline.clips, which also owns the clips' paths and their WAV format. A shard's record
(shards/KEY.csv) is written when the shard is done, so a second build renders nothing and
an interrupted one resumes where it stopped.
"""

from __future__ import annotations

import contextlib
import csv
import os
import time
from concurrent.futures import FIRST_COMPLETED, wait
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pipeline import constants as C
from pipeline import postprocessing as post
from pipeline import workers
from pipeline.artifacts import atomic_path, ensure_dir, sha256_bytes, tool_versions, write_json
from pipeline.clips import (
    CLIPS_DIR,
    MANIFEST_COLUMNS,
    clip_relpath,
    remove_stale_clips,
    wav_bytes,
    write_clip,
    write_manifest,
)
from pipeline.config import Config
from pipeline.errors import PipelineError
from pipeline.instruments import resolve_instrument
from pipeline.pitch import note_name
from pipeline.plan import NoteSpec, ShardTask, plan_notes, plan_shards
from pipeline.rendering import Renderer, block_align, note_midi_bytes, soundfont_info, soundfont_stat
from pipeline.splits import assign_splits, check_splits

if TYPE_CHECKING:
    import pandas as pd

SHARDS_DIR = "shards"


# --- one shard, in a worker ----------------------------------------------------------
_RENDERERS: dict[tuple[str, bool], Renderer] = {}


def _renderer(task: ShardTask) -> Renderer:
    """The worker's synth for this soundfont, loaded once and kept for the worker's life.

    A local worker sees the very file the plan hashed (same size and mtime) and skips hashing
    it again; a cluster worker hashes its own copy."""
    key = (task.soundfont, task.settings.effects)
    if key not in _RENDERERS:
        same_file = not task.on_cluster and soundfont_stat(task.soundfont) == tuple(task.soundfont_stat)
        renderer = Renderer(task.soundfont, task.settings.gain, effects=key[1],
                            sha256=task.soundfont_sha256 if same_file else None)
        if renderer.soundfont_sha256 != task.soundfont_sha256:
            renderer.close()
            raise PipelineError(
                f"soundfont {task.soundfont} on this worker has sha256 {renderer.soundfont_sha256[:12]}..., "
                f"not the planned {task.soundfont_sha256[:12]}...; give every worker the same file")
        _RENDERERS[key] = renderer
    _RENDERERS[key].require_programs({n.program for n in task.notes})
    return _RENDERERS[key]


def render_shard(task: ShardTask) -> list[dict]:
    """Render, resample, slice, gate and write one shard's clips; return a row per clip (kept or dropped).

    On a cluster (task.on_cluster) nothing is written: a kept clip's row carries its WAV bytes."""
    renderer = _renderer(task)
    s = task.settings
    seconds = s.hold_seconds + s.release_seconds
    stereo = [renderer.render(note_midi_bytes(n.program, n.midi, n.velocity, n.bend, s.hold_seconds),
                              seconds, reverb=n.reverb, chorus=n.chorus) for n in task.notes]
    plain = [i for i, n in enumerate(task.notes) if not n.sox_effects]
    mono: list[np.ndarray | None] = [None] * len(stereo)
    for i, audio in zip(plain, post.batch_to_dataset_rate([stereo[i] for i in plain], s.resampler)):
        mono[i] = audio
    for i, note in enumerate(task.notes):  # notes with their own sox effects need their own sox run
        if note.sox_effects:
            mono[i] = post.to_dataset_rate(stereo[i], note.sox_effects)
    rows = []
    for note, audio in zip(task.notes, mono):
        rows.extend(_note_clips(task, note, audio))
    return rows


def _note_clips(task: ShardTask, note: NoteSpec, audio: np.ndarray) -> list[dict]:
    s = task.settings
    hold = round(post.RATE_PERIOD_OUT / post.RATE_PERIOD_IN * _note_off_sample(s.hold_seconds))
    clips = post.slice_segments(audio, post.segment_starts(hold, s.sustain_at, post.find_onset(audio)))
    levels = {name: post.level_dbfs(clip) for name, clip in clips.items()}
    loudest = max(rms for _, rms in levels.values())
    rows = []
    for index, segment in enumerate(C.SEGMENTS):
        if segment not in s.segments:
            continue
        peak, rms = levels[segment]
        row = _label_row(note, segment, peak, rms)
        row["sounding_ms"] = post.sounding_ms(clips[segment])
        row["drop_reason"] = post.gate_reason(peak, rms, loudest, row["sounding_ms"], s.gate)
        if row["drop_reason"] is None:
            clip = clips[segment]
            if note.noise != "none":
                rng = np.random.default_rng([s.seed, note.program, note.midi, note.velocity, index])
                clip = post.add_noise(clip, note.noise, note.snr_db, rng)
            data = wav_bytes(post.to_pcm16(clip))
            if task.on_cluster:
                row["wav"] = data
            else:
                write_clip(task.data_dir, row["path"], data)
            row["sha256"] = sha256_bytes(data)
        rows.append(row)
    return rows


def _note_off_sample(hold_seconds: float) -> int:
    """The render-rate sample where the note-off lands (events are block-aligned)."""
    return block_align(hold_seconds * C.RENDER_RATE)


def _label_row(note: NoteSpec, segment: str, peak: float, rms: float) -> dict:
    inst = note.instrument
    name = note.clip_name(segment)
    return {"file": name, "path": clip_relpath(inst.slug, name), "instrument": inst.slug,
            "instrument_name": inst.name, "program": inst.program, "family": inst.family, "midi": note.midi,
            "note": note_name(note.midi), "detune_cents": note.cents, "bend": note.bend,
            "frequency": round(note.frequency, 6), "velocity": note.velocity, "segment": segment,
            "sha256": "", "peak_dbfs": peak, "rms_dbfs": rms, "augment": note.augment_label(),
            "snr_db": note.snr_db}


# --- the tools a build needs ---------------------------------------------------------
def uses_sox(cfg: Config) -> bool:
    """Whether a build runs sox processes: the sox resampler, or sox effects on augmented notes."""
    return cfg.data.resampler == "sox" or (cfg.augment.share > 0 and bool(cfg.augment.sox_effects))


def check_environment(cfg: Config) -> list[str]:
    """Check the tools and the soundfont a build needs (`pipeline check`); return what was found."""
    sox = [f"sox: {post.require_sox()}"] if uses_sox(cfg) else [f"resampler: {cfg.data.resampler} (in-process)"]
    renderer = Renderer(cfg.data.soundfont, cfg.data.gain)
    try:
        renderer.require_programs(resolve_instrument(i).program for i in cfg.data.instruments)
    finally:
        renderer.close()
    info = soundfont_info(cfg.data.soundfont)
    return [*sox, f"soundfont: {info['name']} sha256 {info['sha256'][:16]}...",
            f"instruments: {len(cfg.data.instruments)} OK", f"cores: {os.cpu_count()}"]


def _check_programs(cfg: Config, notes: list[NoteSpec]) -> None:
    """The soundfont loads and has every planned instrument (workers check again, for themselves)."""
    renderer = Renderer(cfg.data.soundfont, cfg.data.gain)
    try:
        renderer.require_programs({n.program for n in notes})
    finally:
        renderer.close()


# --- running the shards --------------------------------------------------------------
def _shard_record(cfg: Config, key: str) -> Path:
    return cfg.data_dir / SHARDS_DIR / f"{key}.csv"


def _write_record(cfg: Config, key: str, rows: list[dict]) -> None:
    """The shard's rows as CSV (None as an empty field): the csv module, a tenth of pandas' cost."""
    with atomic_path(_shard_record(cfg, key)) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["file"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


@contextlib.contextmanager
def _local_pool(cfg: Config, todo: list[ShardTask]):
    """Start the worker processes and hand them every shard now, so that their start-up (imports,
    soundfont load) overlaps the parent's checks; yields {future: task}, or None when the shards
    run serially or on a cluster."""
    count = min(workers.worker_count(cfg.data.workers), len(todo))
    if cfg.data.scheduler or count <= 1:
        yield None
        return
    with workers.spawn_pool(count) as pool:
        yield {pool.submit(render_shard, task): task for task in todo}


def _run_shards(cfg: Config, todo: list[ShardTask], progress, pending: dict | None) -> None:
    """Render the shards that are not done yet, writing each one's record as it finishes."""
    if pending is not None:
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                task = pending.pop(future)
                _write_record(cfg, task.key, future.result())
                progress.update(len(task.notes))
    elif cfg.data.scheduler:
        _run_shards_on_cluster(cfg, todo, progress)
    else:
        for task in todo:
            _write_record(cfg, task.key, render_shard(task))
            progress.update(len(task.notes))


def _run_shards_on_cluster(cfg: Config, todo: list[ShardTask], progress) -> None:
    """The shards on the Dask scheduler of data.scheduler. Workers send the audio back and the
    client writes every file, so they need no shared output folder; they do need the soundfont
    at the same path (a shared mount or a copy), and check its sha256 against the plan's."""
    def finish(task: ShardTask, rows: list[dict]) -> None:
        for row in rows:
            if "wav" in row:
                write_clip(cfg.data_dir, row["path"], row.pop("wav"))
        _write_record(cfg, task.key, rows)
        progress.update(len(task.notes))

    jobs = [(f"shard-{t.key}", t, lambda t=t: (t.for_cluster(),)) for t in todo]
    workers.run_on_cluster(cfg.data.scheduler, render_shard, jobs, finish,
                           "check the workers' logs and their soundfont")


def _remove_stale_records(cfg: Config, keep: set[str]) -> None:
    """Shard records no longer in the plan (a note range or instrument removed from the config)."""
    for path in (cfg.data_dir / SHARDS_DIR).glob("*"):
        if path.stem not in keep:
            path.unlink()


# --- the build -----------------------------------------------------------------------
def build_dataset(cfg: Config) -> pd.DataFrame:
    """Build (or bring up to date) data/NAME: clips, manifest.csv and dataset.json."""
    started = time.perf_counter()
    if uses_sox(cfg):
        post.require_sox()
    check_splits(cfg)
    info = soundfont_info(cfg.data.soundfont)
    notes = plan_notes(cfg)
    ensure_dir(cfg.data_dir / CLIPS_DIR)
    ensure_dir(cfg.data_dir / SHARDS_DIR)
    shards = plan_shards(cfg, notes, info["sha256"])
    todo = [t for t in shards if not _shard_record(cfg, t.key).is_file()]
    with _local_pool(cfg, todo) as pending:
        if todo:  # a clear error before any progress; the workers start meanwhile
            _check_programs(cfg, notes)
        import pandas as pd  # imported here, a third of a second, while the workers start
        from tqdm import tqdm

        with tqdm(total=sum(len(t.notes) for t in todo), unit="note", desc="render", disable=not todo,
                  mininterval=1.0) as progress:
            _run_shards(cfg, todo, progress, pending)
    rows = pd.concat([pd.read_csv(_shard_record(cfg, t.key), keep_default_na=False, na_values=[""])
                      for t in shards], ignore_index=True)
    manifest = _write_outputs(cfg, rows, info, notes)
    remove_stale_clips(cfg.data_dir, set(manifest["path"]))
    _remove_stale_records(cfg, {t.key for t in shards})
    _report(cfg, rows, manifest, notes, todo, time.perf_counter() - started)
    return manifest


def _report(cfg: Config, rows: pd.DataFrame, manifest: pd.DataFrame, notes: list[NoteSpec],
            todo: list[ShardTask], seconds: float) -> None:
    """One line on the terminal and build.json: what was rendered, how fast, what the gate dropped."""
    rendered = sum(len(t.notes) for t in todo)
    count = workers.worker_count(cfg.data.workers)
    dropped = rows["drop_reason"].value_counts().sort_index().to_dict()
    made = int(rows.loc[rows["file"].isin(_rendered_files(todo)), "drop_reason"].isna().sum()) if todo else 0
    speed = f"{made / seconds:.0f} clips/s ({rendered / seconds:.0f} notes/s) on {count} workers" \
        if rendered else "nothing to render, all up to date"
    print(f"dataset {cfg.name}: {len(manifest)} clips from {len(notes)} notes in {seconds:.1f} s, {speed}; "
          f"gate dropped {sum(dropped.values())} ({', '.join(f'{k} {v}' for k, v in dropped.items()) or 'none'})")
    write_json(cfg.data_dir / "build.json", {"seconds": round(seconds, 3), "notes_rendered": rendered,
                                             "workers": count, "clips": len(manifest)})


def _rendered_files(tasks: list[ShardTask]) -> set[str]:
    return {n.clip_name(seg) for t in tasks for n in t.notes for seg in C.SEGMENTS}


def _write_outputs(cfg: Config, rows: pd.DataFrame, info: dict, notes: list[NoteSpec]) -> pd.DataFrame:
    kept = rows[rows["drop_reason"].isna()].copy()
    kept["split"] = assign_splits(cfg, kept)
    manifest = kept[MANIFEST_COLUMNS].reset_index(drop=True)
    dropped = rows[rows["drop_reason"].notna()]
    summary = {
        "config": cfg.to_dict(),
        "soundfont": {k: info[k] for k in ("name", "bytes", "sha256")},
        "versions": tool_versions(),
        "notes": len(notes),
        "clips": len(manifest),
        "per_split": manifest["split"].value_counts().sort_index().to_dict(),
        "per_instrument": manifest.groupby("instrument")["split"].value_counts().unstack(fill_value=0)
        .to_dict(orient="index"),
        "per_segment": manifest["segment"].value_counts().sort_index().to_dict(),
        "dropped": dropped["drop_reason"].value_counts().sort_index().to_dict(),
        "dropped_by_segment": {f"{reason}/{segment}": int(n) for (reason, segment), n
                               in dropped.groupby(["drop_reason", "segment"]).size().items()},
    }
    write_json(cfg.data_dir / "dataset.json", summary)
    write_manifest(cfg.data_dir, manifest)  # last: it is what make waits for
    return manifest
