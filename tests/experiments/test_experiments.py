"""pipeline.experiments: each experiment end to end on a tiny setting, and the parts it stands on.

One session fixture runs all four experiments once (real FluidSynth with TimGM6mb, real sox,
real TensorFlow; about a minute on 2 cores); the tests read what it wrote.
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from pipeline.core.errors import PipelineError
from pipeline.experiments import effect_emulation, effect_pairs, learned_spectrogram, reference_reproduction
from pipeline.experiments.runner import run_experiments
from pipeline.experiments.settings import EXPERIMENTS, ExperimentsSettings, at_scale, load_settings
from tests.conftest import REPO, TEST_SOUNDFONT


def tiny_settings() -> ExperimentsSettings:
    s = ExperimentsSettings()
    return replace(
        s,
        clips=replace(s.clips, name="experiments_tiny", soundfont=TEST_SOUNDFONT,
                      instruments=("Acoustic Grand Piano", "Violin"), note_low=57, note_high=76,
                      test_share=0.2, val_share=0.2),
        reference=replace(s.reference, width=0.0625, epochs=1, max_train_clips=24, max_val_clips=12,
                          study_width=0.0625, study_epochs=2, study_max_train_clips=48, study_max_val_clips=12,
                          study_variants=("original", "no_dropout")),
        raw_audio=replace(s.raw_audio, epochs=2, batch_size=8, spectrogram_width=0.0625, first_epoch_points=1,
                          product_model="models/none/model.keras"),
        learned_spectrogram=replace(s.learned_spectrogram, window_samples=128, nperseg=32, noverlap=24,
                                    steps_per_epoch=10, epochs=70, batch_size=64, dft_points=8, dft_steps=600),
        effect=replace(s.effect, sweeps_per_wave=2, sweep_seconds=0.3, piano_notes=(60,), piano_seconds=0.3,
                       epochs=2, window=128, val_share=0.5),
    )


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("experiments")
    results = run_experiments(tiny_settings(), None, root / "reports", root / "data")
    return root, results


def metrics_of(tiny_run, name: str) -> dict:
    return json.loads((tiny_run[0] / "reports" / name / "metrics.json").read_text())


# --- every experiment --------------------------------------------------------------------------------
@pytest.mark.parametrize("name", EXPERIMENTS)
def test_each_experiment_writes_metrics_a_figure_and_a_section(tiny_run, name):
    folder = tiny_run[0] / "reports" / name
    m = metrics_of(tiny_run, name)
    assert m["experiment"] == name and m["scale"] == "default"
    assert m["wall_seconds"] > 0 and m["cpu_seconds"] > 0
    assert m["machine"]["cores"] >= 1 and m["machine"]["device"] in ("CPU", "GPU")
    assert "numpy" in m["versions"] and "settings" in m
    assert m["figures"] and all((folder / f).stat().st_size > 1000 for f in m["figures"])
    report = (tiny_run[0] / "reports" / "report.md").read_text()
    assert (folder / "section.md").read_text().strip() in report


def test_report_lists_the_sections_in_order(tiny_run):
    report = (tiny_run[0] / "reports" / "report.md").read_text()
    positions = [report.index(f"{i}. {name}") for i, name in enumerate(EXPERIMENTS, start=1)]
    assert positions == sorted(positions)


def test_clip_experiments_record_the_dataset(tiny_run):
    manifest = tiny_run[0] / "data" / "experiments_tiny" / "manifest.csv"
    from pipeline.core.artifacts import sha256_file

    for name in ("reference_reproduction", "raw_audio_classifier"):
        assert metrics_of(tiny_run, name)["dataset"]["manifest_sha256"] == sha256_file(manifest)


# --- 1. reference_reproduction -------------------------------------------------------------------------
def test_reference_metrics_hold_the_claims_and_the_study(tiny_run):
    m = metrics_of(tiny_run, "reference_reproduction")
    assert [r["variant"] for r in m["runs"]] == ["original", "original", "no_dropout"]
    for run in m["runs"]:
        assert len(run["history"]) == run["epochs"]
        for row in run["history"]:
            assert row["spread_inference"] >= 0 and row["val_mae_hz"] > 0 and row["samples_per_second"] > 0
        test = run["test"]
        assert test["mae_hz"] > 0 and 0 <= test["rpa50"] <= 1 and test["mae_hz_below_top_octave"] > 0
        assert sum(r["clips"] for r in run["test_by_pitch"]) == test["clips"]
    claims = m["original"]
    assert claims["val_mae_hz_implied_original"] == pytest.approx(0.03 * claims["label_std_hz_original_generator"])
    assert m["extrapolation"]["original_run_cpu_hours"] > 0


def test_the_original_label_spread_matches_a_draw_of_its_generator():
    rng = np.random.default_rng(0)
    notes = 440.0 * 2.0 ** ((np.arange(36, 108) - 69) / 12.0)
    shifts = np.where(rng.random((200, len(notes), 6)) < 1 / 6, 0, rng.integers(10, 80, (200, len(notes), 6)))
    drawn = (notes[None, :, None] + shifts).std()
    assert reference_reproduction.original_label_std() == pytest.approx(drawn, rel=0.01)


def test_the_regressor_is_the_originals_size_at_full_width():
    model = reference_reproduction.build_regressor(1.0, reference_reproduction.VARIANTS["original"])
    assert model.count_params() == 12_445_825
    assert [type(layer).__name__ for layer in model.layers].count("Dropout") == 4


# --- 2. raw_audio_classifier ----------------------------------------------------------------------------
def test_raw_audio_metrics_have_both_learning_curves(tiny_run):
    m = metrics_of(tiny_run, "raw_audio_classifier")
    for name in ("raw_audio", "spectrogram"):
        curve = m["runs"][name]["curve"]
        assert [p["epoch"] for p in curve] == [0.0, pytest.approx(0.5, abs=0.5), 1.0, 2.0]
        assert all(0 <= p["accuracy"] <= 1 and 0 <= p["rpa50"] <= 1 for p in curve)
    assert m["runs"]["raw_audio"]["params"] < m["runs"]["spectrogram"]["params"]
    assert 0 < m["chance"]["uniform"] <= 1
    assert "skipped" in m["product_model"]


def test_scores_count_a_right_note_and_its_frequency():
    from pipeline.experiments.raw_audio_classifier import scores

    probs = np.zeros((2, 128))
    probs[0, 69] = probs[1, 70] = 1.0
    assert scores(probs, np.array([69.2, 69.0]), np.array([444.0, 440.0])) == {
        "accuracy": 0.5, "rpa50": 0.5, "distinct_predictions": 2}


# --- 3. learned_spectrogram -----------------------------------------------------------------------------
def test_the_learned_stft_is_accurate_on_its_tiny_setting(tiny_run):
    m = metrics_of(tiny_run, "learned_spectrogram")
    stft = m["stft"]
    assert (stft["frames"], stft["bins"], stft["outputs"]) == (13, 17, 442)
    assert stft["four_tones"]["relative_error"] < 1e-3
    assert stft["weight_relative_error"] < 1e-3
    assert m["dft"]["weight_count"] == 16 * 16 and m["dft"]["test_signal"]["relative_error"] < 1e-3


def test_the_exact_weights_are_the_stft_and_the_original_shape_is_33_by_129():
    s = ExperimentsSettings().learned_spectrogram
    assert learned_spectrogram.stft_shape(s) == (129, 33)
    small = replace(s, window_samples=128, nperseg=32, noverlap=24)
    x = np.random.default_rng(1).standard_normal((3, 128))
    exact = learned_spectrogram.exact_stft_weights(small)
    np.testing.assert_allclose(x @ exact, learned_spectrogram.stft_targets(x, small), atol=1e-12)
    d = np.random.default_rng(2).standard_normal((2, 16))
    np.testing.assert_allclose(d @ learned_spectrogram.dft_targets(np.eye(16)), learned_spectrogram.dft_targets(d),
                               atol=1e-12)


# --- 4. effect_emulation --------------------------------------------------------------------------------
def test_effect_metrics_have_the_originals_table_and_listening_files(tiny_run):
    m = metrics_of(tiny_run, "effect_emulation")
    folder = tiny_run[0] / "reports" / "effect_emulation"
    for name in ("conv", "linear"):
        for role in ("train", "val", "test"):
            row = m["runs"][name]["scores"][role]
            assert row["rmse"] == pytest.approx(np.sqrt(row["mse"])) and row["target_std"] > 0
    assert len(m["wavs"]) == 4 and all((folder / w).stat().st_size > 1000 for w in m["wavs"])
    import soundfile as sf

    lengths = {sf.info(folder / w).frames for w in m["wavs"]}
    assert len(lengths) == 1


def test_dry_wet_pairs_are_sample_aligned_and_labelled(tiny_run):
    s = tiny_settings().effect
    folder = tiny_run[0] / "data" / s.name
    import pandas as pd

    manifest = pd.read_csv(folder / effect_pairs.MANIFEST)
    assert set(manifest["effect"]) == {effect_pairs.effect_label(s)} == {"lowpass(2000);overdrive(20,20)"}
    assert set(manifest["kind"]) == {"sine", "triangle", "sawtooth", "piano"}
    for pair in effect_pairs.read_pairs(folder):
        assert pair.dry.dtype == pair.wet.dtype == np.float32 and len(pair.dry) == len(pair.wet)
        if pair.kind == "sine":  # the wet signal follows the dry one at lag 0, not a few samples later
            lags = np.arange(-8, 9)
            corr = [np.dot(pair.dry[8:-8], np.roll(pair.wet, -lag)[8:-8]) for lag in lags]
            assert abs(lags[int(np.argmax(corr))]) <= 2
    # an impulse at sample 100 changes the wet signal from sample 100 on, not before and not later
    # (against silence: overdrive's colour is a bias that its DC blocker lets through at first)
    silence = np.zeros(400, np.float32)
    impulse = silence.copy()
    impulse[100] = 0.5
    change = effect_pairs.apply_effect(impulse, s) - effect_pairs.apply_effect(silence, s)
    assert np.all(change[:100] == 0) and change[100] != 0


def test_a_second_build_reuses_the_pairs(tiny_run):
    s = tiny_settings().effect
    pairs, info = effect_pairs.build_pairs(s, tiny_run[0] / "data", TEST_SOUNDFONT, 0)
    assert info["reused"] and len(pairs) == 7


def test_windows_and_overlap_add_give_the_signal_back():
    x = np.random.default_rng(3).standard_normal(1000)
    np.testing.assert_allclose(effect_emulation.overlap_add(effect_emulation.windows(x, 64), len(x)), x, atol=1e-12)


# --- settings and command line ---------------------------------------------------------------------------
def test_the_settings_file_holds_the_defaults_and_bad_keys_are_refused(tmp_path):
    assert load_settings(REPO / "configs" / "experiments.toml") == ExperimentsSettings()
    assert load_settings(None, ["reference.epochs=7"]).reference.epochs == 7
    bad = tmp_path / "bad.toml"
    bad.write_text("[experiments.reference]\nepoch = 3\n")
    with pytest.raises(PipelineError, match="experiments.reference.epoch"):
        load_settings(bad)
    with pytest.raises(PipelineError, match="scale"):
        load_settings(None, ["scale=huge"])


def test_original_scale_swaps_in_the_original_sizes():
    original = at_scale(load_settings(None, ["scale=original", "reference.epochs=2"]))
    assert original.reference.epochs == 100 and original.reference.width == 1.0
    assert original.learned_spectrogram.epochs == 10
    assert original.clips.name != ExperimentsSettings().clips.name  # a larger dataset lives elsewhere


def test_an_unknown_experiment_is_one_line(capsys):
    from pipeline.cli import main

    assert main(["experiments", "--only", "nonsense", "--out", "/nonexistent", "--data", "/nonexistent"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "nonsense" in lines[0]
