"""contour_evaluation: `pipeline evaluate DIR` on recordings with per-frame truth, end to end."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from mir_eval import melody

from pipeline.cli import main
from pipeline.core.errors import PipelineError
from pipeline.report.contour_evaluation import (
    WORST_FILES,
    WorstFiles,
    choose_mode,
    evaluate_contours,
    format_contour_summary,
)
from pipeline.report.frame_metrics import FRAME_METRICS, Contour
from tests.report.contour_signals import KINDS, write_set


@pytest.fixture(scope="module")
def contour_set(tmp_path_factory):
    """vibrato, glide, trill and voice recordings with their truths (three layouts), read-only."""
    folder = tmp_path_factory.mktemp("contours") / "set"
    write_set(folder)
    return folder


def strict_json(path):
    return json.loads(path.read_text(), parse_constant=lambda name: pytest.fail(f"{name} in {path}"))


def test_evaluate_a_folder_of_contours_with_praat(contour_set, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["evaluate", str(contour_set), "--baselines", "praat", "--output", str(out)])
    stdout, stderr = capsys.readouterr()
    assert code == 0, stderr
    lines = stdout.splitlines()
    table = lines[[line.startswith("metric") for line in lines].index(True):]
    assert table[0].split() == ["metric", "model", "praat"]
    assert any(line.startswith("RPA 50 cents") for line in table) and any("x real time" in line for line in table)
    assert "4 of 4 files scored" in stdout and "[4/4] voice.wav" in stdout
    per_file = pd.read_csv(out / "per_file.csv")
    assert sorted(per_file["path"].unique()) == sorted(f"{k}.wav" for k in KINDS)
    assert per_file.groupby("path")["estimator"].apply(list).map(tuple).unique().tolist() == [("model", "praat")]
    assert (per_file["seconds"] > 0).all() and (per_file["duration_s"] == 3.0).all()
    praat = per_file[per_file["estimator"] == "praat"].set_index("path")
    assert (praat["rpa50"] > 0.85).all() and (praat["voicing_recall"] > 0.95).all()   # clean harmonic tones
    overall = pd.read_csv(out / "overall.csv")
    assert set(zip(overall["estimator"], overall["weighting"])) == {(e, w) for e in ("model", "praat")
                                                                    for w in ("frames", "files")}
    frames = overall[(overall["estimator"] == "praat") & (overall["weighting"] == "frames")].iloc[0]
    assert frames["frames"] == per_file.loc[per_file["estimator"] == "praat", "frames"].sum() and frames["files"] == 4
    report = strict_json(out / "evaluation.json")
    assert report["files_scored"] == 4 and report["problems"] == [] and report["mode"] == "contours"
    assert report["versions"]["mir_eval"] and report["estimators"]["praat"]["versions"]
    assert report["model"]["sha256"] and report["settings"]["hop_seconds"] == 0.01
    for png in ("accuracy.png", "worst_files.png"):
        import matplotlib.image

        assert matplotlib.image.imread(out / png).shape[0] > 300
    assert not list(out.glob(".*.tmp*"))


@pytest.mark.filterwarnings("ignore:Non-uniform timescale")   # Praat's first frame is at 50 ms; mir_eval adds one at 0
def test_the_numbers_equal_mir_eval_run_by_hand(contour_set, tmp_path):
    """Praat's rows of per_file.csv, redone here: truth from the CSV with numpy, Praat through
    parselmouth, mir_eval.melody.evaluate at a 10 ms hop."""
    import parselmouth

    out = tmp_path / "out"
    evaluate_contours(contour_set, output_dir=out, baselines=["praat"])
    praat = pd.read_csv(out / "per_file.csv").query("estimator == 'praat'").set_index("path")
    for kind in KINDS:
        truth_csv = next(p for p in (contour_set / f"{kind}.csv", contour_set / f"{kind}.f0.csv") if p.exists())
        skip = 0 if kind == "glide" else 1   # glide.csv has no header
        truth = np.loadtxt(truth_csv, delimiter=",", skiprows=skip, usecols=(0, 1))
        audio, sr = sf.read(contour_set / f"{kind}.wav")
        pitch = parselmouth.Sound(audio, sampling_frequency=sr).to_pitch_ac(time_step=0.01, pitch_floor=30.0,
                                                                            pitch_ceiling=8000.0)
        f0 = pitch.selected_array["frequency"]
        for tolerance, keys in ((50, {"rpa50": "Raw Pitch Accuracy", "rca50": "Raw Chroma Accuracy",
                                      "voicing_recall": "Voicing Recall", "voicing_false_alarm": "Voicing False Alarm",
                                      "overall_accuracy": "Overall Accuracy"}),
                                (10, {"rpa10": "Raw Pitch Accuracy", "rca10": "Raw Chroma Accuracy"})):
            theirs = melody.evaluate(truth[:, 0], truth[:, 1], pitch.xs(), f0, hop=0.01, cent_tolerance=tolerance)
            for ours, name in keys.items():
                assert praat.loc[f"{kind}.wav", ours] == pytest.approx(theirs[name], rel=1e-5, abs=1e-9), (kind, ours)


def test_mode_is_chosen_by_what_the_folder_holds(contour_set, tmp_path):
    assert choose_mode(contour_set) == "contours"
    assert choose_mode(contour_set, labels_csv="labels.csv") == "notes"
    assert choose_mode(contour_set, "notes") == "notes"
    notes = tmp_path / "notes"
    notes.mkdir()
    sf.write(notes / "A4.wav", np.zeros(1600, dtype=np.float32), 16000)
    assert choose_mode(notes) == "notes"
    truth = tmp_path / "truth"
    truth.mkdir()
    (truth / "A4.csv").write_text("0,0\n0.01,440\n")
    assert choose_mode(notes, truth_dir=truth) == "contours"
    with pytest.raises(PipelineError, match="unknown evaluation mode 'frames'"):
        choose_mode(notes, "frames")


def test_bad_truth_files_are_one_line_each_and_the_rest_is_scored(contour_set, tmp_path, capsys):
    folder = tmp_path / "set"
    shutil.copytree(contour_set, folder)
    (folder / "glide.csv").write_text("0,0\n0.01,110\n0.02,-110\n")
    (folder / "trill.f0.csv").write_text("time,hz_typo\n0,392\n")
    (folder / "vibrato.csv").write_text("time,frequency\n0,220\n0.01,abc\n")
    shutil.copy(folder / "voice.wav", folder / "untruthed.wav")
    code = main(["evaluate", str(folder), "--output", str(tmp_path / "out")])
    stdout, stderr = capsys.readouterr()
    assert code == 1
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert errors == ["error: untruthed.wav: no truth file (untruthed.csv or untruthed.f0.csv); left out",
                      f"error: {folder / 'glide.csv'}, row 3: frequency -110 is negative; use 0 for an unvoiced frame",
                      f"error: {folder / 'trill.f0.csv'}, row 1: no frequency column in the header (time, hz_typo); "
                      "name the columns time,frequency (and optionally voiced or confidence)",
                      f"error: {folder / 'vibrato.csv'}, row 3: frequency 'abc' is not a number; write time,frequency "
                      "rows (seconds, Hz, 0 for unvoiced)"]
    assert "1 of 5 files scored" in stdout and "speed" not in stdout and "real time" not in stdout   # no baselines
    assert pd.read_csv(tmp_path / "out" / "per_file.csv")["path"].tolist() == ["voice.wav"]


def test_a_tracker_failing_on_a_file_scores_it_as_no_answer(tmp_path):
    folder = tmp_path / "set"
    folder.mkdir()
    t = np.arange(1280) / 16000   # 80 ms: enough for the model, too short for Praat's 30 Hz floor (100 ms)
    sf.write(folder / "short.wav", (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16000)
    (folder / "short.csv").write_text("".join(f"{i / 100:.2f},220\n" for i in range(10)))
    result = evaluate_contours(folder, output_dir=tmp_path / "out", baselines="praat")
    assert len(result.problems) == 1 and result.problems[0].startswith("short.wav: praat failed on it (PraatError")
    praat = result.summary.set_index("estimator").loc["praat"]
    assert praat["rpa50"] == 0 and praat["voicing_recall"] == 0 and praat["files"] == 1


def test_no_truth_anywhere_is_a_clear_error(tmp_path):
    sf.write(tmp_path / "song.wav", np.zeros(1600, dtype=np.float32), 16000)
    with pytest.raises(PipelineError, match="no audio file under .* has a truth CSV"):
        evaluate_contours(tmp_path)


def test_the_command_refuses_the_other_modes_options_and_unknown_trackers(contour_set, capsys):
    assert main(["evaluate", str(contour_set), "--labels", "x.csv", "--mode", "contours"]) == 2
    assert "--labels do(es) not apply to contours mode" in capsys.readouterr().err
    assert main(["evaluate", str(contour_set), "--baselines", "praat,yin"]) == 2
    assert capsys.readouterr().err.strip() == ("error: unknown baseline 'yin'; choose from pyin, praat, swift_f0, "
                                               "crepe, crepe_tiny")


def test_an_injected_estimator_and_the_voicing_threshold(contour_set, tmp_path):
    def silent(audio):
        n = len(audio) // 160 + 1
        return Contour(np.arange(n) * 0.01, np.zeros(n), np.zeros(n, dtype=bool))

    result = evaluate_contours(contour_set, output_dir=tmp_path / "out", estimate=silent)
    model = result.summary.iloc[0]
    assert result.ok and model["rpa50"] == 0 and model["voicing_false_alarm"] == 0 and model["files"] == 4
    assert format_contour_summary(result.summary).splitlines()[0].split() == ["metric", "model"]
    with pytest.raises(PipelineError, match="voicing threshold is a confidence from 0 to 1"):
        evaluate_contours(contour_set, voicing_threshold=50)


def test_worst_files_keeps_only_the_few_lowest():
    worst = WorstFiles()
    for i, rpa in enumerate([0.9, 0.2, 0.95, 0.5, 0.1, 0.7, float("nan"), 0.3]):
        worst.offer(rpa, {"path": f"f{i}"})
    assert [item["path"] for item in worst.items()] == ["f4", "f1", "f7", "f3"][:WORST_FILES]


def test_every_measure_is_in_the_tables(contour_set, tmp_path):
    evaluate_contours(contour_set, output_dir=tmp_path / "out")
    assert set(FRAME_METRICS) <= set(pd.read_csv(tmp_path / "out" / "per_file.csv").columns)
    assert set(FRAME_METRICS) <= set(pd.read_csv(tmp_path / "out" / "overall.csv").columns)
