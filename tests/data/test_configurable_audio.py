"""Clips in the rate, length, sample format and container a user asks for (docs/dataset.md): a 44.1 kHz,
2-second FLAC dataset built, rebuilt byte for byte with another number of workers, repaired, featurised,
trained on (the frame model), reported on and exported; 22.05 kHz 24-bit whole notes with spectrograms
that follow their rate and length."""

from __future__ import annotations

import hashlib
import io
import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from pipeline.core.errors import PipelineError
from pipeline.data.clips import dataset_format, load_manifest, read_clip, read_clips, split_rows
from pipeline.data.dataset import build_dataset
from pipeline.data.feature_files import load_split
from pipeline.dsp.spectrogram import Stft, spectrogram
from tests.conftest import built, run_cli, tiny_config

HIFI = ("data.sample_rate=44100", "data.clip_seconds=2.0", 'data.file_format="flac"', "data.hold_seconds=2.5",
        "data.release_seconds=2.0", 'data.segments=["sustain", "decay"]', "data.note_low=60", "data.note_high=76",
        "augment.share=0.5", 'model.variant="frames"', 'features.kind="frames"',
        "train.epochs=8", "train.learning_rate=0.01", "report.baselines=[]")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def hifi(tmp_path_factory):
    """The 44.1 kHz 2 s FLAC dataset, its frame examples and a trained frame model."""
    return built(tiny_config(tmp_path_factory.mktemp("hifi"), "name=hifi", *HIFI), trained=True)


def test_every_clip_is_a_44k1_two_second_flac(hifi):
    manifest = load_manifest(hifi)
    assert len(manifest) > 100 and manifest["path"].str.endswith(".flac").all()
    for path in manifest["path"]:
        info = sf.info(hifi.data_dir / path)
        assert (info.format, info.subtype, info.samplerate, info.channels, info.frames) == \
            ("FLAC", "PCM_16", 44_100, 1, 88_200)
    info = json.loads((hifi.data_dir / "dataset.json").read_text())
    assert info["audio"] == {"rate": 44_100, "samples": 88_200, "sample_format": "int16", "file_format": "flac"}
    assert "44100 Hz mono 16-bit FLAC, 88,200 samples (2000 ms)" in (hifi.data_dir / "README.md").read_text()
    audio = read_clips(hifi, manifest.iloc[:3])
    assert audio.shape == (3, 88_200) and np.abs(audio).max() > 0.5
    assert read_clips(hifi, manifest.iloc[:3], rate=16_000).shape == (3, 32_000)


def test_the_same_bytes_with_another_number_of_workers(hifi, tmp_path):
    again = tiny_config(tmp_path, "name=hifi", *HIFI, "data.workers=1")
    build_dataset(again)
    assert (again.data_dir / "manifest.csv").read_bytes() == (hifi.data_dir / "manifest.csv").read_bytes()
    for path in load_manifest(hifi)["path"]:
        assert (again.data_dir / path).read_bytes() == (hifi.data_dir / path).read_bytes(), path


def test_a_damaged_flac_is_rendered_again(hifi, tmp_path):
    """A FLAC's size varies, so only its sha256 can tell: a clip cut short or changed in place is rebuilt."""
    import shutil

    copy = tiny_config(tmp_path, "name=hifi", *HIFI)
    shutil.copytree(hifi.data_dir, copy.data_dir)
    manifest = load_manifest(copy)
    cut, changed = (copy.data_dir / p for p in manifest["path"].iloc[[0, 5]])
    cut.write_bytes(cut.read_bytes()[:1000])
    data = bytearray(changed.read_bytes())
    data[len(data) // 2] ^= 0xFF
    changed.write_bytes(bytes(data))
    build_dataset(copy)
    for path, want in zip(manifest["path"].iloc[[0, 5]], manifest["sha256"].iloc[[0, 5]]):
        assert sha((copy.data_dir / path).read_bytes()) == want


def test_the_frame_model_learns_from_them(hifi):
    """Examples resampled to the model's 16 kHz (4 frames per 330 ms: 24 of each 2 s clip), trained,
    reported on the held-out Flute."""
    done = json.loads((hifi.data_dir / "features" / "done.json").read_text())
    train_clips = len(split_rows(load_manifest(hifi), "train"))
    assert done["audio"]["rate"] == 44_100 and done["counts"]["train"] == 24 * train_clips
    history = pd.read_csv(hifi.model_dir / "history.csv")
    assert history["val_rpa50"].max() >= 0.7, history
    from pipeline.report.reporting import build_report

    build_report(hifi)
    predictions = pd.read_csv(hifi.report_dir / "predictions.csv")
    assert len(predictions) == len(split_rows(load_manifest(hifi), "test")) > 20
    assert (predictions["model_cents"].abs() <= 50).mean() >= 0.7


def test_exports_carry_the_flac_bytes(hifi, tmp_path):
    pytest.importorskip("pyarrow", reason="pyarrow: pip install -e .[formats]")
    from pipeline.formats.export import export_dataset
    from pipeline.formats.loaders import tf_dataset, torch_dataset

    export_dataset(hifi, ("parquet", "webdataset", "tfrecord"), tmp_path)
    want = split_rows(load_manifest(hifi), "test")
    table = pd.read_parquet(tmp_path / "parquet", filters=[("split", "==", "test")])
    assert [sha(a["bytes"]) for a in table["audio"]] == list(want["sha256"])
    assert (table["sample_rate"] == 44_100).all() and (table["num_samples"] == 88_200).all()
    first = read_clip(hifi.data_dir / want["path"].iloc[0], fmt=dataset_format(hifi))
    sample = next(iter(torch_dataset(tmp_path / "webdataset", "test")))
    assert np.array_equal(sample["audio"].numpy(), first)
    decoded = next(iter(tf_dataset(tmp_path / "tfrecord", "test")))
    assert np.array_equal(decoded["audio"].numpy(), first)


def test_a_spectrogram_model_is_refused_in_one_line(hifi, tmp_path):
    from pipeline.core.config import to_toml

    spectrogram_model = [key for key in HIFI if not key.startswith(("model.variant", "features.kind"))]
    config = tmp_path / "hifi.toml"
    config.write_text(to_toml(tiny_config(hifi.root, "name=hifi", *spectrogram_model)))
    done = run_cli("train", "--config", str(config))
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert done.returncode != 0 and len(lines) == 1 and "model.variant = 'frames'" in lines[0], lines
    assert not (hifi.model_dir.parent / "hifi" / "reference").exists()


def test_whole_notes_at_22k_in_24_bit_with_spectrograms_that_follow(tmp_path):
    cfg = tiny_config(tmp_path, "name=whole", "data.sample_rate=22050", 'data.sample_format="int24"',
                      'data.segments=["whole"]', "data.hold_seconds=0.6", "data.release_seconds=0.3",
                      "data.note_low=64", "data.note_high=67", 'features.kind="spectrogram"')
    built(cfg)
    manifest = load_manifest(cfg)
    assert set(manifest["segment"]) == {"whole"} and manifest["path"].str.endswith("_whole_v100.wav").all()
    assert (manifest["offset_ms"].abs() < 60).all()   # from the note-on: the onset lies a few ms in
    clip = (cfg.data_dir / manifest["path"].iloc[0]).read_bytes()
    info = sf.info(io.BytesIO(clip))
    assert (info.subtype, info.samplerate, info.frames) == ("PCM_24", 22_050, round(0.9 * 22_050)) and \
        len(clip) == 44 + 3 * info.frames
    stft = Stft.for_clips(22_050, round(0.9 * 22_050))
    features, rows = load_split(cfg, "train")
    assert features.shape == (len(rows), *stft.shape) == (len(rows), 706, 254)
    audio = read_clip(cfg.data_dir / rows["path"].iloc[0], fmt=dataset_format(cfg))
    np.testing.assert_array_equal(features[0], spectrogram(audio[None], stft=stft)[0].astype(np.float16))
    with pytest.raises(PipelineError, match="model.variant = 'frames'"):
        from pipeline.model.training import train

        train(cfg)


def test_phrases_follow_the_rate_and_keep_their_labels(tmp_path):
    """The audit hears every phrase at 16 kHz whatever the clips' rate: a 44.1 kHz 24-bit FLAC build
    labels and flags each frame as the 16 kHz WAV build does, and gives the frame model the same examples."""
    from pipeline.data.clips import load_frames, load_phrases
    from pipeline.data.features import build_features
    from tests.conftest import tiny_phrase_config

    plain = tiny_phrase_config(tmp_path / "plain", 'features.kind="frames"', 'model.variant="frames"')
    hifi = tiny_phrase_config(tmp_path / "hifi", 'features.kind="frames"', 'model.variant="frames"',
                              "data.sample_rate=44100", 'data.sample_format="int24"', 'data.file_format="flac"')
    for cfg in (plain, hifi):
        build_dataset(cfg)
        build_features(cfg)
    phrases = load_phrases(hifi)
    assert phrases["path"].str.endswith(".flac").all()
    for path, seconds in zip(phrases["path"], phrases["seconds"]):
        info = sf.info(hifi.data_dir / path)
        assert (info.subtype, info.samplerate) == ("PCM_24", 44_100) and abs(info.frames / 44_100 - seconds) < 1e-3
    want, got = load_frames(plain), load_frames(hifi)
    assert list(got["path"]) == [p[:-len(".wav")] + ".flac" for p in want["path"]]
    pd.testing.assert_frame_equal(got.drop(columns="path"), want.drop(columns="path"))
    counts = [json.loads((c.data_dir / "features" / "done.json").read_text())["counts"] for c in (plain, hifi)]
    assert counts[0] == counts[1] and counts[0]["train"] > 500
