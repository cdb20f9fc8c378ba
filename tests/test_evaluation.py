"""evaluation: summary figures worked out by hand, per-group tables, labels from names, pipeline evaluate."""

import argparse
import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from pipeline.errors import PipelineError
from pipeline.evaluation import (by_group, cents_error, evaluate_folder_cli, label_from_name, labels_from_csv,
                                 note_to_midi, octave_errors, summary)


def shifted(hz, cents):
    return hz * 2.0 ** (cents / 1200.0)


def test_summary_matches_hand_computed_figures():
    ref = np.full(6, 440.0)
    est = np.array([880.0,                 # +1200 cents: an octave error
                    shifted(440.0, 30),    # within 50 cents, not within 10
                    shifted(440.0, -5),    # within 10
                    440.0,                 # exact
                    np.nan,                # no estimate: a miss
                    0.0])                  # "unvoiced": a miss
    s = summary(ref, est)
    assert s["count"] == 6 and s["missing"] == 2
    # averages over the four estimates: |cents| = 1200, 30, 5, 0
    assert s["mean_abs_cents"] == pytest.approx((1200 + 30 + 5 + 0) / 4)
    assert s["median_abs_cents"] == pytest.approx((5 + 30) / 2)
    assert s["mae_hz"] == pytest.approx((440 + 440 * (2 ** (30 / 1200) - 1) + 440 * (1 - 2 ** (-5 / 1200))) / 4)
    # accuracies over all six clips, misses wrong
    assert s["rpa50"] == pytest.approx(3 / 6)
    assert s["rpa10"] == pytest.approx(2 / 6)
    assert s["rca"] == pytest.approx(4 / 6)        # the octave error is right in chroma
    assert s["octave_error_rate"] == pytest.approx(1 / 6)


def test_summary_tolerances_are_strict_as_in_mir_eval():
    ref = np.full(4, 220.0)
    est = shifted(ref, np.array([9.9, 10.1, 49.9, 50.1]))
    s = summary(ref, est)
    assert s["rpa10"] == pytest.approx(1 / 4)
    assert s["rpa50"] == pytest.approx(3 / 4)


def test_octave_errors_are_multiples_of_1200_within_50_cents():
    cents = np.array([1200.0, 1180.0, -2400.0, 1260.0, 700.0, 0.0, 30.0, np.nan])
    assert octave_errors(cents).tolist() == [True, True, True, False, False, False, False, False]


def test_summary_all_missing_and_bad_input():
    s = summary([440.0, 220.0], [np.nan, -1.0])
    assert s["missing"] == 2 and s["rpa50"] == 0.0 and np.isnan(s["mae_hz"])
    with pytest.raises(PipelineError, match="shape"):
        summary([440.0], [440.0, 220.0])
    with pytest.raises(PipelineError, match="reference"):
        summary([0.0], [440.0])


def test_cents_error_sign():
    assert cents_error([440.0], [880.0])[0] == pytest.approx(1200)
    assert cents_error([440.0], [220.0])[0] == pytest.approx(-1200)


def test_by_group_has_a_row_per_pitch_with_counts():
    midi = [60, 60, 69, 69, 69, 72]
    ref = 440.0 * 2.0 ** ((np.array(midi) - 69) / 12)
    est = ref.copy()
    est[2] = shifted(ref[2], 100)      # one 100-cent error on A4
    est[3] = np.nan                    # and one miss
    frame = pd.DataFrame({"midi": midi, "frequency": ref, "estimate": est})
    table = by_group(frame, "midi")
    assert table["midi"].tolist() == [60, 69, 72]
    assert table["count"].tolist() == [2, 3, 1]
    assert table["missing"].tolist() == [0, 1, 0]
    a4 = table.set_index("midi").loc[69]
    assert a4["within_50"] == pytest.approx(1 / 3)
    assert a4["mean_abs_cents"] == pytest.approx(50.0)      # (100 + 0) / 2, the miss left out
    assert a4["median_abs_cents"] == pytest.approx(50.0)
    assert a4["mean_abs_hz"] == pytest.approx((shifted(440.0, 100) - 440.0) / 2)
    with pytest.raises(PipelineError, match="instrument"):
        by_group(frame, "instrument")


@pytest.mark.parametrize("name, hz", [
    ("A4.wav", 440.0), ("Cs4.wav", 277.1826), ("C#4.wav", 277.1826), ("Db4.flac", 277.1826),
    ("Bb3.wav", 233.0819), ("a4.wav", 440.0), ("piano_A4.wav", 440.0), ("take-2 E2.ogg", 82.4069),
    ("violin_A4_69_441.27_sustain_v100.wav", 441.27),
    ("acoustic_grand_piano_Cs4_61_275.00_attack_v64.wav", 275.0),
])
def test_label_from_name(name, hz):
    assert label_from_name(name) == pytest.approx(hz, rel=1e-6)


@pytest.mark.parametrize("name", ["noise.wav", "A4_B4.wav", "H4.wav", "recording.wav"])
def test_label_from_name_without_a_note(name):
    assert label_from_name(name) is None


def test_note_to_midi():
    assert note_to_midi("A4") == 69 and note_to_midi("C-1") == 0 and note_to_midi("Cb4") == 59
    assert note_to_midi("G9") == 127 and note_to_midi("Gs9") is None and note_to_midi("X4") is None


def test_labels_from_csv(tmp_path):
    (tmp_path / "labels.csv").write_text("path,frequency,note,instrument\na.wav,441.0,,oboe\nb.wav,,A3,oboe\n"
                                         "c.wav,,,oboe\n")
    labels = labels_from_csv(tmp_path / "labels.csv", tmp_path / "audio")
    assert labels["label_hz"].tolist()[:2] == [441.0, 220.0] and np.isnan(labels["label_hz"][2])
    assert labels["file"][0] == str(tmp_path / "audio" / "a.wav")
    (tmp_path / "bad.csv").write_text("file,hz\nx.wav,1\n")
    with pytest.raises(PipelineError, match="path column"):
        labels_from_csv(tmp_path / "bad.csv", tmp_path)
    with pytest.raises(PipelineError, match="not found"):
        labels_from_csv(tmp_path / "missing.csv", tmp_path)


def _write_notes(folder, names):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        sf.write(folder / name, np.zeros(1600, dtype=np.float32), 16000)


def _args(audio_dir, output, labels=None):
    return argparse.Namespace(audio_dir=str(audio_dir), model=None, labels=labels, output=str(output))


def test_evaluate_folder_cli_writes_tables_and_exits_zero(tmp_path, capsys):
    audio = tmp_path / "notes"
    _write_notes(audio, ["A4.wav", "C#4.wav", "Db4.wav", "violin_A3_57_221.00_sustain_v100.wav"])
    answers = {"A4.wav": 441.0, "C#4.wav": 277.0, "Db4.wav": 554.4, "violin_A3_57_221.00_sustain_v100.wav": 221.0}

    def estimate(paths):
        return np.array([answers[p.split("/")[-1]] for p in paths])

    code = evaluate_folder_cli(_args(audio, tmp_path / "out"), estimate=estimate)
    assert code == 0
    out = capsys.readouterr().out
    assert "RPA 50 cents" in out
    by_pitch = pd.read_csv(tmp_path / "out" / "by_pitch.csv")
    assert sorted(by_pitch["midi"]) == [57, 61, 69] and by_pitch["count"].sum() == 4
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["estimators"]["model"]["octave_error_rate"] == pytest.approx(1 / 4)   # Db4 an octave up
    assert (tmp_path / "out" / "report.md").is_file()


def test_evaluate_folder_cli_reports_each_bad_file(tmp_path, capsys):
    audio = tmp_path / "notes"
    _write_notes(audio, ["A4.wav", "noise.wav", "E2.wav", "G3.wav"])

    def estimate(paths):
        hz = np.array([440.0 if p.endswith("A4.wav") else np.nan for p in paths])
        errors = ["cannot read audio" if p.endswith("G3.wav") else None for p in paths]
        return hz, errors

    code = evaluate_folder_cli(_args(audio, tmp_path / "out"), estimate=estimate)
    assert code == 1
    err = capsys.readouterr().err
    assert "noise.wav: no pitch label" in err
    assert "E2.wav: no pitch found" in err
    assert "G3.wav: cannot read audio" in err
    assert "3 of 4 files failed" in err
    # the labeled files still give tables, failures as misses: A4 right, E2 and G3 missed
    by_pitch = pd.read_csv(tmp_path / "out" / "by_pitch.csv")
    assert by_pitch["count"].sum() == 3 and by_pitch["missing"].sum() == 2


def test_evaluate_with_labels_csv_and_a_missing_file(tmp_path, capsys):
    audio = tmp_path / "notes"
    _write_notes(audio, ["one.wav"])
    (tmp_path / "labels.csv").write_text("path,note,instrument\none.wav,A4,oboe\ntwo.wav,B4,oboe\n")
    code = evaluate_folder_cli(_args(audio, tmp_path / "out", str(tmp_path / "labels.csv")),
                               estimate=lambda paths: np.full(len(paths), 440.0))
    assert code == 1
    assert "two.wav: file not found" in capsys.readouterr().err
    assert pd.read_csv(tmp_path / "out" / "by_instrument.csv")["instrument"].tolist() == ["oboe"]


def test_evaluate_without_a_model_is_a_clear_error(tmp_path):
    audio = tmp_path / "notes"
    _write_notes(audio, ["A4.wav"])
    args = _args(audio, tmp_path / "out")
    args.model = str(tmp_path / "nope.keras")
    with pytest.raises(PipelineError, match="make train"):
        evaluate_folder_cli(args)
