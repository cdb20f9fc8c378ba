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


# --- whole recordings: contours ----------------------------------------------------------
def tone_between_silences(f0: float = 440.0) -> np.ndarray:
    """0.3 s of silence, 1 s of a harmonic tone, 0.3 s of silence, at 16 kHz."""
    t = np.arange(C.SAMPLE_RATE) / C.SAMPLE_RATE
    tone = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6)) * np.minimum(1.0, t / 0.01)
    gap = np.zeros(int(0.3 * C.SAMPLE_RATE))
    return np.concatenate([gap, 0.5 * tone / np.abs(tone).max(), gap]).astype(np.float32)


@pytest.mark.parametrize("name", ["praat", "pyin", "swift_f0", "crepe_tiny"])
def test_contours_follow_the_tone_and_leave_silence_unvoiced(name):
    if B.missing_modules(name):
        pytest.skip(f"{', '.join(B.missing_modules(name))} not installed")
    track = B.contour(name, tone_between_silences())
    hop = np.diff(track.time)
    assert np.allclose(hop, B.REGISTRY[name].hop_seconds), hop[:5]            # 10 ms; SwiftF0's own 16 ms
    inside = (track.time > 0.4) & (track.time < 1.2)
    silent = (track.time < 0.15) | (track.time > 1.5)
    assert track.voiced[inside].mean() > 0.95 and not track.voiced[silent].any()
    assert np.all(cents_off(track.frequency[inside & track.voiced], 440.0) < 10)
    assert track.time[-1] > 1.5   # the whole recording, not a clip of it


def test_a_tracker_failure_is_one_line():
    with pytest.raises(PipelineError, match=r"^praat failed on it \(PraatError: ") as caught:
        B.contour("praat", np.zeros(400, dtype=np.float32))   # 25 ms: shorter than 3 periods of 30 Hz
    assert "\n" not in str(caught.value)


def test_baseline_names_accept_commas_and_the_usual_spellings():
    assert B.baseline_names("praat, swiftf0,pyin,,praat") == ["praat", "swift_f0", "pyin"]
    assert B.baseline_names(["CREPE-tiny", "swift-f0"]) == ["crepe_tiny", "swift_f0"]
    assert B.baseline_names("") == []
    with pytest.raises(PipelineError, match="unknown baseline 'yaapt'; choose from pyin, praat"):
        B.baseline_names("praat,yaapt")


def test_run_on_files_gives_one_f0_per_note_file(tmp_path):
    import soundfile as sf

    sf.write(tmp_path / "a4.wav", tone_between_silences(440.0), C.SAMPLE_RATE)
    sf.write(tmp_path / "e3.flac", tone_between_silences(164.81), C.SAMPLE_RATE)
    (tmp_path / "broken.wav").write_bytes(b"not audio")
    sf.write(tmp_path / "short.wav", np.zeros(400, dtype=np.float32), C.SAMPLE_RATE)
    paths = [tmp_path / n for n in ("a4.wav", "e3.flac", "broken.wav", "short.wav")]
    result = B.run_baseline_on_files("praat", paths)
    assert np.all(cents_off(result.hz[:2], np.array([440.0, 164.81])) < 5) and np.isnan(result.hz[2:]).all()
    assert [p for p, _ in result.info["failed"]] == [str(paths[3])]   # the tracker's failure; unreadable: NaN only
    assert result.clips_per_second > 0 and result.info["versions"]


def test_crepe_decodes_at_the_exact_bin_centres():
    """torchcrepe 0.0.24 draws its decoder's bin centres with up to +-20 cents of noise, once per
    process; ours are CREPE's exact ones, so the answer is the same in every process."""
    if B.missing_modules("crepe_tiny"):
        pytest.skip(f"{', '.join(B.missing_modules('crepe_tiny'))} not installed")
    import torchcrepe

    B.contour("crepe_tiny", tone_between_silences())
    centres = torchcrepe.decode.weighted_argmax.weights.reshape(-1).numpy()
    assert np.allclose(np.diff(centres), 20.0, atol=1e-3) and centres[0] == pytest.approx(1997.3794, abs=1e-3)
