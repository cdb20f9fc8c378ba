"""The clip dataset the experiments share, built by the project's own generator.

`clips_config` turns ClipsSettings into a pipeline Config (data_root/NAME); `build_clips`
renders and featurises it (both incremental: a second run renders nothing); `load_clips`
returns one split's spectrograms, audio and labels. Project modules are imported inside the
functions: their names may move, and each move then costs one line here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.core.pitch import hz_to_midi
from pipeline.experiments.settings import ClipsSettings

DATA_FOLDER = "data"  # the generator's layout: ROOT/data/NAME


def clips_config(clips: ClipsSettings, data_root: Path, seed: int = 0, workers: int = 0):
    """The pipeline Config whose data_dir is data_root/NAME (data_root ending in data/), else
    data_root/data/NAME: the generator always writes ROOT/data/NAME."""
    from pipeline.core.config import load_config

    data_root = Path(data_root)
    root = data_root.parent if data_root.name == DATA_FOLDER else data_root
    overrides = [
        f"name={json.dumps(clips.name)}", f"root={json.dumps(str(root))}",
        f"data.soundfont={json.dumps(clips.soundfont)}",
        f"data.instruments={json.dumps(list(clips.instruments))}", f"data.note_low={clips.note_low}",
        f"data.note_high={clips.note_high}", f"data.velocities={json.dumps(list(clips.velocities))}",
        f"data.detune_share={clips.detune_share}", f"data.detune_max_cents={clips.detune_max_cents}",
        f"data.seed={seed}", f"data.workers={workers}", 'split.test="random"',
        f"split.test_share={clips.test_share}", f"split.val_share={clips.val_share}",
        'features.scaling="log"', 'features.dtype="float16"',
    ]
    return load_config(None, overrides)


def build_clips(cfg) -> dict:
    """Render (only what is missing) and featurise; returns what the metrics record about it."""
    from pipeline.data.dataset import build_dataset
    from pipeline.data.feature_files import dataset_hash
    from pipeline.data.features import build_features

    manifest = build_dataset(cfg)
    build_features(cfg)
    return {"path": str(cfg.data_dir), "clips": int(len(manifest)), "manifest_sha256": dataset_hash(cfg),
            "soundfont": cfg.data.soundfont, "instruments": list(cfg.data.instruments),
            "notes": [cfg.data.note_low, cfg.data.note_high], "velocities": list(cfg.data.velocities),
            "splits": manifest["split"].value_counts().to_dict()}


@dataclass
class Split:
    """One split of the clip dataset, row for row: spectrograms (memory map), labels, rows."""
    features: np.ndarray   # (N, 513, 90) log magnitude, float16 memory map
    hz: np.ndarray         # (N,) the label, Hz
    midi: np.ndarray       # (N,) the label as a fractional MIDI number
    rows: object           # the manifest rows (pandas DataFrame)

    def __len__(self) -> int:
        return len(self.hz)

    def subset(self, count: int, seed: int) -> Split:
        """`count` rows drawn without replacement (all of them when count is 0 or more than N)."""
        if count <= 0 or count >= len(self):
            return self
        index = np.sort(np.random.default_rng(seed).choice(len(self), count, replace=False))
        return Split(self.features[index], self.hz[index], self.midi[index], self.rows.iloc[index])


def load_clips(cfg, split: str) -> Split:
    from pipeline.data.feature_files import load_split

    features, rows = load_split(cfg, split)
    hz = rows["frequency"].to_numpy(np.float64)
    return Split(features, hz, hz_to_midi(hz), rows)


def read_audio(cfg, rows) -> np.ndarray:
    """The rows' clips as (N, 5280) float32."""
    from pipeline.data.clips import read_clips

    return read_clips(cfg, rows)
