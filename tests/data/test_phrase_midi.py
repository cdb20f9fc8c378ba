"""Events and the label computed from them (no audio, fast)."""

import numpy as np
import pytest

from pipeline.data.contours import Note, PhraseSpec, Trill, Vibrato, draw_phrase
from pipeline.data.phrase_midi import (
    BEND,
    BEND_RANGE,
    BLOCK,
    LEGATO_SWITCH,
    NOTE_OFF,
    NOTE_ON,
    PROGRAM,
    bend_step_cents,
    block_of,
    build_events,
    label_from_events,
    played_cents,
    reach_cents,
    wanted_block_cents,
)

GLIDE_C2_C6 = PhraseSpec(5.4, (Note(0.1, 0.5, 36), Note(0.5, 4.9, 84, legato=True, glide=4.0)))


def wanted(spec, pe):
    return wanted_block_cents(spec, [min(block_of(n.start), pe.n_blocks - 1) for n in spec.notes], pe.n_blocks)


def test_fluidsynth_pitch_model():
    # FluidSynth 2.3 normalises the wheel sensitivity by 128: +-24 semitones reach 23.81
    assert played_cents(60, 0, 24) == 6000 - 2382            # floor(6000 - 2381.25)
    assert played_cents(60, 16383, 24) == 6000 + 2380        # floor(6000 + 2380.96)
    assert played_cents(60, 8192, 2) == 6000
    assert played_cents(60, 8192 + 12, 2) == 6000            # +0.29 cents: truncated to the whole cent
    assert bend_step_cents(2) == pytest.approx(0.0242, abs=1e-4)
    assert bend_step_cents(24) == pytest.approx(0.2907, abs=1e-4)
    assert reach_cents(24) == pytest.approx(2379.25)


def test_label_is_the_wanted_curve_to_the_nearest_cent():
    for seed in range(30):
        spec = draw_phrase(np.random.default_rng(seed), 6.0, 40, 84)
        pe = build_events(spec, 0)
        w = wanted(spec, pe)
        ok = ~np.isnan(w)
        assert np.array_equal(np.isnan(pe.played), ~ok)
        assert np.max(np.abs(pe.played[ok] - np.round(w[ok]))) == 0  # bends land on the wanted whole cent


def test_events_are_one_channel_block_aligned_and_ordered():
    spec = draw_phrase(np.random.default_rng(3), 6.0, 48, 72)
    pe = build_events(spec, 52)
    kinds = [e.kind for e in pe.events if e.block == 0][:3]
    assert kinds == [PROGRAM, BEND_RANGE, LEGATO_SWITCH]
    assert all(0 <= e.block < pe.n_blocks for e in pe.events)
    assert [e.block for e in pe.events] == sorted(e.block for e in pe.events)
    assert all(0 <= e.value <= 16383 for e in pe.events if e.kind == BEND)
    for j in {e.block for e in pe.events if e.legato}:   # legato: note-on before the note-off
        kinds = [e.kind for e in pe.events if e.block == j and e.legato]
        assert kinds == [NOTE_ON, NOTE_OFF]
    ons = sum(e.kind == NOTE_ON for e in pe.events)
    offs = sum(e.kind == NOTE_OFF for e in pe.events)
    assert ons == offs


def test_label_recomputed_from_the_events_alone():
    spec = draw_phrase(np.random.default_rng(11), 6.0, 48, 72)
    pe = build_events(spec, 0)
    assert np.array_equal(label_from_events(pe.events, pe.n_blocks), pe.played, equal_nan=True)


def test_bend_range_is_the_smallest_that_holds_the_phrase():
    small = PhraseSpec(3.0, (Note(0.1, 2.5, 69, vibrato=Vibrato(5.5, 5.5, 50, 50, 0, 0)),))
    assert build_events(small, 0).bend_range == 2
    trill = PhraseSpec(3.0, (Note(0.1, 2.5, 67, trill=Trill(2, 7.0)),))
    assert build_events(trill, 0).bend_range == 3  # a whole tone needs more than 2 x 127/128 semitones
    leap = PhraseSpec(3.0, (Note(0.1, 1.0, 48), Note(1.0, 2.5, 67, legato=True, glide=0.5)))
    assert build_events(leap, 0).bend_range == 24


def test_a_four_octave_glide_moves_the_key_and_stays_exact():
    pe = build_events(GLIDE_C2_C6, 56)
    ons = [e.note for e in pe.events if e.kind == NOTE_ON]
    assert ons[0] == 36 and ons[-1] == 84 and len(ons) >= 3  # re-keyed on the way: 48 semitones > 2 x 23.8
    w = wanted(GLIDE_C2_C6, pe)
    ok = ~np.isnan(w)
    assert np.max(np.abs(pe.played[ok] - w[ok])) <= 0.5
    assert pe.played[ok].min() == 3600 and pe.played[ok].max() == 8400


def test_sparser_bends_leave_a_staircase():
    spec = PhraseSpec(3.2, (Note(0.1, 2.9, 69, vibrato=Vibrato(9, 9, 150, 150, 0, 0)),))
    dev = {}
    for every in (1, 4, 16):
        pe = build_events(spec, 0, bend_every=every)
        w = wanted(spec, pe)
        dev[every] = np.nanmax(np.abs(pe.played - w))
    print(f"\n|played - drawn| max for a 9 Hz, 150-cent vibrato: {dev}")
    assert dev[1] <= 0.5 < 10 < dev[4] < dev[16]


def test_detached_notes_release_before_the_next_one():
    spec = PhraseSpec(3.0, (Note(0.1, 1.0, 60), Note(1.2, 2.0, 64), Note(2.1, 2.6, 67)))
    pe = build_events(spec, 0)
    offs = [e for e in pe.events if e.kind == NOTE_OFF]
    # 60 dB down (release falls 96 dB over its time) when the next note starts, or the phrase ends
    assert [e.release_s for e in offs] == pytest.approx([1.6 * 0.2, 1.6 * 0.1, 1.6 * 0.4], abs=0.005)
    assert offs[0].block * BLOCK / 44100 == pytest.approx(1.0, abs=BLOCK / 44100)
