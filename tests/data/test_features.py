import dataclasses
import json
import shutil

import numpy as np
import pytest
import scipy.signal

from pipeline.core import constants as C
from pipeline.core.errors import PipelineError
from pipeline.data.clips import load_manifest
from pipeline.data.feature_files import load_split, split_path
from pipeline.data.features import build_features
from pipeline.dsp.spectrogram import LOG_EPSILON, spectrogram


def tone(hz: float, harmonics: int = 1) -> np.ndarray:
    t = np.arange(C.CLIP_SAMPLES) / C.SAMPLE_RATE
    wave = sum(np.sin(2 * np.pi * hz * k * t) / k for k in range(1, harmonics + 1))
    return (0.9 * wave / np.max(np.abs(wave))).astype(np.float32)


@pytest.fixture(scope="module")
def featured(tiny_dataset, tmp_path_factory):
    """A private copy of the shared tiny dataset, with its features built."""
    root = tmp_path_factory.mktemp("features")
    cfg = dataclasses.replace(tiny_dataset, root=str(root))
    shutil.copytree(tiny_dataset.data_dir, cfg.data_dir)
    build_features(cfg)
    return cfg


def test_a_440_hz_sine_peaks_in_the_nearest_bin():
    spec = spectrogram(tone(440.0)[None, :], "log")
    assert spec.shape == (1, 513, 90) and spec.dtype == np.float32
    bin_hz = C.SAMPLE_RATE / C.N_FFT
    assert np.argmax(spec[0].mean(axis=1)) == round(440.0 / bin_hz)
    assert np.all(np.argmax(spec[0], axis=0) == round(440.0 / bin_hz))


def scipy_spectrogram(clip: np.ndarray, scaling: str) -> np.ndarray:
    """The per-clip reference: scipy's call, then the documented scaling, in scipy's float32."""
    _, _, magnitude = scipy.signal.spectrogram(clip, fs=16000, window="hann", nperseg=256, noverlap=200,
                                               nfft=1024, mode="magnitude")
    return {"linear": magnitude, "log": np.log(magnitude + LOG_EPSILON),
            "db": 20 * np.log10(magnitude + LOG_EPSILON)}[scaling]


@pytest.mark.parametrize("scaling", ["linear", "log", "db"])
def test_batched_values_are_the_per_clip_scipy_call_bit_for_bit(scaling):
    """The README's promise: bit for bit what scipy.signal.spectrogram and the scaling give,
    on an odd batch (the FFTs run CACHE_BATCH clips at a time) with silence and noise in it."""
    rng = np.random.default_rng(0)
    noise = 0.3 * rng.standard_normal(C.CLIP_SAMPLES)
    clips = np.stack([tone(110.0, 8), tone(1234.5, 3), noise, np.zeros(C.CLIP_SAMPLES), tone(7000.0)])
    clips = clips.astype(np.float32)
    batched = spectrogram(clips, scaling)
    for clip, got in zip(clips, batched):
        want = scipy_spectrogram(clip, scaling)
        assert got.dtype == want.dtype == np.float32
        np.testing.assert_array_equal(got, want)


def test_scalings_are_the_documented_functions_of_the_magnitude():
    clip = tone(330.0, 5)[None, :]
    linear = spectrogram(clip, "linear")
    np.testing.assert_array_equal(spectrogram(clip, "log"), np.log(linear + LOG_EPSILON))
    np.testing.assert_array_equal(spectrogram(clip, "db"), 20 * np.log10(linear + LOG_EPSILON))
    with pytest.raises(PipelineError, match="scaling"):
        spectrogram(clip, "cubic")


def test_wrong_clip_length_is_a_clear_error():
    with pytest.raises(PipelineError, match="5280"):
        spectrogram(np.zeros((2, 1000), np.float32), "log")


def test_split_files_align_with_the_manifest(featured):
    """Row i of each split's file is the spectrogram of the split's i-th clip in manifest order: every
    row of every split, bit for bit (scipy's per-clip value, scaled, in the stored dtype), the clip read
    with libsndfile."""
    import soundfile as sf

    manifest = load_manifest(featured.data_dir)
    for split in C.SPLITS:
        features, rows = load_split(featured, split)
        want_rows = manifest[manifest["split"] == split]
        assert len(want_rows) >= 20, split
        assert features.shape == (len(want_rows), *C.SPEC_SHAPE)
        assert features.dtype == np.float16 and isinstance(features, np.memmap)
        assert list(rows["path"]) == list(want_rows["path"])
        for i, path in enumerate(want_rows["path"]):
            clip, _ = sf.read(featured.data_dir / path, dtype="float32")
            want = scipy_spectrogram(clip, "log").astype(np.float16)
            np.testing.assert_array_equal(features[i], want, err_msg=f"{split} row {i}: {path}")
    done = json.loads((featured.data_dir / "features" / "done.json").read_text())
    assert done["counts"] == {s: int((manifest["split"] == s).sum()) for s in C.SPLITS}


def test_batch_size_does_not_change_the_values(featured, tmp_path):
    cfg = dataclasses.replace(featured, root=str(tmp_path),
                              features=dataclasses.replace(featured.features, batch_size=7))
    shutil.copytree(featured.data_dir, cfg.data_dir, ignore=shutil.ignore_patterns("features"))
    build_features(cfg)
    for split in C.SPLITS:
        np.testing.assert_array_equal(np.load(split_path(cfg, split)), np.load(split_path(featured, split)))


def test_a_second_build_is_skipped_and_a_new_scaling_rebuilds(featured, tmp_path, capsys):
    cfg = dataclasses.replace(featured, root=str(tmp_path))
    shutil.copytree(featured.data_dir, cfg.data_dir)
    before = split_path(cfg, "train").stat().st_mtime_ns
    build_features(cfg)
    assert "up to date" in capsys.readouterr().out
    assert split_path(cfg, "train").stat().st_mtime_ns == before
    db = dataclasses.replace(cfg, features=dataclasses.replace(cfg.features, scaling="db"))
    build_features(db)
    assert split_path(cfg, "train").stat().st_mtime_ns != before
    assert not list((cfg.data_dir / "features").glob(".*tmp*"))


def test_missing_features_name_the_fix(tiny_dataset, tmp_path):
    cfg = dataclasses.replace(tiny_dataset, root=str(tmp_path))
    shutil.copytree(tiny_dataset.data_dir, cfg.data_dir, ignore=shutil.ignore_patterns("features"))
    with pytest.raises(PipelineError, match="make features"):
        load_split(cfg, "train")


def test_missing_or_corrupt_split_file_is_a_clear_error(featured, tmp_path):
    cfg = dataclasses.replace(featured, root=str(tmp_path))
    shutil.copytree(featured.data_dir, cfg.data_dir)
    path = split_path(cfg, "val")
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(PipelineError, match="corrupt.*make features") as err:
        load_split(cfg, "val")
    assert "\n" not in str(err.value)
    path.write_bytes(b"not an npy file at all")
    with pytest.raises(PipelineError, match="corrupt"):
        load_split(cfg, "val")
    path.unlink()
    with pytest.raises(PipelineError, match="missing.*make features"):
        load_split(cfg, "val")


def test_features_of_an_older_dataset_are_refused(featured, tmp_path):
    cfg = dataclasses.replace(featured, root=str(tmp_path))
    shutil.copytree(featured.data_dir, cfg.data_dir)
    manifest = cfg.data_dir / "manifest.csv"
    manifest.write_text(manifest.read_text().replace("train", "val", 1))
    with pytest.raises(PipelineError, match="older dataset.*make features"):
        load_split(cfg, "train")


def test_the_window_is_scipys_hann_to_the_bit():
    from pipeline.dsp.spectrogram import spectrogram_window

    window, _ = spectrogram_window()
    assert np.array_equal(window, scipy.signal.get_window("hann", C.WINDOW_LENGTH).astype(np.float32))
