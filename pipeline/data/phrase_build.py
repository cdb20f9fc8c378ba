"""The phrases of the data stage: plan them, render the shards not done yet, and write the two
tables that describe them.

    phrases.csv   one row per phrase (PHRASE_COLUMNS): its WAV, frame table and curve with their
                  sha256, source, instrument, style, length, frame counts, flags, augmentation, split
    frames.csv    every phrase's frame table in one: path,time,f0_hz,voiced,clean,flag

Both are written only when their content changes (make's features follow only then); frames.csv
is streamed, phrase by phrase, so memory does not grow with the dataset. Reading: see
pipeline/data/phrase_labels.py for the frame table's columns, pipeline.data.clips's `load_phrases`
and `load_frames`.
"""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.core.artifacts import AtomicFile, ensure_dir, write_if_changed
from pipeline.core.config import Config
from pipeline.core.errors import PipelineError
from pipeline.data import phrase_labels, shard_runs
from pipeline.data.clips import FRAMES_FILE, PHRASES_FILE, file_intact
from pipeline.data.phrase_plan import PHRASES_DIR, PhraseShardTask, plan_phrase_shards, plan_phrases
from pipeline.data.phrases import render_phrase_shard
from pipeline.data.rendering import require_fluidsynth
from pipeline.data.splits import assign_phrase_splits

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

FILE_COLUMNS = (("path", "sha256"), ("frames_path", "frames_sha256"), ("curve_path", "curve_sha256"))
PHRASE_COLUMNS = ["path", "split", "source", "kind", "instrument", "instrument_name", "timbre", "program", "family",
                  "style", "index", "seconds", "frames", "voiced_frames", "clean_frames", "flagged_frames",
                  *(f"flag_{name}" for name in phrase_labels.FLAGS), "f0_min", "f0_max", "augment", "snr_db",
                  "sha256", "frames_path", "frames_sha256", "curve_path", "curve_sha256"]


def build_phrases(cfg: Config, fonts) -> dict | None:
    """Render the phrases not done yet and write phrases.csv and frames.csv; None when the config
    plans no phrases. Returns what dataset.json says of them."""
    items = plan_phrases(cfg, fonts)
    if not items:
        return None
    started = time.perf_counter()
    ensure_dir(cfg.data_dir / PHRASES_DIR)
    shards = plan_phrase_shards(cfg, items, fonts)
    records, todo = shard_runs.check_records(cfg, shards, lambda task, frame: _record_problem(cfg, task, frame))
    if any(t.soundfont for t in todo):
        require_fluidsynth()
    shard_runs.run_shards(cfg, todo, render_phrase_shard, _phrase_count, "phrases", "phrase")
    import pandas as pd

    for task in todo:
        records[task.key] = shard_runs.reread_record(cfg, task.key)
    rows = pd.concat([records[t.key] for t in shards], ignore_index=True)
    rows["split"] = assign_phrase_splits(cfg, rows)
    manifest = rows[PHRASE_COLUMNS]
    written = write_if_changed(cfg.data_dir / PHRASES_FILE, manifest.to_csv(index=False).encode())
    frames_written = write_frames_table(cfg, manifest)
    seconds = time.perf_counter() - started
    rendered = sum(len(t.items) for t in todo)
    audio = float(rows.loc[rows["path"].isin({p for t in todo for p in t.clip_paths()}), "seconds"].sum())
    log.info(f"phrases: {len(manifest)} ({rendered} rendered, {audio:.0f} s of audio in {seconds:.1f} s"
             f"{f', {audio / seconds:.0f}x real time' if rendered else ''}); phrases.csv "
             f"{'written' if written else 'unchanged'}, frames.csv {'written' if frames_written else 'unchanged'}")
    return {**summary(manifest), "shards": [t.key for t in shards], "build": {
        "phrases_rendered": rendered, "audio_seconds_rendered": round(audio, 2), "seconds": round(seconds, 2)}}


def _phrase_count(task: PhraseShardTask) -> int:
    return len(task.items)


def _record_problem(cfg: Config, task: PhraseShardTask, frame: pd.DataFrame) -> str | None:
    missing = [c for c in PHRASE_COLUMNS if c != "split" and c not in frame.columns]
    if missing:
        return f"lacks the column(s) {', '.join(missing)}"
    if list(frame["path"]) != task.clip_paths():
        return "does not list this shard's phrases"
    for path_column, sha_column in FILE_COLUMNS:
        bad = [p for p, sha in zip(frame[path_column], frame[sha_column]) if not file_intact(cfg.data_dir, p, sha)]
        if bad:
            return f"lists {len(bad)} file(s) missing or changed ({bad[0]}{', ...' if len(bad) > 1 else ''})"
    return None


def write_frames_table(cfg: Config, manifest: pd.DataFrame) -> bool:
    """frames.csv: each phrase's frame table, its path first, in the manifest's order; streamed
    into a temporary file and renamed over the old one only when the bytes differ."""
    target = cfg.data_dir / FRAMES_FILE
    digest = hashlib.sha256()
    with AtomicFile(target) as file:
        try:
            with open(file.tmp, "wb") as out:
                header = b"path," + phrase_labels.HEADER.encode()
                for body in (header, *(_table_rows(cfg.data_dir / p, audio) for p, audio
                                       in zip(manifest["frames_path"], manifest["path"]))):
                    out.write(body)
                    digest.update(body)
        except OSError as exc:
            raise PipelineError(f"cannot write {target} ({exc.strerror}); free some disk space and run the "
                                "data stage again") from None
        if target.is_file() and _sha256(target) == digest.hexdigest():
            return False                   # the same bytes: the temporary file goes, make sees no change
        file.commit()
    return True


def _table_rows(path: Path, audio_path: str) -> bytes:
    try:
        lines = path.read_bytes().splitlines(keepends=True)
    except OSError as exc:
        raise PipelineError(f"frame table {path} cannot be read ({exc.strerror}); run the data stage again") from None
    prefix = f"{audio_path},".encode()
    return b"".join(prefix + line for line in lines[1:])


def _sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def summary(manifest: pd.DataFrame) -> dict:
    """What dataset.json says of the phrases: counts by split, source and style; frames, voiced and
    clean shares; flagged frames by cause and source; the f0 range."""
    flags = [f"flag_{name}" for name in phrase_labels.FLAGS]
    by_source = manifest.groupby("source")
    frames = int(manifest["frames"].sum())
    return {
        "phrases": len(manifest), "seconds": round(float(manifest["seconds"].sum()), 2), "frames": frames,
        "voiced_frames": int(manifest["voiced_frames"].sum()), "clean_frames": int(manifest["clean_frames"].sum()),
        "voiced_share": round(float(manifest["voiced_frames"].sum()) / max(frames, 1), 4),
        "flagged_frames": int(manifest["flagged_frames"].sum()),
        "flagged_by_cause": {c.removeprefix("flag_"): int(manifest[c].sum()) for c in flags},
        "flagged_by_source": {str(s): {c.removeprefix("flag_"): int(g[c].sum()) for c in flags} for s, g in by_source},
        "per_split": {str(k): int(v) for k, v in manifest["split"].value_counts().sort_index().items()},
        "per_source": {str(k): int(v) for k, v in by_source.size().items()},
        "per_style": {str(k): int(v) for k, v in manifest["style"].value_counts().sort_index().items()},
        "f0_hz": [round(float(manifest["f0_min"].min()), 2), round(float(manifest["f0_max"].max()), 2)]
        if manifest["f0_min"].notna().any() else None,
    }
