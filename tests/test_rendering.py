import numpy as np
import pytest

from pipeline import constants as C
from pipeline.errors import PipelineError
from pipeline.rendering import (Renderer, bend_for_cents, cents_for_bend, midi_to_hz, note_midi_bytes, note_name,
                                resolve_instrument, soundfont_info)
from tests.conftest import TEST_SOUNDFONT


def test_instruments_resolve_by_name_or_number():
    assert resolve_instrument("violin").program == 40
    assert resolve_instrument(40).name == "Violin"
    assert resolve_instrument("Acoustic Grand Piano").family == "piano"


def test_unknown_instrument_suggests_a_name():
    with pytest.raises(PipelineError, match="unknown instrument 'Violn'.*Violin"):
        resolve_instrument("Violn")


def test_pitch_helpers():
    assert midi_to_hz(69) == pytest.approx(440.0)
    assert note_name(69) == "A4" and note_name(61) == "Cs4" and note_name(36) == "C2"
    bend = bend_for_cents(37.3)
    assert abs(cents_for_bend(bend) - 37.3) < 0.02  # the wheel's step is 200/8192 cents


def test_midi_file_holds_program_bend_and_note():
    import io

    import mido

    data = note_midi_bytes(40, 69, 90, bend_for_cents(-20), 1.0)
    messages = [m for m in mido.MidiFile(file=io.BytesIO(data)) if not m.is_meta]
    kinds = [m.type for m in messages]
    assert "program_change" in kinds and "pitchwheel" in kinds
    assert kinds.count("note_on") + kinds.count("note_off") == 2
    assert any(m.type == "pitchwheel" and m.pitch == bend_for_cents(-20) for m in messages)


def test_a_note_renders_the_same_whatever_was_rendered_before():
    renderer = Renderer(TEST_SOUNDFONT)
    note = note_midi_bytes(40, 69, 100, 0, 1.0)
    first = renderer.render(note, 1.5)
    renderer.render(note_midi_bytes(0, 40, 127, 3000, 0.5), 1.5)
    again = renderer.render(note, 1.5)
    renderer.close()
    assert first.shape == (_whole_blocks(1.5 * C.RENDER_RATE), 2)
    assert np.abs(first).max() > 0.01
    assert np.array_equal(first, again)


def _whole_blocks(samples: float) -> int:
    return int(np.ceil(samples / C.FLUID_BLOCK)) * C.FLUID_BLOCK


def test_missing_and_corrupt_soundfonts_are_named(tmp_path):
    with pytest.raises(PipelineError, match="not found.*fluid-soundfont-gm"):
        soundfont_info(tmp_path / "nope.sf2")
    bad = tmp_path / "bad.sf2"
    bad.write_bytes(b"this is not a soundfont at all")
    with pytest.raises(PipelineError, match="corrupt"):
        soundfont_info(bad)
    truncated = tmp_path / "truncated.sf2"
    truncated.write_bytes(b"RIFF\x00\x10\x00\x00sfbkLIST" + b"\x00" * 64)
    with pytest.raises(PipelineError, match="truncated"):
        Renderer(truncated)
