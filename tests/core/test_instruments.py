"""instruments: General MIDI programs by name or number, with a suggestion for a typo."""

import pytest

from pipeline.core.errors import PipelineError
from pipeline.core.instruments import GM_PROGRAMS, resolve_instrument


def test_instruments_resolve_by_name_or_number():
    assert resolve_instrument("violin").program == 40
    assert resolve_instrument(40).name == "Violin"
    assert resolve_instrument("Acoustic Grand Piano").family == "piano"
    assert resolve_instrument("Gunshot").family == "sound_effects" and len(GM_PROGRAMS) == 128
    assert resolve_instrument("Electric Guitar (jazz)").slug == "electric_guitar_jazz"


def test_unknown_instrument_suggests_a_name():
    with pytest.raises(PipelineError, match="unknown instrument 'Violn'.*Violin"):
        resolve_instrument("Violn")
    with pytest.raises(PipelineError, match="0 to 127"):
        resolve_instrument(128)


def test_every_program_has_nsynth_labels_from_nsynth_lists():
    from pipeline.core.instruments import NSYNTH_FAMILIES, NSYNTH_SOURCES, nsynth_labels

    labels = [nsynth_labels(p) for p in range(128)]
    assert {f for f, _ in labels} == set(NSYNTH_FAMILIES)   # every family is reached, and only those
    assert {s for _, s in labels} == set(NSYNTH_SOURCES)
    assert len(NSYNTH_FAMILIES) == 11 and NSYNTH_FAMILIES.index("bass") == 0 and NSYNTH_FAMILIES[-1] == "vocal"


@pytest.mark.parametrize("name, labels", [
    ("Violin", ("string", "acoustic")), ("Acoustic Grand Piano", ("keyboard", "acoustic")),
    ("Electric Piano 1", ("keyboard", "electronic")), ("Synth Bass 1", ("bass", "synthetic")),
    ("Electric Bass (finger)", ("bass", "electronic")), ("Flute", ("flute", "acoustic")),
    ("Clarinet", ("reed", "acoustic")), ("Trumpet", ("brass", "acoustic")), ("Choir Aahs", ("vocal", "acoustic")),
    ("Drawbar Organ", ("organ", "electronic")), ("Church Organ", ("organ", "acoustic")),
    ("Marimba", ("mallet", "acoustic")), ("Lead 2 (sawtooth)", ("synth_lead", "synthetic")),
    ("Acoustic Guitar (nylon)", ("guitar", "acoustic")), ("Distortion Guitar", ("guitar", "electronic")),
])
def test_nsynth_labels_of_named_programs(name, labels):
    from pipeline.core.instruments import nsynth_labels

    assert nsynth_labels(resolve_instrument(name).program) == labels


def test_a_synthetic_tone_is_nsynth_synthetic_and_a_bad_program_is_refused():
    from pipeline.core.instruments import nsynth_labels

    assert nsynth_labels(-1) == ("synth_lead", "synthetic")
    with pytest.raises(PipelineError, match="0 to 127"):
        nsynth_labels(128)
