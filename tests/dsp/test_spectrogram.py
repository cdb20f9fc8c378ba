"""The spectrogram's geometry for clips of another rate or length: the default's durations (16 ms
window, 3.5 ms hop, 64 ms FFT), bit for bit what scipy.signal.spectrogram gives with those settings."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal

from pipeline.core import constants as C
from pipeline.dsp.spectrogram import DEFAULT_STFT, Stft, spectrogram


def test_the_default_is_513_by_90():
    assert Stft.for_clips(C.SAMPLE_RATE, C.CLIP_SAMPLES) == DEFAULT_STFT
    assert DEFAULT_STFT.shape == C.SPEC_SHAPE == (513, 90)


@pytest.mark.parametrize("rate, seconds, shape", [(44_100, 2.0, (1412, 565)), (22_050, 0.33, (706, 90)),
                                                  (48_000, 0.5, (1537, 139)), (16_000, 1.5, (513, 425))])
def test_other_clips_keep_the_durations_and_match_scipy(rate, seconds, shape):
    stft = Stft.for_clips(rate, round(rate * seconds))
    assert stft.shape == shape
    assert abs(stft.window_length / rate - 0.016) < 1e-3 and abs(stft.hop / rate - 0.0035) < 1e-4
    clip = (np.random.default_rng(rate).standard_normal(stft.samples) * 0.1).astype(np.float32)
    ours = spectrogram(clip[None], "linear", stft=stft)[0]
    _, _, theirs = scipy.signal.spectrogram(clip, fs=rate, window="hann", nperseg=stft.window_length,
                                            noverlap=stft.window_length - stft.hop, nfft=stft.n_fft,
                                            mode="magnitude")
    assert ours.shape == theirs.shape and np.array_equal(ours, theirs)


def test_a_clip_of_the_wrong_length_is_refused():
    stft = Stft.for_clips(44_100, 88_200)
    with pytest.raises(Exception, match=r"clips of shape \(N, 88200\).*44100 Hz"):
        spectrogram(np.zeros((1, 5_280), np.float32), stft=stft)
