"""Train, validation and test splits: which clips the model learns from, tunes on and is judged on.

All segments of a note share a split, so no note leaks across. Membership comes from a hash
of the note, so it never depends on order or worker count.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from pipeline.config import Config
from pipeline.errors import PipelineError
from pipeline.instruments import resolve_instrument

if TYPE_CHECKING:
    import pandas as pd


def _unit_hash(*parts) -> float:
    """A stable number in [0, 1) from the parts: split membership that never depends on order."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2 ** 64


def assign_splits(cfg: Config, frame: pd.DataFrame) -> pd.Series:
    """train/val/test per clip (rows with program, midi and velocity), as split.* asks."""
    import pandas as pd

    sp, seed = cfg.split, cfg.data.seed
    test_programs = {resolve_instrument(i).program for i in sp.test_instruments}
    notes = frame[["program", "midi", "velocity"]].itertuples(index=False)
    splits = []
    for program, midi, velocity in notes:
        if sp.test == "instrument":
            is_test = program in test_programs
        else:
            is_test = _unit_hash("test", seed, program, midi, velocity) < sp.test_share
        if is_test:
            splits.append("test")
        elif _unit_hash("val", seed, program, midi, velocity) < sp.val_share:
            splits.append("val")
        else:
            splits.append("train")
    return pd.Series(splits, index=frame.index, dtype=object)


def check_splits(cfg: Config) -> None:
    """The held-out instruments are among the dataset's, and leave some for training."""
    if cfg.split.test != "instrument":
        return
    chosen = {resolve_instrument(i).program for i in cfg.data.instruments}
    for spec in cfg.split.test_instruments:
        inst = resolve_instrument(spec)
        if inst.program not in chosen:
            raise PipelineError(f"split.test_instruments lists {inst.name!r}, which is not in data.instruments; "
                                "add it there or remove it from the test split")
    if {resolve_instrument(i).program for i in cfg.split.test_instruments} >= chosen:
        raise PipelineError("split.test_instruments holds out every instrument; leave some for training")
