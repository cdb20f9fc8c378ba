"""Each stage's slice of the config, written only when it changes.

make depends on these files, so a changed training knob retrains without re-rendering,
and a changed soundfont (by checksum) re-renders.
"""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.artifacts import write_if_changed
from pipeline.config import Config

STAGE_SECTIONS = {
    "data": ("data", "augment", "gate", "split"),
    "features": ("features",),
    "train": ("model", "train"),
    "report": ("report",),
}
# settings that only change speed or where work runs, never the outputs
IGNORED = {"data": ("workers", "scheduler")}


def stage_params(cfg: Config, stage: str) -> dict:
    full = cfg.to_dict()
    params = {section: dict(full[section]) for section in STAGE_SECTIONS[stage]}
    for key in IGNORED.get(stage, ()):
        params["data"].pop(key, None)
    if stage == "data":
        from pipeline.rendering import soundfont_info

        params["soundfont_sha256"] = soundfont_info(cfg.data.soundfont)["sha256"]
    return params


def write_stage_params(cfg: Config, stage: str, out: Path) -> bool:
    return write_if_changed(out, json.dumps(stage_params(cfg, stage), indent=2, sort_keys=True) + "\n")
