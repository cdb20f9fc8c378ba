"""baselines: each tracker finds a harmonic tone's f0; missing packages are skipped, not fatal."""

import numpy as np
import pytest

from pipeline.core import constants as C
from pipeline.core.errors import PipelineError
from pipeline.report import baselines as B


def harmonic_tone(f0: float, partials: int = 6) -> np.ndarray:
    """A 330 ms tone with 1/k partials below Nyquist, a gentle fade-in, peak 0.9."""
    t = np.arange(C.CLIP_SAMPLES) / C.SAMPLE_RATE
    tone = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, partials + 1) if f0 * k < C.SAMPLE_RATE / 2)
    tone *= np.minimum(1.0, t / 0.01)
    return (0.9 * tone / np.abs(tone).max()).astype(np.float32)


TONES = np.stack([harmonic_tone(440.0), harmonic_tone(110.0)])
EXPECTED = np.array([440.0, 110.0])


def cents_off(hz, ref):
    return np.abs(1200 * np.log2(np.asarray(hz) / ref))


def test_pyin_finds_440_and_110_hz_within_10_cents():
    hz = B.pyin(TONES)
    assert hz.shape == (2,)
    assert np.all(cents_off(hz, EXPECTED) < 10), hz


def test_pyin_gives_nan_on_silence():
    hz = B.pyin(np.zeros((1, C.CLIP_SAMPLES), dtype=np.float32))
    assert np.isnan(hz[0])


@pytest.mark.parametrize("name", ["praat", "swift_f0", "crepe_tiny"])
def test_optional_trackers_find_the_tones(name):
    # not importorskip: torchcrepe's import can fail with OSError (torchaudio), which the baseline handles
    if B.missing_modules(name):
        pytest.skip(f"{', '.join(B.missing_modules(name))} not installed")
    result = B.run_baseline(name, TONES)
    assert result.skipped is None
    assert np.all(cents_off(result.hz, EXPECTED) < 10), result.hz
    assert result.clips_per_second > 0


def test_median_voiced_ignores_unvoiced_frames():
    f0 = np.array([[100.0, 200.0, 200.0, np.nan], [300.0, 300.0, 300.0, 300.0]])
    voiced = np.array([[False, True, True, False], [False, False, False, False]])
    out = B.median_voiced(f0, voiced)
    assert out[0] == 200.0 and np.isnan(out[1])


def test_missing_package_is_skipped_with_the_install_hint(monkeypatch):
    fake = B.Baseline("pyin", "pYIN", ("no_such_module_for_tests",), "pip install something", (30.0, 8000.0),
                      B.pyin)
    monkeypatch.setitem(B.REGISTRY, "pyin", fake)
    messages = []
    results = B.run_baselines(["pyin"], TONES, progress=messages.append)
    assert results["pyin"].hz is None
    assert "no_such_module_for_tests not installed; pip install something" in results["pyin"].skipped
    assert "skipped" in messages[0]


def test_unknown_baseline_is_a_clear_error():
    with pytest.raises(PipelineError, match="unknown baseline 'yaapt'"):
        B.run_baseline("yaapt", TONES)


def test_registry_names_match_the_config_choices():
    from pipeline.core.config import load_config

    assert tuple(B.REGISTRY) == C.BASELINES
    with pytest.raises(PipelineError, match="report.baselines"):
        load_config(None, ['report.baselines=["yin"]'])
