import numpy as np
import pytest

from pipeline.core import constants as C
from pipeline.core.config import GateConfig
from pipeline.data import postprocessing as post

GATE = GateConfig(silent_peak_dbfs=-60.0, min_rms_db_below_note=40.0, min_sounding_ms=50)


def tone(seconds: float, hz: float = 440.0, rate: int = C.SAMPLE_RATE) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


@pytest.mark.parametrize("resampler", ["soxr", "sox"])
def test_one_resampler_run_resamples_a_batch_and_cuts_it_back_exactly(resampler):
    notes = [np.stack([tone(1.0, hz, C.RENDER_RATE)] * 2, axis=1) for hz in (220.0, 440.0, 880.0)]
    alone = [post.resample(post.to_mono(n), resampler) for n in notes]
    batched = post.batch_to_dataset_rate(notes, resampler)
    for a, b in zip(alone, batched):
        assert len(b) == round(len(notes[0]) * 160 / 441)
        middle = slice(1000, 15000)  # away from the edges, where the filter sees the neighbours' gap
        np.testing.assert_allclose(a[middle], b[middle], atol=1e-4)
        assert np.abs(b).max() == pytest.approx(0.5, abs=0.01)  # remix averages the channels: no clipping


def test_soxr_and_the_sox_process_agree_and_keep_the_pitch():
    t = np.arange(C.RENDER_RATE) / C.RENDER_RATE
    left = 0.5 * np.sin(2 * np.pi * 440 * t) + 0.1 * np.sin(2 * np.pi * 5000 * t)
    stereo = np.stack([left, 0.5 * left], axis=1).astype(np.float32)
    soxr_out = post.resample(post.to_mono(stereo), "soxr")
    sox_out = post.to_dataset_rate(stereo)  # the sox process mixes the stereo input itself
    assert len(soxr_out) == len(sox_out) == C.SAMPLE_RATE
    middle = slice(500, -500)
    error_db = 10 * np.log10(np.mean((soxr_out - sox_out)[middle] ** 2) / np.mean(sox_out[middle] ** 2))
    assert error_db < -60  # measured about -74 dB: the same resampler family, not the same bits
    spectrum = np.abs(np.fft.rfft(soxr_out * np.hanning(len(soxr_out))))
    assert np.argmax(spectrum) == 440  # 1 Hz bins over one second


def test_segments_are_5280_samples_where_expected():
    audio = np.arange(32000, dtype=np.float32)
    starts = post.segment_starts(hold_samples=16000, sustain_at=0.5, onset=10)
    clips = post.slice_segments(audio, starts)
    assert all(len(c) == C.CLIP_SAMPLES for c in clips.values())
    assert clips["attack"][0] == 10 and clips["decay"][0] == 16000
    assert clips["sustain"][C.CLIP_SAMPLES // 2] == 8000


def test_onset_and_release_segments_hold_the_note_on_and_off_inside():
    starts = post.segment_starts(hold_samples=16000, sustain_at=0.5, onset=4810, onset_lead=1600, release_at=0.25,
                                 note_on=4800)
    assert starts["attack"] == 4810 and starts["decay"] == 4800 + 16000
    assert starts["onset"] == 4810 - 1600                       # the note begins 100 ms into the clip
    assert starts["release"] == 4800 + 16000 - 1320             # the note-off a quarter into the clip
    assert starts["sustain"] == 4800 + 8000 - C.CLIP_SAMPLES // 2
    assert set(post.segment_starts(16000, 0.5, 10)) == {"attack", "sustain", "decay"}  # as before, by default


def test_mono_notes_pass_through_the_batch_like_stereo_ones():
    mono = tone(1.0, 440.0, C.RENDER_RATE)
    stereo = np.stack([mono, mono], axis=1)
    (a,), (b,) = post.batch_to_dataset_rate([mono]), post.batch_to_dataset_rate([stereo])
    np.testing.assert_array_equal(a, b)


def test_onset_skips_leading_silence():
    audio = np.concatenate([np.zeros(300, np.float32), tone(0.1)])
    assert 300 <= post.find_onset(audio) < 310


def test_gate_reasons():
    loud = tone(0.33)
    peak, rms = post.level_dbfs(loud)
    assert post.gate_reason(peak, rms, rms, post.sounding_ms(loud), GATE) is None
    silent = loud * 1e-4
    assert post.gate_reason(*post.level_dbfs(silent), rms, post.sounding_ms(silent), GATE) == "silent"
    faint = loud * 10 ** (-45 / 20)
    assert post.gate_reason(*post.level_dbfs(faint), rms, post.sounding_ms(faint), GATE) == "too_quiet"
    blip = np.concatenate([tone(0.03), np.zeros(C.CLIP_SAMPLES - 480, np.float32)])
    assert post.sounding_ms(blip) == 30
    assert post.gate_reason(*post.level_dbfs(blip), post.level_dbfs(blip)[1], 30, GATE) == "too_short"


def test_pcm16_is_peak_normalised():
    pcm = post.to_pcm16(tone(0.33) * 0.01)
    assert pcm.dtype == np.int16
    assert np.abs(pcm).max() == round(10 ** (C.PEAK_NORMALIZE_DBFS / 20) * 32767)


@pytest.mark.parametrize("rate, periods", [(16_000, (441, 160)), (22_050, (2, 1)), (44_100, (1, 1)),
                                           (48_000, (147, 160))])
def test_notes_come_apart_exactly_at_every_rate(rate, periods):
    """Laid end to end, resampled once, cut apart: each note's length is its own at the new rate (to
    the sample: a slot starts on a whole period, a note's end is rounded)."""
    assert post.rate_periods(rate) == periods
    rng = np.random.default_rng(rate)
    notes = [rng.standard_normal((n, 2)).astype(np.float32) * 0.1 for n in (44_100, 30_001, 12_345)]
    out = post.batch_to_dataset_rate(notes, "soxr", rate)
    assert all(abs(len(o) - len(n) * rate / 44_100) <= 1 for o, n in zip(out, notes))
    if rate == 44_100:   # no resampling: the mono mix itself
        assert all(np.array_equal(o, post.to_mono(n)) for o, n in zip(out, notes))
