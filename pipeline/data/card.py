"""The dataset card: data/NAME/README.md, what a dataset holds, how it was made and under which licences.

Written by every data build (`write_card`, only when its text changes), in the form dataset hubs read:
a YAML front matter (licences, tags, size, and for an export the `configs` that tell the Hugging Face
`datasets` library where each split's Parquet files are), then Markdown: counts by split, source,
instrument family, segment, pitch range and augmentation; the config, the generator's and tools'
versions and the soundfonts' sha256; each source's licence; the label audit's findings; the known
limitations. `card_text(summary, manifest)` is a function of dataset.json and the manifest alone,
so an export writes the same card beside its files (with its `configs`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pipeline import __version__
from pipeline.core import constants as C
from pipeline.core.artifacts import write_if_changed
from pipeline.core.audio_format import ClipFormat
from pipeline.core.instruments import nsynth_labels

if TYPE_CHECKING:
    import pandas as pd

    from pipeline.core.config import Config

CARD_FILE = "README.md"
DOCS = "docs/dataset-formats.md"


@dataclass(frozen=True)
class Licence:
    hub_id: str | None   # the identifier dataset hubs use (None: no licence to declare)
    name: str
    holders: str
    where: str           # where the licence text is


# From each Debian package's /usr/share/doc/PACKAGE/copyright. A font not listed here is "unknown".
LICENCES = {
    "FluidR3_GM.sf2": Licence("mit", "MIT", "Frank Wen 2000-2002, 2008, and the contributors his README names",
                              "/usr/share/doc/fluid-soundfont-gm/copyright"),
    "MuseScore_General.sf3": Licence("mit", "MIT (parts public domain or CC0)",
                                     "S. Christian Collins 2018-2021; FluidR3 Mono by Michael Cowgill; Frank Wen",
                                     "/usr/share/doc/musescore-general-soundfont/copyright"),
    "TimGM6mb.sf2": Licence("gpl-2.0", "GPL-2", "Tim Brechbill 2004, David Bolton 2010",
                            "/usr/share/doc/timgm6mb-soundfont/copyright"),
    "OPL-3_FM_128M.sf2": Licence("cc-by-sa-4.0", "CC-BY-SA-4.0", "Zandro Reveille 2009",
                                 "/usr/share/doc/opl3-soundfont/copyright"),
    C.SYNTHETIC_SOURCE: Licence(None, "none needed: made from numbers by this package's code, no recorded material",
                                "the pitch-pipeline authors", "pipeline/data/tones.py"),
}
UNKNOWN = Licence("unknown", "unknown: ask the soundfont's author", "?", "?")
LIMITATIONS = (
    "Every note is rendered: soundfont samples played by FluidSynth, or synthetic tones. Nothing is a live "
    "recording, and rooms, microphones, noise and codecs are simulated.",
    "One note at a time: no polyphony, no vibrato beyond a constant detune, no expressive playing.",
    "The label is the key played plus the pitch bend sent, moved only where the audit is sure; a clip the "
    "auditor was unsure of keeps the key's label (\"Label audit\" counts them).",
    "A preset's keys can sit in differently tuned samples; the audit shifts a whole preset by one offset.",
    "The NSynth family and source of a clip are read from its GM program (pipeline/core/instruments.py), "
    "not labelled by ear as NSynth's were; NSynth's qualities are not annotated (only `reverb`, from the "
    "augmentation).",
    "Whether a soundfont's licence binds audio rendered with it is not settled; the card carries each "
    "source's licence so that you can decide.",
)


def write_card(cfg: Config, manifest: pd.DataFrame, summary: dict) -> bool:
    """data/NAME/README.md from the build's summary (dataset.json's content) and manifest; only when
    its text changes. True if written. The summary goes through JSON as dataset.json does, so that the
    card is the one an export makes from dataset.json."""
    as_written = json.loads(json.dumps(summary, sort_keys=True, default=str))
    return write_if_changed(cfg.data_dir / CARD_FILE, card_text(as_written, manifest).encode())


def card_text(summary: dict, manifest: pd.DataFrame, configs: dict[str, str] | None = None,
              loading: str = "") -> str:
    """The card. `configs`: {split: Parquet file pattern} for the front matter (an export's card);
    `loading`: Markdown on reading the exported files, placed before the limitations."""
    name = summary["config"]["name"]
    sections = [
        _front_matter(name, summary, manifest, configs),
        f"# Pitch dataset `{name}`\n\n{_overview(summary, manifest)}",
        "## Contents\n\n" + _contents(manifest),
        "## How it was made\n\n" + _provenance(summary),
        "## Licences\n\n" + _licences(summary),
        "## Label audit\n\n" + _audit(summary),
        loading,
        "## Known limitations\n\n" + "\n".join(f"- {line}" for line in _limitations(summary)),
    ]
    return "\n\n".join(s.strip() for s in sections if s) + "\n"


def source_licence(source: str) -> Licence:
    return LICENCES.get(source, UNKNOWN)


# --- the parts -----------------------------------------------------------------------------------
def _yaml(value) -> str:
    """A YAML flow scalar: JSON strings and numbers are YAML too."""
    return json.dumps(value)


def _front_matter(name: str, summary: dict, manifest: pd.DataFrame, configs: dict[str, str] | None) -> str:
    ids = sorted({source_licence(s).hub_id for s in summary["sources"]} - {None}) or ["other"]
    lines = ["---", f"pretty_name: {_yaml(f'Pitch dataset {name}')}", "license:",
             *(f"- {_yaml(i)}" for i in ids), "task_categories:", "- audio-classification", "tags:",
             *(f"- {t}" for t in ("audio", "music", "pitch", "f0", "pitch-estimation", "nsynth")),
             "size_categories:", f"- {_size_category(len(manifest))}"]
    if configs:
        lines += ["configs:", "- config_name: default", "  data_files:",
                  *(f"  - split: {split}\n    path: {_yaml(pattern)}" for split, pattern in configs.items())]
    return "\n".join([*lines, "---"])


def _size_category(n: int) -> str:
    for bound, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                         (1_000_000, "100K<n<1M")):
        if n < bound:
            return label
    return "1M<n<10M"


def _overview(summary: dict, manifest: pd.DataFrame) -> str:
    sources = ", ".join(f"`{s}`" for s in summary["sources"])
    low, high = (int(manifest["midi"].min()), int(manifest["midi"].max())) if len(manifest) else (0, 0)
    fmt = ClipFormat.from_dict(summary.get("audio"))
    whole = " (whole notes, note-on to the end of the release)" if C.WHOLE in summary.get("per_segment", {}) else ""
    return (f"{len(manifest):,} clips of single notes, {fmt.describe()} each{whole}, "
            f"from {summary['notes']:,} notes of {sources}, MIDI {low} to {high}. Each clip is "
            "labelled with its fundamental frequency in Hz (`frequency`), checked by an independent estimator "
            "(the label audit), with its source, instrument (General MIDI and NSynth families), velocity, "
            "segment of the note, augmentation and split. Made by pitch-pipeline "
            f"{__version__}; `manifest.csv` lists the clips and `dataset.json` the full record of the build.")


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _crosstab(manifest: pd.DataFrame, key: str, title: str) -> str:
    """Clips per value of `key` (rows) and split (columns), with totals."""
    import pandas as pd

    splits = [s for s in C.SPLITS if s in set(manifest["split"])]
    table = pd.crosstab(manifest[key], manifest["split"]).reindex(columns=splits, fill_value=0)
    rows = [[f"`{k}`", *(f"{int(v):,}" for v in row), f"{int(row.sum()):,}"] for k, row in table.iterrows()]
    return _table([title, *splits, "all"], rows)


def _contents(manifest: pd.DataFrame) -> str:
    nsynth = manifest["program"].map(lambda p: nsynth_labels(int(p))[0])
    frame = manifest.assign(nsynth_family=nsynth, effects=manifest["augment"].map(_effects))
    parts = [_splits(frame), "By source:", _crosstab(frame, "source", "source"),
             "By General MIDI family (`family`):", _crosstab(frame, "family", "family"),
             "By NSynth instrument family (`instrument_family_str` in the exports):",
             _crosstab(frame, "nsynth_family", "NSynth family"),
             "By segment of the note:", _crosstab(frame, "segment", "segment"),
             "Pitch range (labels):", _pitch_range(frame),
             "Augmentation (a clip can have several effects; `none`: clean):", _crosstab(
                 frame.assign(effect=frame["effects"]).explode("effect"), "effect", "effect")]
    return "\n\n".join(parts)


def _splits(manifest: pd.DataFrame) -> str:
    from pipeline.data.splits import NOTE_COLUMNS

    rows = [[split, f"{len(part):,}", f"{len(part.drop_duplicates(list(NOTE_COLUMNS))):,}",
             ", ".join(sorted(set(part["source"])))]
            for split in C.SPLITS for part in [manifest[manifest["split"] == split]] if len(part)]
    return _table(["split", "clips", "notes", "sources"], rows)


def _effects(augment: str) -> list[str]:
    """'room(rt60=0.6);pink(snr=7.5)' -> ['room', 'pink']."""
    return [part.split("(")[0] for part in str(augment).split(";") if part] or ["none"]


def _pitch_range(manifest: pd.DataFrame) -> str:
    from pipeline.core.pitch import note_name

    rows = []
    for split in [s for s in C.SPLITS if s in set(manifest["split"])] + (["all"] if len(manifest) else []):
        part = manifest if split == "all" else manifest[manifest["split"] == split]
        low, high = int(part["midi"].min()), int(part["midi"].max())
        rows.append([split, f"{note_name(low)} ({low}) to {note_name(high)} ({high})",
                     f"{part['frequency'].min():.2f} to {part['frequency'].max():.2f}"])
    return _table(["split", "notes (MIDI)", "Hz"], rows)


def _config_toml(config: dict) -> str:
    """The config as TOML (its output root left out: where it was built does not shape it)."""
    lines = [f"name = {json.dumps(config['name'])}"]
    for section, values in config.items():
        if isinstance(values, dict):
            lines.append(f"\n[{section}]")
            lines += [f"{key} = {json.dumps(value)}" for key, value in values.items()]
    return "\n".join(lines)


def _provenance(summary: dict) -> str:
    fonts = _table(["soundfont", "bytes", "sha256"],
                   [[f"`{f['name']}`", f"{f['bytes']:,}", f"`{f['sha256']}`"] for f in summary["soundfonts"]])
    versions = ", ".join(f"{k} {' '.join(str(v).split())}" for k, v in sorted(summary["versions"].items()) if v)
    skipped = "; ".join(f"{font}: {', '.join(names)}" for font, names in summary["skipped_presets"].items() if names)
    return "\n\n".join(part for part in [
        f"Generator: pitch-pipeline {__version__} (`pipeline data`), deterministic: the same config and "
        "soundfonts give the same bytes. Each note is rendered (FluidSynth at 44.1 kHz, or a synthetic tone), "
        f"mixed to mono, resampled to {ClipFormat.from_dict(summary.get('audio')).rate} Hz, sliced into segments, "
        "gated, audited on the clean note, then "
        "augmented and written peak-normalised to -1 dBFS. Fingerprint of the data settings: "
        f"`{summary['params_fingerprint']}`.",
        "Soundfonts:" if summary["soundfonts"] else "No soundfont: synthetic tones only.",
        fonts if summary["soundfonts"] else "",
        f"Instruments a font has no preset for (skipped there): {skipped}." if skipped else "",
        f"Tools: {versions}.",
        f"The config (saved as a file, `pipeline data --config FILE` builds this dataset again):\n\n```toml\n"
        f"{_config_toml(summary['config'])}\n```",
    ] if part)


def _licences(summary: dict) -> str:
    rows = [[f"`{s}`", lic.name, lic.holders, f"`{lic.where}`"] for s in summary["sources"]
            for lic in [source_licence(s)]]
    return (_table(["source", "licence", "copyright", "licence text"], rows) + "\n\nA clip's `source` column "
            "names its source. Where sources of different licences are mixed, the dataset is under each source's "
            "licence for that source's clips; the metadata and the code are the project's.")


def _audit(summary: dict) -> str:
    audit = summary["audit"]
    lines = [f"{audit['sure']:,} of {audit['clips']:,} clips were measured with confidence (the rules act on "
             f"these; {audit['unsure']:,} unsure clips keep the key's label). Octave relabels: "
             f"{audit['octave_relabel']:,} clips; tuning offsets: {audit['tuning_offset']:,} clips; dropped as "
             f"mismatched: {audit['audit_mismatch']:,}, a whole octave off: {audit['audit_octave']:,}."]
    moved = [p for p in audit["presets"] if p["octaves"] or p["tuned"] or p["audit_mismatch"] or p["audit_octave"]]
    if moved:
        lines.append(_table(["source", "instrument", "clips", "octaves moved", "tuning (cents)", "dropped"],
                            [[f"`{p['source']}`", p["instrument"], p["clips"], p["octaves"],
                              f"{p['tuning_cents']:+.1f}" if p["tuned"] else "-",
                              p["audit_mismatch"] + p["audit_octave"]] for p in moved]))
    dropped = ", ".join(f"{reason} {n:,}" for reason, n in summary["dropped"].items()) or "none"
    lines.append(f"Clips dropped by the gate and the audit: {dropped}.")
    return "\n\n".join(lines)


def _limitations(summary: dict) -> list[str]:
    lines = list(LIMITATIONS)
    if {"FluidR3_GM.sf2", "MuseScore_General.sf3"} <= set(summary["sources"]):
        lines.append("FluidR3_GM and MuseScore_General are not independent: MuseScore_General reuses FluidR3's "
                     "samples in part (hold one out whole only with the other).")
    unknown = [s for s in summary["sources"] if s not in LICENCES]
    if unknown:
        lines.append(f"The licence of {', '.join(unknown)} is not known to this package: check it before sharing.")
    return lines
