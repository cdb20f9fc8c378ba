"""frame_metrics: per-file and pooled figures equal mir_eval's on contours made with known errors."""

import numpy as np
import pytest
from mir_eval import melody

from pipeline.core.errors import PipelineError
from pipeline.report.frame_metrics import FRAME_METRICS, Contour, Pooled, align, score, score_contours

TRUTH_HOP = 128 / 44_100        # MDB-stem-synth's hop: mir_eval must resample it
MIR_EVAL_KEYS = {"voicing_recall": "Voicing Recall", "voicing_false_alarm": "Voicing False Alarm",
                 "rpa50": "Raw Pitch Accuracy", "rca50": "Raw Chroma Accuracy", "overall_accuracy": "Overall Accuracy"}


def vibrato_truth(seconds=2.0, gaps=((0.0, 0.2), (0.9, 1.1), (1.8, 2.0))) -> Contour:
    """220 Hz with +-40 cents of 5 Hz vibrato, unvoiced (0 Hz) in the gaps."""
    t = np.arange(int(seconds / TRUTH_HOP)) * TRUTH_HOP
    hz = 220.0 * 2 ** (40 / 1200 * np.sin(2 * np.pi * 5 * t))
    for start, end in gaps:
        hz[(t >= start) & (t < end)] = 0.0
    return Contour.from_frequency(t, hz)


def truth_hz(times):
    return 220.0 * 2 ** (40 / 1200 * np.sin(2 * np.pi * 5 * np.asarray(times)))


def estimate(hop, cents, start=0.0, seconds=2.0, voiced=None, octave_every=0) -> Contour:
    """The truth's contour at `hop`, moved by `cents`; every `octave_every`-th frame an octave up;
    voiced by `voiced(times)` (default: everywhere)."""
    t = start + np.arange(int((seconds - start) / hop)) * hop
    hz = truth_hz(t) * 2 ** (cents / 1200)
    if octave_every:
        hz[::octave_every] *= 2
    return Contour(t, hz, np.ones(len(t), bool) if voiced is None else voiced(t))


CASES = {
    "30 cents sharp, 10 ms": estimate(0.010, 30.0),
    "8 cents flat, SwiftF0's 16 ms": estimate(0.016, -8.0),
    "starts at 50 ms like Praat, 12 cents": estimate(0.010, 12.0, start=0.05),
    "octave up every 4th frame": estimate(0.010, 3.0, octave_every=4),
    "voiced in the gaps too": estimate(0.010, 0.0, voiced=lambda t: np.ones(len(t), bool)),
    "unvoiced after 1.5 s, pitch kept": estimate(0.010, 5.0, voiced=lambda t: t < 1.5),
    "ends early at 1.2 s": estimate(0.010, -20.0, seconds=1.2),
    "a miss: 70 cents": estimate(0.010, 70.0),
}


def mir_eval_scores(truth: Contour, est: Contour, tolerance: float) -> dict:
    return melody.evaluate(truth.time, np.where(truth.voiced, truth.frequency, 0.0), est.time, est.frequency,
                           est_voicing=est.voiced.astype(float), hop=0.01, cent_tolerance=tolerance)


@pytest.mark.parametrize("name", list(CASES))
def test_each_file_equals_mir_eval(name):
    truth, est = vibrato_truth(), CASES[name]
    ours, _ = score_contours(truth, est)
    at50, at10 = mir_eval_scores(truth, est, 50.0), mir_eval_scores(truth, est, 10.0)
    for key, theirs in MIR_EVAL_KEYS.items():
        assert ours[key] == pytest.approx(at50[theirs], abs=1e-12), key
    assert ours["rpa10"] == pytest.approx(at10["Raw Pitch Accuracy"], abs=1e-12)
    assert ours["rca10"] == pytest.approx(at10["Raw Chroma Accuracy"], abs=1e-12)
    assert ours["frames"] == len(melody.constant_hop_timebase(0.01, truth.time.max()))   # the truth's grid


def test_known_offsets_give_known_figures():
    truth = vibrato_truth()
    sharp, _ = score_contours(truth, CASES["30 cents sharp, 10 ms"])
    assert sharp["rpa50"] == 1.0 and sharp["rpa10"] == 0.0 and sharp["voicing_recall"] == 1.0
    assert sharp["median_abs_cents"] == pytest.approx(30.0, abs=1.0)   # the truth is resampled linearly in cents
    assert sharp["octave_error_rate"] == 0.0 and sharp["voicing_false_alarm"] == 1.0   # voiced throughout
    miss, _ = score_contours(truth, CASES["a miss: 70 cents"])
    assert miss["rpa50"] == 0.0 and miss["median_abs_cents"] == pytest.approx(70.0, abs=1.0)
    octave, _ = score_contours(truth, CASES["octave up every 4th frame"])
    assert octave["octave_error_rate"] == pytest.approx(0.25, abs=0.02)
    assert octave["rpa50"] == pytest.approx(0.75, abs=0.02) and octave["rca50"] == 1.0
    quiet, _ = score_contours(truth, CASES["unvoiced after 1.5 s, pitch kept"])
    assert quiet["rpa50"] == 1.0 and quiet["voicing_recall"] < 0.8   # raw pitch reads an unvoiced frame's pitch


def test_pooled_equals_mir_eval_on_the_files_joined_end_to_end():
    truth, pooled = vibrato_truth(), Pooled()
    parts, per_file = [], []
    for est in CASES.values():
        scores, aligned = score_contours(truth, est)
        pooled.add(scores, aligned)
        parts.append(aligned)
        per_file.append(scores)
    joined = [np.concatenate([getattr(a, k) for a in parts]) for k in ("ref_voicing", "ref_cent", "est_voicing",
                                                                        "est_cent")]
    frames = pooled.frames_row()
    assert frames["voicing_recall"] == pytest.approx(melody.voicing_recall(joined[0], joined[2]), abs=1e-12)
    assert frames["voicing_false_alarm"] == pytest.approx(melody.voicing_false_alarm(joined[0], joined[2]), abs=1e-12)
    for key, tolerance in (("rpa50", 50), ("rpa10", 10)):
        assert frames[key] == pytest.approx(melody.raw_pitch_accuracy(*joined, cent_tolerance=tolerance), abs=1e-12)
    for key, tolerance in (("rca50", 50), ("rca10", 10)):
        assert frames[key] == pytest.approx(melody.raw_chroma_accuracy(*joined, cent_tolerance=tolerance), abs=1e-12)
    assert frames["overall_accuracy"] == pytest.approx(melody.overall_accuracy(*joined), abs=1e-12)
    errors = np.concatenate([np.abs(a.errors()) for a in parts])
    assert frames["median_abs_cents"] == pytest.approx(np.median(errors), abs=0.1)   # 0.1-cent histogram bins
    assert frames["frames"] == len(joined[0]) and frames["files"] == len(CASES)
    files = pooled.files_row()
    for key in FRAME_METRICS:
        assert files[key] == pytest.approx(np.mean([s[key] for s in per_file]), abs=1e-12), key


def test_a_silent_truth_counts_only_in_the_false_alarm():
    t = np.arange(100) * 0.01
    truth = Contour.from_frequency(t, np.zeros(100))
    scores, aligned = score_contours(truth, Contour(t, np.full(100, 200.0), t < 0.5))
    assert scores["voiced_frames"] == 0 and scores["voicing_false_alarm"] == pytest.approx(0.5, abs=0.02)
    assert np.isnan(scores["median_abs_cents"]) and np.isnan(scores["octave_error_rate"])
    pooled = Pooled()
    pooled.add(scores, aligned)
    row = pooled.frames_row()
    assert np.isnan(row["rpa50"]) and np.isnan(row["voicing_recall"]) and row["voicing_false_alarm"] > 0.4


def test_an_empty_estimate_is_unvoiced_throughout():
    truth = vibrato_truth()
    scores = score(align(truth, Contour([], [], [])))
    assert scores["rpa50"] == 0.0 and scores["voicing_recall"] == 0.0 and scores["pitched_frames"] == 0


def test_contour_checks_its_shape_and_cleans_misses():
    with pytest.raises(PipelineError, match="one time, frequency and voicing per frame"):
        Contour([0.0, 0.01], [100.0], [True, True])
    c = Contour([0.0, 0.01, 0.02], [np.nan, -5.0, 100.0], [True, True, True])
    assert c.frequency.tolist() == [0.0, 0.0, 100.0] and c.voiced.tolist() == [False, False, True]
