"""Fixtures of the data tests: one phrase renderer per soundfont for the whole session (loading a
font takes 0.1-1 s)."""

import pytest

from tests.conftest import REPO

FONTS = {"fluidr3": REPO / "soundfonts" / "FluidR3_GM.sf2", "timgm": REPO / "soundfonts" / "TimGM6mb.sf2",
         "musescore": REPO / "soundfonts" / "MuseScore_General.sf3"}


@pytest.fixture(scope="session")
def renderers():
    from pipeline.data.phrase_rendering import PhraseRenderer

    made = {}

    def get(font: str):
        if font not in made:
            made[font] = PhraseRenderer(FONTS[font])
        return made[font]

    yield get
    for renderer in made.values():
        renderer.close()
