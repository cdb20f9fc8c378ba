"""The label against the audio alone: mono 44.1 kHz -> 16 kHz (soxr), YIN with parabolic
interpolation on 30 ms windows (tests/yin.py, independent of the label code), compared on the
label's clean frames with the label averaged over each YIN window (tests/measure.py).

Sample content the label cannot know (recorded vibrato, chorus of ensemble samples, attack
transients, a sample's own mistuning) shows up here as error; NOTES.md has the survey. The
strict bound (RPA10 >= 99 %, median <= 5 cents) holds on every gesture and on random phrases
for steady waveforms (square, saw) in two fonts; real instruments in three fonts are held to
RPA50 >= 98 % (99 % on random phrases), RPA10 >= 97 % (random phrases) and median <= 5 cents:
their misses sit in the first 30-80 ms after attacks (sample transients), see NOTES.md."""

import numpy as np
import pytest

from pipeline.data.contours import Note, PhraseSpec, Trill, Vibrato, draw_phrase
from tests.data.phrase_measure import measure

GESTURES = {
    "vibrato +-50c 5.5Hz": PhraseSpec(3.0, (Note(0.1, 2.6, 69, vibrato=Vibrato(5.5, 5.5, 50.0, 50.0, 0.0, 0.0)),)),
    "glide C2-C6 4s": PhraseSpec(5.4, (Note(0.1, 0.5, 36), Note(0.5, 4.9, 84, legato=True, glide=4.0))),
    "trill 1st 7Hz": PhraseSpec(3.0, (Note(0.1, 2.6, 67, trill=Trill(1, 7.0)),)),
    "scoops+falls": PhraseSpec(3.0, (Note(0.1, 1.0, 62, scoop=-150, scoop_time=0.15, fall=-200, fall_time=0.2),
                                     Note(1.3, 2.4, 66, scoop=80, scoop_time=0.1, fall=-300, fall_time=0.25))),
}
STEADY = [("timgm", 80), ("timgm", 81), ("musescore", 80)]            # square, saw, square lead
REAL = [("fluidr3", 56), ("fluidr3", 71), ("fluidr3", 53), ("timgm", 0), ("timgm", 42), ("timgm", 53),
        ("timgm", 57), ("musescore", 56), ("musescore", 71)]
RANDOM_STEADY = [("timgm", 80), ("timgm", 81), ("musescore", 80)]
RANDOM_REAL = [("timgm", 0), ("musescore", 71), ("fluidr3", 71), ("timgm", 57), ("timgm", 42)]
# not in RANDOM_REAL: FluidR3/MuseScore Trumpet, whose recorded attacks scoop (RPA10 87 % on random
# phrases with many attacks, RPA50 99.7 %)


def measured_gestures(renderers, font, program):
    """Each gesture of GESTURES rendered by the preset and measured against its label, a line printed for each."""
    r = renderers(font)
    print()
    for name, spec in GESTURES.items():
        out = r.render(spec, program)
        acc = measure(out.audio, out.label)
        print(f"{font:9s} {program:3d} {r.preset_name(program)[:18]:18s} {name:20s} {acc.line()}")
        yield acc


@pytest.mark.parametrize("font,program", STEADY)
def test_steady_waveforms_follow_the_label_on_every_gesture(renderers, font, program):
    for acc in measured_gestures(renderers, font, program):
        assert acc.frames > 150
        assert acc.rpa10 >= 0.99 and acc.median_cents <= 5.0


@pytest.mark.parametrize("font,program", REAL)
def test_real_instruments_follow_the_label(renderers, font, program):
    for acc in measured_gestures(renderers, font, program):
        assert acc.rpa >= 0.98 and acc.median_cents <= 5.0


def random_phrase_errors(r, font, program):
    """|error| (cents) on the clean frames of 4 random 6 s phrases (all gestures, legato and
    detached notes, rests), printed as one line."""
    errors = []
    for seed in range(4):
        spec = draw_phrase(np.random.default_rng(100 + seed), 6.0, 45, 81)
        out = r.render(spec, program)
        errors.append(measure(out.audio, out.label).errors)
    e = np.abs(np.concatenate(errors))
    print(f"\n{font:9s} {program:3d} {r.preset_name(program)[:18]:18s} 4 random phrases: frames={len(e)} "
          f"RPA50={100 * np.mean(e <= 50):.2f}% RPA10={100 * np.mean(e <= 10):.2f}% median|err|={np.median(e):.2f}c")
    return e


@pytest.mark.parametrize("font,program", RANDOM_STEADY)
def test_random_phrases_on_steady_waveforms(renderers, font, program):
    e = random_phrase_errors(renderers(font), font, program)
    assert np.mean(e <= 10) >= 0.99 and np.median(e) <= 5.0


@pytest.mark.parametrize("font,program", RANDOM_REAL)
def test_random_phrases_on_real_instruments(renderers, font, program):
    e = random_phrase_errors(renderers(font), font, program)
    assert np.mean(e <= 50) >= 0.99 and np.mean(e <= 10) >= 0.97 and np.median(e) <= 5.0
