"""The frame engine with the shipped model: an f0 every 10 ms, in the right frames, however long the
recording and however it arrives (whole, or a block at a time from a file).

The signals are harmonic tones whose pitch steps at known times, so every frame has a known truth.
Tolerances are those a good frame model meets on clean tones between 100 Hz and 1 kHz (the interim
model does better): frames at least 40 ms from a step within 30 cents, each step found within 30 ms.
"""

import numpy as np
import pytest
import soundfile as sf

from pipeline.core import constants as C
from pipeline.inference import prediction as P
from pipeline.inference.frame_tracking import BLOCK_FRAMES, FrameTracker, track_audio
from pipeline.inference.predictor import load_predictor

HOP_SECONDS = 0.010
CENTS = 30.0         # a frame away from a step
LOCATED_S = 0.030    # a step, found in time
CLEAR_S = 0.040      # frames this close to a step are not scored
SEARCH_S = 0.150     # a step is looked for this far either side of where it is


@pytest.fixture(scope="module")
def predictor():
    return load_predictor()


def stepped_tone(changes, pitches, seconds: float, rate: int = C.SAMPLE_RATE) -> np.ndarray:
    """A tone of six partials (1/k) whose f0 is pitches[0] until changes[0], then pitches[1], ...;
    the phase runs on across the steps (no click), the level stays constant."""
    t = np.arange(round(seconds * rate)) / rate
    f0 = np.asarray(pitches, np.float64)[np.searchsorted(np.asarray(changes), t, side="right")]
    phase = 2 * np.pi * np.cumsum(f0) / rate
    wave = sum(np.sin(k * phase) / k for k in range(1, 7))
    return (0.3 * wave / np.abs(wave).max()).astype(np.float32)


def truth_at(times, changes, pitches) -> np.ndarray:
    return np.asarray(pitches, np.float64)[np.searchsorted(np.asarray(changes), times, side="right")]


def score(time, frequency, changes, pitches) -> tuple[np.ndarray, np.ndarray]:
    """(errors in cents of the frames CLEAR_S or more from every step, where each step was found minus
    where it is, in seconds: inf for a step not found within SEARCH_S)."""
    changes = np.asarray(changes)
    far = np.min(np.abs(time[:, None] - changes[None, :]), axis=1) >= CLEAR_S
    with np.errstate(divide="ignore", invalid="ignore"):
        errors = 1200 * np.log2(frequency[far] / truth_at(time[far], changes, pitches))
    errors = np.where(np.isfinite(errors), errors, np.inf)   # no estimate (0 Hz) is a miss
    found = []
    for at, before, after in zip(changes, pitches[:-1], pitches[1:]):
        window = np.flatnonzero(np.abs(time - at) <= SEARCH_S)
        hz = np.maximum(frequency[window], 1e-9)
        new_side = np.abs(np.log(hz / after)) < np.abs(np.log(hz / before))
        settled = [k for k in range(len(window)) if new_side[k:].all()]   # from here on, the new pitch
        found.append(time[window[settled[0]]] - at if settled else np.inf)
    return errors, np.array(found)


def assert_tracks(time, frequency, changes, pitches, label: str) -> None:
    errors, found = score(time, frequency, changes, pitches)
    assert np.mean(np.abs(errors) < CENTS) >= 0.98, (label, np.round(errors[np.abs(errors) >= CENTS][:20]))
    late = np.flatnonzero(np.abs(found) > LOCATED_S)
    assert not len(late), (label, [(round(changes[i], 3), found[i]) for i in late[:10]])


def steps(seconds: float, seed: int, near=()):
    """Steps every 0.35-0.9 s (and at each time of `near`), each to a pitch 2-9 semitones away,
    between A2 (110 Hz) and A5 (880 Hz)."""
    rng = np.random.default_rng(seed)
    times, at = [], 0.0
    while True:
        at += rng.uniform(0.35, 0.9)
        if at >= seconds - 0.3:
            break
        times.append(at)
    times = np.array(sorted(times + list(near)))
    times = times[np.concatenate([[True], np.diff(times) >= 0.3])]
    midi = [57]
    for _ in times:
        step = rng.integers(2, 10) * rng.choice([-1, 1])
        midi.append(int(np.clip(midi[-1] + step, 45, 81)) if 45 <= midi[-1] + step <= 81 else midi[-1] - step)
    return times, 440.0 * 2 ** ((np.array(midi) - 69) / 12)


# --- a few seconds, as an array ----------------------------------------------------------------------
def test_a_pitch_that_steps_is_followed_frame_by_frame_and_in_time(predictor):
    changes, pitches = steps(4.0, seed=1)
    audio = stepped_tone(changes, pitches, 4.0)
    time, frequency, confidence = P.predict(audio, C.SAMPLE_RATE, predictor, hop=HOP_SECONDS)
    assert len(time) == 1 + len(audio) // 160
    np.testing.assert_allclose(time, np.arange(len(time)) * HOP_SECONDS)
    assert_tracks(time, frequency, changes, pitches, "4 s at 16 kHz")
    assert np.median(confidence[time > 0.1]) > 0.2


def test_a_longer_hop_takes_the_nearest_10_ms_frame(predictor):
    changes, pitches = steps(2.0, seed=2)
    audio = stepped_tone(changes, pitches, 2.0)
    _, every, _ = P.predict(audio, C.SAMPLE_RATE, predictor, hop=0.010)
    time, frequency, _ = P.predict(audio, C.SAMPLE_RATE, predictor, hop=0.030)
    np.testing.assert_allclose(time, np.arange(len(time)) * 0.030)
    np.testing.assert_array_equal(frequency, every[::3][:len(frequency)])


# --- longer than many blocks: a file read and tracked a block at a time ------------------------------
LONG_SECONDS = 35.0
# steps on and near every edge of the tracker's 5 s blocks and of the reader's 10 s blocks
EDGES = [k * BLOCK_FRAMES * HOP_SECONDS + d for k in range(1, 7) for d in (-0.012, 0.004)]


@pytest.fixture(scope="module")
def long_file(tmp_path_factory):
    changes, pitches = steps(LONG_SECONDS, seed=3, near=EDGES)
    audio = stepped_tone(changes, pitches, LONG_SECONDS, rate=44100)
    path = tmp_path_factory.mktemp("long") / "long.wav"
    sf.write(path, np.stack([audio, audio], axis=1), 44100, subtype="PCM_24")   # as a user's recording
    return path, changes, pitches


def test_a_35_second_file_is_tracked_in_every_block(predictor, long_file, tmp_path):
    """`pipeline predict` reads a file 10 s at a time and the tracker runs 5 s blocks: the steps in
    the seventh block are found where they are, as those in the first."""
    path, changes, pitches = long_file
    assert any(at > 6 * BLOCK_FRAMES * HOP_SECONDS for at in changes)
    (result,) = P.iter_files([path], predictor, tmp_path)
    streamed = result.prediction
    assert result.ok and len(streamed.time) == 1 + round(LONG_SECONDS * C.SAMPLE_RATE) // 160
    assert_tracks(streamed.time, streamed.frequency, changes, pitches, "streamed")
    for block in range(7):   # and block by block, so that a misplaced block cannot hide in the average
        inside = (streamed.time >= block * 5.0) & (streamed.time < (block + 1) * 5.0)
        errors, _ = score(streamed.time[inside], streamed.frequency[inside], changes, pitches)
        assert np.mean(np.abs(errors) < CENTS) >= 0.97, block

    time, frequency, _ = P.predict_from_file(path, predictor)   # read whole, resampled at once
    np.testing.assert_array_equal(time, streamed.time)
    assert_tracks(time, frequency, changes, pitches, "whole")
    table = np.loadtxt(tmp_path / "long.f0.csv", delimiter=",", skiprows=1)
    np.testing.assert_allclose(table[:, 1], streamed.frequency, atol=1e-3)


def test_pieces_and_blocks_of_any_size_give_the_same_frames(predictor):
    """The tracker's result does not depend on how the audio is cut into pieces nor on its block size."""
    changes, pitches = steps(12.0, seed=4, near=[5.0, 10.0])
    audio = stepped_tone(changes, pitches, 12.0)
    whole = track_audio([audio], predictor)
    tracker = FrameTracker(predictor, block_frames=37)
    cuts = np.cumsum(np.random.default_rng(0).integers(1, 9000, 200))
    for piece in np.split(audio, cuts[cuts < len(audio)]):
        tracker.feed(piece)
    pieces = tracker.finish()
    assert len(whole[0]) == len(pieces[0]) == len(audio) // 160   # the last frame centred inside the audio
    for a, b in zip(whole, pieces):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
