"""The dataset card: README.md in the dataset folder, written with every build, in the front-matter
form dataset hubs read, its counts those of the manifest."""

import json
import re

import pytest

from pipeline.data.card import CARD_FILE, card_text, source_licence
from pipeline.data.clips import DATASET_FILE, load_manifest


def front_matter(text: str) -> dict:
    yaml = pytest.importorskip("yaml")
    match = re.match(r"^---\n(.*?)\n---\n", text, re.S)
    assert match, "the card starts with a YAML front matter between --- lines"
    return yaml.safe_load(match[1])


def test_every_build_writes_the_card(tiny_dataset):
    text = (tiny_dataset.data_dir / CARD_FILE).read_text()
    meta = front_matter(text)
    assert meta["license"] == ["gpl-2.0"]   # TimGM6mb alone: its Debian copyright file says GPL-2
    assert meta["size_categories"] == ["n<1K"] and "audio-classification" in meta["task_categories"]
    summary = json.loads((tiny_dataset.data_dir / DATASET_FILE).read_text())
    assert summary["soundfonts"][0]["sha256"] in text and "Tim Brechbill" in text
    assert "/usr/share/doc/timgm6mb-soundfont/copyright" in text
    assert "## Label audit" in text and "## Known limitations" in text
    assert str(tiny_dataset.root) not in text   # where it was built does not shape it


def test_the_cards_counts_are_the_manifests(tiny_dataset):
    manifest = load_manifest(tiny_dataset.data_dir)
    text = (tiny_dataset.data_dir / CARD_FILE).read_text()
    for split, rows in manifest.groupby("split"):
        assert re.search(rf"^\| {split} \| {len(rows):,} \|", text, re.M), split
    for family, rows in manifest.groupby("family"):   # by GM family, all splits in the last column
        assert re.search(rf"^\| `{family}` \|.* \| {len(rows)} \|$", text, re.M), family
    flute = manifest[manifest["instrument"] == "flute"]
    assert re.search(rf"^\| `flute` \| 0 \| 0 \| {len(flute)} \| {len(flute)} \|$", text, re.M)  # NSynth's, held out


def test_the_card_is_a_function_of_its_inputs_and_names_unknown_licences(tiny_dataset):
    manifest = load_manifest(tiny_dataset.data_dir)
    summary = json.loads((tiny_dataset.data_dir / DATASET_FILE).read_text())
    assert card_text(summary, manifest) == (tiny_dataset.data_dir / CARD_FILE).read_text()
    summary["sources"] = ["Mine.sf2", "synthetic"]
    text = card_text(summary, manifest, configs={"train": "parquet/train-*.parquet"})
    meta = front_matter(text)
    assert meta["license"] == ["unknown"] and "Mine.sf2 is not known" in text
    assert meta["configs"] == [{"config_name": "default", "data_files": [
        {"split": "train", "path": "parquet/train-*.parquet"}]}]
    assert source_licence("FluidR3_GM.sf2").hub_id == "mit"
    assert source_licence("OPL-3_FM_128M.sf2").hub_id == "cc-by-sa-4.0"


def test_a_build_with_nothing_new_leaves_the_card_alone(tiny_dataset, tmp_path):
    import os
    import shutil

    from pipeline.data.dataset import build_dataset
    from tests.conftest import tiny_config

    cfg = tiny_config(tmp_path)
    shutil.copytree(tiny_dataset.data_dir, cfg.data_dir, copy_function=shutil.copy2)
    card = cfg.data_dir / CARD_FILE
    os.utime(card, ns=(1, 1))
    build_dataset(cfg)   # renders nothing: every shard is whole
    assert card.stat().st_mtime_ns == 1
    card.unlink()
    build_dataset(cfg)
    assert card.read_text() == (tiny_dataset.data_dir / CARD_FILE).read_text()
