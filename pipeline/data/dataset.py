"""The dataset stage: render the planned shards in workers, gate, audit and label the clips, split,
write the manifest.

`build_dataset(cfg)` is the stage: it plans the notes and shards (pipeline.data.plan), renders the
shards that have no whole record in worker processes or on a Dask cluster (`render_shard`,
one per shard), applies the label audit's rules (pipeline.data.audit), assigns the splits
(pipeline.data.splits) and writes dataset.json and manifest.csv through pipeline.data.clips, which also
owns the layout of the folder, the clips' paths and their WAV format. A shard's record
(shards/KEY.csv) is written when the shard is done, after its clips are synced to disk, so a
second build renders nothing and an interrupted one resumes where it stopped; every build
checks each record and the sha256 of every clip it lists, and renders again exactly the
shards whose record or clips are missing or damaged.

Per note, in the worker: render (FluidSynth, or a synthetic tone), mono at the dataset's rate
(16 kHz by default; data.sample_rate), PRE_ROLL_SECONDS of silence before it; find the onset,
slice, gate and audit on this clean note; augment the
whole note (rooms, microphone, noise, level, codec) and cut its clips at the very same
places, so a segment the gate judged on the clean note keeps its label whatever noise
covers it.
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import TYPE_CHECKING

import numpy as np

from pipeline.core import constants as C
from pipeline.core import progress, workers
from pipeline.core.artifacts import (
    ensure_dir,
    remove_stale_temporaries,
    sha256_bytes,
    tool_versions,
    write_if_changed,
    write_json,
)
from pipeline.core.audio_format import ClipFormat, clip_format
from pipeline.core.config import Config
from pipeline.core.errors import PipelineError
from pipeline.core.pitch import note_name
from pipeline.data import audit, augmentation, shard_runs, tones
from pipeline.data import postprocessing as post
from pipeline.data.augmentation import AugmentSpec
from pipeline.data.card import write_card
from pipeline.data.clips import (
    BUILD_FILE,
    CLIPS_DIR,
    DATASET_FILE,
    MANIFEST_COLUMNS,
    SHARDS_DIR,
    clip_bytes,
    clip_intact,
    resample_clips,
    write_clip,
    write_manifest,
)
from pipeline.data.phrase_build import build_phrases
from pipeline.data.phrase_plan import phrase_sources
from pipeline.data.plan import NoteSpec, Plan, ShardTask, make_plan, params_fingerprint, plan_shards
from pipeline.data.rendering import Renderer, block_align, note_midi_bytes, require_fluidsynth, soundfont_stat
from pipeline.data.splits import assign_splits, check_splits
from pipeline.dsp import fine_pitch

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    import pandas as pd

# what the manifest takes from a shard's record (the splits and the audit add the rest)
RECORD_COLUMNS = [*(c for c in MANIFEST_COLUMNS if c not in ("split", "nominal_frequency", "audit_cents",
                                                             "label_rule")), "drop_reason"]
MAX_PROBLEM_LINES = 5  # damaged shards named one per line; the rest counted


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


def _render_notes(task: ShardTask) -> tuple[list[np.ndarray], list[str]]:
    """Each note at 44.1 kHz (stereo from FluidSynth, mono for a tone) and its timbre."""
    s = task.settings
    if not task.soundfont:
        return ([tones.render_tone(n.tone, C.RENDER_RATE, s.hold_seconds, s.release_seconds) for n in task.notes],
                [n.tone.label() for n in task.notes])
    renderer = _renderer(task)
    seconds = s.hold_seconds + s.release_seconds
    audio = [renderer.render(note_midi_bytes(n.program, n.midi, n.velocity, n.bend, s.hold_seconds), seconds,
                             reverb=n.reverb) for n in task.notes]
    return audio, [renderer.preset_name(n.program) for n in task.notes]


def render_shard(task: ShardTask) -> list[dict]:
    """Render, resample, slice, gate, audit, augment and write one shard's clips; return a row per
    clip (kept or dropped). On a cluster (task.on_cluster) nothing is written: a kept clip's row
    carries its WAV bytes."""
    audio, timbres = _render_notes(task)
    rows = []
    mono = post.batch_to_dataset_rate(audio, task.settings.resampler, task.settings.audio.rate)
    for note, note_audio, timbre in zip(task.notes, mono, timbres):
        rows.extend(_note_clips(task, note, note_audio, timbre))
    return rows


def pre_roll(rate: int = C.SAMPLE_RATE) -> int:
    """The silence laid before each note, in samples at the dataset's rate."""
    return round(post.PRE_ROLL_SECONDS * rate)


def _note_off(note: NoteSpec, hold_seconds: float, rate: int = C.SAMPLE_RATE) -> int:
    """Samples (at `rate`) from note-on to note-off: FluidSynth's lands on a block edge, a tone's exactly."""
    at = round(hold_seconds * C.RENDER_RATE) if note.tone else block_align(hold_seconds * C.RENDER_RATE)
    period_in, period_out = post.rate_periods(rate)
    return round(period_out / period_in * at)


def _windows(task: ShardTask, note: NoteSpec, clean: np.ndarray) -> tuple[int, dict[str, int]]:
    """The onset and where each segment starts in the clean note (pre-roll included): the classic
    three always (they decide the gate's loudest segment), onset and release when built; a whole
    note alone, from its note-on."""
    s, fmt = task.settings, task.settings.audio
    start = pre_roll(fmt.rate)
    onset = start + post.find_onset(clean[start:], fmt.rate)
    if s.segments == (C.WHOLE,):
        return onset, {C.WHOLE: start}
    lead = round(note.onset_lead_ms * fmt.rate / 1000) if "onset" in s.segments else None
    release = note.release_at if "release" in s.segments else None
    return onset, post.segment_starts(_note_off(note, s.hold_seconds, fmt.rate), s.sustain_at, onset, lead, release,
                                      start, fmt.samples)


def _note_clips(task: ShardTask, note: NoteSpec, audio: np.ndarray, timbre: str) -> list[dict]:
    s, fmt = task.settings, task.settings.audio
    clean = np.concatenate([np.zeros(pre_roll(fmt.rate), np.float32), audio])
    onset, starts = _windows(task, note, clean)
    clips = post.slice_segments(clean, starts, fmt.samples)
    levels = {name: post.level_dbfs(clip) for name, clip in clips.items()}
    loudest = max(rms for _, rms in levels.values())
    rows = []
    for segment in (seg for seg in C.SEGMENT_NAMES if seg in s.segments):
        row = _label_row(note, segment, timbre, *levels[segment], fmt)
        row["offset_ms"] = round((starts[segment] - onset) * 1000 / fmt.rate, 2)
        row["sounding_ms"] = post.sounding_ms(clips[segment], fmt.rate)
        row["drop_reason"] = post.gate_reason(*levels[segment], loudest, row["sounding_ms"], s.gate)
        rows.append(row)
    kept = [row for row in rows if row["drop_reason"] is None]
    if not kept:
        return rows
    # the audit's estimator works at 16 kHz, whatever the clips' rate
    audited = resample_clips(np.stack([clips[row["segment"]] for row in kept]), fmt.rate, C.SAMPLE_RATE)
    hz, confidence = fine_pitch.estimate(audited)
    heard = augmentation.apply(clean, note.augment, fmt.rate) if note.augment != AugmentSpec() else clean
    for row, estimate, sure in zip(kept, hz, confidence):
        row["audit_hz"] = round(float(estimate), 4) if np.isfinite(estimate) else None  # CSV: empty, not "nan"
        row["audit_confidence"] = round(float(sure), 4)
        clip = post.slice_segments(heard, {row["segment"]: starts[row["segment"]]}, fmt.samples)[row["segment"]]
        data = clip_bytes(post.quantize(clip, fmt.sample_format), fmt)
        if task.on_cluster:
            row["wav"] = data
        else:
            write_clip(task.data_dir, row["path"], data)
        row["sha256"] = sha256_bytes(data)
    return rows


def _label_row(note: NoteSpec, segment: str, timbre: str, peak: float, rms: float, fmt: ClipFormat) -> dict:
    inst = note.instrument
    return {"path": note.clip_path(segment, fmt.suffix), "source": note.source, "instrument": inst.slug,
            "instrument_name": inst.name, "timbre": timbre, "program": inst.program, "family": inst.family,
            "midi": note.midi, "note": note_name(note.midi), "variant": note.variant, "detune_cents": note.cents,
            "bend": note.bend, "frequency": round(note.frequency, 6), "velocity": note.velocity, "segment": segment,
            "sha256": "", "peak_dbfs": peak, "rms_dbfs": rms, "augment": note.augment_label(fmt.rate),
            "snr_db": note.augment.snr_db, "audit_hz": None, "audit_confidence": None}


# --- the tools a build needs ---------------------------------------------------------
def uses_sox(cfg: Config) -> bool:
    """Whether a build runs sox processes: only the sox resampler does."""
    return cfg.data.resampler == "sox"


def check_environment(cfg: Config) -> list[str]:
    """Check the tools and the soundfonts a build needs (`pipeline check`); return what was found."""
    sox = [f"sox: {post.require_sox()}"] if uses_sox(cfg) else [f"resampler: {cfg.data.resampler} (in-process)"]
    plan = make_plan(cfg)  # every font's header, checksum and presets; the instruments no font has
    lines = [*sox]
    for font in plan.fonts:
        missing = plan.skipped_presets[font.name]
        lines.append(f"soundfont: {font.name} sha256 {font.sha256[:16]}... at {font.path} "
                     f"({progress.plural(len(cfg.data.instruments) - len(missing), 'instrument')}"
                     f"{', skipped: ' + ', '.join(missing) if missing else ''})")
    if plan.fonts:  # FluidSynth itself loads the smallest one
        Renderer(min(plan.fonts, key=lambda f: f.size).path, cfg.data.gain).close()
    if plan.fonts:
        lines.append(f"instruments: {len(cfg.data.instruments)} OK")  # make_plan stops at one that no font has
    if cfg.tones.enabled:
        lines.append(f"synthetic tones: {', '.join(cfg.tones.kinds)}")
    return [*lines, f"notes: {len(plan.notes)}", f"clips: {clip_format(cfg.data).describe()}",
            f"cores: {os.cpu_count()}"]


# --- shard records: what makes a build resumable -------------------------------------
def _record_problem(cfg: Config, task: ShardTask, frame: pd.DataFrame) -> str | None:
    """What is wrong with a shard's record or the clips it lists (each one's size and sha256)."""
    missing = [c for c in RECORD_COLUMNS if c not in frame.columns]
    if missing:
        return f"lacks the column(s) {', '.join(missing)}"
    if list(frame["path"]) != task.clip_paths():
        return "does not list this shard's clips"
    kept = frame[frame["drop_reason"].isna()]
    if not kept["sha256"].fillna("").str.fullmatch("[0-9a-f]{64}").all():
        return "lists a clip without its sha256"
    fmt = task.settings.audio
    bad = [path for path, sha in zip(kept["path"], kept["sha256"]) if not clip_intact(cfg.data_dir, path, sha, fmt)]
    if bad:
        return f"lists {len(bad)} clip(s) missing or changed ({bad[0]}{', ...' if len(bad) > 1 else ''})"
    return None


def _check_shards(cfg: Config, shards: list[ShardTask]) -> tuple[dict, list[ShardTask]]:
    return shard_runs.check_records(cfg, shards, lambda task, frame: _record_problem(cfg, task, frame))


def collect_shards(cfg: Config, todo: list[ShardTask], pending: dict | None) -> None:
    """Write each note shard's record as it finishes (shard_runs.collect); `pending`: {future: task}
    of a local worker pool, or None to render `todo` here (or on data.scheduler)."""
    shard_runs.collect(cfg, todo, pending, render_shard, _note_count, "render", "note")


def _note_count(task: ShardTask) -> int:
    return len(task.notes)


# --- the build -----------------------------------------------------------------------
def build_dataset(cfg: Config) -> pd.DataFrame:
    """Build (or bring up to date, or repair) data/NAME: clips, shard records, dataset.json and
    manifest.csv (these two written only when their content changes), and build.json last.

    Deletes nothing but the temporary files of killed runs: clips and records of shards no
    longer planned (another velocity, a direct `pipeline data --set ...`) stay, and serve again
    when those settings come back."""
    started = time.perf_counter()
    if uses_sox(cfg):
        post.require_sox()
    plan = make_plan(cfg)
    check_splits(cfg, [*_sources(cfg, plan), *phrase_sources(cfg, plan.fonts)], {n.instrument.slug for n in plan.notes})
    ensure_dir(cfg.data_dir / CLIPS_DIR)
    ensure_dir(cfg.data_dir / SHARDS_DIR)
    remove_stale_temporaries(cfg.data_dir, recursive=True)
    shards = plan_shards(cfg, list(plan.notes), list(plan.fonts))
    records, todo = _check_shards(cfg, shards)
    if any(t.soundfont for t in todo):
        require_fluidsynth()  # the workers would find out too, after the progress bar started
    shard_runs.run_shards(cfg, todo, render_shard, _note_count, "render", "note")
    import pandas as pd  # after the workers started (imported while they start)

    for task in todo:
        records[task.key] = shard_runs.reread_record(cfg, task.key)
    rows = pd.concat([records[t.key] for t in shards], ignore_index=True) if shards else \
        pd.DataFrame(columns=RECORD_COLUMNS)
    phrases = build_phrases(cfg, plan.fonts)
    manifest, summary = _write_outputs(cfg, rows, plan, shards, phrases)
    summary["made"] = sum(int(records[t.key]["sha256"].notna().sum()) for t in todo)
    summary["phrases_build"] = phrases["build"] if phrases else None
    _report(cfg, summary, todo, time.perf_counter() - started)
    return manifest


def _sources(cfg: Config, plan: Plan) -> list[str]:
    return [f.name for f in plan.fonts] + ([C.SYNTHETIC_SOURCE] if cfg.tones.enabled and cfg.tones.kinds else [])


def _report(cfg: Config, summary: dict, todo: list[ShardTask], seconds: float) -> None:
    """Two lines on the terminal and build.json: what was rendered, how fast, what the gate and the
    audit dropped and changed, whether the manifest changed."""
    rendered = sum(len(t.notes) for t in todo)
    count = workers.worker_count(cfg.data.workers)
    made = summary["made"]
    dropped = summary["dropped"]
    speed = f"{made / seconds:.0f} clips/s ({rendered / seconds:.0f} notes/s) on {progress.plural(count, 'worker')}" \
        if rendered else "nothing to render, all up to date"
    log.info(f"dataset {cfg.name}: {summary['clips']} clips from {summary['notes']} notes in {seconds:.1f} s, {speed}; "
          f"dropped {sum(dropped.values())} ({', '.join(f'{k} {v}' for k, v in dropped.items()) or 'none'}); "
          f"manifest.csv {'written' if summary['manifest_written'] else 'unchanged'}")
    log.info(audit.summary_line(summary["audit"]))
    # last, always: make's target for the data stage (a build that ends early leaves the old one)
    phrases = {"phrases": summary["phrases_build"]} if summary["phrases_build"] else {}
    write_json(cfg.data_dir / BUILD_FILE, {"seconds": round(seconds, 3), "notes_rendered": rendered,
                                           "workers": count, "clips": summary["clips"], "clips_made": made, **phrases})


def _label(cfg: Config, rows: pd.DataFrame) -> tuple[pd.DataFrame, list]:
    """The gate's survivors with their splits (from the nominal note) and the audit's final labels."""
    kept = rows[rows["drop_reason"].isna()].copy()
    kept["split"] = assign_splits(cfg, kept)
    labelled, verdicts = audit.apply_rules(kept, cfg.audit)
    return labelled, verdicts


def _counts(frame: pd.DataFrame, *keys: str) -> dict:
    """{key1: {key2: count}} (or {key: count}) of the frame's rows, for dataset.json."""
    if len(keys) == 1:
        return {str(k): int(v) for k, v in frame[keys[0]].value_counts().sort_index().items()}
    table = frame.groupby(list(keys)).size().unstack(fill_value=0)
    return {str(k): {str(c): int(v) for c, v in row.items()} for k, row in table.iterrows()}


def _write_outputs(cfg: Config, rows: pd.DataFrame, plan: Plan, shards: list[ShardTask],
                   phrases: dict | None) -> tuple[pd.DataFrame, dict]:
    """dataset.json, then manifest.csv, each written only when its content changes. `phrases`:
    what phrase_build says of the phrases (None: the config has none)."""
    import pandas as pd

    labelled, verdicts = _label(cfg, rows)
    manifest = labelled[labelled["drop_reason"].isna()][MANIFEST_COLUMNS].reset_index(drop=True)
    dropped = pd.concat([rows[rows["drop_reason"].notna()], labelled[labelled["drop_reason"].notna()]])
    if manifest.empty and len(rows):  # every clip dropped by the gate or the audit: no dataset (records stay)
        counts = ", ".join(f"{reason} {n}" for reason, n in dropped["drop_reason"].value_counts().items())
        raise PipelineError(f"every clip of {cfg.name} was dropped ({counts}); loosen the [gate] or [audit] "
                            "settings, or check data.soundfonts and data.instruments")
    summary = {
        "config": cfg.to_dict(),
        "params_fingerprint": params_fingerprint(cfg, plan.fonts),  # which data slice built it (make checks)
        "audio": clip_format(cfg.data).to_dict(),  # the clips' shape: what every reader expects
        "shards": [t.key for t in shards],  # their records, in plan order
        "soundfonts": [{"name": f.name, "bytes": f.size, "sha256": f.sha256} for f in plan.fonts],
        "sources": _sources(cfg, plan),
        "skipped_presets": plan.skipped_presets,
        "versions": tool_versions(),
        "notes": len(plan.notes),
        "clips": len(manifest),
        "per_split": _counts(manifest, "split"),
        "per_source": _counts(manifest, "source", "split"),
        "per_instrument": _counts(manifest, "instrument", "split"),
        "per_segment": _counts(manifest, "segment"),
        "per_source_segment": _counts(manifest, "source", "segment"),
        "dropped": _counts(dropped, "drop_reason"),
        "dropped_by_segment": {f"{reason}/{segment}": int(n) for (reason, segment), n
                               in dropped.groupby(["drop_reason", "segment"]).size().items()},
        "audit": audit.summary(labelled, verdicts, cfg.audit.min_confidence),
        **({"phrases": {k: v for k, v in phrases.items() if k != "build"}} if phrases else {}),
    }
    text = json.dumps(summary, indent=2, sort_keys=True, default=str) + "\n"
    write_if_changed(cfg.data_dir / DATASET_FILE, text.encode())
    summary["manifest_written"] = write_manifest(cfg.data_dir, manifest)  # the features follow only if it changed
    write_card(cfg, manifest, summary)  # README.md, the dataset card
    return manifest, summary
