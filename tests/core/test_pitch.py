"""pitch: conversions, note names, the pitch wheel, and the one accuracy rule everything shares."""

import numpy as np
import pytest

from pipeline.core import pitch


def test_midi_and_hz_convert_both_ways():
    assert pitch.midi_to_hz(69) == pytest.approx(440.0)
    assert pitch.midi_to_hz(60) == pytest.approx(261.6256, rel=1e-6)
    np.testing.assert_allclose(pitch.hz_to_midi(pitch.midi_to_hz(np.array([21.0, 60.5, 108.0]))), [21, 60.5, 108])


def test_note_names_and_their_parser():
    assert pitch.note_name(69) == "A4" and pitch.note_name(61) == "Cs4" and pitch.note_name(36) == "C2"
    assert pitch.note_to_midi("A4") == 69 and pitch.note_to_midi("C-1") == 0 and pitch.note_to_midi("Cb4") == 59
    assert pitch.note_to_midi("C#4") == pitch.note_to_midi("Db4") == pitch.note_to_midi("Cs4") == 61
    assert pitch.note_to_midi("G9") == 127 and pitch.note_to_midi("Gs9") is None and pitch.note_to_midi("X4") is None
    assert all(pitch.note_to_midi(pitch.note_name(m)) == m for m in range(128))


def test_bends_round_to_the_wheels_resolution():
    bend = pitch.bend_for_cents(37.3)
    assert abs(pitch.cents_for_bend(bend) - 37.3) < 0.02  # the wheel's step is 200/8192 cents
    assert pitch.bend_for_cents(500.0) == 8191 and pitch.bend_for_cents(-500.0) == -8192


def test_cents_are_signed_and_nan_for_misses():
    assert pitch.cents([440.0], [880.0])[0] == pytest.approx(1200)
    assert pitch.cents([440.0], [220.0])[0] == pytest.approx(-1200)
    assert np.isnan(pitch.cents([440.0, 440.0, 440.0], [0.0, -3.0, np.inf])).all()


def test_within_is_strict_as_in_mir_eval_and_a_miss_is_outside():
    assert pitch.within([49.9, -49.9, 50.0, -50.0, 50.1, np.nan], 50.0).tolist() == [True, True, False, False,
                                                                                    False, False]
    assert pitch.within([9.99, 10.0], 10.0).tolist() == [True, False]


def test_octave_errors_are_multiples_of_1200_within_50_cents():
    cents = np.array([1200.0, 1180.0, -2400.0, 1260.0, 700.0, 0.0, 30.0, np.nan])
    assert pitch.octave_errors(cents).tolist() == [True, True, True, False, False, False, False, False]
