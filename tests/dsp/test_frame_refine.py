"""Fine pitch per frame (pipeline/dsp/frame_refine.py): a coarse estimate a bin off is made exact from the
frame's partials, a steady low pitch from the long window, and an estimate the partials do not
confirm (none, or one farther than the gate) is left as it is."""

import numpy as np
import pytest

from pipeline.core import constants as C
from pipeline.dsp import frame_refine as R
from pipeline.dsp.log_spectrum import HOP, PAD, spectra_at_samples

FRAMES = np.arange(20, 60)               # frames whose windows hear nothing but the tone


def magnitudes(audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The short and the long window's linear spectra of FRAMES."""
    _, (short, long) = spectra_at_samples(np.pad(audio, PAD), FRAMES * HOP + PAD, magnitudes=True)
    return short, long


def harmonic(hz: float, partials: int = 8, seconds: float = 0.8) -> np.ndarray:
    t = np.arange(round(seconds * C.SAMPLE_RATE)) / C.SAMPLE_RATE
    tone = sum(np.sin(2 * np.pi * k * hz * t + k) / k for k in range(1, partials + 1) if k * hz < 7000)
    return (0.2 * tone).astype(np.float32)


def cents(hz, reference) -> np.ndarray:
    return 1200 * np.log2(np.asarray(hz) / reference)


def off_by(hz: float, offset_cents: float) -> np.ndarray:
    return np.full(len(FRAMES), hz * 2 ** (offset_cents / 1200))


@pytest.mark.parametrize("hz", [110.0, 220.0, 329.6, 440.0, 880.0, 1244.5])
@pytest.mark.parametrize("offset", [-20.0, -15.0, 15.0, 20.0])
def test_a_coarse_estimate_becomes_exact_from_the_short_window(hz, offset):
    short, _ = magnitudes(harmonic(hz))
    fine = R.refine(short, off_by(hz, offset), R.WINDOW)
    assert np.abs(cents(fine, hz)).max() < 1.0, np.abs(cents(fine, hz)).max()


@pytest.mark.parametrize("hz", [55.0, 82.4, 98.0])
def test_a_steady_low_pitch_is_refined_from_the_long_window(hz):
    """The long window resolves a low note's partials (55 Hz: 7 bins apart, not 3.5): within a cent
    where the short window leaves more than two; refine_frames chooses it for a pitch that holds still."""
    short, long = magnitudes(harmonic(hz))
    coarse = off_by(hz, 18.0)
    assert np.abs(cents(R.refine(long, coarse, R.LONG_WINDOW), hz)).max() < 1.0
    assert np.abs(cents(R.refine(short, coarse, R.WINDOW), hz)).max() > 2.0
    np.testing.assert_array_equal(R.refine_frames(short, long, coarse), R.refine(long, coarse, R.LONG_WINDOW))


def test_a_moving_or_high_pitch_keeps_the_short_window():
    short, long = magnitudes(harmonic(98.0))
    moving = 98.0 * 2 ** (np.arange(len(FRAMES)) * 8.0 / 1200)       # 8 cents a frame: a glide
    np.testing.assert_array_equal(R.refine_frames(short, long, moving), R.refine(short, moving, R.WINDOW))
    short, long = magnitudes(harmonic(440.0))
    high = off_by(440.0, 10.0)
    np.testing.assert_array_equal(R.refine_frames(short, long, high), R.refine(short, high, R.WINDOW))


def test_an_estimate_of_zero_stays_zero():
    short, long = magnitudes(harmonic(220.0))
    coarse = off_by(220.0, 10.0)
    coarse[::3] = 0.0
    fine = R.refine_frames(short, long, coarse)
    assert np.all(fine[::3] == 0.0) and np.all(fine[coarse > 0] > 0)
    assert np.abs(cents(fine[coarse > 0], 220.0)).max() < 1.0


def test_silence_leaves_the_estimate_as_it_is():
    silent = np.zeros((len(FRAMES), R.WINDOW // 2 + 1))
    coarse = np.linspace(50.0, 2000.0, len(FRAMES))
    np.testing.assert_array_equal(R.refine(silent, coarse, R.WINDOW), coarse)


@pytest.mark.parametrize("offset", [-45.0, -35.0, 35.0, 45.0])
def test_an_estimate_beyond_the_gate_is_left_as_it_is(offset):
    """The partials say 440 Hz; an estimate more than GATE_CENTS (30) from that is the network's to keep."""
    short, _ = magnitudes(harmonic(440.0))
    coarse = off_by(440.0, offset)
    np.testing.assert_array_equal(R.refine(short, coarse, R.WINDOW), coarse)
    inside = off_by(440.0, np.sign(offset) * 25.0)
    assert np.abs(cents(R.refine(short, inside, R.WINDOW), 440.0)).max() < 1.0


def test_an_estimate_with_no_partial_within_reach_is_left_as_it_is():
    """A pure 440 Hz sine and an estimate of 300 Hz: no multiple of 300 Hz lies within 3 % of 440."""
    short, _ = magnitudes((0.3 * np.sin(2 * np.pi * 440.0 * np.arange(12_800) / C.SAMPLE_RATE)).astype(np.float32))
    coarse = np.full(len(FRAMES), 300.0)
    np.testing.assert_array_equal(R.refine(short, coarse, R.WINDOW), coarse)


def test_leakage_far_below_the_frame_is_no_partial():
    short, _ = magnitudes((0.3 * np.sin(2 * np.pi * 440.0 * np.arange(12_800) / C.SAMPLE_RATE)).astype(np.float32))
    coarse = np.full(len(FRAMES), 1000.0)
    np.testing.assert_array_equal(R.refine(short, coarse, R.WINDOW), coarse)
