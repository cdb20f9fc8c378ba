"""Fine pitch from the audio: the audit's estimate from nothing, and a model's estimate made fine,
on tones whose f0 is known exactly."""

import numpy as np
import pytest

from pipeline.core import constants as C
from pipeline.core.config import AuditConfig
from pipeline.data import tones as T
from pipeline.dsp import fine_pitch as F

RULES = AuditConfig()


def clip_of(spec: T.ToneSpec) -> np.ndarray:
    """The held part of a tone at 16 kHz, one clip long."""
    return T.render_tone(spec, C.SAMPLE_RATE, 1.0, 0.2)[2000:2000 + C.CLIP_SAMPLES]


@pytest.mark.parametrize("kind", ["sine", "sawtooth", "square", "missing_fundamental", "stretched"])
def test_the_estimator_finds_known_pitches_over_the_piano_range(kind):
    f0s = [27.5 * 2 ** (k / 12 + 0.013) for k in range(0, 88, 7)]  # A0 .. C8, off the equal-tempered grid
    f0s = [f for f in f0s if kind != "missing_fundamental" or 3 * f < T.MAX_BAND_LIMIT_HZ]
    clips = np.stack([clip_of(T.draw_tone(np.random.default_rng([3, i]), f, (kind,))) for i, f in enumerate(f0s)])
    hz, confidence = F.estimate(clips)
    errors = 1200 * np.log2(hz / np.array(f0s))
    if kind == "stretched":  # its period follows the (slightly sharp) upper partials, as any tracker's does
        assert np.all(np.abs(errors) < 8)
    else:
        assert np.all(np.abs(errors) < 0.5), np.round(errors, 2)
    assert np.all(confidence > 0.85)


def test_a_short_period_is_not_taken_for_two():
    """At 3.6 kHz the period is 4.45 samples: YIN's integer lags take two periods, the partials' common
    divisor puts the estimate back."""
    t = np.arange(C.CLIP_SAMPLES) / C.SAMPLE_RATE
    hz, _ = F.estimate(np.sin(2 * np.pi * 3596.0 * t))
    assert hz[0] == pytest.approx(3596.0, rel=1e-4)


def test_silence_and_noise_leave_the_auditor_unsure():
    noise = np.random.default_rng(0).standard_normal(C.CLIP_SAMPLES)
    hz, confidence = F.estimate(np.stack([np.zeros(C.CLIP_SAMPLES), noise]))
    assert np.isnan(hz[0]) and confidence[0] == 0
    assert confidence[1] < RULES.min_confidence


@pytest.mark.parametrize("kind", ["sine", "triangle", "square", "sawtooth", "missing_fundamental"])
def test_a_coarse_estimate_is_made_fine_from_a0_to_c8(kind):
    f0s = np.array([27.5 * 2 ** (k / 12 + 0.013) for k in range(0, 88, 5)])
    f0s = f0s[(kind != "missing_fundamental") | (3 * f0s < T.MAX_BAND_LIMIT_HZ)]
    clips = np.stack([clip_of(T.draw_tone(np.random.default_rng([5, i]), f, (kind,))) for i, f in enumerate(f0s)])
    coarse = f0s * 2 ** (np.random.default_rng(1).uniform(-35, 35, len(f0s)) / 1200)
    errors = 1200 * np.log2(F.refine_near(clips, coarse) / f0s)
    assert np.all(np.abs(errors) < 1.0), np.round(errors, 2)


def test_the_model_keeps_the_octave_and_unvoiced_frames_stay_unvoiced():
    """A refinement never moves an estimate by more than the gate: an octave error stays the
    model's, a frame without pitch keeps 0, and silence keeps the model's value."""
    t = np.arange(C.CLIP_SAMPLES) / C.SAMPLE_RATE
    note = np.sin(2 * np.pi * 220.0 * t) + 0.5 * np.sin(2 * np.pi * 440.0 * t)
    windows = np.stack([note, note, note, np.zeros(C.CLIP_SAMPLES)])
    fine = F.refine_near(windows, np.array([440.0 * 2 ** (20 / 1200), 0.0, np.nan, 300.0]))
    assert fine[0] == pytest.approx(440.0, abs=0.05)  # the model's octave (partial 2), made exact
    assert fine[1] == 0.0 and np.isnan(fine[2]) and fine[3] == 300.0


def test_under_c4_a_sure_yin_estimate_replaces_the_networks_octave_included():
    """A 55 Hz sawtooth the network took for 110 Hz gets its own octave back; noise, of which YIN
    is not sure, keeps the network's value; from C4 up the partials only refine."""
    rng = np.random.default_rng(0)
    saw = clip_of(T.draw_tone(np.random.default_rng([7, 1]), 55.0, ("sawtooth",)))
    noise = rng.standard_normal(C.CLIP_SAMPLES)
    high = clip_of(T.draw_tone(np.random.default_rng([7, 2]), 440.0, ("sawtooth",)))
    fine = F.refine_estimates(np.stack([saw, noise, high]), np.array([110.0, 100.0, 880.0]))
    assert fine[0] == pytest.approx(55.0, rel=1e-4)
    assert abs(1200 * np.log2(fine[1] / 100.0)) < 100   # YIN unsure: the partials' step only
    assert fine[2] == pytest.approx(880.0, rel=1e-3)   # an octave error above C4 stays the network's


@pytest.mark.parametrize("semitones", [-3.0, -1.5, 1.5, 2.0, 5.0, 7.0])
def test_partials_more_than_a_semitone_from_the_model_are_not_taken(semitones):
    """The gate is a semitone: a sawtooth whose partials say 440 Hz leaves a model's estimate 1.5 to 12
    semitones away exactly as it was (the partials' search reaches a third of the estimate, so a wider
    gate would take what they say for these)."""
    saw = clip_of(T.draw_tone(np.random.default_rng([9, 1]), 440.0, ("sawtooth",)))
    coarse = 440.0 * 2 ** (semitones / 12)
    assert F.refine_near(saw[None], np.array([coarse]))[0] == coarse
    # and within the gate the partials decide
    assert F.refine_near(saw[None], np.array([440.0 * 2 ** (0.8 / 12)]))[0] == pytest.approx(440.0, rel=1e-4)


@pytest.mark.parametrize("hz", [70.0, 98.0, 110.0, 123.5])
def test_between_c3_and_c4_a_sure_yin_estimate_corrects_an_octave_error(hz):
    """The network took a note under C3 for its octave, which lies between C3 (131 Hz) and C4 (262 Hz):
    YIN's sure estimate replaces it there too, not only under C3."""
    saw = clip_of(T.draw_tone(np.random.default_rng([7, 3]), hz, ("sawtooth",)))
    model = 2 * hz                                   # 140 .. 247 Hz: between C3 and C4
    assert 130.8 < model < 261.6
    assert F.refine_estimates(saw[None], np.array([model]))[0] == pytest.approx(hz, rel=1e-4)
    assert F.refine_near(saw[None], np.array([model]))[0] == pytest.approx(model, rel=1e-3)  # partials alone keep it
