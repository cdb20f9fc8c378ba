"""The model shipped in the package: there, small, fast to start, and right on plain tones and noise,
through `pipeline predict` as a user runs it (no --model, no training)."""

import json
import re
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from pipeline.inference.predictor import default_model_path
from tests.conftest import REPO, run_cli

SHIPPED_LIMIT_BYTES = 5 * 1024 * 1024


def test_the_package_carries_a_small_frame_model():
    model = default_model_path()
    assert model.is_file() and model.stat().st_size <= SHIPPED_LIMIT_BYTES
    meta = json.loads(model.with_suffix(".json").read_text())
    assert meta["variant"] == "frames" and meta["config"]["name"] == "shipped"
    # what made it: the recipe, the fonts by checksum (TimGM6mb held out of its training), the versions
    assert {f["name"] for f in meta["soundfonts"]} >= {"FluidR3_GM.sf2", "TimGM6mb.sf2"}
    assert all(len(f["sha256"]) == 64 for f in meta["soundfonts"])
    assert meta["config"]["split"]["test_sources"] == ["TimGM6mb.sf2"] and "tensorflow-cpu" in meta["versions"]


def test_predict_loads_it_without_tensorflow():
    code = ("import sys, numpy as np; from pipeline.inference.prediction import predict; "
            "from pipeline.inference.predictor import load_predictor; p = load_predictor(); "
            "t = np.arange(16000) / 16000; "
            "_, hz, c = predict(np.sin(2 * np.pi * 440 * t), 16000, p); "
            "print(type(p).__name__, 'tensorflow' in sys.modules, 'keras' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.stdout.split() == ["FramePredictor", "False", "False"], out.stderr


def tone(path, kind: str, hz: float, rate: int, channels: int, seconds: float = 1.0):
    """A plain tone (band-limited Fourier series, 0.5 peak), written as a user's file would be."""
    t = np.arange(round(seconds * rate)) / rate
    harmonics = {"sine": [1], "triangle": range(1, 200, 2), "square": range(1, 200, 2)}[kind]
    wave = np.zeros_like(t)
    for n in harmonics:
        if n * hz >= rate / 2:
            break
        if kind == "triangle":
            amplitude = (-1) ** ((n - 1) // 2) / n ** 2
        else:
            amplitude = 1.0 if kind == "sine" else 1.0 / n
        wave += amplitude * np.sin(2 * np.pi * n * hz * t)
    wave *= 0.5 / np.abs(wave).max()
    sf.write(str(path), np.repeat(wave[:, None], channels, axis=1), rate, subtype="PCM_16")
    return path


def summaries(paths) -> dict[str, float]:
    done = run_cli("predict", "--summary", *map(str, paths))
    found = {}
    for line in done.stdout.splitlines():
        match = re.match(r"(.+?): ([\d.]+) Hz", line)
        if match:
            found[match.group(1)] = float(match.group(2))
    return found


@pytest.mark.parametrize("kind", ["sine", "triangle", "square"])
def test_plain_tones_from_80_hz_to_2_khz_at_any_rate_and_channel_count(tmp_path, kind):
    notes = list(range(40, 96, 5))      # E2 (82 Hz) to B6 (1,976 Hz)
    formats = [(44100, 2), (16000, 1), (48000, 1), (22050, 2), (32000, 1)]
    files = {}
    for i, midi in enumerate(notes):
        hz = 440.0 * 2 ** ((midi - 69) / 12)
        rate, channels = formats[i % len(formats)]
        if hz > 0.4 * rate:
            rate, channels = 44100, 2
        files[str(tone(tmp_path / f"{kind}_{midi}.wav", kind, hz, rate, channels))] = hz
    found = summaries(files)
    errors = {name: 1200 * np.log2(found[name] / hz) if name in found else np.inf for name, hz in files.items()}
    assert max(abs(e) for e in errors.values()) < 30, errors


def test_noise_and_silence_have_no_pitch(tmp_path):
    rng = np.random.default_rng(0)
    white = tmp_path / "white.wav"
    sf.write(str(white), 0.3 * rng.standard_normal(16000), 16000)
    brown = tmp_path / "brown.wav"
    sf.write(str(brown), 0.3 * np.cumsum(rng.standard_normal(16000)) / 100, 16000)
    silent = tmp_path / "silent.wav"
    sf.write(str(silent), np.zeros(16000), 16000)
    out = tmp_path / "out"
    done = run_cli("predict", str(white), str(brown), str(silent), "--output", str(out))
    assert done.returncode == 0, done.stderr
    for name in ("white", "brown", "silent"):
        confidence = np.loadtxt(out / f"{name}.f0.csv", delimiter=",", skiprows=1)[:, 2]
        assert np.median(confidence) < 0.2, (name, np.median(confidence))


def test_the_summary_is_made_fine_unless_told_not_to(tmp_path):
    """--summary makes the frames' median fine from the note's middle second (pipeline.dsp.fine_pitch);
    --no-refine gives the median of the frames' own estimates (each from its 64 ms), coarser."""
    hz = 440.0 * 2 ** (13 / 1200)                      # between the network's 50-cent bins
    path = tone(tmp_path / "off_grid.wav", "square", hz, 44100, 2)
    fine = summaries([path])[str(path)]
    done = run_cli("predict", "--summary", "--no-refine", str(path))
    coarse = float(re.match(r".+?: ([\d.]+) Hz", done.stdout).group(1))
    assert abs(1200 * np.log2(fine / hz)) < 0.5
    assert 0.2 < abs(1200 * np.log2(coarse / hz)) < 10   # 0.7 cents when written


def test_each_frame_is_made_fine_from_its_partials(tmp_path):
    """The network's candidates are 50 cents apart; each frame's partials (pipeline/dsp/frame_refine.py)
    put a note between them within a cent, where the network alone is several cents off."""
    from pipeline.inference.frame_tracking import track_audio
    from pipeline.inference.predictor import load_predictor

    hz = 440.0 * 2 ** (13 / 1200)
    path = tone(tmp_path / "off_grid.wav", "square", hz, 44100, 2)
    fine = summaries([path])[str(path)]
    assert abs(1200 * np.log2(fine / hz)) < 1.0
    audio = tone(tmp_path / "mono.wav", "square", hz, 16000, 1)
    frequency, confidence, _ = track_audio([sf.read(audio, dtype="float32")[0]], load_predictor(), fine=False)
    sure = confidence > 0.5 * confidence.max()
    assert 2 < abs(np.median(1200 * np.log2(frequency[sure] / hz))) < 50


def test_stereo_channels_are_mixed_before_the_model(tmp_path):
    """Left and right hold different notes: predict hears their mean, neither channel alone, whether
    the file is read whole (pipeline.predict_from_file) or a block at a time (pipeline predict); a
    channel and its negative cancel to silence, and a note on the right alone is heard."""
    from pipeline.inference import prediction as P
    from pipeline.inference.predictor import load_predictor

    predictor = load_predictor()
    rate = 44100
    t = np.arange(2 * rate) / rate
    left = (0.4 * sum(np.sin(2 * np.pi * 220.0 * k * t) / k for k in range(1, 6))).astype(np.float32)
    right = (0.4 * sum(np.sin(2 * np.pi * 311.13 * k * t) / k for k in range(1, 6))).astype(np.float32)
    files = {}
    for name, audio in (("stereo", np.stack([left, right], axis=1)), ("mean", (left + right) * np.float32(0.5)),
                        ("left", left), ("right", right), ("cancel", np.stack([left, -left], axis=1)),
                        ("right_only", np.stack([np.zeros_like(right), right], axis=1))):
        files[name] = tmp_path / f"{name}.wav"
        sf.write(files[name], audio, rate, subtype="FLOAT")

    whole = {name: P.predict_from_file(path, predictor) for name, path in files.items()}
    streamed = {r.path.stem: r.prediction for r in P.iter_files(list(files.values()), predictor, tmp_path / "out")}
    for name in files:
        np.testing.assert_allclose(whole[name][1], streamed[name].frequency, rtol=1e-4, atol=1e-3)
    for got in (whole, {k: (p.time, p.frequency, p.confidence) for k, p in streamed.items()}):
        np.testing.assert_array_equal(got["stereo"][1], got["mean"][1])     # the mean, bit for bit
        np.testing.assert_array_equal(got["stereo"][2], got["mean"][2])
        assert not np.array_equal(got["stereo"][1], got["left"][1])
        assert not np.array_equal(got["stereo"][1], got["right"][1])
        assert got["cancel"][2].max() == 0.0 and got["cancel"][1].max() == 0.0
        time, frequency, confidence = got["right_only"]
        inside = (time > 0.1) & (time < 1.9)
        assert np.median(np.abs(1200 * np.log2(frequency[inside] / 311.13))) < 30
        assert np.median(confidence[inside]) > 0.2


def test_a_damaged_copy_of_it_is_refused_in_one_line(tmp_path):
    """Its metadata records the ONNX file's sha256: a flipped byte in the weights (which ONNX
    Runtime would load and run) is named before any prediction."""
    import shutil

    model = tmp_path / "model.onnx"
    shutil.copy(default_model_path(), model)
    shutil.copy(default_model_path().with_suffix(".json"), tmp_path / "model.json")
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0x01
    model.write_bytes(bytes(data))
    note = tone(tmp_path / "a.wav", "sine", 440.0, 16000, 1)
    done = run_cli("predict", "--summary", "--model", str(model), str(note))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        f"error: model {model} is damaged (its sha256 is not the one its metadata records); retrain it with make train "
        "(or python -m pipeline train)"]
