"""The clips' format as settings: what each setting gives, and the settings that cannot work together,
each refused in one line naming the keys (by the library, and by the command line without a traceback)."""

from __future__ import annotations

import pytest

from pipeline.core import constants as C
from pipeline.core.audio_format import DEFAULT_FORMAT, ClipFormat, check_model_input, clip_format
from pipeline.core.config import load_config
from pipeline.core.errors import PipelineError
from tests.conftest import run_cli


def test_the_default_is_the_constants_clip():
    cfg = load_config(None)
    assert clip_format(cfg.data) == DEFAULT_FORMAT == ClipFormat(16_000, 5_280, "int16", "wav")
    assert DEFAULT_FORMAT.fixed_bytes == 44 + 2 * C.CLIP_SAMPLES and DEFAULT_FORMAT.is_default


@pytest.mark.parametrize("overrides, want", [
    (["data.sample_rate=44100", "data.clip_seconds=2.0", 'data.file_format="flac"', "data.hold_seconds=2.5",
      "data.release_seconds=2.0"], ClipFormat(44_100, 88_200, "int16", "flac")),
    (["data.sample_rate=22050", 'data.sample_format="int24"'], ClipFormat(22_050, 7_276, "int24", "wav")),
    (["data.sample_rate=48000", 'data.sample_format="float32"', "data.clip_seconds=0.5"],
     ClipFormat(48_000, 24_000, "float32", "wav")),
    (['data.segments=["whole"]', "data.hold_seconds=0.8", "data.release_seconds=0.4"],
     ClipFormat(16_000, 19_200, "int16", "wav")),   # a whole note lasts hold + release
])
def test_settings_give_the_clip_format(overrides, want):
    fmt = clip_format(load_config(None, overrides).data)
    assert fmt == want
    assert fmt.fixed_bytes == (None if want.file_format == "flac" else
                               44 + {"int16": 2, "int24": 3, "float32": 4}[want.sample_format] * want.samples)


@pytest.mark.parametrize("overrides, words", [
    (['data.file_format="flac"', 'data.sample_format="float32"'], ["flac", "float32", "int24"]),
    (['data.segments=["sustain", "whole"]'], ["whole", "alone"]),
    (["data.clip_seconds=2.0"], ["data.hold_seconds", "data.clip_seconds"]),
    (["data.clip_seconds=0.6", "data.hold_seconds=1.0"], ["data.release_seconds", "decay"]),
    (["data.clip_seconds=0.1", "gate.min_sounding_ms=200"], ["gate.min_sounding_ms", "100 ms"]),
    (["data.sample_rate=32000"], ["data.sample_rate"]),
    (['data.sample_format="int8"'], ["data.sample_format"]),
    (["data.clip_seconds=0.01"], ["data.clip_seconds"]),
])
def test_settings_that_cannot_work_together_are_one_line(overrides, words):
    with pytest.raises(PipelineError) as caught:
        load_config(None, overrides)
    message = str(caught.value)
    assert "\n" not in message and all(w in message for w in words), message


def test_whole_notes_need_no_room_for_segments():
    """hold and release shorter than a 330 ms segment are fine for whole notes: there are none."""
    cfg = load_config(None, ['data.segments=["whole"]', "data.hold_seconds=0.2", "data.release_seconds=0.1"])
    assert clip_format(cfg.data).samples == round(0.3 * 16_000)


def test_only_the_frame_model_trains_on_other_clips():
    other = ["data.sample_rate=44100"]
    check_model_input(load_config(None))
    check_model_input(load_config(None, [*other, 'model.variant="frames"', 'features.kind="frames"']))
    for variant in ("bins", "reference", "stream"):
        with pytest.raises(PipelineError, match="model.variant = 'frames'") as caught:
            check_model_input(load_config(None, [*other, f'model.variant="{variant}"']))
        assert "44100 Hz" in str(caught.value) and variant in str(caught.value)


def test_the_command_line_refuses_in_one_line(tmp_path):
    done = run_cli("data", "--set", f'root="{tmp_path}"', "--set", 'data.file_format="flac"',
                   "--set", 'data.sample_format="float32"')
    assert done.returncode != 0 and "Traceback" not in done.stderr
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert len(lines) == 1 and "float32" in lines[0], lines
    assert not (tmp_path / "data").exists()
