"""batches: what each training step sees. Rows stay paired with their labels, every epoch visits each
row once, a step's batch is a function of (seed, epoch) and (seed, step) alone, a level change is the
gain it says in every scaling, and the noise examples are unpitched with flat targets. Numpy only."""

import numpy as np
import pytest

from pipeline.core import constants as C
from pipeline.core.config import load_config
from pipeline.dsp.spectrogram import spectrogram
from pipeline.model.batches import NOISE_BANK, BatchMaker, Changes, change_level, epoch_batches, noise_clips
from pipeline.model.encodings import BinEncoding

ROWS = 40


@pytest.fixture(scope="module")
def encoding():
    return BinEncoding.for_config(load_config(None, []))


@pytest.fixture(scope="module")
def labelled():
    """ROWS spectrograms, row i filled with the value i, and a label per row: 100 Hz x 1.05^i."""
    features = np.repeat(np.arange(ROWS, dtype=np.float16)[:, None, None], C.N_FREQ_BINS, axis=1)
    features = np.repeat(features, C.N_FRAMES, axis=2)
    hz = 100.0 * 1.05 ** np.arange(ROWS)
    return features, hz


def test_every_epoch_visits_each_row_at_most_once_in_an_order_of_its_own():
    batches = epoch_batches(103, 16, seed=5, first_epoch=0, epochs=3)
    assert batches.shape == (3 * 6, 16)               # 103 // 16 = 6 full steps an epoch; the rest waits
    epochs = batches.reshape(3, -1)
    for order in epochs:
        assert len(set(order)) == len(order) and order.min() >= 0 and order.max() < 103
    assert not np.array_equal(epochs[0], epochs[1])
    np.testing.assert_array_equal(epoch_batches(103, 16, seed=5, first_epoch=2, epochs=3), batches[12:])
    assert not np.array_equal(epoch_batches(103, 16, seed=6, first_epoch=0, epochs=1), batches[:6])
    assert epoch_batches(10, 32, seed=0, first_epoch=0, epochs=1).shape == (1, 10)   # a batch no larger than the data


def test_a_batch_pairs_each_row_with_its_own_label(labelled, encoding):
    features, hz = labelled
    maker = BatchMaker(features, hz, encoding, Changes())
    index = np.array([31, 2, 17, 9, 0])
    x, y = maker(index, step=0)
    assert x.dtype == np.float32 and x.shape == (5, C.N_FREQ_BINS, C.N_FRAMES)
    rows = x[:, 0, 0].astype(int)                      # which row each example is
    assert sorted(rows) == sorted(index)
    decoded, _ = encoding.decode(y)
    np.testing.assert_allclose(decoded, hz[rows], rtol=0.003)   # within a bin's width: the row's own label
    np.testing.assert_array_equal(x, features[rows].astype(np.float32))


def test_the_same_step_gives_the_same_batch_and_another_step_another(labelled, encoding):
    features, hz = labelled
    maker = BatchMaker(features, hz, encoding, Changes(level_db=30.0, noise_share=0.3, scaling="log", seed=4))
    index = np.arange(0, 32)
    a, b = maker(index, step=7), maker(index, step=7)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    again = BatchMaker(features, hz, encoding, Changes(level_db=30.0, noise_share=0.3, scaling="log", seed=4))
    np.testing.assert_array_equal(again(index, step=7)[0], a[0])      # a resumed run's batches
    assert not np.array_equal(maker(index, step=8)[0], a[0])


def test_noise_examples_replace_a_share_of_the_batch_with_flat_targets(labelled, encoding):
    features, hz = labelled
    maker = BatchMaker(features, hz, encoding, Changes(noise_share=0.25, scaling="log", seed=1))
    swapped = 0
    for step in range(40):
        x, y = maker(np.arange(ROWS), step)
        noise = ~np.isin(x[:, 0, 0], np.arange(ROWS)) | (x.std(axis=(1, 2)) > 0)
        np.testing.assert_allclose(y[noise], 1.0 / y.shape[1])
        assert np.all(y[~noise].max(axis=1) > 0.1)           # the others keep their pitch targets
        swapped += noise.sum()
    assert 0.2 < swapped / (40 * ROWS) < 0.3


def test_the_noise_bank_is_unpitched_16_bit_audio_at_minus_1_dbfs():
    clips = noise_clips(16, seed=3)
    assert clips.shape == (16, C.CLIP_SAMPLES) and NOISE_BANK >= 256
    np.testing.assert_array_equal(clips * 32768, np.round(clips * 32768))     # on the 16-bit grid
    np.testing.assert_allclose(np.abs(clips).max(axis=1), C.PEAK_NORMALIZE_LINEAR, atol=1 / 32768)
    np.testing.assert_array_equal(noise_clips(16, seed=3), clips)
    from pipeline.dsp.fine_pitch import estimate

    _, confidence = estimate(clips)
    assert np.median(confidence) < 0.8                # YIN is unsure of them, as of noise


@pytest.mark.parametrize("scaling", ["linear", "log", "db"])
def test_a_level_change_is_the_spectrogram_of_the_clip_played_that_much_quieter(scaling):
    t = np.arange(C.CLIP_SAMPLES) / C.SAMPLE_RATE
    clip = (0.8 * np.sin(2 * np.pi * 330 * t) + 0.1 * np.sin(2 * np.pi * 990 * t)).astype(np.float32)
    gains = np.array([0.0, -6.0, -25.0])
    quieter = np.stack([clip * np.float32(10 ** (g / 20)) for g in gains])
    changed = change_level(np.repeat(spectrogram(clip[None], scaling), 3, axis=0), gains, scaling)
    want = spectrogram(quieter, scaling)
    if scaling == "linear":
        np.testing.assert_allclose(changed, want, rtol=1e-4, atol=1e-7)
    else:   # but for float32 rounding of the logarithm near LOG_EPSILON (a few bins at -13.8)
        np.testing.assert_allclose(changed, want, atol=5e-3 if scaling == "log" else 5e-2)
        assert np.abs(changed - want).mean() < 1e-4 * (1 if scaling == "log" else 10)


def test_levels_are_drawn_down_to_level_db_quieter(encoding):
    """Each example gets a gain between 0 and -level_db: read back from a linear spectrogram of ones."""
    features = np.ones((64, C.N_FREQ_BINS, C.N_FRAMES), np.float32)
    maker = BatchMaker(features, np.full(64, 440.0), encoding, Changes(level_db=20.0, scaling="linear", seed=2))
    x, _ = maker(np.arange(64), step=3)
    gains_db = 20 * np.log10(x[:, 0, 0])
    assert gains_db.max() <= 0.0 and gains_db.min() >= -20.0
    assert gains_db.min() < -15.0 and gains_db.max() > -5.0   # spread over the range
