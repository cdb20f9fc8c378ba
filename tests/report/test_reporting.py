"""reporting: the report's files from a fake predictions table; clear errors when inputs are missing."""

import json

import numpy as np
import pandas as pd
import pytest

from pipeline.core.config import load_config
from pipeline.core.errors import PipelineError
from pipeline.report.reporting import (
    SUBSET_COLUMN,
    Estimator,
    baseline_rows,
    build_report,
    format_summary,
    predictions_table,
    write_report,
)

PITCHES = (60, 62, 64)


def fake_labels() -> pd.DataFrame:
    """Three pitches x two instruments x two segments; half the notes detuned by 20 cents."""
    rows = []
    for midi in PITCHES:
        for instrument in ("flute", "violin"):
            for segment in ("attack", "sustain"):
                detune = 20.0 if instrument == "violin" else 0.0
                rows.append({"path": f"clips/{instrument}/{midi}_{segment}.wav", "instrument": instrument,
                             "instrument_name": instrument.title(), "midi": midi, "note": f"n{midi}",
                             "detune_cents": detune, "velocity": 100, "segment": segment,
                             "frequency": 440.0 * 2 ** ((midi - 69 + detune / 100) / 12)})
    return pd.DataFrame(rows)


def fake_predictions() -> tuple[pd.DataFrame, list[Estimator]]:
    labels = fake_labels()
    ref = labels["frequency"].to_numpy()
    model = ref * 2 ** (5 / 1200)                   # every clip 5 cents sharp
    pyin = ref.copy()
    pyin[0] = np.nan                                # one miss
    pyin[1] = ref[1] * 2                            # one octave error
    frame = predictions_table(labels, {"model": model, "pyin": pyin}, {"model": np.full(len(ref), 0.9)})
    estimators = [Estimator("model", "model (bins)", "model", clips_per_second=1000.0),
                  Estimator("pyin", "pYIN (librosa)", "baseline", clips_per_second=3.5,
                            details={"range_hz": [30.0, 8000.0]}),
                  Estimator("crepe", "CREPE full", "baseline", skipped="torchcrepe not installed; pip install x")]
    return frame, estimators


def strict_json(path):
    def reject(token):
        raise ValueError(f"non-standard JSON token {token}")
    return json.loads(path.read_text(), parse_constant=reject)


def test_write_report_writes_every_file_with_its_content(tmp_path):
    import matplotlib.image

    predictions, estimators = fake_predictions()
    table = write_report(predictions, estimators, tmp_path, {"title": "Test report", "intro": ["fake split"]})
    assert list(table["estimator"]) == ["model", "pyin"]
    # each grouping: one row per estimator that ran and value, counts adding up to every clip
    for stem, key, values in (("by_pitch", "midi", list(PITCHES)), ("by_instrument", "instrument", ["flute", "violin"]),
                              ("by_segment", "segment", ["attack", "sustain"]), ("by_velocity", "velocity", [100]),
                              ("by_detuned", "detuned", ["detuned", "in tune"])):
        grouped = pd.read_csv(tmp_path / f"{stem}.csv")
        assert list(grouped["estimator"].unique()) == ["model", "pyin"], stem
        for _, rows in grouped.groupby("estimator"):
            assert sorted(rows[key]) == values and rows["count"].sum() == len(predictions), stem
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "predictions.csv"), predictions, rtol=1e-5, check_dtype=False)
    assert set(strict_json(tmp_path / "metrics.json")["estimators"]) == {"model", "pyin"}
    assert (tmp_path / "report.md").read_text().startswith("# Test report\n\nfake split")
    image = matplotlib.image.imread(tmp_path / "by_pitch.png")   # a PNG that decodes, with lines on it
    assert image.shape[0] > 600 and image.shape[1] > 800 and np.mean(image[..., :3].min(axis=2) < 0.9) > 0.01
    assert not list(tmp_path.glob(".*.tmp*")), "temporary files left behind"


def test_by_pitch_has_a_row_per_pitch_and_estimator_with_counts(tmp_path):
    predictions, estimators = fake_predictions()
    write_report(predictions, estimators, tmp_path)
    by_pitch = pd.read_csv(tmp_path / "by_pitch.csv")
    model = by_pitch[by_pitch["estimator"] == "model"]
    assert model["midi"].tolist() == list(PITCHES)
    assert model["count"].tolist() == [4, 4, 4]
    assert model["median_abs_cents"].tolist() == pytest.approx([5, 5, 5])
    pyin60 = by_pitch[(by_pitch["estimator"] == "pyin") & (by_pitch["midi"] == 60)].iloc[0]
    assert pyin60["missing"] == 1 and pyin60["within_50"] == pytest.approx(2 / 4)
    assert set(by_pitch["estimator"]) == {"model", "pyin"}          # the skipped one has no rows
    assert by_pitch["note_hz"].iloc[0] == pytest.approx(261.63)


def test_group_tables_by_instrument_segment_detuned(tmp_path):
    predictions, estimators = fake_predictions()
    write_report(predictions, estimators, tmp_path)
    by_instrument = pd.read_csv(tmp_path / "by_instrument.csv")
    assert by_instrument[by_instrument["estimator"] == "model"]["count"].tolist() == [6, 6]
    by_detuned = pd.read_csv(tmp_path / "by_detuned.csv")
    assert sorted(by_detuned[by_detuned["estimator"] == "model"]["detuned"]) == ["detuned", "in tune"]
    by_segment = pd.read_csv(tmp_path / "by_segment.csv")
    assert by_segment[by_segment["estimator"] == "pyin"]["segment"].tolist() == ["attack", "sustain"]
    predictions_csv = pd.read_csv(tmp_path / "predictions.csv")
    assert len(predictions_csv) == 12
    assert {"model_hz", "model_cents", "model_confidence", "pyin_hz"} <= set(predictions_csv.columns)


def test_metrics_json_is_strict_and_complete(tmp_path):
    predictions, estimators = fake_predictions()
    write_report(predictions, estimators, tmp_path, {"metrics": {"dataset": {"manifest_sha256": "abc"}}})
    metrics = strict_json(tmp_path / "metrics.json")
    assert metrics["dataset"]["manifest_sha256"] == "abc"
    pyin = metrics["estimators"]["pyin"]
    assert pyin["count"] == 12 and pyin["missing"] == 1
    assert pyin["octave_error_rate"] == pytest.approx(1 / 12)
    assert pyin["rpa50"] == pytest.approx(10 / 12)
    assert metrics["estimators"]["model"]["rpa10"] == 1.0
    assert metrics["baselines"]["crepe"]["skipped"].startswith("torchcrepe not installed")


def test_report_md_shows_estimators_side_by_side(tmp_path):
    predictions, estimators = fake_predictions()
    write_report(predictions, estimators, tmp_path, {"title": "Test report", "reproduce": ["make report"]})
    page = (tmp_path / "report.md").read_text()
    assert page.startswith("# Test report")
    assert "| metric | model (bins) | pYIN (librosa) |" in page
    assert "![Prediction errors by pitch](by_pitch.png)" in page
    assert "crepe: torchcrepe not installed" in page
    assert "## By instrument" in page and "## By segment" in page
    assert "make report" in page


def test_baseline_subset_is_compared_on_the_same_clips(tmp_path):
    predictions, estimators = fake_predictions()
    mask = baseline_rows(len(predictions), 4)
    predictions[SUBSET_COLUMN] = mask
    predictions.loc[~mask, "pyin_hz"] = np.nan
    estimators[1].subset = True
    table = write_report(predictions, estimators, tmp_path)
    assert list(table["estimator"]) == ["model", "model@baseline_clips", "pyin"]
    assert table.set_index("estimator").loc["pyin", "count"] == 4
    assert table.set_index("estimator").loc["model@baseline_clips", "count"] == 4


def test_baseline_rows_are_evenly_spaced_and_deterministic():
    assert baseline_rows(10, 0).all() and baseline_rows(10, 20).all()
    mask = baseline_rows(10, 4)
    assert mask.sum() == 4 and mask[0] and mask[-1]
    assert (baseline_rows(10, 4) == mask).all()


def test_format_summary_is_aligned_text():
    predictions, estimators = fake_predictions()
    from pipeline.report.reporting import summaries

    text = format_summary(summaries(predictions, estimators))
    lines = text.splitlines()
    assert "model (bins)" in lines[0] and "pYIN (librosa)" in lines[0]
    assert any(line.startswith("RPA 50 cents") and "100.0%" in line for line in lines)
    assert len({len(line) for line in lines}) == 1


def test_build_report_without_a_model_says_run_make_train(tmp_path):
    cfg = load_config(None, [f'root="{tmp_path}"'])
    with pytest.raises(PipelineError, match="make train"):
        build_report(cfg)


# --- tables by source, octave and augmentation, against labels worked out by hand ------------------
# (label Hz, source, augment as the manifest writes it, the model's error in cents); the octave of a
# label is that of its nearest note, C to B: 246.9 Hz is B3, 20 cents flat of C4 is C4, 45 cents
# sharp of B3 is still B3
HAND_LABELS = [
    (246.94, "FluidR3_GM.sf2", "none", 0.0),                                             # B3: C3-B3
    (261.63 * 2 ** (-20 / 1200), "FluidR3_GM.sf2", "room(rt60=0.62);pink(snr=7.5)", 10.0),  # C4: C4-B4
    (246.94 * 2 ** (45 / 1200), "synthetic", "mp3(64k)", 30.0),                          # B3: C3-B3
    (440.0, "synthetic", "fluid_reverb(room=0.40,damp=0.30,level=0.50);eq;hum50(snr=21.0)", 70.0),  # A4
    (32.70, "TimGM6mb.sf2", "level(+0.0>-12.0);ogg(q=0.30)", 1200.0),                    # C1: C1-B1
    (4186.0, "TimGM6mb.sf2", "white(snr=3.0)", -5.0),                                    # C8: C8-B8
]


def hand_report(tmp_path) -> dict[str, pd.DataFrame]:
    labels = pd.DataFrame([{"path": f"clip{i}.wav", "source": source, "instrument": "violin", "midi": 60,
                            "frequency": hz, "augment": augment, "detune_cents": 0.0}
                           for i, (hz, source, augment, _) in enumerate(HAND_LABELS)])
    hz = labels["frequency"].to_numpy() * 2 ** (np.array([e for *_, e in HAND_LABELS]) / 1200)
    write_report(predictions_table(labels, {"model": hz}), [Estimator("model", "model", "model")], tmp_path)
    tables = {}
    for stem in ("by_source", "by_octave", "by_augmentation"):
        table = pd.read_csv(tmp_path / f"{stem}.csv")
        tables[stem] = table.set_index(table.columns[1]).drop(columns="estimator")
    return tables


def test_the_tables_by_source_octave_and_augmentation_hold_the_right_clips(tmp_path):
    tables = hand_report(tmp_path)
    by_source = tables["by_source"]
    assert by_source["count"].to_dict() == {"FluidR3_GM.sf2": 2, "TimGM6mb.sf2": 2, "synthetic": 2}
    assert by_source["within_50"].to_dict() == {"FluidR3_GM.sf2": 1.0, "TimGM6mb.sf2": 0.5, "synthetic": 0.5}
    assert by_source["median_abs_cents"].to_dict() == pytest.approx(
        {"FluidR3_GM.sf2": 5.0, "TimGM6mb.sf2": 602.5, "synthetic": 50.0})
    by_octave = tables["by_octave"]
    assert by_octave["count"].to_dict() == {"C1-B1": 1, "C3-B3": 2, "C4-B4": 2, "C8-B8": 1}
    assert by_octave["median_abs_cents"].to_dict() == pytest.approx(
        {"C1-B1": 1200.0, "C3-B3": 15.0, "C4-B4": 40.0, "C8-B8": 5.0})
    by_augmentation = tables["by_augmentation"]
    assert by_augmentation["count"].to_dict() == {"none": 1, "noise+room": 1, "codec": 1,
                                                  "eq+noise+room": 1, "codec+level": 1, "noise": 1}
    assert by_augmentation["median_abs_cents"].to_dict() == pytest.approx(
        {"none": 0.0, "noise+room": 10.0, "codec": 30.0, "eq+noise+room": 70.0, "codec+level": 1200.0,
         "noise": 5.0})
    page = (tmp_path / "report.md").read_text()
    assert "## By octave" in page and "| C3-B3 | 15.0 · 100% (n=2) |" in page
    assert "## By source" in page and "## By augmentation" in page
