"""Phrases in the data stage: a frame table every 10 ms that the audio itself bears out, the same
bytes with one worker or two, a damaged phrase repaired alone, and the counts in dataset.json."""

import dataclasses
import hashlib
import json

import numpy as np
import pandas as pd
import pytest

from pipeline.data.clips import load_frames, load_phrases, read_phrase
from pipeline.data.dataset import build_dataset
from pipeline.data.phrase_labels import read_frame_table
from pipeline.dsp.frame_pitch import yin
from tests.conftest import tiny_phrase_config


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    cfg = tiny_phrase_config(tmp_path_factory.mktemp("phrases"))
    build_dataset(cfg)
    return cfg


def tree(folder) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.parent.name != "shards"}


def test_every_phrase_has_a_frame_every_10_ms(built):
    phrases = load_phrases(built)
    assert list(phrases["kind"]) == ["soundfont", "tone", "voice", "voice"]
    for row in phrases.itertuples():
        table = read_frame_table(built.data_dir / row.frames_path)
        assert len(table) == row.frames == int(np.ceil(row.seconds * 100))
        np.testing.assert_allclose(table["time"], np.arange(len(table)) * 0.01, atol=1e-9)
        assert ((table["f0_hz"] > 0) == (table["voiced"] == 1)).all()
        assert (table["clean"] <= table["voiced"]).all()
        assert row.voiced_frames == table["voiced"].sum() > 0.3 * len(table)
        curve = np.load(built.data_dir / row.curve_path)
        assert curve.dtype == np.float32 and abs(len(curve) - row.seconds * 1000) <= 1
    frames = load_frames(built)
    assert len(frames) == phrases["frames"].sum() and set(frames["path"]) == set(phrases["path"])


def test_the_audio_bears_out_its_labels(built):
    """From the written 16 kHz audio alone: the f0 of the clean, trusted frames is the label
    (the synthetic sources exactly; the soundfont's square wave within a few cents)."""
    for row in load_phrases(built).itertuples():
        table = read_frame_table(built.data_dir / row.frames_path)
        use = (table["clean"] == 1) & (table["flag"] == "")
        track = yin(read_phrase(built.data_dir / row.path), table["time"].to_numpy()[use])
        error = np.abs(1200 * np.log2(track.f0_hz / table["f0_hz"].to_numpy()[use]))
        error = np.where(np.isfinite(error), error, 1e4)
        assert use.sum() > 50
        assert np.mean(error <= 50) >= 0.99, (row.path, np.mean(error <= 50))
        assert np.median(error) <= 5, (row.path, np.median(error))


def test_one_worker_or_two_give_the_same_bytes(built, tmp_path):
    two = dataclasses.replace(built, root=str(tmp_path), data=dataclasses.replace(built.data, workers=2))
    build_dataset(two)
    assert tree(two.data_dir / "phrases") == tree(built.data_dir / "phrases")
    for name in ("phrases.csv", "frames.csv"):
        assert (two.data_dir / name).read_bytes() == (built.data_dir / name).read_bytes()


def test_a_damaged_phrase_is_rendered_again_to_the_same_bytes(built, tmp_path, capsys):
    import shutil

    copy = dataclasses.replace(built, root=str(tmp_path))
    shutil.copytree(built.data_dir, copy.data_dir)
    victim = copy.data_dir / load_phrases(copy)["path"][2]
    good = victim.read_bytes()
    victim.write_bytes(good[:1000])
    capsys.readouterr()
    build_dataset(copy)
    out = "".join(capsys.readouterr())
    assert victim.read_bytes() == good
    assert "1 rendered" in out and "missing or changed" in out


def test_dataset_json_counts_the_phrases_and_their_flags(built):
    info = json.loads((built.data_dir / "dataset.json").read_text())["phrases"]
    phrases = load_phrases(built)
    assert info["phrases"] == 4 and info["per_source"] == {"TimGM6mb.sf2": 1, "synthetic": 1, "voice": 2}
    assert info["voiced_frames"] == phrases["voiced_frames"].sum()
    assert info["flagged_frames"] == sum(info["flagged_by_cause"].values()) == phrases["flagged_frames"].sum()
    assert set(info["per_style"]) <= {"melody", "speech", "sung"}


def test_flags_keep_untrusted_frames_out_of_the_frame_examples(built, tmp_path):
    """A frame flagged in its table is not an example of the frame model."""
    import shutil

    from pipeline.data.frame_examples import build_frame_examples, load_examples

    copy = dataclasses.replace(built, root=str(tmp_path), features=dataclasses.replace(built.features, kind="frames"),
                               model=dataclasses.replace(built.model, variant="frames"))
    shutil.copytree(built.data_dir, copy.data_dir)
    row = load_phrases(copy).iloc[0]
    path = copy.data_dir / row["frames_path"]
    table = pd.read_csv(path, keep_default_na=False, dtype={"flag": str})
    voiced = table.index[table["voiced"] == 1]
    table.loc[voiced[:10], "flag"] = "off"
    path.write_text(table.to_csv(index=False, float_format="%.4f"))
    build_frame_examples(copy)
    _, examples = load_examples(copy, "train")
    frames = sum(len(read_frame_table(copy.data_dir / p)) for p in load_phrases(copy)["frames_path"])
    assert len(examples) == frames - 10
