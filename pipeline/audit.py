"""The label audit: an independent pitch estimate of every clip, and the rules that act on it.

The label is the pitch the MIDI note names, but not every preset sounds it: organ stops an
octave below, samples tuned a few to 15 cents off, layered presets. So every kept clip is
measured, in the worker, on its clean audio (before augmentation), by an estimator that
shares no code with the model or the synthesis: YIN (de Cheveigne & Kawahara 2002) picks the
period, then the first partials of a Gaussian-windowed spectrum refine it. Its confidence is
1 - d', YIN's aperiodicity at the chosen period (about 1 for a clean steady note, lower for
attacks, noise and inharmonic sounds).

`apply_rules` then runs in the parent, on the whole manifest, since two rules need every clip
of a preset (README "Labels you can trust"):
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
import scipy.fft

from pipeline import constants as C

if TYPE_CHECKING:
    import pandas as pd

    from pipeline.config import AuditConfig

FMIN_HZ = 25.0                   # under A0 (27.5 Hz) detuned by -50 cents
MIN_LAG = 2                      # samples: 8 kHz
MAX_LAG = int(np.ceil(C.SAMPLE_RATE / FMIN_HZ))  # 640 samples
YIN_THRESHOLD = 0.15             # the first dip of d' under this is the period (YIN's absolute threshold)
REFINE_PARTIALS = 4              # partials 1..4 refine the period's frequency
REFINE_RANGE_DB = 30.0           # ... those within this of the strongest of them
PERIOD_MULTIPLES = (1 / 4, 1 / 3, 1 / 2, 1, 2, 3)  # of YIN's period: the candidates it may have missed
PERIOD_TOLERANCE = 0.05          # the shortest candidate within this of the best one's autocorrelation wins
REFINE_FFT = 8192               # zero-padded: 1.95 Hz bins; a Gaussian's log-magnitude peak is a parabola
GAUSSIAN_SIGMA = 1 / 8           # of the clip: -70 dB at its ends
SYNTHETIC = "synthetic"


# --- the estimator (in the workers) ------------------------------------------------------------
def yin(clips: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, 5280) clips -> (period in samples, d' there) per clip; period NaN for silence."""
    x = np.asarray(clips, dtype=np.float64)
    width = x.shape[1] - MAX_LAG
    size = scipy.fft.next_fast_len(x.shape[1], real=True)
    cross = scipy.fft.irfft(np.conj(scipy.fft.rfft(x[:, :width], size)) * scipy.fft.rfft(x, size), size)
    lags = np.arange(MAX_LAG + 1)
    energy = np.concatenate([np.zeros((len(x), 1)), np.cumsum(np.square(x), axis=1)], axis=1)
    shifted = energy[:, lags + width] - energy[:, lags]
    diff = np.maximum(cross[:, :1] + shifted - 2.0 * cross[:, :MAX_LAG + 1], 0.0)
    running = np.cumsum(diff[:, 1:], axis=1)
    tiny = np.finfo(np.float64).tiny
    dprime = np.ones_like(diff)
    dprime[:, 1:] = np.where(running > tiny, diff[:, 1:] * lags[1:] / np.maximum(running, tiny), 1.0)
    periods, depths = np.full(len(x), np.nan), np.ones(len(x))
    for i, row in enumerate(dprime):
        if cross[i, 0] > 0:
            periods[i], depths[i] = _period(row)
    return periods, depths


def _period(dprime: np.ndarray) -> tuple[float, float]:
    """The first dip of d' under YIN_THRESHOLD (else its minimum), interpolated by a parabola."""
    search = dprime[MIN_LAG:MAX_LAG]
    below = np.flatnonzero(search < YIN_THRESHOLD)
    lag = MIN_LAG + (int(below[0]) if below.size else int(np.argmin(search)))
    while lag + 1 < MAX_LAG and dprime[lag + 1] < dprime[lag]:
        lag += 1
    a, b, c = dprime[lag - 1:lag + 2]
    bend = a - 2 * b + c
    shift = 0.5 * (a - c) / bend if bend > 0 else 0.0
    return lag + float(np.clip(shift, -0.5, 0.5)), float(np.clip(b, 0.0, 1.0))


def refine(clip: np.ndarray, coarse_hz: float) -> float:
    """coarse_hz checked and made exact: the period first, then the first partials' peaks in a
    Gaussian-windowed spectrum (whose log-magnitude peak is a parabola), each over its number,
    weighted by its power."""
    n = len(clip)
    window = np.exp(-0.5 * ((np.arange(n) - (n - 1) / 2) / (GAUSSIAN_SIGMA * n)) ** 2)
    magnitude = np.abs(scipy.fft.rfft(np.asarray(clip, dtype=np.float64) * window, REFINE_FFT))
    coarse_hz = _true_period(magnitude, C.SAMPLE_RATE / coarse_hz)
    peaks = _partial_peaks(magnitude, coarse_hz, REFINE_PARTIALS)
    strongest = max((level for _, _, level in peaks), default=0.0)
    used = [(hz / k, level) for k, hz, level in peaks if level >= strongest * 10 ** (-REFINE_RANGE_DB / 20)]
    if not used:
        return coarse_hz
    hz, level = np.array(used).T
    return float(np.sum(hz * level ** 2) / np.sum(level ** 2))


def _true_period(magnitude: np.ndarray, lag: float) -> float:
    """The frequency of the shortest of lag x (1/4 .. 3) that repeats the clip about as well as the
    best of them, from the autocorrelation at fractional lags (the power spectrum's cosine sums).

    YIN's integer lags can miss a short period and take several (at 3.6 kHz the period is 4.45
    samples), and a tone whose partials 2 and 3 dominate can pass for twice its pitch."""
    power = magnitude ** 2
    bins = np.flatnonzero(power > power.max() * 1e-6)  # the rest adds nothing: fewer cosines
    power, turns = power[bins], bins / REFINE_FFT
    candidates = [lag * q for q in PERIOD_MULTIPLES if MIN_LAG <= lag * q <= MAX_LAG]
    repeat = [float(power @ np.cos(2 * np.pi * turns * c)) / float(power.sum()) for c in candidates]
    best = max(repeat)
    return C.SAMPLE_RATE / next(c for c, r in zip(candidates, repeat) if r >= best - PERIOD_TOLERANCE)


def _partial_peaks(magnitude: np.ndarray, coarse_hz: float, count: int) -> list[tuple[int, float, float]]:
    """(k, frequency, magnitude) of the peak within a third of coarse_hz of each multiple k; none
    where the band's maximum is at its edge (no peak in it)."""
    bin_hz = C.SAMPLE_RATE / REFINE_FFT
    peaks = []
    for k in range(1, count + 1):
        low = max(int((k - 1 / 3) * coarse_hz / bin_hz), 1)
        high = int((k + 1 / 3) * coarse_hz / bin_hz) + 1
        if high >= len(magnitude) - 1:
            break
        i = low + int(np.argmax(magnitude[low:high]))
        if magnitude[i] <= 0 or i in (low, high - 1):
            continue
        a, b, c = np.log(magnitude[i - 1:i + 2])
        peaks.append((k, (i + 0.5 * (a - c) / (a - 2 * b + c)) * bin_hz, float(magnitude[i])))
    return peaks


def estimate(clips: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, 5280) clean clips -> (audit_hz, confidence 0..1) per clip; NaN Hz and 0 for silence."""
    clips = np.atleast_2d(clips)
    periods, depths = yin(clips)
    hz = np.full(len(clips), np.nan)
    for i, period in enumerate(periods):
        if np.isfinite(period):
            hz[i] = refine(clips[i], C.SAMPLE_RATE / period)
    return hz, np.where(np.isfinite(hz), 1.0 - depths, 0.0)


# --- the rules (in the parent, on every kept clip) ---------------------------------------------
MIN_PRESET_CLIPS = 5             # sure clips a preset needs before its octave or tuning is judged
OCTAVE_WINDOW_CENTS = 50.0       # an estimate this close to k * 1200 cents is k octaves off
RULES = ("octave_relabel", "tuning_offset", "audit_mismatch", "audit_octave")


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
    from pipeline.pitch import note_name

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
    rule = frame["label_rule"]
    counts = {
        "octave_relabel": rule.str.contains("octave_relabel"), "tuning_offset": rule.str.contains("tuning_offset"),
        "audit_mismatch": dropped == "audit_mismatch", "audit_octave": dropped == "audit_octave",
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
            f"audit_mismatch {audit['audit_mismatch']}, audit_octave {audit['audit_octave']}")
