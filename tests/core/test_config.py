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


def numeric_keys(cls=None, prefix=""):
    """Every key of the config whose value is a number, or a list of numbers."""
    import dataclasses
    import typing

    from pipeline.core.config import Config

    cls = cls or Config
    for field in dataclasses.fields(cls):
        hint = typing.get_type_hints(cls)[field.name]
        if dataclasses.is_dataclass(hint):
            yield from numeric_keys(hint, f"{prefix}{field.name}.")
        elif (typing.get_args(hint)[0] if typing.get_origin(hint) is tuple else hint) in (int, float):
            yield f"{prefix}{field.name}"


def test_every_number_of_the_config_has_a_range_or_choices():
    """A number that enters without bounds can switch a stage off silently (a gate at 1e300 dB)."""
    from pipeline.core.config import RULES

    keys = list(numeric_keys())
    assert "gate.silent_peak_dbfs" in keys and len(keys) > 60
    assert [k for k in keys if k not in RULES.ranges and k not in RULES.choices] == []


@pytest.mark.parametrize("override, message", [
    ("gate.silent_peak_dbfs=nan", "must be a finite number"), ("gate.silent_peak_dbfs=inf", "must be a finite number"),
    ("gate.silent_peak_dbfs=-1e300", "out of range"), ("gate.min_rms_db_below_note=1e300", "out of range"),
    ("gate.min_rms_db_below_note=-inf", "must be a finite number"), ("train.learning_rate=nan", "finite"),
    ("model.encoder_units=[]", "model.encoder_units is empty"), ("model.harmonic_units=[]", "is empty"),
    ("model.harmonics=[]", "model.harmonics is empty"), ('root=""', "is not a folder name"),
    ('root="/no/such/folder"', r"config root /no/such/folder is not in an existing folder \(/no/such is missing\)"),
])
def test_numbers_lists_and_the_root_are_checked_where_they_enter(override, message):
    with pytest.raises(PipelineError, match=message) as err:
        load_config(None, [override])
    assert "\n" not in str(err.value)


def test_a_config_that_is_not_utf8_is_one_line(tmp_path):
    for name, data in (("latin1.toml", b'name = "caf\xe9"\n'), ("utf16.toml", 'name = "x"\n'.encode("utf-16"))):
        (tmp_path / name).write_bytes(data)
        with pytest.raises(PipelineError, match=f"{name} is not UTF-8 text"):
            load_config(tmp_path / name)
