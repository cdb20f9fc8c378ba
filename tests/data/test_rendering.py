"""rendering: MIDI files, FluidSynth in-process, notes independent of what came before, soundfont checks."""

from pathlib import Path

import numpy as np
import pytest

from pipeline.core.errors import PipelineError
from pipeline.core.pitch import bend_for_cents
from pipeline.data import rendering
from pipeline.data.rendering import Renderer, block_align, note_midi_bytes, soundfont_info, soundfont_paths
from tests.conftest import TEST_SOUNDFONT

SYSTEM_FONTS = "/usr/share/sounds/sf2"


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


def test_missing_and_corrupt_soundfonts_are_named(tmp_path, monkeypatch):
    with pytest.raises(PipelineError, match="nope.sf2 not found; list existing"):
        soundfont_info(tmp_path / "nope.sf2")
    with pytest.raises(PipelineError, match=f"FluidR3_GM.sf2 not found .* installed as {SYSTEM_FONTS}/FluidR3_GM.sf2"):
        soundfont_info(tmp_path / "FluidR3_GM.sf2")  # what is missing is the path, not the font
    monkeypatch.setattr(rendering, "SYSTEM_SOUNDFONT_FOLDERS", (str(tmp_path),))
    with pytest.raises(PipelineError, match="not found; install it .Debian: apt-get install fluid-soundfont-gm."):
        soundfont_info(tmp_path / "FluidR3_GM.sf2")  # nowhere: then the package is what is missing
    bad = tmp_path / "bad.sf2"
    bad.write_bytes(b"this is not a soundfont at all")
    with pytest.raises(PipelineError, match="corrupt"):
        soundfont_info(bad)
    truncated = tmp_path / "truncated.sf2"
    truncated.write_bytes(b"RIFF\x00\x10\x00\x00sfbkLIST" + b"\x00" * 64)
    with pytest.raises(PipelineError, match="truncated"):
        Renderer(truncated)


# --- several soundfonts -------------------------------------------------------------------------
def test_soundfont_patterns_expand_sorted_once_per_file(tmp_path):
    import shutil

    for name in ("b.sf2", "a.sf2"):
        shutil.copy(TEST_SOUNDFONT, tmp_path / name)
    (tmp_path / "link.sf2").symlink_to(tmp_path / "a.sf2")
    paths = soundfont_paths([str(tmp_path / "b.sf2"), str(tmp_path / "*.sf2")])
    assert [p.name for p in paths] == ["b.sf2", "a.sf2"]  # listed first, then the pattern's others; the link is a.sf2
    with pytest.raises(PipelineError, match="matches no file"):
        soundfont_paths([str(tmp_path / "*.sf3")])
    (tmp_path / "other").mkdir()
    shutil.copy(TEST_SOUNDFONT, tmp_path / "other" / "a.sf2")
    with pytest.raises(PipelineError, match="two different files named a.sf2"):
        soundfont_paths([str(tmp_path / "a.sf2"), str(tmp_path / "other" / "a.sf2")])


def test_presets_are_read_from_the_headers(tmp_path):
    from pipeline.data.rendering import soundfont_presets

    presets = soundfont_presets(TEST_SOUNDFONT)
    assert len(presets) == 128 and presets[40] == "Violin" and presets[73] == "Flute TB"
    renderer = Renderer(TEST_SOUNDFONT)
    assert [renderer.preset_name(p) for p in (40, 73)] == ["Violin", "Flute TB"]  # what FluidSynth says too
    renderer.close()


def test_fluidsynth_reverb_is_per_note_and_repeats():
    from pipeline.data.rendering import FluidReverb

    renderer = Renderer(TEST_SOUNDFONT, effects=True)
    note = note_midi_bytes(19, 57, 100, 0, 1.0)  # Church Organ
    big_room, small_room = FluidReverb(0.9, 0.2, 0.9), FluidReverb(0.2, 0.8, 0.3)
    dry, big, again, small = (renderer.render(note, 1.5, reverb) for reverb in (None, big_room, big_room, small_room))
    plain = Renderer(TEST_SOUNDFONT)
    assert np.array_equal(dry, plain.render(note, 1.5))  # the unit on but unused changes nothing
    with pytest.raises(PipelineError, match="effects=True"):
        plain.render(note, 1.5, FluidReverb(0.5, 0.5, 0.5))
    renderer.close()
    plain.close()
    assert np.array_equal(big, again) and not np.array_equal(big, small)
    tail = slice(int(1.15 * 44100), None)  # after the note-off: the room rings on
    level = [float(np.sqrt(np.mean(x[tail] ** 2))) for x in (dry, small, big)]
    assert level[0] < level[1] < level[2] and level[2] > 1.5 * level[0]


def test_a_font_named_by_file_name_is_looked_for_in_the_soundfont_folders(tmp_path, monkeypatch):
    """PIPELINE_SOUNDFONT_PATH first, then the system's folders; a pattern without a folder too;
    a name found nowhere is one line naming the folders, the variable and the Debian package."""
    import shutil

    mine, other = tmp_path / "mine", tmp_path / "other"
    for folder in (mine, other):
        folder.mkdir()
        shutil.copy(TEST_SOUNDFONT, folder / "Mine.sf2")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PIPELINE_SOUNDFONT_PATH", f"{tmp_path / 'empty'}:{mine}:{other}")
    assert soundfont_paths(["Mine.sf2"]) == [mine / "Mine.sf2"]          # the first folder that has it
    assert soundfont_paths(["Min?.sf2"]) == [mine / "Mine.sf2"]
    assert soundfont_paths(["TimGM6mb.sf2"]) == [Path(SYSTEM_FONTS) / "TimGM6mb.sf2"]  # then the system's
    shutil.copy(TEST_SOUNDFONT, tmp_path / "Mine.sf2")
    assert soundfont_paths(["Mine.sf2"]) == [Path("Mine.sf2")]           # a file here is that file
    monkeypatch.setattr(rendering, "SYSTEM_SOUNDFONT_FOLDERS", ())
    with pytest.raises(PipelineError, match=f"TimGM6mb.sf2 not found in the soundfont folders .{tmp_path}/empty, "
                                            ".*apt-get install timgm6mb-soundfont.*PIPELINE_SOUNDFONT_PATH"):
        soundfont_paths(["TimGM6mb.sf2"])
