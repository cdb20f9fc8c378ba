"""The label audit: an independent pitch estimate of every clip, and the rules that act on it.

The label is the pitch the MIDI note names, but not every preset sounds it: organ stops an
octave below, samples tuned a few to 15 cents off, layered presets. So every kept clip is
measured, in the worker, on its clean audio (before augmentation), by an estimator that
shares no code with the model or the synthesis (pipeline.dsp.fine_pitch.estimate: YIN, then the
first partials of a Gaussian-windowed spectrum). Its confidence is 1 - d', YIN's
aperiodicity at the chosen period (about 1 for a clean steady note, lower for attacks, noise
and inharmonic sounds).

`apply_rules` then runs in the parent, on the whole manifest, since two rules need every clip
of a preset (docs/labels.md):
- octave_relabel: a (source, instrument) whose confident clips mostly sit a whole nonzero
  number of octaves from their labels sounds in that octave: its labels move there;
- tuning_offset (with audit.tune_labels): a preset whose confident clips agree on a tuning
  offset of a few cents gets labels shifted by their median;
- audit_mismatch / audit_octave: a single clip the confident auditor places more than
  audit.mismatch_cents from its label is dropped.
Synthetic tones are exempt from all three: their label is exact by construction.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

from pipeline.core.pitch import midi_to_hz

if TYPE_CHECKING:
    import pandas as pd

    from pipeline.core.config import AuditConfig

SYNTHETIC = "synthetic"


# --- the rules (in the parent, on every kept clip) ---------------------------------------------
MIN_PRESET_CLIPS = 5             # sure clips a preset needs before its octave or tuning is judged
OCTAVE_WINDOW_CENTS = 50.0       # an estimate this close to k * 1200 cents is k octaves off
RULES = ("octave_relabel", "tuning_offset", "audit_mismatch", "audit_octave", "audit_range")
RELABEL_RANGE_MIDI = (20.5, 108.5)  # an octave relabel may not leave A0..C8 (+-50 cents)


@dataclass(frozen=True)
class PresetVerdict:
    """What the sure clips of one (source, instrument) say about its labels."""
    source: str
    instrument: str
    clips: int
    sure: int
    octaves: int                 # the whole octaves its clips sound away from their labels (0: none)
    tuning_cents: float | None   # median offset of its sure clips after that octave (None: too few)
    spread_cents: float | None   # their median absolute deviation from it
    tuned: bool                  # its labels move by tuning_cents


def judge_preset(source: str, instrument: str, cents: np.ndarray, sure: np.ndarray, cfg: AuditConfig) -> PresetVerdict:
    """The octave and tuning rules for one preset, from its clips' estimates (cents from the nominal label)."""
    c = cents[sure & np.isfinite(cents)]
    octaves = 0
    if source != SYNTHETIC and cfg.relabel_octaves and c.size >= MIN_PRESET_CLIPS:
        k = np.round(c / 1200.0)
        near = np.abs(c - 1200.0 * k) < OCTAVE_WINDOW_CENTS
        values, counts = np.unique(k[near & (k != 0)], return_counts=True)
        if counts.size and counts.max() >= cfg.octave_share * c.size:
            octaves = int(values[np.argmax(counts)])
    inside = c - 1200.0 * octaves
    inside = inside[np.abs(inside) < cfg.mismatch_cents]
    if inside.size < MIN_PRESET_CLIPS:
        return PresetVerdict(source, instrument, len(cents), int(c.size), octaves, None, None, False)
    median = float(np.median(inside))
    spread = float(np.median(np.abs(inside - median)))
    tuned = (source != SYNTHETIC and cfg.tune_labels and abs(median) >= cfg.tune_min_cents
             and spread <= cfg.tune_max_spread_cents)
    return PresetVerdict(source, instrument, len(cents), int(c.size), octaves, round(median, 2), round(spread, 2),
                         tuned)


def apply_rules(frame: pd.DataFrame, cfg: AuditConfig) -> tuple[pd.DataFrame, list[PresetVerdict]]:
    """The kept clips with their final labels: `frequency` (and `midi`, `note`) moved by an octave
    relabel and a tuning offset, `nominal_frequency` where a rule moved it, `audit_cents` against
    the final label, `label_rule`, and `drop_reason` audit_mismatch / audit_octave where a sure
    estimate disagrees with the label of a single clip. Returns the verdict per preset too."""
    from pipeline.core.pitch import note_name

    out = frame.copy()
    nominal = out["frequency"].to_numpy(dtype=np.float64)
    audit_hz = out["audit_hz"].to_numpy(dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        cents = 1200.0 * np.log2(audit_hz / nominal)
    sure = (out["audit_confidence"].to_numpy(dtype=np.float64) >= cfg.min_confidence) & np.isfinite(cents)
    octaves, shift = np.zeros(len(out), dtype=int), np.zeros(len(out))
    verdicts = []
    for (source, instrument), rows in out.groupby(["source", "instrument"], sort=False).indices.items():
        verdict = judge_preset(source, instrument, cents[rows], sure[rows], cfg)
        verdicts.append(verdict)
        octaves[rows] = verdict.octaves
        shift[rows] = verdict.tuning_cents if verdict.tuned else 0.0
    label = nominal * 2.0 ** (octaves + shift / 1200.0)
    out["frequency"] = np.round(label, 6)
    out["nominal_frequency"] = np.where((octaves != 0) | (shift != 0), nominal, np.nan)
    out["midi"] = out["midi"].to_numpy() + 12 * octaves
    out["note"] = [note_name(int(m)) for m in out["midi"]]
    out["audit_cents"] = np.round(cents - 1200.0 * octaves - shift, 2)
    out["label_rule"] = [";".join(name for name, on in (("octave_relabel", k != 0), ("tuning_offset", t != 0)) if on)
                         or "none" for k, t in zip(octaves, shift)]
    out["drop_reason"] = _mismatches(out["audit_cents"].to_numpy(), sure, cfg)
    # a relabel that would carry a clip past the piano's range (an organ's 16' low notes below A0)
    # names a pitch no instrument of the dataset plays and no model's bins hold: the clip goes instead
    low, high = midi_to_hz(np.asarray(RELABEL_RANGE_MIDI))
    outside = (octaves != 0) & ((label < low) | (label > high))
    out.loc[outside, "drop_reason"] = "audit_range"
    return out, verdicts


def _mismatches(cents: np.ndarray, sure: np.ndarray, cfg: AuditConfig) -> list[str | None]:
    """audit_octave where a sure estimate is a whole octave off the label, audit_mismatch where it is
    otherwise further than mismatch_cents; None (kept) elsewhere and for every unsure clip."""
    if not cfg.drop_mismatches:
        return [None] * len(cents)
    k = np.round(np.nan_to_num(cents) / 1200.0)
    octave = (k != 0) & (np.abs(cents - 1200.0 * k) < OCTAVE_WINDOW_CENTS)
    far = sure & (np.abs(np.nan_to_num(cents)) > cfg.mismatch_cents)
    return [("audit_octave" if o else "audit_mismatch") if f else None for f, o in zip(far, octave)]


def summary(frame: pd.DataFrame, verdicts: list[PresetVerdict], min_confidence: float) -> dict:
    """dataset.json's audit section: totals, and every rule's count per source and instrument."""
    dropped = frame["drop_reason"].fillna("")
    rule = frame["label_rule"].astype(str)
    counts = {
        "octave_relabel": rule.str.contains("octave_relabel"), "tuning_offset": rule.str.contains("tuning_offset"),
        "audit_mismatch": dropped == "audit_mismatch", "audit_octave": dropped == "audit_octave",
        "audit_range": dropped == "audit_range",
        "unsure": frame["audit_confidence"] < min_confidence,
    }
    keys = ["source", "instrument"]
    per = frame[keys].assign(**{name: mask.astype(int) for name, mask in counts.items()}).groupby(keys).sum()
    presets = []
    for v in verdicts:
        row = per.loc[(v.source, v.instrument)]
        presets.append({**asdict(v),
                        **{name: int(row[name]) for name in counts}})
    return {"clips": len(frame), "sure": int((~counts["unsure"]).sum()),
            **{name: int(mask.sum()) for name, mask in counts.items()}, "presets": presets}


def summary_line(audit: dict) -> str:
    """One line for the build's output."""
    moved = [p for p in audit["presets"] if p["octaves"]]
    tuned = [p for p in audit["presets"] if p["tuned"]]
    return (f"audit: {audit['sure']} of {audit['clips']} clips sure; octave_relabel {audit['octave_relabel']} clips "
            f"({len(moved)} presets), tuning_offset {audit['tuning_offset']} ({len(tuned)} presets), dropped "
            f"audit_mismatch {audit['audit_mismatch']}, audit_octave {audit['audit_octave']}, "
            f"audit_range {audit.get('audit_range', 0)}")
