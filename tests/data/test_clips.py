"""The clips' files in every format the data stage writes: the bytes are the same for the same samples,
libsndfile (and so `datasets`, torchaudio, librosa) reads back exactly the quantised values, and
read_clip checks a clip against its dataset's format."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf

from pipeline.core import constants as C
from pipeline.core.audio_format import ClipFormat
from pipeline.core.errors import PipelineError
from pipeline.data import postprocessing as post
from pipeline.data.clips import clip_bytes, read_clip, resample_clips, wav_bytes

FORMATS = [ClipFormat(16_000, 5_280, "int16", "wav"), ClipFormat(44_100, 88_200, "int16", "flac"),
           ClipFormat(22_050, 7_276, "int24", "wav"), ClipFormat(48_000, 4_800, "int24", "flac"),
           ClipFormat(44_100, 14_553, "float32", "wav")]
SUBTYPES = {("int16", "wav"): "PCM_16", ("int16", "flac"): "PCM_16", ("int24", "wav"): "PCM_24",
            ("int24", "flac"): "PCM_24", ("float32", "wav"): "FLOAT"}
FULL_SCALE = {"int16": 32768, "int24": 2**23, "float32": 1}


def note(fmt: ClipFormat, seed: int = 0) -> np.ndarray:
    t = np.arange(fmt.samples) / fmt.rate
    noise = np.random.default_rng(seed).standard_normal(fmt.samples) * 0.01
    return (0.3 * np.sin(2 * np.pi * 220.0 * t) + noise).astype(np.float32)


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f"{f.rate}-{f.sample_format}-{f.file_format}")
def test_a_clip_reads_back_exactly_in_every_format(fmt):
    samples = post.quantize(note(fmt), fmt.sample_format)
    data = clip_bytes(samples, fmt)
    assert data == clip_bytes(post.quantize(note(fmt), fmt.sample_format), fmt)   # same samples, same bytes
    assert fmt.fixed_bytes in (None, len(data))
    info = sf.info(io.BytesIO(data))
    assert (info.samplerate, info.channels, info.frames) == (fmt.rate, 1, fmt.samples)
    assert (info.format, info.subtype) == (fmt.file_format.upper(), SUBTYPES[fmt.sample_format, fmt.file_format])
    want = samples.astype(np.float64) / FULL_SCALE[fmt.sample_format]
    libsndfile, _ = sf.read(io.BytesIO(data), dtype="float64")
    assert np.array_equal(libsndfile, want)
    ours = read_clip("clip", data, fmt)
    assert ours.dtype == np.float32 and np.array_equal(ours, want.astype(np.float32))
    peak_db = 20 * np.log10(np.abs(want).max())
    assert abs(peak_db - C.PEAK_NORMALIZE_DBFS) < 0.01


def test_the_default_wav_is_what_it_always_was():
    samples = post.quantize(note(FORMATS[0]))
    assert clip_bytes(samples, FORMATS[0]) == wav_bytes(post.to_pcm16(note(FORMATS[0])))
    buffer = io.BytesIO()
    sf.write(buffer, samples, 16_000, subtype="PCM_16", format="WAV")
    assert clip_bytes(samples, FORMATS[0]) == buffer.getvalue()   # byte for byte libsndfile's


def test_read_clip_names_a_clip_of_another_format():
    fmt = FORMATS[1]
    data = clip_bytes(post.quantize(note(fmt), "int16"), fmt)
    with pytest.raises(PipelineError, match=r"clip x\.flac is not 5280 mono samples at 16000 Hz"):
        read_clip("x.flac", data)
    with pytest.raises(PipelineError, match="cannot read audio"):
        read_clip("x.flac", data[: len(data) // 2] + b"\x00" * 16, fmt)
    silent = clip_bytes(post.quantize(np.zeros(fmt.samples, np.float32), "int16"), fmt)
    assert not read_clip("silent.flac", silent, fmt).any()


def test_resampled_clips_keep_the_pitch():
    fmt = FORMATS[1]
    clips = np.stack([note(fmt, seed) for seed in range(3)])
    at16 = resample_clips(clips, fmt.rate, C.SAMPLE_RATE)
    assert at16.shape == (3, 32_000)
    spectrum = np.abs(np.fft.rfft(at16[0] * np.hanning(32_000)))
    assert abs(np.argmax(spectrum) * C.SAMPLE_RATE / 32_000 - 220.0) < 0.6
    assert resample_clips(clips, 16_000, 16_000) is clips


@pytest.mark.parametrize("record", [{"rate": "x", "samples": 5, "sample_format": "int16", "file_format": "wav"},
                                    {"rate": 16_000, "samples": -5, "sample_format": "int16", "file_format": "wav"},
                                    {"rate": 16_000, "samples": 5_280, "sample_format": "int16"}, [1, 2], "abc"])
def test_a_damaged_audio_record_is_one_line(tmp_path, record):
    import json

    from pipeline.data.clips import dataset_format

    (tmp_path / "dataset.json").write_text(json.dumps({"audio": record}))
    with pytest.raises(PipelineError, match="damaged 'audio' record; run make data"):
        dataset_format(tmp_path)
    (tmp_path / "dataset.json").write_text(json.dumps({"clips": 3}))   # built before it was recorded
    assert dataset_format(tmp_path) == ClipFormat()
