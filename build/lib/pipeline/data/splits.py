"""Train, validation and test splits: which clips the model learns from, tunes on and is judged on.

The test split holds out whole sound families the model never hears in training: the
instruments of split.test_instruments (in every source; a tone kind such as "sawtooth"
names the synthetic source's instrument) and the sources of split.test_sources (a soundfont
by file name, or "synthetic"), their union; or, with split.test = "random", a random share
of the notes (plus the held-out sources). All segments of a note share a split, so no note
leaks across. Membership comes from a hash of the note, so it never depends on order or
worker count.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from pipeline.core import constants as C
from pipeline.core.config import TONE_KINDS, Config
from pipeline.core.errors import PipelineError
from pipeline.core.instruments import resolve_instrument

if TYPE_CHECKING:
    import pandas as pd

NOTE_COLUMNS = ["source", "instrument", "midi", "velocity", "variant"]  # what identifies a note


def _unit_hash(*parts) -> float:
    """A stable number in [0, 1) from the parts: split membership that never depends on order."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2 ** 64


def instrument_slug(spec: str) -> str:
    """A split.test_instruments entry's slug: a GM name or number, or a tone kind."""
    return spec if spec in TONE_KINDS else resolve_instrument(spec).slug


def held_out_instruments(cfg: Config) -> set[str]:
    return {instrument_slug(spec) for spec in cfg.split.test_instruments}


def assign_splits(cfg: Config, frame: pd.DataFrame) -> pd.Series:
    """train/val/test per clip (rows with NOTE_COLUMNS, the note's nominal midi), as split.* asks."""
    import pandas as pd

    sp, seed = cfg.split, cfg.data.seed
    instruments = held_out_instruments(cfg) if sp.test == "instrument" else set()
    sources = set(sp.test_sources)
    splits = []
    for note in frame[NOTE_COLUMNS].itertuples(index=False, name=None):
        source, instrument = note[0], note[1]
        if source in sources or instrument in instruments or (
                sp.test == "random" and _unit_hash("test", seed, *note) < sp.test_share):
            splits.append("test")
        elif _unit_hash("val", seed, *note) < sp.val_share:
            splits.append("val")
        else:
            splits.append("train")
    return pd.Series(splits, index=frame.index, dtype=object)


def check_splits(cfg: Config, sources: list[str], instruments: set[str]) -> None:
    """The held-out sources and instruments are among the dataset's (`sources`: its source names;
    `instruments`: its instrument slugs), and leave something for training."""
    sp = cfg.split
    for source in sp.test_sources:
        if source not in sources:
            hint = "set tones.enabled = true" if source == C.SYNTHETIC_SOURCE else "add it to data.soundfonts"
            raise PipelineError(f"split.test_sources lists {source!r}, which is not a source of this dataset "
                                f"({', '.join(sources)}); {hint} or remove it from split.test_sources")
    if set(sp.test_sources) >= set(sources):
        raise PipelineError("split.test_sources holds out every source; leave one for training")
    if sp.test != "instrument":
        return
    for spec in sp.test_instruments:
        if instrument_slug(spec) not in instruments:
            raise PipelineError(f"split.test_instruments lists {spec!r}, which is not in data.instruments "
                                "(nor a planned tone kind); add it there or remove it from the test split")
    if held_out_instruments(cfg) >= instruments:
        raise PipelineError("split.test_instruments holds out every instrument; leave some for training")
