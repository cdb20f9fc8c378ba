"""The frame model's input (pipeline/dsp/log_spectrum.py): a tone peaks at its grid bin, a gain is a
constant in the log, the chosen-frame and whole-recording forms agree, and frames come every 10 ms."""

import numpy as np
import pytest

from pipeline.core import constants as C
from pipeline.dsp import log_spectrum as L


def sine(hz: float, seconds: float = 0.5, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(round(seconds * C.SAMPLE_RATE)) / C.SAMPLE_RATE
    return (amplitude * np.sin(2 * np.pi * hz * t + 0.3)).astype(np.float32)


@pytest.mark.parametrize("channel, window", list(enumerate(L.WINDOWS)))
def test_a_tone_peaks_at_its_grid_bin(channel, window):
    """Where the grid is coarser than the FFT, exactly at the tone's bin; where it is finer (low
    notes), the triangles interpolate between FFT bins, so the peak lies within half an FFT bin."""
    fft_hz = C.SAMPLE_RATE / window
    for g in range(60, L.GRID_BINS, 9):
        hz = float(L.grid_hz(g))
        peaks = L.frame_spectra(sine(hz))[10:40, channel].argmax(axis=-1)   # frames whose windows are all tone
        spacing = hz * (2 ** (1 / L.BINS_PER_OCTAVE) - 1)
        if spacing >= fft_hz:
            assert np.all(peaks == g), (g, hz, np.unique(peaks))
        else:
            assert np.all(np.abs(L.grid_hz(peaks) - hz) <= fft_hz / 2 + spacing), (g, hz, np.unique(peaks))


def test_a_gain_is_a_constant_shift_in_the_log():
    rng = np.random.default_rng(0)
    t = np.arange(C.SAMPLE_RATE) / C.SAMPLE_RATE
    audio = sum(np.sin(2 * np.pi * 196.0 * k * t) / k for k in range(1, 9)) * 0.2 + 0.01 * rng.standard_normal(len(t))
    loud, quiet = L.frame_spectra(audio), L.frame_spectra(0.05 * audio)
    clear = quiet > np.log(L.LOG_FLOOR) + 6          # well above the floor: the floor adds under 0.25 %
    assert clear.mean() > 0.5
    np.testing.assert_allclose((quiet - loud)[clear], np.log(0.05), atol=3e-3)


def test_chosen_centres_agree_with_the_whole_recording():
    rng = np.random.default_rng(1)
    audio = (0.1 * rng.standard_normal(12_345)).clip(-0.9, 0.9).astype(np.float32)
    every = L.frame_spectra(audio)
    assert every.shape == (L.frame_count(len(audio)), len(L.WINDOWS), L.GRID_BINS) and every.dtype == np.float32
    chosen = np.array([0, 1, 7, 40, len(every) - 1])
    padded = np.concatenate([np.zeros(L.PAD, np.float32), audio, np.zeros(L.PAD, np.float32)])
    np.testing.assert_array_equal(L.spectra_at_samples(padded, chosen * L.HOP + L.PAD), every[chosen])
    np.testing.assert_array_equal(L.frame_spectra_at(audio, chosen), every[chosen])
    # 16-bit samples are read as /32768, as the training audio is stored
    pcm = np.round(padded * 32768).astype(np.int16)
    np.testing.assert_allclose(L.spectra_at_samples(pcm, chosen * L.HOP + L.PAD), every[chosen], atol=2e-3)


def test_magnitudes_are_the_linear_spectra_behind_the_log():
    audio = np.pad(sine(440.0), L.PAD)
    centres = np.array([L.PAD + 1000, L.PAD + 3000])
    logs, linear = L.spectra_at_samples(audio, centres, magnitudes=True)
    assert [m.shape for m in linear] == [(2, w // 2 + 1) for w in L.WINDOWS]
    for channel, window in enumerate(L.WINDOWS):
        expected = np.log(L.filterbank(window).T.dot(linear[channel].T).T + L.LOG_FLOOR)
        np.testing.assert_allclose(logs[:, channel], expected, rtol=1e-6)
        assert linear[channel][0].argmax() == round(440.0 * window / C.SAMPLE_RATE)


@pytest.mark.parametrize("samples, frames", [(0, 0), (1, 1), (160, 1), (161, 2), (16_000, 100), (16_001, 101)])
def test_frame_count_is_one_frame_every_10_ms_from_the_first_sample(samples, frames):
    assert L.frame_count(samples) == frames
    assert len(L.frame_spectra(np.zeros(samples, np.float32))) == frames


def test_silence_is_the_log_floor_and_the_grid_spans_12_5_hz_to_8_khz():
    assert L.GRID_BINS == 448 and L.HOP == 160 and L.PAD == max(L.WINDOWS) // 2
    assert L.grid_hz(0) == pytest.approx(12.5) and L.grid_hz(L.GRID_BINS - 1) <= C.SAMPLE_RATE / 2
    assert L.grid_hz(L.GRID_BINS) > C.SAMPLE_RATE / 2
    np.testing.assert_allclose(L.frame_spectra(np.zeros(800, np.float32)), np.log(L.LOG_FLOOR), rtol=1e-6)
