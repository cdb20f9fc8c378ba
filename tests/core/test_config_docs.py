"""docs/configuration.md is written from the typed config: the committed file is up to date, and
every key has a meaning."""

import dataclasses

from pipeline.core.config import Config
from pipeline.core.config_docs import configuration_markdown, field_notes, sections
from tests.conftest import REPO


def test_the_committed_configuration_docs_are_up_to_date():
    committed = (REPO / "docs" / "configuration.md").read_text()
    assert committed == configuration_markdown(), "run: pipeline config --docs > docs/configuration.md (make docs)"


def test_every_key_is_documented_with_its_meaning():
    text = configuration_markdown()
    for name, cls in sections():
        notes = field_notes(cls)
        for field in dataclasses.fields(cls):
            assert notes.get(field.name), f"{name}.{field.name} has no comment in pipeline/core/config.py"
            assert f"| `{name}.{field.name}` |" in text
    assert field_notes(Config)["root"].startswith("outputs go to ROOT/data/NAME")
    assert "| `data.resampler` | `\"soxr\"` |  | `sox`, `soxr` |" in text  # choices come from the rules
    assert "| `train.epochs` | `30` | `8` | 1 to 100000 |" in text          # built-in, default.toml, range
