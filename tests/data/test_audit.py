"""The label audit's rules on made-up presets (its estimator: tests/dsp/test_fine_pitch.py)."""

import numpy as np
import pandas as pd
import pytest

from pipeline.core.config import AuditConfig
from pipeline.data import audit as A

RULES = AuditConfig()


# --- the rules ------------------------------------------------------------------------------------
def preset(source: str, instrument: str, offsets_cents, confidence=0.99) -> pd.DataFrame:
    """Clips of one preset whose audit sits offsets_cents from a nominal label (A2 .. upwards)."""
    offsets = np.asarray(offsets_cents, dtype=float)
    midi = 45 + np.arange(len(offsets))
    nominal = 440 * 2 ** ((midi - 69) / 12)
    return pd.DataFrame({"source": source, "instrument": instrument, "midi": midi, "note": "",
                         "frequency": nominal, "audit_hz": nominal * 2 ** (offsets / 1200),
                         "audit_confidence": np.broadcast_to(confidence, offsets.shape)})


def frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.concat([
        preset("Font.sf2", "church_organ", -1200 + rng.normal(0, 3, 20)),    # sounds an octave below
        preset("Font.sf2", "flute", 8 + rng.normal(0, 1, 20)),               # samples 8 cents sharp
        preset("Font.sf2", "violin", np.r_[rng.normal(0, 2, 17), 1200, 300, 1200]),
        preset("Font.sf2", "pad", rng.uniform(-40, 40, 20)),                 # no consistent tuning
        preset("Font.sf2", "unsure", [-1200] * 10, confidence=0.3),          # the auditor is unsure
        preset("synthetic", "missing_fundamental", np.r_[[1200] * 12, [0] * 8]),  # exact labels
    ], ignore_index=True)


def test_the_rules_relabel_a_preset_an_octave_off_and_retune_a_consistent_one():
    clips = frame()
    out, verdicts = A.apply_rules(clips, RULES)
    by = {v.instrument: v for v in verdicts}
    organ = out[out["instrument"] == "church_organ"]
    assert by["church_organ"].octaves == -1 and (organ["label_rule"] == "octave_relabel").all()
    np.testing.assert_allclose(organ["frequency"], organ["nominal_frequency"] / 2, rtol=1e-6)
    assert (organ["midi"] == clips.loc[organ.index, "midi"] - 12).all() and organ["note"].iloc[0] == "A1"
    assert organ["audit_cents"].abs().max() < 15 and organ["drop_reason"].isna().all()
    flute = out[out["instrument"] == "flute"]
    assert by["flute"].tuned and by["flute"].tuning_cents == pytest.approx(8, abs=1)
    assert (flute["label_rule"] == "tuning_offset").all() and flute["audit_cents"].abs().median() < 1
    for name in ("pad", "unsure"):
        rows = out[out["instrument"] == name]
        assert not by[name].tuned and by[name].octaves == 0 and (rows["label_rule"] == "none").all()
        assert rows["nominal_frequency"].isna().all() and rows["drop_reason"].isna().all()
    np.testing.assert_allclose(out.loc[out["instrument"] == "pad", "frequency"],
                               clips.loc[clips["instrument"] == "pad", "frequency"], atol=1e-6)


def test_single_clips_far_from_their_label_are_dropped_and_synthetic_labels_never_move():
    out, verdicts = A.apply_rules(frame(), RULES)
    violin = out[out["instrument"] == "violin"]
    assert violin["drop_reason"].tolist()[-3:] == ["audit_octave", "audit_mismatch", "audit_octave"]
    assert violin["drop_reason"].iloc[:-3].isna().all() and (violin["label_rule"] == "none").all()
    tones = out[out["source"] == "synthetic"]
    assert (tones["label_rule"] == "none").all() and tones["nominal_frequency"].isna().all()
    assert (tones["drop_reason"] == "audit_octave").sum() == 12  # an ambiguous tone is dropped, never relabelled
    kept, _ = A.apply_rules(frame(), AuditConfig(drop_mismatches=False, relabel_octaves=False, tune_labels=False))
    assert kept["drop_reason"].isna().all() and (kept["label_rule"] == "none").all()


def test_the_summary_counts_each_rule_per_source_and_instrument():
    out, verdicts = A.apply_rules(frame(), RULES)
    summary = A.summary(out, verdicts, RULES.min_confidence)
    presets = {(p["source"], p["instrument"]): p for p in summary["presets"]}
    assert presets[("Font.sf2", "church_organ")]["octave_relabel"] == 20
    assert presets[("Font.sf2", "flute")]["tuning_offset"] == 20
    violin = presets[("Font.sf2", "violin")]
    assert violin["audit_octave"] == 2 and violin["audit_mismatch"] == 1
    assert presets[("Font.sf2", "unsure")]["unsure"] == 10
    assert summary["octave_relabel"] == 20 and summary["clips"] == len(out)
    assert "octave_relabel 20 clips (1 presets)" in A.summary_line(summary)
