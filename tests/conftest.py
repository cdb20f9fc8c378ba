"""Shared fixtures: tiny real datasets rendered with FluidSynth and the small TimGM6mb font."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.config import Config, load_config

REPO = Path(__file__).resolve().parents[1]
TEST_SOUNDFONT = "/usr/share/sounds/sf2/TimGM6mb.sf2"
TINY_INSTRUMENTS = '["Violin", "Acoustic Grand Piano", "Flute", "Trumpet", "Clarinet"]'


def tiny_config(root: Path, *overrides: str) -> Config:
    """A few notes of a few instruments; Flute is the held-out test instrument."""
    base = [f'root="{root}"', f'data.soundfont="{TEST_SOUNDFONT}"', f"data.instruments={TINY_INSTRUMENTS}",
            "data.note_low=57", "data.note_high=81", "data.velocities=[100]", "data.shard_size=8",
            'split.test_instruments=["Flute"]', "split.val_share=0.2"]
    return load_config(None, [*base, *overrides])


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Config:
    """A built tiny dataset (about 125 notes, 375 clips), shared by every test that only reads it."""
    from pipeline.dataset import build_dataset

    cfg = tiny_config(tmp_path_factory.mktemp("tiny"))
    build_dataset(cfg)
    return cfg


def run_cli(*args: str, env: dict | None = None, cwd: Path = REPO) -> subprocess.CompletedProcess:
    """Run `python -m pipeline ARGS` as a user would; returns the finished process."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "pipeline", *args], capture_output=True, text=True,
                          env=full_env, cwd=cwd, timeout=600)
