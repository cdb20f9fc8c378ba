import pytest

from pipeline.core.config import load_config, to_toml
from pipeline.core.errors import PipelineError


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
