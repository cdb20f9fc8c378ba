"""rendering: MIDI files, FluidSynth in-process, notes independent of what came before, soundfont checks."""

import numpy as np
import pytest

from pipeline.errors import PipelineError
from pipeline.pitch import bend_for_cents
from pipeline.rendering import Renderer, block_align, note_midi_bytes, soundfont_info
from tests.conftest import TEST_SOUNDFONT


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
    assert first.shape == (66176, 2)  # 1.5 s at 44.1 kHz (66,150 samples), up to whole 64-sample blocks
    assert np.abs(first).max() > 0.01
    assert np.array_equal(first, again)


def test_block_align_rounds_up_to_fluidsynths_blocks():
    assert [block_align(n) for n in (0, 1, 64, 65, 44100.0000001)] == [0, 64, 64, 128, 44160]


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
