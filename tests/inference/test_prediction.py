"""Prediction on audio files with a small model trained here on the shared tiny dataset.

The model is tiny (a few minutes of CPU would buy more accuracy), so pitch tolerances are
set for it: 30 cents on notes like the training ones. The plumbing (frames, CSV, batching,
resampling, bad files) is checked exactly.
"""

import dataclasses
import json
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from pipeline.cli import main
from pipeline.core import constants as C
from pipeline.core.errors import PipelineError
from pipeline.core.instruments import resolve_instrument
from pipeline.core.pitch import midi_to_hz
from pipeline.data.features import build_features
from pipeline.data.postprocessing import to_dataset_rate
from pipeline.data.rendering import Renderer, note_midi_bytes
from pipeline.dsp.audio import to_model_rate
from pipeline.inference import prediction as P
from pipeline.inference.frames import HALF_CLIP
from pipeline.model.training import train
from tests.conftest import REPO, TEST_SOUNDFONT, run_cli

# a small bins model that reaches about 18 cents median on the tiny dataset's validation notes;
# without the modulation branch, which a 64-unit dense layer cannot learn through at this scale
SMALL_MODEL = {"model": {"width": 0.125, "dense_units": (64,), "input_dropout": 0.0, "dropout": 0.0,
                         "modulation": False},
               "train": {"epochs": 12, "batch_size": 16, "compare_reference": False}}


def cents(est, ref):
    return 1200.0 * np.log2(np.asarray(est, np.float64) / ref)


@pytest.fixture(scope="module")
def model_path(tiny_dataset, tmp_path_factory):
    root = tmp_path_factory.mktemp("prediction")
    cfg = dataclasses.replace(tiny_dataset, root=str(root), **{
        section: dataclasses.replace(getattr(tiny_dataset, section), **values)
        for section, values in SMALL_MODEL.items()})
    shutil.copytree(tiny_dataset.data_dir, cfg.data_dir)
    build_features(cfg)
    train(cfg)
    return cfg.model_dir / C.MODEL_FILE


@pytest.fixture(scope="module")
def predictor(model_path):
    return P.load_predictor(model_path)


@pytest.fixture(scope="module")
def notes(tmp_path_factory):
    """Notes rendered at 44.1 kHz stereo (as FluidSynth gives them): 1 s held, then 1 s of release."""
    folder = tmp_path_factory.mktemp("notes")
    renderer = Renderer(TEST_SOUNDFONT)
    out = {}
    for instrument, midi in (("Violin", 69), ("Trumpet", 64), ("Clarinet", 76), ("Acoustic Grand Piano", 72)):
        stereo = renderer.render(note_midi_bytes(resolve_instrument(instrument).program, midi, 100, 0, 1.0), 2.0)
        path = folder / f"{instrument.split()[0].lower()}_{midi}.wav"
        sf.write(path, stereo, C.RENDER_RATE, subtype="FLOAT")
        out[(instrument, midi)] = (path, stereo)
    renderer.close()
    return out


def harmonic_tone(hz: float, seconds: float, sr: int = C.SAMPLE_RATE, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(round(seconds * sr)) / sr
    tone = sum(np.sin(2 * np.pi * hz * k * t) / k for k in range(1, 9) if hz * k < sr / 2)
    return (amplitude * tone / np.abs(tone).max()).astype(np.float32)


# --- pure functions: no model --------------------------------------------------------------------
def test_tensorflow_is_not_imported_with_the_module():
    code = "import sys, pipeline.inference.prediction; sys.exit('tensorflow' in sys.modules or 'keras' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 0


def test_summary_is_the_confidence_weighted_median_in_cents():
    frequency = np.array([0.0, 445.0, 445.0, 446.0, 300.0, 880.0])
    confidence = np.array([0.0, 0.9, 0.8, 0.7, 0.2, 0.3])  # 300 and 880 Hz are below half the best
    s = P.summarize(frequency, confidence)
    assert s.frequency == pytest.approx(445.0) and s.note == "A4" and s.midi == 69
    assert s.cents == pytest.approx(cents(445.0, 440.0)) and s.frames == 3
    assert "445.00 Hz, A4 +19.6 cents" in s.line()
    assert P.summarize([261.0, 0.0], [0.6, 0.0]).note == "C4"
    with pytest.raises(PipelineError, match="no pitched frame"):
        P.summarize(frequency, np.full(6, 0.05))


def test_bad_hops_and_sample_rates_are_refused():
    assert P.hop_samples(0.010) == 160 and P.hop_samples(0.0123) == 197
    for hop in (0, -0.01, 1e-6, float("nan"), "ten"):
        with pytest.raises(PipelineError, match="hop"):
            P.hop_samples(hop)
    with pytest.raises(PipelineError, match="sample rate"):
        to_model_rate(np.zeros(100, np.float32), 0)
    with pytest.raises(PipelineError, match="NaN"):
        to_model_rate(np.full(100, np.nan, np.float32), 16000)


# --- with the trained model ---------------------------------------------------------------------------
def test_frames_are_centred_every_hop(predictor):
    audio = np.zeros(3 * C.SAMPLE_RATE, np.float32)
    audio[C.SAMPLE_RATE:2 * C.SAMPLE_RATE] = harmonic_tone(440.0, 1.0)     # a tone from 1 s to 2 s
    time, frequency, confidence = P.predict(audio, C.SAMPLE_RATE, predictor, hop=0.010)
    assert len(time) == 1 + len(audio) // 160
    np.testing.assert_allclose(time, np.arange(len(time)) * 0.010)
    # a frame hears the tone when its 330 ms window, centred at `time`, overlaps 1..2 s:
    # from 1 - 0.165 s to 2 + 0.165 s; a few ms of tone at a window's edge may not count as periodic.
    # (Windows starting or ending at `time` would hear it from 0.67 s to 2 s or from 1 s to 2.33 s.)
    heard = time[confidence > 0]
    half = HALF_CLIP / C.SAMPLE_RATE
    assert 1 - half < heard.min() < 1 - half + 0.05 and 2 + half - 0.05 < heard.max() < 2 + half
    assert np.all(frequency[time < 1 - half] == 0)                     # silence is not analysed
    time, _, _ = P.predict(audio[:1000], C.SAMPLE_RATE, predictor, hop=0.0123)
    np.testing.assert_allclose(time, np.arange(1 + 1000 // 197) * 197 / C.SAMPLE_RATE)


def test_a_harmonic_440_hz_tone(predictor):
    time, frequency, confidence = P.predict(harmonic_tone(440.0, 1.0), C.SAMPLE_RATE, predictor)
    inside = (time >= 0.2) & (time <= 0.8)             # frames whose window is all tone
    assert np.median(confidence[inside]) > 0.5
    assert abs(np.median(cents(frequency[inside], 440.0))) < 30
    assert P.summarize(frequency, confidence).note == "A4"


def test_rendered_notes_are_predicted_within_tolerance(predictor, notes):
    for (instrument, midi), (path, _) in notes.items():
        time, frequency, confidence = P.predict_from_file(path, predictor)
        s = P.summarize(frequency, confidence)
        assert abs(cents(s.frequency, midi_to_hz(midi))) < 30, (instrument, midi, s)
        assert s.midi == midi and s.confidence > 0.5
        assert np.all(confidence[time > 1.5] < 0.1)  # 0.5 s after the note-off, nothing to trust


def test_stereo_44k_gives_the_same_result_as_mono_16k(predictor, notes, tmp_path):
    _, stereo = notes[("Violin", 69)]
    stereo = stereo * np.array([1.0, 0.5], np.float32)            # channels that differ
    sf.write(tmp_path / "stereo.wav", stereo, C.RENDER_RATE, subtype="PCM_24")
    sf.write(tmp_path / "mono.wav", to_dataset_rate(stereo), C.SAMPLE_RATE, subtype="PCM_24")  # sox, as the dataset
    t1, f1, c1 = P.predict_from_file(tmp_path / "stereo.wav", predictor)
    t2, f2, c2 = P.predict_from_file(tmp_path / "mono.wav", predictor)
    assert len(t1) == len(t2)
    sure = (c1 > 0.5) & (c2 > 0.5)
    assert sure.sum() > 80
    assert np.max(np.abs(cents(f1[sure], f2[sure]))) < 3
    assert np.max(np.abs(c1 - c2)) < 0.05


def test_compressed_formats_are_read(predictor, notes, tmp_path):
    path, stereo = notes[("Trumpet", 64)]
    reference = P.summarize(*P.predict_from_file(path, predictor)[1:])
    for name in ("note.flac", "note.ogg", "note.mp3"):
        sf.write(tmp_path / name, stereo, C.RENDER_RATE)
        s = P.summarize(*P.predict_from_file(tmp_path / name, predictor)[1:])
        assert abs(cents(s.frequency, reference.frequency)) < 5, name


def test_silence_and_noise_get_no_confidence(predictor):
    _, frequency, confidence = P.predict(np.zeros(C.SAMPLE_RATE, np.float32), C.SAMPLE_RATE, predictor)
    assert np.all(confidence == 0) and np.all(frequency == 0)
    noise = 0.3 * np.random.default_rng(1).standard_normal(C.SAMPLE_RATE).astype(np.float32)
    _, _, confidence = P.predict(noise, C.SAMPLE_RATE, predictor)
    assert confidence.max() < 0.1
    quiet = np.random.default_rng(2).uniform(-1, 1, C.SAMPLE_RATE).astype(np.float32) / 2 ** 16  # 16-bit dither
    assert P.predict_frames(quiet, C.SAMPLE_RATE, predictor).silent


def test_batches_across_files_give_the_same_frames(predictor, notes, tmp_path):
    paths = [path for path, _ in notes.values()]
    results = list(P.iter_files(paths, predictor, tmp_path, batch_size=7))
    for path, result in zip(paths, results):
        _, frequency, confidence = P.predict_from_file(path, predictor, batch_size=256)
        np.testing.assert_allclose(result.prediction.frequency, frequency, rtol=1e-5)
        np.testing.assert_allclose(result.prediction.confidence, confidence, atol=1e-5)


def test_the_csv_has_crepes_layout(predictor, notes, tmp_path):
    path, _ = notes[("Violin", 69)]
    out = P.predict_file_to_csv(path, tmp_path / "violin.f0.csv", predictor)
    assert out.read_text().splitlines()[0] == "time,frequency,confidence"
    table = pd.read_csv(out)
    time, frequency, confidence = P.predict_from_file(path, predictor)
    np.testing.assert_allclose(table["time"], time, atol=1e-6)
    np.testing.assert_allclose(table["frequency"], frequency, atol=1e-3)
    np.testing.assert_allclose(table["confidence"], confidence, atol=1e-6)
    assert [p.name for p in tmp_path.iterdir()] == ["violin.f0.csv"]  # no temporary file left


def test_summarize_files_gives_nan_for_files_without_a_pitch(model_path, notes, tmp_path):
    good, _ = notes[("Clarinet", 76)]
    sf.write(tmp_path / "silent.wav", np.zeros(8000, np.float32), C.SAMPLE_RATE)
    (tmp_path / "broken.wav").write_bytes(b"RIFF....WAVE")
    paths = [good, tmp_path / "silent.wav", tmp_path / "broken.wav"]
    hz, errors = P.summarize_files(paths, model_path, with_errors=True)
    assert abs(cents(hz[0], midi_to_hz(76))) < 30 and np.isnan(hz[1:]).all()
    assert errors[0] is None and "silent" in errors[1] and "cannot be read as audio" in errors[2]
    assert np.array_equal(np.isnan(P.summarize_files(paths, model_path)), [False, True, True])


# --- the command ------------------------------------------------------------------------------------
def test_cli_reports_each_bad_file_and_keeps_going(model_path, notes, tmp_path):
    good, _ = notes[("Violin", 69)]
    (tmp_path / "garbage.wav").write_bytes(b"this is not audio" * 10)
    (tmp_path / "empty.wav").write_bytes(b"")
    sf.write(tmp_path / "no_samples.wav", np.zeros(0, np.float32), C.SAMPLE_RATE)
    sf.write(tmp_path / "silent.wav", np.zeros(C.SAMPLE_RATE, np.float32), C.SAMPLE_RATE)
    bad = ["garbage.wav", "empty.wav", "no_samples.wav", "missing.wav"]
    out = tmp_path / "csv"
    proc = run_cli("predict", "--model", str(model_path), "--output", str(out), str(good),
                   *[str(tmp_path / name) for name in bad], str(tmp_path / "silent.wav"))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == len(bad), proc.stderr
    for name, fragment in zip(bad, ("cannot be read as audio", "empty (0 bytes)", "no audio samples", "not found")):
        assert any(name in line and fragment in line for line in errors), (name, proc.stderr)
    assert any(line.startswith("warning: ") and "silent.wav" in line for line in proc.stderr.splitlines())
    assert proc.stderr.splitlines()[-1] == f"{len(bad)} of {len(bad) + 2} files failed"
    assert sorted(p.name for p in out.iterdir()) == ["silent.f0.csv", "violin_69.f0.csv"]
    samples = len(to_model_rate(*sf.read(good, dtype="float32")))
    assert len(pd.read_csv(out / "violin_69.f0.csv")) == 1 + samples // 160


def test_cli_summary_gives_note_and_cents(model_path, notes, tmp_path, capsys):
    paths = [str(path) for path, _ in notes.values()]
    assert main(["predict", "--summary", "--model", str(model_path), "--output", str(tmp_path), *paths]) == 0
    lines = capsys.readouterr().out.splitlines()
    for path, line in zip(paths, lines):
        assert line.startswith(f"{path}: ") and " Hz, " in line and " cents (confidence " in line
    assert [line.split(", ")[1].split()[0] for line in lines[:len(paths)]] == ["A4", "E4", "E5", "C5"]
    table = pd.read_csv(tmp_path / "summary.csv")
    assert list(table.columns) == ["path", "frequency", "note", "cents", "confidence"]
    assert list(table["note"]) == ["A4", "E4", "E5", "C5"]
    played = midi_to_hz(np.array([midi for _, midi in notes]))       # the notes rendered, in the same order
    off = cents(table["frequency"], played)
    assert np.abs(off).max() < 30                                     # the model's tolerance (module docstring)
    np.testing.assert_allclose(table["cents"], off, atol=0.01)        # cents from the note played


def test_cli_refuses_an_incompatible_model_in_one_line(model_path, notes, tmp_path):
    old = tmp_path / "old.keras"
    shutil.copy(model_path, old)
    meta = json.loads(model_path.with_suffix(".json").read_text())
    meta["format_version"] = C.MODEL_FORMAT_VERSION + 1
    old.with_suffix(".json").write_text(json.dumps(meta))
    proc = run_cli("predict", "--model", str(old), str(notes[("Violin", 69)][0]))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.splitlines() == [proc.stderr.strip()] and "format version" in proc.stderr
