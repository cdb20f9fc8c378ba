"""pipeline export-dataset: a real tiny dataset exported in every format, read back with pandas, Hugging
Face `datasets`, the `webdataset` reader and NSynth's layout, audio bytes (sha256) and every label
column equal to the manifest's; incremental, atomic and resumable like the other stages."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile

import numpy as np
import pandas as pd
import pytest

from pipeline.core.errors import PipelineError
from pipeline.data.clips import MANIFEST_COLUMNS, load_frames, load_manifest, split_rows
from pipeline.formats import export as E

pytest.importorskip("pyarrow", reason="pyarrow: pip install -e .[formats]")

from tests.formats.conftest import FORMATS, SHARD


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def assert_labels_equal(got: pd.DataFrame, want: pd.DataFrame) -> None:
    """Every manifest column equal, value for value; a missing number (NaN) must stay missing."""
    assert len(got) == len(want)
    for column in MANIFEST_COLUMNS:
        a, b = got[column].reset_index(drop=True), want[column].reset_index(drop=True)
        if pd.api.types.is_float_dtype(b):
            assert np.array_equal(a.to_numpy(np.float64), b.to_numpy(np.float64), equal_nan=True), column
        else:
            assert [str(v) for v in a] == [str(v) for v in b], column


# --- what each format holds ---------------------------------------------------------------------
def test_parquet_reads_back_with_pandas(exported):
    cfg, out, done = exported
    manifest = load_manifest(cfg.data_dir)
    assert {d.format for d in done} == set(FORMATS) and all(d.written for d in done)
    for split in ("train", "val", "test"):
        want = split_rows(manifest, split)
        files = sorted((out / "parquet").glob(f"{split}-*.parquet"))
        assert len(files) == -(-len(want) // SHARD)
        got = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
        assert_labels_equal(got, want)
        assert [sha(a["bytes"]) for a in got["audio"]] == list(want["sha256"])
        assert [a["path"] for a in got["audio"]] == list(want["path"])
        assert (got["sample_rate"] == 16000).all() and (got["num_samples"] == 5280).all()
    whole = pd.read_parquet(out / "parquet")   # the folder at once: the record file is skipped
    assert len(whole) == len(manifest)


def test_nsynth_labels_are_in_the_exports(exported):
    cfg, out, _ = exported
    frame = pd.read_parquet(out / "parquet")
    violin = frame[frame["instrument"] == "violin"]
    assert set(violin["instrument_family_str"]) == {"string"} and set(violin["instrument_source_str"]) == {"acoustic"}
    assert set(violin["instrument_family"]) == {8} and set(violin["instrument_source"]) == {0}
    assert frame["note_str"].is_unique and frame.groupby("instrument")["instrument_id"].nunique().eq(1).all()
    assert set(frame.loc[frame["instrument"] == "flute", "instrument_family_str"]) == {"flute"}
    assert all(len(q) == 10 for q in frame["qualities"])


def test_datasets_loads_the_parquet_with_an_audio_feature(exported, tmp_path):
    datasets = pytest.importorskip("datasets")
    cfg, out, _ = exported
    manifest = load_manifest(cfg.data_dir)
    loaded = datasets.load_dataset("parquet", data_dir=str(out / "parquet"), cache_dir=str(tmp_path))
    assert set(loaded) == {"train", "validation", "test"}
    assert isinstance(loaded["train"].features["audio"], datasets.Audio)
    for split, name in (("train", "train"), ("val", "validation"), ("test", "test")):
        rows = loaded[name].cast_column("audio", datasets.Audio(decode=False))
        frame = rows.remove_columns("audio").to_pandas()
        assert_labels_equal(frame, split_rows(manifest, split))
        assert [sha(a["bytes"]) for a in rows["audio"]] == list(split_rows(manifest, split)["sha256"])
    by_card = datasets.load_dataset(str(out), cache_dir=str(tmp_path / "card"))   # README.md's configs
    assert {k: len(v) for k, v in by_card.items()} == {k: len(v) for k, v in loaded.items()}


def test_webdataset_reader_reads_the_tar_shards(exported):
    wds = pytest.importorskip("webdataset")
    cfg, out, _ = exported
    manifest = load_manifest(cfg.data_dir)
    record = E.read_record(out / "webdataset")
    for split in ("train", "val", "test"):
        urls = [str(out / "webdataset" / name) for name in record["splits"][split]]
        samples = list(wds.WebDataset(urls, shardshuffle=False, empty_check=False))
        meta = pd.DataFrame([json.loads(s["json"]) for s in samples])
        want = split_rows(manifest, split)
        assert_labels_equal(meta, want)
        assert [sha(s["wav"]) for s in samples] == list(want["sha256"])


def test_nsynth_layout(exported):
    cfg, out, _ = exported
    manifest = load_manifest(cfg.data_dir)
    for split, folder in (("train", "nsynth-train"), ("val", "nsynth-valid"), ("test", "nsynth-test")):
        examples = json.loads((out / "nsynth" / folder / "examples.json").read_text())
        want = split_rows(manifest, split)
        assert sorted(p.stem for p in (out / "nsynth" / folder / "audio").iterdir()) == sorted(examples)
        assert [e["sha256"] for e in examples.values()] == list(want["sha256"])
        for key, e in examples.items():
            assert e["note_str"] == key and e["pitch"] == e["midi"] and e["sample_rate"] == 16000
            assert {"instrument", "instrument_str", "velocity", "qualities", "qualities_str", "instrument_family",
                    "instrument_family_str", "instrument_source", "instrument_source_str", "note"} <= set(e)
            assert isinstance(e["instrument"], int) and isinstance(e["note"], int)
        first = next(iter(examples.values()))
        assert sha((out / "nsynth" / folder / "audio" / f"{first['note_str']}.wav").read_bytes()) == first["sha256"]
    assert len(list(out.glob("nsynth/nsynth-*/.parts"))) == 0


def test_export_card_points_datasets_at_the_parquet_files(exported):
    cfg, out, _ = exported
    card = (out / "README.md").read_text()
    assert 'path: "parquet/val-*.parquet"' in card and "split: validation" in card
    same = (cfg.data_dir / "README.md").read_text().split("\n## Contents")[1].split("\n## Known limitations")[0]
    assert same in card and "## Loading" in card   # the dataset's card, with how to load the files


def test_frame_tables_travel_with_their_clips(framed):
    cfg, out = framed
    frames = load_frames(cfg)
    by_path = {p: g for p, g in frames.groupby("path")}
    table = pd.read_parquet(out / "parquet")
    assert sorted(table["path"]) == sorted(by_path) and "nsynth" not in {p.name for p in out.iterdir()}
    for path, time, f0, voiced, trusted in zip(table["path"], table["frame_time"], table["frame_f0_hz"],
                                               table["frame_voiced"], table["frame_trusted"]):
        want = by_path[path]
        assert np.array_equal(time, want["time"]) and np.array_equal(f0, want["f0_hz"])
        assert np.array_equal(voiced, want["voiced"]) and np.array_equal(trusted, want["flag"] == "")
    record = E.read_record(out / "webdataset")
    with tarfile.open(out / "webdataset" / record["splits"]["train"][0]) as tar:
        meta = json.load(io.BytesIO(tar.extractfile(tar.getmembers()[1]).read()))
    assert meta["frame_f0_hz"] == list(by_path[meta["path"]]["f0_hz"])


# --- a stage like the others ----------------------------------------------------------------------
def copy_dataset(cfg, root):
    from pipeline.core.config import load_config

    copy = load_config(None, [f'root="{root}"', f'name="{cfg.name}"'])
    shutil.copytree(cfg.data_dir, copy.data_dir, copy_function=shutil.copy2)
    return copy


def test_a_second_export_does_nothing_and_a_damaged_one_is_made_again(exported, capsys):
    cfg, out, _ = exported
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and p.name != E.BUILD_FILE}
    again = E.export_dataset(cfg, FORMATS, out, shard_size=SHARD)
    assert not any(d.written for d in again) and "up to date" in capsys.readouterr().out
    assert stamps == {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and p.name != E.BUILD_FILE}
    shard = sorted((out / "webdataset").glob("train-*.tar"))[1]
    before = shard.read_bytes()
    shard.write_bytes(before[:1000])   # truncated
    redone = {d.format: d.written for d in E.export_dataset(cfg, FORMATS, out, shard_size=SHARD)}
    assert redone == {"parquet": False, "webdataset": True, "tfrecord": False, "nsynth": False}
    assert shard.read_bytes() == before   # the same bytes as the first time


def test_a_changed_dataset_is_exported_again(tiny_dataset, tmp_path):
    cfg = copy_dataset(tiny_dataset, tmp_path / "copy")
    E.export_dataset(cfg, ("parquet",), tmp_path / "out", shard_size=SHARD)
    manifest = load_manifest(cfg.data_dir)
    manifest.loc[0, "frequency"] = 123.456   # a relabelled clip
    manifest.to_csv(cfg.data_dir / "manifest.csv", index=False)
    (done,) = E.export_dataset(cfg, ("parquet",), tmp_path / "out", shard_size=SHARD)
    assert done.written
    assert 123.456 in set(pd.read_parquet(tmp_path / "out" / "parquet")["frequency"])
    assert not list((tmp_path / "out").glob(".*"))   # no partial or old folder left


def test_a_stopped_export_resumes_and_leaves_the_old_one_whole(tiny_dataset, tmp_path, monkeypatch, capsys):
    cfg = copy_dataset(tiny_dataset, tmp_path / "copy")
    out = tmp_path / "out"
    E.export_dataset(cfg, ("webdataset",), out, shard_size=SHARD)
    old = {p.name: p.read_bytes() for p in (out / "webdataset").iterdir()}
    manifest = load_manifest(cfg.data_dir)
    manifest.loc[manifest["split"] == "train", "velocity"] = 99
    manifest.to_csv(cfg.data_dir / "manifest.csv", index=False)
    real, calls = E.webdataset.write_shard, []

    def stop_at_the_third(*args):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        real(*args)

    monkeypatch.setattr(E.webdataset, "write_shard", stop_at_the_third)
    with pytest.raises(KeyboardInterrupt):
        E.export_dataset(cfg, ("webdataset",), out, shard_size=SHARD)
    assert {p.name: p.read_bytes() for p in (out / "webdataset").iterdir()} == old   # untouched
    monkeypatch.setattr(E.webdataset, "write_shard", real)
    capsys.readouterr()
    E.export_dataset(cfg, ("webdataset",), out, shard_size=SHARD)
    assert "resumed after 2 shards" in capsys.readouterr().out
    resumed = {p.name: p.read_bytes() for p in (out / "webdataset").iterdir()}
    shutil.rmtree(out)
    E.export_dataset(cfg, ("webdataset",), out, shard_size=SHARD)
    assert resumed == {p.name: p.read_bytes() for p in (out / "webdataset").iterdir()}   # as if never stopped


def test_a_clip_changed_since_the_build_is_refused(tiny_dataset, tmp_path):
    cfg = copy_dataset(tiny_dataset, tmp_path / "copy")
    clip = cfg.data_dir / load_manifest(cfg.data_dir)["path"].iloc[5]
    clip.write_bytes(clip.read_bytes()[:-2] + b"\x00\x01")
    with pytest.raises(PipelineError, match=f"clip {load_manifest(cfg.data_dir)['path'].iloc[5]} changed.*make data"):
        E.export_dataset(cfg, ("parquet",), tmp_path / "out")
    with pytest.raises(PipelineError, match="unknown export format.*parquet, webdataset"):
        E.export_dataset(cfg, ("hdf5",), tmp_path / "out")


def test_export_dataset_from_the_command_line(tiny_dataset, tmp_path):
    from tests.conftest import run_cli

    args = ("export-dataset", "--set", f'root="{tiny_dataset.root}"', "--format", "parquet", "--out", str(tmp_path))
    first = run_cli(*args)
    assert first.returncode == 0, first.stderr
    assert "export parquet:" in first.stdout and "clips/s" in first.stdout
    second = run_cli(*args)
    assert second.returncode == 0 and "up to date" in second.stdout
    bad = run_cli("export-dataset", "--set", f'root="{tmp_path}"', "--out", str(tmp_path / "x"))
    assert bad.returncode == 2 and bad.stderr.startswith("error: no dataset at") and "Traceback" not in bad.stderr


def test_a_missing_library_is_one_line_with_the_install(tiny_dataset, tmp_path, monkeypatch):
    import sys

    from pipeline.formats.loaders import torch_dataset

    monkeypatch.setitem(sys.modules, "pyarrow", None)   # import pyarrow now fails
    with pytest.raises(PipelineError, match=r"needs pyarrow: pip install -e '\.\[formats\]'"):
        E.export_dataset(tiny_dataset, ("webdataset", "parquet"), tmp_path)
    assert not list(tmp_path.iterdir())   # refused before anything was written
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(PipelineError, match="needs PyTorch"):
        torch_dataset(tmp_path, "train")
