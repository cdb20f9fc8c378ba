"""evaluation: summary figures worked out by hand, per-group tables."""

import numpy as np
import pandas as pd
import pytest

from pipeline.core.errors import PipelineError
from pipeline.report.metrics import by_group, summary


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


def test_summary_all_missing_and_bad_input():
    s = summary([440.0, 220.0], [np.nan, -1.0])
    assert s["missing"] == 2 and s["rpa50"] == 0.0 and np.isnan(s["mae_hz"])
    with pytest.raises(PipelineError, match="shape"):
        summary([440.0], [440.0, 220.0])
    with pytest.raises(PipelineError, match="reference"):
        summary([0.0], [440.0])


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
