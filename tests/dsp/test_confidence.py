"""confidence: the energy and periodicity factors of pipeline predict, from the audio alone."""

import numpy as np

from pipeline.core import constants as C
from pipeline.dsp.confidence import energy_score, periodicity_score, yin_dprime_min


def harmonic_tone(hz: float, seconds: float, sr: int = C.SAMPLE_RATE, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(round(seconds * sr)) / sr
    tone = sum(np.sin(2 * np.pi * hz * k * t) / k for k in range(1, 9) if hz * k < sr / 2)
    return (amplitude * tone / np.abs(tone).max()).astype(np.float32)


def test_periodicity_separates_tones_from_noise():
    rng = np.random.default_rng(0)
    tones = np.stack([harmonic_tone(hz, C.CLIP_SECONDS) for hz in (55.0, 440.0, 3000.0, 7500.0)])
    noise = rng.standard_normal((3, C.CLIP_SAMPLES)).astype(np.float32)
    assert np.all(yin_dprime_min(tones) < 0.05)
    assert np.all(yin_dprime_min(noise) > 0.9)
    np.testing.assert_array_equal(periodicity_score(np.concatenate([tones, noise])), [1, 1, 1, 1, 0, 0, 0])


def test_energy_is_zero_in_silence_and_far_below_the_loudest_frame():
    np.testing.assert_allclose(energy_score([-200.0, -95.0, -80.0, -75.0]), [0, 0, 0.5, 0.75])
    np.testing.assert_allclose(energy_score([-10.0, -30.0, -45.0, -60.0]), [1, 1, 0.25, 0])
