from pathlib import Path

import pytest

import pipeline
from pipeline.core.config import Config, default_config_path, load_config, to_toml
from pipeline.core.errors import PipelineError
from tests.conftest import REPO


def test_shipped_configs_load():
    default = load_config("configs/default.toml")
    seed = load_config("configs/seed.toml")
    assert default.name == "default" and seed.name == "seed"
    assert seed.model.width == 1.0


def test_overrides_are_typed():
    cfg = load_config(None, ["data.velocities=[60, 100]", "data.detune_share=0", "data.soundfont=x.sf2"])
    assert cfg.data.velocities == (60, 100)
    assert cfg.data.detune_share == 0.0
    assert cfg.data.soundfonts == ("x.sf2",)  # a bare word is read as a string; the older key as a list


@pytest.mark.parametrize("override, message", [
    ("data.colour=3", "unknown config key data.colour"),
    ("nosuch.key=3", "unknown config key nosuch"),
    ("data.note_high=130", "data.note_high = 130 is out of range"),
    ("data.velocities=[0]", "data.velocities = 0 is out of range"),
    ("data.workers=two", "data.workers must be an integer"),
    ("augment.noise_kinds=['brown', 'purple']", "augment.noise_kinds has value 'purple'"),
    ("data.note_high=20", "data.note_low .21. is above data.note_high .20."),
])
def test_bad_values_name_the_key(override, message):
    with pytest.raises(PipelineError, match=message):
        load_config(None, [override])


def test_saved_config_round_trips(tmp_path):
    cfg = load_config(None, ["data.velocities=[60, 100]", "augment.noise_kinds=['pink']", "augment.noise_weights=[1]"])
    path = tmp_path / "again.toml"
    path.write_text(to_toml(cfg))
    again = load_config(path)
    assert again.data == cfg.data and again.augment == cfg.augment


def test_paths_in_a_config_file_are_relative_to_its_folder(tmp_path, monkeypatch):
    """Soundfonts and root written in a file mean the same from any working folder; a file name
    alone stays a name (looked for in the soundfont folders) unless the file's folder holds it."""
    folder = tmp_path / "configs"
    folder.mkdir()
    (folder / "Here.sf2").write_bytes(b"")
    config = folder / "where.toml"
    config.write_text('root = "out"\n[data]\nsoundfonts = ["../fonts/A.sf2", "Here.sf2", "/abs/B.sf2", "Named.sf2", '
                      '"~/C.sf2"]\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    cfg = load_config(config)
    assert cfg.data.soundfonts == (str(tmp_path / "fonts" / "A.sf2"), str(folder / "Here.sf2"), "/abs/B.sf2",
                                   "Named.sf2", "~/C.sf2")
    assert cfg.root == str(folder / "out") and cfg.data_dir == folder / "out" / "data" / "where"
    # overrides are typed here: relative to the current folder, as they always were
    (elsewhere / "Local.sf2").write_bytes(b"")
    cfg = load_config(config, ['data.soundfonts=["Local.sf2", "sub/D.sf2", "Named.sf2"]', 'root="x"'])
    assert cfg.data.soundfonts == (str(elsewhere / "Local.sf2"), "sub/D.sf2", "Named.sf2") and cfg.root == "x"
    # a saved config means the same wherever it is read from
    saved = tmp_path / "saved" / "again.toml"
    saved.parent.mkdir()
    saved.write_text(to_toml(cfg))
    again = load_config(saved)
    assert again.data.soundfonts == (str(elsewhere / "Local.sf2"), str(elsewhere / "sub" / "D.sf2"), "Named.sf2")
    assert Path(again.root) == elsewhere / "x"


def test_one_default_config_for_make_the_command_line_and_python():
    """configs/default.toml (make's) is a link to the package's default config, which the command
    line and load_config() use when no config is named; None gives the built-in values."""
    assert (REPO / "configs" / "default.toml").resolve() == default_config_path().resolve()
    assert default_config_path().is_relative_to(Path(pipeline.__file__).parent)
    assert load_config() == load_config(REPO / "configs" / "default.toml") == load_config(default_config_path())
    assert load_config().data.soundfonts == ("FluidR3_GM.sf2", "MuseScore_General.sf3", "TimGM6mb.sf2")
    assert load_config(None) == Config()
