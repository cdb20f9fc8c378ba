"""audio: files and arrays in, mono 16 kHz out, whole (`read_audio` + `to_model_rate`) or a block at a
time (`audio_blocks`), with channels that differ so that a mix of one channel alone shows."""

import numpy as np
import pytest
import soundfile as sf

from pipeline.core import constants as C
from pipeline.core.errors import PipelineError
from pipeline.dsp.audio import audio_blocks, read_audio, to_model_rate


def channels(rate: int, seconds: float, count: int) -> np.ndarray:
    """(samples, count) float32: a different tone in each channel (220, 330, 495 Hz ...)."""
    t = np.arange(round(seconds * rate)) / rate
    return np.stack([0.3 * np.sin(2 * np.pi * 220 * 1.5 ** c * t) for c in range(count)], axis=1).astype(np.float32)


def mean_of(audio: np.ndarray) -> np.ndarray:
    """The documented mix, written out: the sum of the channels over their number, in float32."""
    total = np.zeros(len(audio), np.float32)
    for c in range(audio.shape[1]):
        total += audio[:, c]
    return total / np.float32(audio.shape[1])


@pytest.mark.parametrize("count", [2, 3])
def test_channels_are_mixed_to_their_mean(count):
    audio = channels(C.SAMPLE_RATE, 0.5, count)
    mono = to_model_rate(audio, C.SAMPLE_RATE)
    np.testing.assert_allclose(mono, mean_of(audio), rtol=0, atol=1e-7)
    assert not np.allclose(mono, audio[:, 0], atol=1e-3) and not np.allclose(mono, audio[:, 1], atol=1e-3)
    opposite = np.stack([audio[:, 0], -audio[:, 0]], axis=1)     # a channel and its negative cancel
    assert np.abs(to_model_rate(opposite, C.SAMPLE_RATE)).max() == 0.0


@pytest.mark.parametrize("rate", [16000, 44100])
def test_a_file_read_in_blocks_is_the_file_read_whole(tmp_path, rate):
    """Mixed the same way, resampled to the same samples (soxr's stream within float error of the
    whole-file call), over several blocks."""
    audio = channels(rate, 2.3, 2)
    path = tmp_path / "two.wav"
    sf.write(path, audio, rate, subtype="FLOAT")
    whole = to_model_rate(*read_audio(path))
    pieces = list(audio_blocks(path, block_seconds=0.5))
    assert len(pieces) == 5
    streamed = np.concatenate(pieces)
    assert len(streamed) == len(whole) == round(2.3 * C.SAMPLE_RATE)
    np.testing.assert_allclose(streamed, whole, atol=1e-5)
    if rate == C.SAMPLE_RATE:
        np.testing.assert_array_equal(streamed, mean_of(audio))


def test_resampling_keeps_the_pitch_and_the_length():
    t = np.arange(44100) / 44100
    mono = to_model_rate(np.sin(2 * np.pi * 440.0 * t).astype(np.float32), 44100)
    assert len(mono) == C.SAMPLE_RATE
    spectrum = np.abs(np.fft.rfft(mono * np.hanning(len(mono))))
    assert np.argmax(spectrum) == 440   # 1 Hz bins


def test_bad_audio_is_one_line_naming_the_file(tmp_path):
    (tmp_path / "text.wav").write_text("not audio")
    (tmp_path / "empty.wav").write_bytes(b"")
    for name, words in (("text.wav", "cannot be read as audio"), ("empty.wav", "is empty"),
                        ("missing.wav", "file not found")):
        for read in (read_audio, lambda p: list(audio_blocks(p))):
            with pytest.raises(PipelineError, match=words) as err:
                read(tmp_path / name)
            assert str(err.value).startswith(str(tmp_path / name)) and "\n" not in str(err.value)
    with pytest.raises(PipelineError, match="NaN"):
        to_model_rate(np.array([[0.0, np.nan]], np.float32), C.SAMPLE_RATE)
