"""Drawing phrases and their curves (pure numpy, fast)."""

import numpy as np
import pytest

from pipeline.data.contours import (
    Drift,
    Note,
    PhraseSpec,
    Trill,
    Vibrato,
    draw_phrase,
    note_plan,
    pitch_curve,
    pitch_curve_samples,
)


def draws(n=60, seconds=6.0):
    return [draw_phrase(np.random.default_rng(seed), seconds, 48, 76) for seed in range(n)]


def test_same_seed_same_spec_and_short_values():
    a = draw_phrase(np.random.default_rng(7), 5.0, 50, 70)
    b = draw_phrase(np.random.default_rng(7), 5.0, 50, 70)
    assert a == b and hash(a) == hash(b)
    assert a != draw_phrase(np.random.default_rng(8), 5.0, 50, 70)
    for note in a.notes:  # values are stored rounded (short reprs)
        assert note.start == round(note.start, 3) and note.end == round(note.end, 3)
        if note.vibrato:
            assert note.vibrato.depth == round(note.vibrato.depth, 1)


def test_notes_fit_the_phrase_and_range():
    for spec in draws():
        assert spec.notes, "every phrase has notes"
        for a, b in zip(spec.notes, spec.notes[1:]):
            assert b.start >= a.end
            assert (b.start == a.end) == b.legato or (b.start > a.end and not b.legato)
            if b.legato:
                assert b.midi != a.midi  # a repeated note is re-attacked
        assert all(48 <= n.midi <= 76 for n in spec.notes)
        assert spec.notes[-1].end <= spec.seconds - 0.3  # room for the release


def test_every_gesture_is_drawn_in_its_range():
    notes = [n for spec in draws(120) for n in spec.notes]
    vib = [n.vibrato for n in notes if n.vibrato]
    trills = [n.trill for n in notes if n.trill]
    assert len(vib) > 50 and len(trills) > 10
    assert all(3 <= v.rate <= 9 and 3 <= v.rate_end <= 9 and 5 <= v.depth <= 150 for v in vib)
    assert all(abs(t.interval) in (1, 2) and 5 <= t.rate <= 9 for t in trills)
    assert any(n.glide > 0 for n in notes) and any(n.scoop for n in notes) and any(n.fall for n in notes)
    assert any(n.legato for n in notes) and any(not n.legato for n in notes[1:])
    steps = [abs(b.midi - a.midi) for spec in draws(120) for a, b in zip(spec.notes, spec.notes[1:]) if b.glide]
    assert max(steps) > 12 and max(steps) <= 24  # glides up to two octaves


def test_vibrato_rate_and_depth():
    spec = PhraseSpec(3.0, (Note(0.0, 3.0, 69, vibrato=Vibrato(5.5, 5.5, 50.0, 50.0, 0.0, 0.0)),))
    t = np.arange(0, 3.0, 1 / 4000)
    c = pitch_curve(spec, t) - 6900
    assert np.max(np.abs(c)) == pytest.approx(50.0, abs=0.01)
    crossings = np.count_nonzero(np.diff(np.sign(c[1:])) != 0)
    assert crossings == pytest.approx(2 * 5.5 * 3.0, abs=1)


def test_vibrato_waits_for_its_delay_and_drifts():
    v = Vibrato(4.0, 8.0, 20.0, 100.0, 0.5, 0.2)
    spec = PhraseSpec(4.0, (Note(0.0, 3.0, 60, vibrato=v),))
    t = np.arange(0, 3.0, 1 / 4000)
    c = pitch_curve(spec, t) - 6000
    assert np.all(c[t < 0.5] == 0)
    assert np.max(np.abs(c[t > 2.5])) > 80  # depth has grown towards 100


def test_trill_alternates_between_the_two_notes():
    spec = PhraseSpec(2.0, (Note(0.0, 2.0, 67, trill=Trill(1, 7.0)),))
    c = pitch_curve(spec, np.arange(0, 2.0, 1 / 8000)) - 6700
    assert set(np.round(c[np.abs(c - np.round(c / 100) * 100) < 1e-6] / 100)) <= {0.0, 1.0}
    ups = np.count_nonzero(np.diff((c > 50).astype(int)) == 1)
    assert ups == pytest.approx(7 * 2.0, abs=1)


def test_glide_scoop_fall_and_rest():
    spec = PhraseSpec(3.0, (Note(0.1, 1.0, 48, scoop=-150, scoop_time=0.1, fall=-200, fall_time=0.2),
                            Note(1.0, 2.0, 72, legato=True, glide=0.5), Note(2.3, 2.6, 60)))
    def at(s):
        return float(pitch_curve(spec, np.array([s]))[0])
    assert np.isnan(at(0.05))
    assert at(0.1) == pytest.approx(4800 - 150)
    assert at(0.5) == pytest.approx(4800)
    assert at(0.999) == pytest.approx(4600, abs=1)      # fall done at the note-off
    assert at(1.0) == pytest.approx(4600, abs=1)        # the glide starts where the fall ended
    assert at(1.5) == pytest.approx(7200)
    assert at(2.15) == pytest.approx(7200)              # rest: the tail keeps the last pitch
    assert [p.legato for p in note_plan(spec)] == [False, True, False]


def test_drift_and_samples():
    spec = PhraseSpec(2.0, (Note(0.0, 1.5, 60),), Drift(10.0, 0.5, 0.0))
    c = pitch_curve_samples(spec)
    assert len(c) == 88200
    assert np.nanmax(c) - 6000 == pytest.approx(10.0, abs=0.01)


def test_bad_specs_are_refused():
    with pytest.raises(ValueError):
        PhraseSpec(2.0, (Note(0.0, 1.0, 60), Note(0.5, 1.5, 62)))
    with pytest.raises(ValueError):
        PhraseSpec(2.0, (Note(0.0, 1.0, 60), Note(1.2, 1.5, 62, legato=True)))
