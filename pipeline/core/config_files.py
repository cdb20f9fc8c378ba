"""How a config file's text becomes the values the config is built from: keys of older configs
upgraded, and relative paths (soundfonts, root) made relative to the file that names them; and
how a config is written back as a file (`to_toml`)."""

from __future__ import annotations

import glob
import json
import os
from pathlib import Path

from pipeline.core.errors import PipelineError
from pipeline.core.typed_toml import parse_override

# keys of older configs: what replaced them
REMOVED_KEYS = {
    "augment.reverb": "use augment.fluid_reverb_share (FluidSynth's reverb) and augment.room_share (rooms)",
    "augment.chorus": "chorus is gone (it wobbles the pitch the label names)",
    "augment.sox_effects": "sox effects are gone; use augment.eq_share, augment.level_share, augment.codec_share",
    "augment.noise": "use augment.noise_share and augment.noise_kinds",
    "augment.snr_db_min": "use augment.snr_db = [low, high]",
    "augment.snr_db_max": "use augment.snr_db = [low, high]",
}


def upgrade(raw: dict) -> None:
    """Older configs name one font: data.soundfont = "x" is read as data.soundfonts = ["x"]."""
    data = raw.get("data")
    if isinstance(data, dict) and "soundfont" in data:
        if "soundfonts" in data:
            raise PipelineError("config sets both data.soundfont and data.soundfonts; keep data.soundfonts only")
        font = data.pop("soundfont")
        data["soundfonts"] = [font] if isinstance(font, str) else font


def upgraded_override(text: str) -> str:
    """The older key as the newer one: data.soundfont=x is data.soundfonts=[x] (a later override wins)."""
    keys, value = parse_override(text)
    if keys == ["data", "soundfont"]:
        return f"data.soundfonts={json.dumps([value] if isinstance(value, str) else value)}"
    return text


# --- paths: relative to the file that names them ---------------------------------------------------
def is_bare_name(entry: str) -> bool:
    """A file name alone (or a pattern without a folder): a soundfont looked for in the soundfont folders."""
    return "/" not in entry and os.sep not in entry and not entry.startswith("~")


def resolved_path(entry, folder: Path, keep_relative: bool):
    """A soundfont entry as the file in `folder` means it: absolute paths and `~` as they are; a
    relative path joined to `folder` (unless `keep_relative`); a bare file name (or pattern) made
    absolute only where it exists in `folder`, else left bare for the soundfont folders."""
    if not isinstance(entry, str) or entry.startswith("~") or os.path.isabs(entry):
        return entry
    joined = os.path.abspath(folder / entry)
    if is_bare_name(entry):
        return joined if glob.glob(glob.escape(str(folder.absolute())) + os.sep + entry) else entry
    return entry if keep_relative else joined


def resolve_paths(raw: dict, folder: Path) -> None:
    """A config file's relative soundfonts and root, relative to the file's folder (in place)."""
    data = raw.get("data")
    if isinstance(data, dict) and isinstance(data.get("soundfonts"), list):
        data["soundfonts"] = [resolved_path(entry, folder, keep_relative=False) for entry in data["soundfonts"]]
    root = raw.get("root")
    if isinstance(root, str) and not root.startswith("~") and not os.path.isabs(root):
        raw["root"] = os.path.abspath(folder / root)


def resolved_override(text: str) -> str:
    """--set data.soundfonts=[...]: a bare file name found in the current folder is that file."""
    keys, value = parse_override(text)
    if keys != ["data", "soundfonts"] or not isinstance(value, list):
        return text
    return f"data.soundfonts={json.dumps([resolved_path(v, Path('.'), keep_relative=True) for v in value])}"


def to_toml(cfg) -> str:
    """The operative config as TOML, written next to outputs so a run can be repeated from any
    folder: relative paths made absolute (a root of "." is left out: the folder the run starts in)."""
    lines = [f'name = {json.dumps(cfg.name)}']
    if cfg.root != ".":
        lines.append(f"root = {json.dumps(os.path.abspath(os.path.expanduser(cfg.root)))}")
    for section, values in cfg.to_dict().items():
        if not isinstance(values, dict):
            continue
        lines.append(f"\n[{section}]")
        for key, value in values.items():
            if section == "data" and key == "soundfonts":
                value = [v if is_bare_name(v) else os.path.abspath(os.path.expanduser(v)) for v in value]
            lines.append(f"{key} = {json.dumps(list(value) if isinstance(value, tuple) else value)}")
    return "\n".join(lines) + "\n"
