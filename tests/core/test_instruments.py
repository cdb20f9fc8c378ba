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
