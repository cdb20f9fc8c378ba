"""The frame model's training examples (features.kind = "frames"): per split, the audio of its note
clips and phrases laid end to end, and one row per example frame.

    features/frames_SPLIT_audio.npy     int16, every clip and phrase of the split, each followed (and
                                        the first preceded) by GAP samples of silence (more than half
                                        the longest window plus the context), so no frame ever hears
                                        a neighbour and every context lies inside the file
    features/frames_SPLIT_examples.npy  float64 (N, 3): the frame's centre (a sample of the audio
                                        above), its f0 in Hz (0: unvoiced), its kind (0 note, 1 phrase)

Clips of another rate (data.sample_rate) are resampled to the model's 16 kHz here, as `pipeline
predict` resamples a file; clips of any length give their frames.

Examples: `frames_per_note` frames of each note clip (per 330 ms of it: a 2 s clip gives six
times as many), away from its edges, spread evenly (a clip
is one pitch; a few frames of many clips beat many frames of a few); every frame of every phrase
except the flagged ones (phrase_labels.py: a label not to be trusted). A note's frame is voiced
where the clip sounds within VOICED_RANGE_DB of its loudest 20 ms, as the phrases' are. The
spectra themselves are computed for each batch (pipeline/model/frame_batches.py): stored, they
would take forty times the space of the audio.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from pipeline.core import constants as C
from pipeline.core.artifacts import (
    atomic_path,
    ensure_dir,
    read_json,
    remove_stale_temporaries,
    sha256_file,
    write_json,
)
from pipeline.core.audio_format import ClipFormat
from pipeline.core.config import Config
from pipeline.core.errors import PipelineError
from pipeline.data.clips import (
    FRAMES_FILE,
    PHRASES_FILE,
    dataset_format,
    load_manifest,
    manifest_path,
    read_clip,
    read_phrase,
    resample_clips,
    split_rows,
)
from pipeline.data.feature_files import BUILD_FILE, DONE_FILE, features_dir
from pipeline.data.phrase_labels import frame_levels_db, read_frame_table
from pipeline.dsp.log_spectrum import HOP, PAD

log = logging.getLogger(__name__)

FRAME_EXAMPLES_VERSION = 1
CONTEXT_SAMPLES = 6 * HOP          # the widest context a frame model may read, each side
GAP = PAD + CONTEXT_SAMPLES        # silence after every clip and phrase
NOTE_EDGE_FRAMES = 3               # a note clip's frames this close to its ends are not examples
VOICED_RANGE_DB = 40.0
KIND_NOTE, KIND_PHRASE = 0, 1


def audio_path(cfg: Config, split: str) -> Path:
    return features_dir(cfg) / f"frames_{split}_audio.npy"


def examples_path(cfg: Config, split: str) -> Path:
    return features_dir(cfg) / f"frames_{split}_examples.npy"


def stamp(cfg: Config) -> dict:
    """What the frame examples depend on (done.json holds it)."""
    folder = cfg.data_dir
    phrases = folder / PHRASES_FILE
    return {"kind": "frames", "version": FRAME_EXAMPLES_VERSION,
            "manifest_sha256": sha256_file(manifest_path(folder)) if manifest_path(folder).is_file() else None,
            "frames_sha256": sha256_file(folder / FRAMES_FILE) if phrases.is_file() else None,
            "features": cfg.to_dict()["features"], **dataset_format(folder).stamp()}


def build_frame_examples(cfg: Config) -> dict:
    """The features stage for the frame model: each split's audio and examples, rebuilt when what
    they depend on changed or a file is not what done.json records; done.json, then build.json."""
    import time

    import pandas as pd

    folder = ensure_dir(features_dir(cfg))
    remove_stale_temporaries(folder)
    current, old = stamp(cfg), read_json(folder / DONE_FILE) or {}
    records = dict(old.get("splits") or {}) if {k: old.get(k) for k in current} == current else {}
    todo = [s for s in C.SPLITS if not _intact(cfg, s, records.get(s))]
    started = time.perf_counter()
    if todo:
        manifest = load_manifest(cfg.data_dir) if manifest_path(cfg.data_dir).is_file() else None
        phrases = pd.read_csv(cfg.data_dir / PHRASES_FILE, keep_default_na=False, na_values=[""]) \
            if (cfg.data_dir / PHRASES_FILE).is_file() else None
        for split in todo:
            records[split] = build_split(cfg, split, manifest, phrases)
        write_done(cfg, records)
    seconds = time.perf_counter() - started
    write_json(folder / BUILD_FILE, {"splits_built": todo, "seconds": round(seconds, 2)})
    counts = {s: records[s]["examples"] for s in C.SPLITS}
    log.info(f"frame examples: {sum(counts.values())} ({', '.join(f'{s} {n}' for s, n in counts.items())}); "
             f"{', '.join(todo) or 'nothing'} built in {seconds:.1f} s -> {folder}")
    return read_json(folder / DONE_FILE)


def _intact(cfg: Config, split: str, record: dict | None) -> bool:
    if not record:
        return False
    try:
        return sha256_file(audio_path(cfg, split)) == record["audio_sha256"] and \
            sha256_file(examples_path(cfg, split)) == record["examples_sha256"]
    except OSError:
        return False


def build_split(cfg: Config, split: str, manifest, phrases) -> dict:
    """Write one split's audio and examples; return its record (counts, sizes, sha256)."""
    fmt = dataset_format(cfg.data_dir)
    per_clip = max(1, round(cfg.features.frames_per_note * fmt.seconds / C.CLIP_SECONDS))
    audio, examples = [np.zeros(GAP, np.int16)], []   # silence first too: every context lies inside
    at = GAP
    for clip in _note_clips(cfg, manifest, split, fmt):
        examples.append(_note_examples(clip, at, per_clip))
        audio.append(_with_gap(clip))
        at += len(audio[-1])
    if phrases is not None:
        for row in phrases[phrases["split"] == split].itertuples():
            clip = read_phrase(cfg.data_dir / row.path, fmt)
            clip = resample_clips(clip[None], fmt.rate, C.SAMPLE_RATE)[0]
            examples.append(_phrase_examples(read_frame_table(cfg.data_dir / row.frames_path), at))
            audio.append(_with_gap(clip))
            at += len(audio[-1])
    pcm = np.concatenate(audio) if audio else np.zeros(0, np.int16)
    table = np.concatenate(examples) if examples else np.zeros((0, 3))
    for path, array in ((audio_path(cfg, split), pcm), (examples_path(cfg, split), table)):
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.save(fh, array, allow_pickle=False)
    return {"examples": len(table), "voiced": int((table[:, 1] > 0).sum()) if len(table) else 0,
            "notes": int((table[:, 2] == KIND_NOTE).sum()) if len(table) else 0,
            "samples": len(pcm), "audio_sha256": sha256_file(audio_path(cfg, split)),
            "examples_sha256": sha256_file(examples_path(cfg, split))}


def _note_clips(cfg: Config, manifest, split: str, fmt: ClipFormat):
    if manifest is None:
        return
    rows = split_rows(manifest, split)
    for path, hz in zip(rows["path"], rows["frequency"]):
        clip = read_clip(cfg.data_dir / path, fmt=fmt)
        yield resample_clips(clip[None], fmt.rate, C.SAMPLE_RATE)[0], float(hz)


def _with_gap(clip) -> np.ndarray:
    audio = clip[0] if isinstance(clip, tuple) else clip
    pcm = np.round(np.asarray(audio, np.float64) * 32768).clip(-32768, 32767).astype(np.int16)
    return np.concatenate([pcm, np.zeros(GAP, np.int16)])


def _note_examples(clip, at: int, count: int) -> np.ndarray:
    """`count` frames of a note clip, evenly spread away from its edges; voiced where it sounds."""
    audio, hz = clip
    frames = len(audio) // HOP
    chosen = np.unique(np.linspace(NOTE_EDGE_FRAMES, frames - 1 - NOTE_EDGE_FRAMES, count).round().astype(np.int64))
    levels = frame_levels_db(audio, np.arange(frames) * HOP / 16000.0, 16000)
    voiced = (levels[chosen] >= levels.max() - VOICED_RANGE_DB) & (levels[chosen] > -90.0)
    return np.stack([at + chosen * HOP, np.where(voiced, hz, 0.0), np.full(len(chosen), KIND_NOTE)], axis=1)


def _phrase_examples(table, at: int) -> np.ndarray:
    """Every unflagged frame of a phrase (its frame table), at its own time."""
    keep = table[table["flag"] == ""]
    centres = np.round(keep["time"].to_numpy() * 100).astype(np.int64) * HOP
    hz = np.where(keep["voiced"].to_numpy() > 0, keep["f0_hz"].to_numpy(), 0.0)
    return np.stack([at + centres, hz, np.full(len(keep), KIND_PHRASE)], axis=1)


def load_examples(cfg: Config, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(audio int16 memory map, examples (N, 3)) of a split, checked against done.json's record."""
    done = read_json(features_dir(cfg) / DONE_FILE) or {}
    record = (done.get("splits") or {}).get(split)
    fix = f"run make features (or pipeline features) for {cfg.name}"
    if done.get("kind") != "frames" or record is None:
        raise PipelineError(f"frame examples for {cfg.name} are missing or unfinished; {fix}")
    try:
        audio = np.load(audio_path(cfg, split), mmap_mode="r")
        examples = np.load(examples_path(cfg, split))
    except (OSError, ValueError) as exc:
        raise PipelineError(f"frame examples of {cfg.name} ({split}) are unreadable ({exc}); {fix}") from None
    if len(audio) != record["samples"] or len(examples) != record["examples"] or examples.ndim != 2:
        raise PipelineError(f"frame examples of {cfg.name} ({split}) are not what done.json records; {fix}")
    if not np.all(np.isfinite(examples)):
        raise PipelineError(f"frame examples of {cfg.name} ({split}) hold non-finite numbers; {fix}")
    return audio, examples


def write_done(cfg: Config, records: dict) -> None:
    write_json(features_dir(cfg) / DONE_FILE, {**stamp(cfg), "splits": records,
                                                 "counts": {s: r["examples"] for s, r in records.items()}})
