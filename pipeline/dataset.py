"""The dataset stage: plan the notes, render them in shards, gate, label, split, write the manifest.

The plan is a pure function of the config: every note's random draws (detune, augmentation)
come from a generator seeded by (seed, program, note, velocity), so adding an instrument
leaves every other note as it was. Notes are grouped into shards; a shard's key hashes its
notes, the render settings and the soundfont, and a shard whose record exists is not
rendered again: that makes builds incremental and lets an interrupted build resume.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pipeline import constants as C
from pipeline import postprocessing as post
from pipeline.artifacts import atomic_path, ensure_dir, sha256_bytes, tool_versions, write_bytes, write_json
from pipeline.config import Config
from pipeline.errors import PipelineError
from pipeline.rendering import (Instrument, Renderer, bend_for_cents, cents_for_bend, check_note, midi_to_hz,
                                note_midi_bytes, note_name, resolve_instrument, soundfont_info, soundfont_stat)

if TYPE_CHECKING:
    import pandas as pd

RENDER_VERSION = 2  # bump when a change to the code changes the audio, to re-render every shard
MANIFEST_COLUMNS = ["path", "instrument", "instrument_name", "program", "family", "midi", "note", "detune_cents",
                    "bend", "frequency", "velocity", "segment", "split", "sha256", "peak_dbfs", "rms_dbfs",
                    "sounding_ms", "augment", "snr_db"]


# --- the plan ------------------------------------------------------------------------
@dataclass(frozen=True)
class NoteSpec:
    program: int
    midi: int
    velocity: int
    bend: int
    reverb: bool = False
    chorus: bool = False
    sox_effects: tuple = ()            # ((name, (params...)), ...)
    noise: str = "none"
    snr_db: float | None = None

    @property
    def instrument(self) -> Instrument:
        return resolve_instrument(self.program)

    @property
    def cents(self) -> float:
        return cents_for_bend(self.bend)

    @property
    def frequency(self) -> float:
        return float(midi_to_hz(self.midi + self.cents / 100.0))

    def augment_label(self) -> str:
        parts = [name for name, on in (("reverb", self.reverb), ("chorus", self.chorus)) if on]
        parts += [f"{name}({','.join(f'{p:g}' for p in params)})" for name, params in self.sox_effects]
        if self.noise != "none":
            parts.append(f"{self.noise}_noise")
        return ";".join(parts) or "none"


def _note_rng(seed: int, program: int, midi: int, velocity: int) -> np.random.Generator:
    return np.random.default_rng([seed, program, midi, velocity])


def _sox_effect(name: str, rng: np.random.Generator) -> tuple[str, tuple]:
    """One sox effect with parameters drawn for this note (rounded so labels stay readable)."""
    if name == "overdrive":
        return name, (round(rng.uniform(5, 20), 1), 20.0)
    if name == "equalizer":
        return name, (round(float(np.exp(rng.uniform(np.log(200), np.log(4000)))), 0), 1.0,
                      round(rng.uniform(-9, 9), 1))
    return name, (round(rng.uniform(3, 8), 2), round(rng.uniform(20, 60), 1))  # tremolo


def plan_note(cfg: Config, program: int, midi: int, velocity: int) -> NoteSpec:
    rng = _note_rng(cfg.data.seed, program, midi, velocity)
    detuned, cents, augmented, snr = rng.random(), rng.uniform(-1, 1), rng.random(), rng.random()
    bend = bend_for_cents(cents * cfg.data.detune_max_cents) if detuned < cfg.data.detune_share else 0
    a = cfg.augment
    if augmented >= a.share:
        return NoteSpec(program, midi, velocity, bend)
    noisy = a.noise != "none"
    return NoteSpec(program, midi, velocity, bend, reverb=a.reverb, chorus=a.chorus,
                    sox_effects=tuple(_sox_effect(name, rng) for name in a.sox_effects),
                    noise=a.noise, snr_db=round(a.snr_db_min + snr * (a.snr_db_max - a.snr_db_min), 2) if noisy else None)


def plan_notes(cfg: Config) -> list[NoteSpec]:
    """Every note of the dataset, in a fixed order: instrument, velocity, note."""
    d = cfg.data
    check_note(d.note_low)
    check_note(d.note_high)
    instruments = [resolve_instrument(i) for i in d.instruments]
    return [plan_note(cfg, inst.program, midi, velocity)
            for inst in instruments for velocity in d.velocities for midi in range(d.note_low, d.note_high + 1)]


def render_settings(cfg: Config) -> dict:
    """Everything besides the notes that shapes a shard's audio and labels."""
    d = cfg.data
    return {"version": RENDER_VERSION, "hold_seconds": d.hold_seconds, "release_seconds": d.release_seconds,
            "sustain_at": d.sustain_at, "gain": d.gain, "segments": list(d.segments), "gate": asdict(cfg.gate),
            "seed": d.seed, "resampler": d.resampler, "effects": cfg.augment.share > 0 and (cfg.augment.reverb or cfg.augment.chorus)}


@dataclass(frozen=True)
class ShardTask:
    """A fixed set of notes and all a worker needs to render them (picklable)."""
    key: str
    notes: tuple[NoteSpec, ...]
    settings: dict
    soundfont: str
    soundfont_sha256: str
    clips_dir: str                     # "" = return each WAV's bytes in its row (a remote worker)
    soundfont_stat: tuple = ()         # (size, mtime_ns) the plan saw; () = the worker hashes the file


def plan_shards(cfg: Config, notes: list[NoteSpec], soundfont_sha: str) -> list[ShardTask]:
    """Fixed groups of notes; a shard never spans two (instrument, velocity) runs, so adding an
    instrument or a velocity adds shards without changing the existing ones."""
    settings = render_settings(cfg)
    stat = soundfont_stat(cfg.data.soundfont)
    shards = []
    for chunk in _chunks(notes, cfg.data.shard_size):
        payload = json.dumps([settings, soundfont_sha, [asdict(n) for n in chunk]], sort_keys=True)
        key = hashlib.sha256(payload.encode()).hexdigest()[:20]
        shards.append(ShardTask(key, chunk, settings, os.path.abspath(cfg.data.soundfont), soundfont_sha,
                                str(cfg.data_dir / "clips"), stat))
    return shards


def _chunks(notes: list[NoteSpec], size: int):
    run: list[NoteSpec] = []
    for note in notes:
        if run and ((note.program, note.velocity) != (run[0].program, run[0].velocity) or len(run) == size):
            yield tuple(run)
            run = []
        run.append(note)
    if run:
        yield tuple(run)


# --- one shard, in a worker ----------------------------------------------------------
_RENDERERS: dict[tuple[str, bool], Renderer] = {}


def _renderer(task: ShardTask) -> Renderer:
    """The worker's synth for this soundfont, loaded once and kept for the worker's life.

    A local worker sees the very file the plan hashed (same size and mtime) and skips hashing
    it again; a cluster worker (no stat in the task) hashes its own copy."""
    key = (task.soundfont, bool(task.settings["effects"]))
    if key not in _RENDERERS:
        same_file = bool(task.soundfont_stat) and soundfont_stat(task.soundfont) == tuple(task.soundfont_stat)
        renderer = Renderer(task.soundfont, task.settings["gain"], effects=key[1],
                            sha256=task.soundfont_sha256 if same_file else None)
        if renderer.soundfont_sha256 != task.soundfont_sha256:
            renderer.close()
            raise PipelineError(
                f"soundfont {task.soundfont} on this worker has sha256 {renderer.soundfont_sha256[:12]}..., "
                f"not the planned {task.soundfont_sha256[:12]}...; give every worker the same file")
        _RENDERERS[key] = renderer
    _RENDERERS[key].require_programs({n.program for n in task.notes})
    return _RENDERERS[key]


def clip_name(note: NoteSpec, segment: str) -> str:
    inst = note.instrument
    return f"{inst.slug}_{note_name(note.midi)}_{note.midi}_{note.frequency:.2f}_{segment}_v{note.velocity}.wav"


def render_shard(task: ShardTask) -> list[dict]:
    """Render, resample, slice, gate and write one shard's clips; return a row per clip (kept or dropped)."""
    renderer = _renderer(task)
    s = task.settings
    seconds = s["hold_seconds"] + s["release_seconds"]
    stereo = [renderer.render(note_midi_bytes(n.program, n.midi, n.velocity, n.bend, s["hold_seconds"]),
                              seconds, reverb=n.reverb, chorus=n.chorus) for n in task.notes]
    plain = [i for i, n in enumerate(task.notes) if not n.sox_effects]
    mono: list[np.ndarray | None] = [None] * len(stereo)
    for i, audio in zip(plain, post.batch_to_dataset_rate([stereo[i] for i in plain], s["resampler"])):
        mono[i] = audio
    for i, note in enumerate(task.notes):  # notes with their own sox effects need their own sox run
        if note.sox_effects:
            mono[i] = post.to_dataset_rate(stereo[i], note.sox_effects)
    rows = []
    for note, audio in zip(task.notes, mono):
        rows.extend(_note_clips(task, note, audio))
    return rows


def _note_clips(task: ShardTask, note: NoteSpec, audio: np.ndarray) -> list[dict]:
    s, gate = task.settings, task.settings["gate"]
    hold = round(post.RATE_PERIOD_OUT / post.RATE_PERIOD_IN * _note_off_sample(s["hold_seconds"]))
    clips = post.slice_segments(audio, post.segment_starts(hold, s["sustain_at"], post.find_onset(audio)))
    levels = {name: post.level_dbfs(clip) for name, clip in clips.items()}
    loudest = max(rms for _, rms in levels.values())
    rows = []
    for index, segment in enumerate(C.SEGMENTS):
        if segment not in s["segments"]:
            continue
        peak, rms = levels[segment]
        row = _label_row(note, segment, peak, rms)
        row["sounding_ms"] = post.sounding_ms(clips[segment])
        row["drop_reason"] = post.gate_reason(peak, rms, loudest, row["sounding_ms"], gate)
        if row["drop_reason"] is None:
            clip = clips[segment]
            if note.noise != "none":
                rng = np.random.default_rng([s["seed"], note.program, note.midi, note.velocity, index])
                clip = post.add_noise(clip, note.noise, note.snr_db, rng)
            data = post.wav_bytes(post.to_pcm16(clip))
            if task.clips_dir:
                _write_clip(Path(task.clips_dir) / note.instrument.slug, row["file"], data)
            else:
                row["wav"] = data
            row["sha256"] = sha256_bytes(data)
        rows.append(row)
    return rows


def _write_clip(folder: Path, name: str, data: bytes) -> None:
    """Atomic like write_bytes (a dot-name, then rename; _clean_leftovers removes an interrupted
    one), without mkstemp's random name and Path round trips: three of these per note."""
    tmp = os.path.join(folder, f".{name}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    except FileNotFoundError:
        ensure_dir(folder)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.replace(tmp, os.path.join(folder, name))


def _note_off_sample(hold_seconds: float) -> int:
    """The render-rate sample where the note-off lands (events are block-aligned)."""
    from pipeline.rendering import _blocks

    return _blocks(hold_seconds * C.RENDER_RATE)


def _label_row(note: NoteSpec, segment: str, peak: float, rms: float) -> dict:
    inst = note.instrument
    name = clip_name(note, segment)
    return {"file": name, "path": f"clips/{inst.slug}/{name}", "instrument": inst.slug,
            "instrument_name": inst.name, "program": inst.program, "family": inst.family, "midi": note.midi,
            "note": note_name(note.midi), "detune_cents": note.cents, "bend": note.bend,
            "frequency": round(note.frequency, 6), "velocity": note.velocity, "segment": segment,
            "sha256": "", "peak_dbfs": peak, "rms_dbfs": rms, "augment": note.augment_label(),
            "snr_db": note.snr_db}


# --- splits --------------------------------------------------------------------------
def _unit_hash(*parts) -> float:
    """A stable number in [0, 1) from the parts: split membership that never depends on order."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2 ** 64


def assign_splits(cfg: Config, frame: pd.DataFrame) -> pd.Series:
    """train/val/test per clip; all segments of a note share a split, so no note leaks across."""
    import pandas as pd

    sp, seed = cfg.split, cfg.data.seed
    test_programs = {resolve_instrument(i).program for i in sp.test_instruments}
    notes = frame[["program", "midi", "velocity"]].itertuples(index=False)
    splits = []
    for program, midi, velocity in notes:
        if sp.test == "instrument":
            is_test = program in test_programs
        else:
            is_test = _unit_hash("test", seed, program, midi, velocity) < sp.test_share
        if is_test:
            splits.append("test")
        elif _unit_hash("val", seed, program, midi, velocity) < sp.val_share:
            splits.append("val")
        else:
            splits.append("train")
    return pd.Series(splits, index=frame.index, dtype=object)


def check_splits(cfg: Config) -> None:
    if cfg.split.test != "instrument":
        return
    chosen = {resolve_instrument(i).program for i in cfg.data.instruments}
    for spec in cfg.split.test_instruments:
        inst = resolve_instrument(spec)
        if inst.program not in chosen:
            raise PipelineError(f"split.test_instruments lists {inst.name!r}, which is not in data.instruments; "
                                "add it there or remove it from the test split")
    if {resolve_instrument(i).program for i in cfg.split.test_instruments} >= chosen:
        raise PipelineError("split.test_instruments holds out every instrument; leave some for training")


# --- the build -----------------------------------------------------------------------
def worker_count(cfg: Config) -> int:
    """data.workers, or every core this process may use (0 = every core)."""
    if cfg.data.workers:
        return cfg.data.workers
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@contextlib.contextmanager
def spawn_pool(workers: int):
    """Worker processes started with spawn, never fork: a child forked after FluidSynth ran in
    the parent can hang in sfload (a library lock copied while held), so scripts that build
    need the usual `if __name__ == "__main__":` guard. On leaving, queued work is cancelled and
    the workers finish exiting in the background."""
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"))
    try:
        yield pool
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _shard_record(cfg: Config, key: str) -> Path:
    return cfg.data_dir / "shards" / f"{key}.csv"


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
    workers = min(worker_count(cfg), len(todo))
    if cfg.data.scheduler or workers <= 1:
        yield None
        return
    with spawn_pool(workers) as pool:
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
        from pipeline.cluster import run_shards_on_cluster

        def finish(task: ShardTask, rows: list[dict]) -> None:
            for row in rows:  # remote workers send the audio back; the client owns the files
                if "wav" in row:
                    write_bytes(cfg.data_dir / row["path"], row.pop("wav"))
            _write_record(cfg, task.key, rows)
            progress.update(len(task.notes))

        run_shards_on_cluster(cfg.data.scheduler, [replace(t, clips_dir="", soundfont_stat=()) for t in todo], finish)
    else:
        for task in todo:
            _write_record(cfg, task.key, render_shard(task))
            progress.update(len(task.notes))


def _clean_leftovers(cfg: Config, keep_files: set[str], keep_shards: set[str]) -> None:
    """Remove temp files of an interrupted build and outputs no longer in the plan."""
    for path in (cfg.data_dir / "clips").rglob("*"):
        if path.is_file() and (path.name.startswith(".") or f"clips/{path.parent.name}/{path.name}" not in keep_files):
            path.unlink()
    for path in (cfg.data_dir / "shards").glob("*"):
        if path.stem not in keep_shards:
            path.unlink()


def build_dataset(cfg: Config) -> pd.DataFrame:
    """Build (or bring up to date) data/NAME: clips, manifest.csv and dataset.json."""
    from pipeline.rendering import require_sox, uses_sox

    started = time.perf_counter()
    if uses_sox(cfg):
        require_sox()
    check_splits(cfg)
    info = soundfont_info(cfg.data.soundfont)
    notes = plan_notes(cfg)
    ensure_dir(cfg.data_dir / "clips")
    ensure_dir(cfg.data_dir / "shards")
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
    _clean_leftovers(cfg, set(manifest["path"]), {t.key for t in shards})
    seconds = time.perf_counter() - started
    rendered = sum(len(t.notes) for t in todo)
    dropped = rows["drop_reason"].value_counts().sort_index().to_dict()
    made = int(rows.loc[rows["file"].isin(_rendered_files(todo)), "drop_reason"].isna().sum()) if todo else 0
    speed = f"{made / seconds:.0f} clips/s ({rendered / seconds:.0f} notes/s) on {worker_count(cfg)} workers" \
        if rendered else "nothing to render, all up to date"
    print(f"dataset {cfg.name}: {len(manifest)} clips from {len(notes)} notes in {seconds:.1f} s, {speed}; "
          f"gate dropped {sum(dropped.values())} ({', '.join(f'{k} {v}' for k, v in dropped.items()) or 'none'})")
    write_json(cfg.data_dir / "build.json", {"seconds": round(seconds, 3), "notes_rendered": rendered,
                                             "workers": worker_count(cfg), "clips": len(manifest)})
    return manifest


def _rendered_files(tasks: list[ShardTask]) -> set[str]:
    return {clip_name(n, seg) for t in tasks for n in t.notes for seg in C.SEGMENTS}


def _check_programs(cfg: Config, notes: list[NoteSpec]) -> None:
    """The soundfont loads and has every planned instrument (workers check again, for themselves)."""
    renderer = Renderer(cfg.data.soundfont, cfg.data.gain)
    try:
        renderer.require_programs({n.program for n in notes})
    finally:
        renderer.close()


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
    with atomic_path(cfg.data_dir / "manifest.csv") as tmp:  # last: it is what make waits for
        manifest.to_csv(tmp, index=False)
    return manifest


# --- reading it back -----------------------------------------------------------------
def load_manifest(cfg: Config) -> pd.DataFrame:
    import pandas as pd

    path = cfg.data_dir / "manifest.csv"
    if not path.is_file():
        raise PipelineError(f"no dataset at {path}; build it first with make data (or pipeline data)")
    try:
        return pd.read_csv(path, keep_default_na=False, na_values=[""])
    except (pd.errors.ParserError, UnicodeDecodeError, OSError) as exc:
        raise PipelineError(f"manifest {path} is unreadable ({exc}); delete it and run make data again") from None


def read_clip(path: str | Path, data: bytes | None = None) -> np.ndarray:
    """One dataset clip as float32 in [-1, 1], from its file or from its WAV bytes (`data`).

    A clip this package wrote (the canonical 44-byte header of `wav_bytes`) is decoded with
    numpy, a seventh of libsndfile's cost per clip and the same values (int16 / 32768, exact);
    anything else goes through soundfile."""
    if data is None:
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except OSError as exc:
            raise PipelineError(f"cannot read audio {path} ({exc}); rebuild the dataset with make data") from None
    if data[:44] == _canonical_header() and len(data) == 44 + 2 * C.CLIP_SAMPLES:
        return np.frombuffer(data, dtype="<i2", offset=44).astype(np.float32) / np.float32(32768)
    return _read_clip_soundfile(path, data)


@lru_cache(maxsize=1)
def _canonical_header() -> bytes:
    return post.wav_bytes(np.zeros(C.CLIP_SAMPLES, dtype=np.int16))[:44]


def _read_clip_soundfile(path: str | Path, data: bytes) -> np.ndarray:
    import soundfile as sf

    try:
        audio, rate = sf.read(io.BytesIO(data), dtype="float32")
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise PipelineError(f"cannot read audio {path} ({exc}); rebuild the dataset with make data") from None
    if rate != C.SAMPLE_RATE or audio.ndim != 1 or len(audio) != C.CLIP_SAMPLES:
        raise PipelineError(f"clip {path} is not {C.CLIP_SAMPLES} mono samples at {C.SAMPLE_RATE} Hz; "
                            "rebuild the dataset with make data")
    return audio


def read_clips(cfg: Config, frame: pd.DataFrame) -> np.ndarray:
    """The rows' clips as a (N, 5280) float32 array."""
    out = np.empty((len(frame), C.CLIP_SAMPLES), dtype=np.float32)
    for i, rel in enumerate(frame["path"]):
        out[i] = read_clip(cfg.data_dir / rel)
    return out
