"""The shipped frame model over recordings (pipeline/inference/frame_tracking.py, `pipeline predict`):
the same frames whatever the pieces the audio comes in, an exact synthetic vibrato and glide
followed within 10 cents, noise and silence unvoiced, --fmin/--fmax and --summary's spread warning."""

import re

import numpy as np
import pytest
import soundfile as sf
from scipy.ndimage import binary_erosion

from pipeline.core import constants as C
from pipeline.inference.frame_tracking import FrameTracker
from pipeline.inference.prediction import iter_files
from pipeline.inference.predictor import load_predictor
from tests.conftest import run_cli

SR = C.SAMPLE_RATE
EDGE = 0.25                        # seconds of silence before and after each tone
EDGE_FRAMES = 3                    # frames at a tone's onset and end left out of the pitch checks
SECONDS = 2.0
T = np.arange(round(SECONDS * SR)) / SR
CONTOURS = {                       # f0 per sample of the tone (Hz)
    "vibrato": 220.0 * 2 ** (50 / 1200 * np.sin(2 * np.pi * 5.5 * T)),     # +-50 cents at 5.5 Hz
    "glide": 150.0 * 4 ** (T / SECONDS),                                   # 150 -> 600 Hz, two octaves in 2 s
    "steady": np.full(len(T), 220.0),
}


def harmonic(contour: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eight partials (1/k) following `contour` exactly, between silences; and the truth per sample (0: none)."""
    phase = 2 * np.pi * np.cumsum(contour) / SR
    tone = sum(np.sin(k * phase) / k for k in range(1, 9))
    silence = np.zeros(round(EDGE * SR))
    audio = np.concatenate([silence, 0.3 * tone / np.abs(tone).max(), silence]).astype(np.float32)
    return audio, np.concatenate([silence, contour, silence])


def truth_at(times: np.ndarray, truth: np.ndarray) -> np.ndarray:
    return truth[np.minimum(np.rint(times * SR).astype(np.int64), len(truth) - 1)]


def cents(hz, reference) -> np.ndarray:
    return 1200 * np.log2(np.asarray(hz) / np.asarray(reference))


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("frame_tracking")
    paths = {}
    for name, contour in CONTOURS.items():
        paths[name] = folder / f"{name}.wav"
        sf.write(paths[name], harmonic(contour)[0], SR, subtype="FLOAT")
    paths["noise"] = folder / "noise.wav"
    sf.write(paths["noise"], 0.3 * np.random.default_rng(0).standard_normal(2 * SR), SR, subtype="FLOAT")
    paths["silence"] = folder / "silence.wav"
    sf.write(paths["silence"], np.zeros(2 * SR), SR, subtype="FLOAT")
    return paths


def predict_csvs(paths: list, out, *options: str) -> dict[str, np.ndarray]:
    """`pipeline predict` as a user runs it: each file's (time, frequency, confidence) rows."""
    done = run_cli("predict", *options, "--output", str(out), *map(str, paths))
    assert done.returncode == 0, done.stderr
    return {p.stem: np.loadtxt(out / f"{p.stem}.f0.csv", delimiter=",", skiprows=1) for p in paths}


@pytest.fixture(scope="module")
def frames(files, tmp_path_factory) -> dict[str, np.ndarray]:
    return predict_csvs(list(files.values()), tmp_path_factory.mktemp("csv"))


# --- pieces ------------------------------------------------------------------------------------
PIECES = [[7], [1000], [16_000], [1, 13, 160, 161, 999, 4097]]


def track(audio: np.ndarray, sizes: list[int], fine: bool):
    tracker, at, i = FrameTracker(load_predictor(), fine=fine), 0, 0
    while at < len(audio):
        tracker.feed(audio[at:at + sizes[i % len(sizes)]])
        at, i = at + sizes[i % len(sizes)], i + 1
    return tracker.finish()


@pytest.fixture(scope="module")
def vibrato_with_a_gap() -> np.ndarray:
    """2.5 s: silence, a vibrato with a 60 ms gap, faint noise throughout."""
    audio, _ = harmonic(CONTOURS["vibrato"])
    audio[20_000:21_000] = 0.0
    return audio + np.float32(1e-3) * np.random.default_rng(2).standard_normal(len(audio)).astype(np.float32)


@pytest.mark.parametrize("sizes", PIECES, ids=str)
def test_the_network_s_frames_do_not_depend_on_the_pieces_the_audio_comes_in(vibrato_with_a_gap, sizes):
    hz, confidence, levels = track(vibrato_with_a_gap, [len(vibrato_with_a_gap)], fine=False)
    assert len(hz) == 250 and (confidence >= 0.5).sum() > 150
    pieces = track(vibrato_with_a_gap, sizes, fine=False)
    np.testing.assert_allclose(pieces[0], hz, rtol=0, atol=1e-6)
    np.testing.assert_allclose(pieces[1], confidence, rtol=0, atol=1e-9)
    np.testing.assert_allclose(pieces[2], levels, rtol=0, atol=1e-6)


@pytest.mark.parametrize("sizes", [[7], [16_000]], ids=str)
def test_the_fine_frames_do_not_depend_on_the_pieces_the_audio_comes_in(vibrato_with_a_gap, sizes):
    hz, confidence, _ = track(vibrato_with_a_gap, [len(vibrato_with_a_gap)], fine=True)
    pieces = track(vibrato_with_a_gap, sizes, fine=True)
    voiced = confidence >= 0.5
    np.testing.assert_allclose(pieces[0][voiced], hz[voiced], rtol=0, atol=1e-6)


# --- contours through `pipeline predict` --------------------------------------------------------
@pytest.mark.parametrize("name", ["vibrato", "glide", "steady"])
def test_the_csv_follows_an_exact_contour_within_10_cents(frames, name):
    time, hz, confidence = frames[name].T
    truth = truth_at(time, harmonic(CONTOURS[name])[1])
    voiced = truth > 0
    assert (confidence[voiced] >= 0.5).mean() >= 0.9
    inner = binary_erosion(voiced, iterations=EDGE_FRAMES) & (confidence >= 0.5)
    errors = np.abs(cents(hz[inner], truth[inner]))
    # the vibrato's extremes are where the 64 ms window's smoothing shows: about 9.7 cents there
    assert inner.sum() > 180 and errors.max() < 10.0, (errors.max(), time[inner][errors.argmax()])
    assert np.median(errors) < 2.0


def test_noise_and_silence_get_low_confidence(frames):
    time, hz, confidence = frames["silence"].T
    assert len(time) == 201 and np.all(hz == 0) and np.all(confidence == 0)
    confidence = frames["noise"][:, 2]
    assert np.median(confidence) < 0.2 and (confidence >= 0.5).mean() < 0.1


def test_fmin_and_fmax_restrict_the_answer(files, frames, tmp_path):
    """Every frame's pitch lies within the range (the refinement may move it by up to 30 cents); a
    glide's frames inside the range keep their accuracy; a 220 Hz tone under --fmin 300 is not 220 Hz."""
    low, high = 200.0, 400.0
    found = predict_csvs([files["glide"]], tmp_path / "range", "--fmin", str(low), "--fmax", str(high))
    time, hz, confidence = found["glide"].T
    analysed = hz > 0
    assert analysed.sum() > 150
    assert np.all(cents(hz[analysed], low) > -30) and np.all(cents(hz[analysed], high) < 30)
    truth = truth_at(time, harmonic(CONTOURS["glide"])[1])
    inside = (truth > low * 2 ** (1 / 12)) & (truth < high / 2 ** (1 / 12))   # a semitone clear of the bounds
    assert inside.sum() > 60 and (confidence[inside] >= 0.5).mean() >= 0.9
    assert np.abs(cents(hz[inside], truth[inside])).max() < 10.0
    unrestricted = frames["glide"][:, 1]
    assert np.abs(cents(unrestricted[inside], hz[inside])).max() < 1e-3   # the range changes nothing inside it

    time, hz, confidence = predict_csvs([files["steady"]], tmp_path / "above", "--fmin", "300")["steady"].T
    assert hz.max() > 0 and np.all(hz[hz > 0] > 300 * 2 ** (-30 / 1200))
    assert (confidence >= 0.5).mean() < 0.1


def test_summary_warns_when_the_frames_spread_over_more_than_a_semitone(files):
    done = run_cli("predict", "--summary", str(files["glide"]), str(files["steady"]))
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and str(files["glide"]) in warnings[0]
    spread = float(re.search(r"spread over (\d+) cents", warnings[0]).group(1))
    assert spread == pytest.approx(0.8 * 2400, abs=60)    # 10th to 90th percentile of two octaves in even time
    steady = re.search(rf"{re.escape(str(files['steady']))}: ([\d.]+) Hz", done.stdout)
    assert abs(cents(float(steady.group(1)), 220.0)) < 1.0


VIBRATOS = [(220.0, 50.0, 5.5), (440.0, 50.0, 5.5), (330.0, 80.0, 5.0)]   # centre Hz, depth cents, rate Hz


def vibrato_summary(tmp_path, centre: float, depth: float, rate: float, refine: bool):
    path = tmp_path / "vibrato.wav"
    sf.write(path, harmonic(centre * 2 ** (depth / 1200 * np.sin(2 * np.pi * rate * T)))[0], SR, subtype="FLOAT")
    (result,) = iter_files([path], load_predictor(), summary=True, refine=refine)
    return result.summary


@pytest.mark.parametrize("centre, depth, rate", VIBRATOS)
def test_the_frames_summary_of_a_vibrato_note_is_its_centre(tmp_path, centre, depth, rate):
    summary = vibrato_summary(tmp_path, centre, depth, rate, refine=False)
    assert abs(cents(summary.frequency, centre)) < 3.0 and summary.spread_cents < 2 * depth


@pytest.mark.parametrize("centre, depth, rate", VIBRATOS)
def test_the_refined_summary_of_a_vibrato_note_is_its_centre(tmp_path, centre, depth, rate):
    summary = vibrato_summary(tmp_path, centre, depth, rate, refine=True)
    assert abs(cents(summary.frequency, centre)) < 5.0
