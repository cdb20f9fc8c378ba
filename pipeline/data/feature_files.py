"""The features on disk: where the stage writes them (features/SPLIT.npy, SPLIT.record.json,
done.json, build.json) and `load_split`, how training, the report and the experiments read them.

Apart from the stage (pipeline.data.features) so that an edit of how features are built does not
make training, which only reads them, out of date.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pipeline.core import constants as C
from pipeline.core.artifacts import read_json, sha256_file
from pipeline.core.config import Config
from pipeline.core.errors import PipelineError
from pipeline.data.clips import check_split, load_manifest, manifest_path, split_rows

if TYPE_CHECKING:
    import pandas as pd

DONE_FILE = "done.json"         # what the split files hold; rewritten only when that changes (training's input)
BUILD_FILE = "build.json"       # written by every run that finishes, last: make's target for the stage
FEATURES_DIR = "features"
RECORD_SUFFIX = ".record.json"   # features/SPLIT.record.json: what SPLIT.npy holds, written after it


def features_dir(cfg: Config) -> Path:
    return cfg.data_dir / FEATURES_DIR


def split_path(cfg: Config, split: str) -> Path:
    return features_dir(cfg) / f"{split}.npy"


def record_path(cfg: Config, split: str) -> Path:
    return features_dir(cfg) / f"{split}{RECORD_SUFFIX}"


# --- reading the outputs ------------------------------------------------------------------
def load_split(cfg: Config, split: str) -> tuple[np.ndarray, pd.DataFrame]:
    """(memory-mapped (N, 513, 90) features, the manifest rows of that split in the same order).

    Checked cheaply against done.json: built from this manifest, and the file's header, shape,
    dtype and size as recorded (`pipeline features` checks every byte against the sha256)."""
    check_split(split)
    fix = f"run make features (or pipeline features) for {cfg.name}"
    done = read_json(features_dir(cfg) / DONE_FILE)
    if done is None:
        raise PipelineError(f"features for {cfg.name} are missing or unfinished "
                            f"({features_dir(cfg) / DONE_FILE} not readable); {fix}")
    if done.get("manifest_sha256") != sha256_file(manifest_path(cfg.data_dir)):
        raise PipelineError(f"features for {cfg.name} were built from an older dataset; {fix}")
    record = (done.get("splits") or {}).get(split) or {}
    path = split_path(cfg, split)
    try:
        features = np.load(path, mmap_mode="r")
    except FileNotFoundError:
        raise PipelineError(f"features file {path} is missing; {fix}") from None
    except (OSError, ValueError) as exc:
        raise PipelineError(f"features file {path} is corrupt ({exc}); {fix}") from None
    rows = split_rows(load_manifest(cfg.data_dir), split)
    shape = tuple(done.get("shape") or C.SPEC_SHAPE)
    if features.shape != (len(rows), *shape):
        raise PipelineError(f"features file {path} has shape {features.shape}, expected "
                            f"({len(rows)}, {shape[0]}, {shape[1]}) for the manifest; {fix}")
    if path.stat().st_size != record.get("bytes") or features.dtype != np.dtype(record.get("dtype", "V")):
        raise PipelineError(f"features file {path} is not the file done.json records (damaged, or from "
                            f"another build); {fix}")
    return features, rows


def dataset_hash(cfg: Config) -> str:
    """The manifest's sha256 recorded when the features were built: names the training data."""
    done = read_json(features_dir(cfg) / DONE_FILE) or {}
    if "manifest_sha256" not in done:
        raise PipelineError(f"features for {cfg.name} are missing or unfinished; run make features")
    return done["manifest_sha256"]
