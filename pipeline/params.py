"""Each stage's slice of the config, written only when it changes.

make depends on these files, so a changed training knob retrains without re-rendering,
and a changed soundfont (by checksum), or a font added where a data.soundfonts pattern
looks, re-renders.

The data stage's file is also how make notices a dataset that is no longer what this config
builds: `write_stage_params(cfg, "data", out)` runs the data stage's quick check
(`outdated` below: a clip or shard record missing or changed since the last build, or a
dataset built by a direct `pipeline data --set ...` with other settings) and touches the file
when it finds something, so that make runs the data stage, which repairs exactly that.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from pathlib import Path

from pipeline.core.artifacts import read_json, write_if_changed
from pipeline.core.config import Config
from pipeline.core.errors import PipelineError

log = logging.getLogger(__name__)

STAGE_SECTIONS = {
    "features": ("features",),
    "train": ("model", "train"),
    "report": ("report",),
}
STAGES = ("data", *STAGE_SECTIONS)


def stage_params(cfg: Config, stage: str) -> dict:
    if stage == "data":  # pipeline.data.plan owns it: dataset.json records its fingerprint
        from pipeline.data.plan import data_params

        return data_params(cfg)
    full = cfg.to_dict()
    return {section: dict(full[section]) for section in STAGE_SECTIONS[stage]}


def write_stage_params(cfg: Config, stage: str, out: Path) -> bool:
    """Write the stage's slice to `out` if it changed; for the data stage, also touch `out` when the
    dataset on disk needs the stage to run (saying why on one line). True if `out` changed.

    make's targets are data/NAME, models/NAME and reports/NAME beside the Makefile (where it runs,
    and where `make clean` looks): a config whose root is elsewhere is refused here."""
    check_make_root(cfg)
    if write_if_changed(out, json.dumps(stage_params(cfg, stage), indent=2, sort_keys=True) + "\n"):
        return True
    if stage != "data":
        return False
    why = outdated(cfg)
    if why is None:
        return False
    log.info(f"{cfg.data_dir}: {why}; the data stage runs again")
    os.utime(out)
    return True


def check_make_root(cfg: Config) -> None:
    """make follows only the outputs under the folder it runs in: root must be that folder."""
    if Path(cfg.root).resolve() != Path.cwd().resolve():
        raise PipelineError(f"config root {cfg.root} is not this folder; make builds, checks and cleans only "
                            "data/, models/ and reports/ here: remove root from the config, or run the stages "
                            "themselves (pipeline data, features, train, report)")


def outdated(cfg: Config) -> str | None:
    """Why the finished data build on disk must run again, found cheaply for make (no plan, no
    clip read: a stat per file, about 0.2 s for 30,000 clips): it was built for other settings (the fingerprint
    of the data slice in dataset.json), or one of its files (dataset.json, the manifest, a shard
    record, a clip of the manifest) is missing, of the wrong size, or changed after the build
    ended (newer than build.json). None when it is this config's dataset as built, or when no
    build has finished (no build.json: make runs the stage for its missing target anyway).
    `pipeline data` itself checks more: every record's rows and every clip's sha256."""
    from pipeline.core.audio_format import clip_format
    from pipeline.data.clips import (
        BUILD_FILE,
        DATASET_FILE,
        FRAMES_FILE,
        MANIFEST_FILE,
        PHRASES_FILE,
        SHARDS_DIR,
    )
    from pipeline.data.plan import params_fingerprint

    folder = cfg.data_dir
    try:
        finished = (folder / BUILD_FILE).stat().st_mtime_ns
    except OSError:
        return None
    info = read_json(folder / DATASET_FILE) or {}
    if info.get("params_fingerprint") != params_fingerprint(cfg):
        return "the dataset on disk was built for other settings (or before they were recorded)"
    clips = _manifest_paths(folder / MANIFEST_FILE)
    if clips is None:
        return f"{MANIFEST_FILE} is missing or unreadable"
    files = [DATASET_FILE, MANIFEST_FILE, *(f"{SHARDS_DIR}/{key}.csv" for key in info.get("shards", []))]
    if "phrases" in info:
        phrase_files = _phrase_paths(folder / PHRASES_FILE)
        if phrase_files is None:
            return f"{PHRASES_FILE} is missing or unreadable"
        files += [PHRASES_FILE, FRAMES_FILE, *(f"{SHARDS_DIR}/{key}.csv" for key in info["phrases"].get("shards", [])),
                  *phrase_files]
    base = f"{folder}{os.sep}"
    clip_bytes = clip_format(cfg.data).fixed_bytes  # None for FLAC, whose size varies
    for relpath, size in [*((f, None) for f in files), *((c, clip_bytes) for c in clips)]:
        if relpath.startswith("/") or ".." in relpath.split("/"):  # check_inside's rule, 7 times cheaper
            return f"{MANIFEST_FILE} lists {relpath}, outside the dataset"
        try:
            stat = os.stat(base + relpath)
        except OSError:
            return f"{relpath} is missing"
        if stat.st_mtime_ns > finished or size not in (None, stat.st_size):
            return f"{relpath} changed after the last build"
    return None


def _phrase_paths(path: Path) -> list[str] | None:
    """Every file phrases.csv lists (each phrase's WAV, frame table and curve)."""
    try:
        with open(path, newline="") as fh:
            return [row[c] for row in csv.DictReader(fh) for c in ("path", "frames_path", "curve_path")]
    except (OSError, KeyError, csv.Error, UnicodeDecodeError):
        return None


def _manifest_paths(path: Path) -> list[str] | None:
    """The manifest's `path` column, with the csv module (make's check does not import pandas)."""
    try:
        with open(path, newline="") as fh:
            paths = [row["path"] for row in csv.DictReader(fh)]
    except (OSError, UnicodeDecodeError, csv.Error, KeyError):
        return None
    return paths if all(paths) else None  # a short row has no path
