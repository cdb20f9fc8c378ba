"""splits: which notes and phrases go to train, validation and test, on made-up tables of notes (no
rendering): held-out sources and instruments go to test under either kind of split, the rest by a
hash of the note."""

from pathlib import Path

import pandas as pd
import pytest

from pipeline.core.config import load_config
from pipeline.data.splits import NOTE_COLUMNS, PHRASE_COLUMNS, assign_phrase_splits, assign_splits

SOURCES = ["FluidR3_GM.sf2", "TimGM6mb.sf2", "synthetic"]
INSTRUMENTS = ["violin", "flute", "trumpet", "sawtooth"]


def notes() -> pd.DataFrame:
    """Every source x instrument x 40 pitches x 2 velocities: 960 notes."""
    return pd.DataFrame([{"source": s, "instrument": i, "midi": m, "velocity": v, "variant": 0}
                         for s in SOURCES for i in INSTRUMENTS for m in range(40, 80) for v in (40, 110)],
                        columns=NOTE_COLUMNS)


def config(*overrides: str):
    return load_config(None, [f'root="{Path("/nonexistent")}"', *overrides])


@pytest.mark.parametrize("test", ["random", "instrument"])
def test_held_out_sources_go_to_test_whole_under_either_split(test):
    cfg = config(f'split.test="{test}"', 'split.test_sources=["TimGM6mb.sf2"]', "split.test_share=0.2",
                 "split.val_share=0.1", 'split.test_instruments=["Flute"]')
    frame = notes()
    split = assign_splits(cfg, frame)
    held = frame["source"] == "TimGM6mb.sf2"
    assert (split[held] == "test").all()
    rest = split[~held]
    if test == "random":   # the others by the hash: about test_share of them, every instrument among them
        assert 0.14 < (rest == "test").mean() < 0.26
        assert set(frame.loc[~held & (split == "test"), "instrument"]) == set(INSTRUMENTS)
    else:                  # the others: the held-out instrument alone
        assert set(frame.loc[~held & (split == "test"), "instrument"]) == {"flute"}
    assert 0.05 < (rest == "val").mean() < 0.16 and (rest == "train").mean() > 0.6


def test_a_random_split_with_no_test_share_tests_only_the_held_out_sources():
    cfg = config('split.test="random"', 'split.test_sources=["synthetic"]', "split.test_share=0.0",
                 "split.val_share=0.0")
    frame = notes()
    split = assign_splits(cfg, frame)
    assert list(split) == ["test" if s == "synthetic" else "train" for s in frame["source"]]


def test_membership_is_a_function_of_the_note_alone():
    """The same note gets the same split in any order and beside any other notes."""
    cfg = config('split.test="random"', "split.test_share=0.3", "split.val_share=0.2")
    frame = notes()
    whole = assign_splits(cfg, frame)
    shuffled = frame.sample(frac=1.0, random_state=1)
    assert assign_splits(cfg, shuffled).sort_index().equals(whole)
    half = frame.iloc[::2]
    assert assign_splits(cfg, half).equals(whole.iloc[::2])
    other_seed = assign_splits(config('split.test="random"', "split.test_share=0.3", "split.val_share=0.2",
                                      "data.seed=1"), frame)
    assert (other_seed != whole).mean() > 0.2   # the seed redraws the split


@pytest.mark.parametrize("test", ["random", "instrument"])
def test_phrases_follow_the_same_rules(test):
    cfg = config(f'split.test="{test}"', 'split.test_sources=["voice"]', "split.test_share=0.25",
                 "split.val_share=0.1", 'split.test_instruments=["Flute"]')
    frame = pd.DataFrame([{"source": s, "instrument": i, "style": "melody", "index": k}
                          for s in ["FluidR3_GM.sf2", "voice"] for i in ["violin", "flute"] for k in range(150)],
                         columns=PHRASE_COLUMNS)
    split = assign_phrase_splits(cfg, frame)
    voice = frame["source"] == "voice"
    assert (split[voice] == "test").all()
    font = split[~voice]
    if test == "random":
        assert 0.17 < (font == "test").mean() < 0.33
    else:
        assert list(font[font == "test"].index) == list(frame.index[~voice & (frame["instrument"] == "flute")])
    assert (font == "val").any() and (font == "train").any()
