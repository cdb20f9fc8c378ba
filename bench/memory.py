"""Peak memory (RSS of the whole process tree: workers included) of `pipeline data`
and `pipeline features` at two dataset sizes; it should not grow with the dataset."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from bench import REPO
from bench.timing import run_with_peak_rss

SOUNDFONT = "soundfonts/TimGM6mb.sf2"     # the small font: the memory runs are the bench's longest
INSTRUMENTS = ["Violin", "Acoustic Grand Piano", "Trumpet", "Flute", "Cello", "Clarinet", "Marimba",
               "Acoustic Bass"]
NOTE_LOW, NOTE_HIGH = 48, 90          # 43 notes x 8 instruments = 344 notes, about 1,030 clips per velocity
SIZES = {"small": [100], "large": [40, 50, 60, 70, 80, 90, 100, 110, 120, 127]}   # about 1k and 10k clips
QUICK_SIZES = {"small": [100], "large": [80, 100, 120]}
QUICK_INSTRUMENTS, QUICK_NOTE_HIGH = ["Violin"], 57
GROWTH_LIMIT = 1.25                   # "flat": the large run's peak within 25% of the small one's


def overrides(root: Path, velocities: list[int], quick: bool) -> list[str]:
    instruments = QUICK_INSTRUMENTS if quick else INSTRUMENTS
    values = [f'root="{root}"', 'name="bench_memory"', f'data.soundfont="{(REPO / SOUNDFONT).resolve()}"',
              "data.instruments=[" + ", ".join(f'"{i}"' for i in instruments) + "]",
              f"data.note_low={NOTE_LOW}", f"data.note_high={QUICK_NOTE_HIGH if quick else NOTE_HIGH}",
              f"data.velocities={velocities}", 'split.test="random"']
    if quick:  # several shards even at the tiny size, so both sizes run the same worker pool
        values.append("data.shard_size=4")
    return [arg for value in values for arg in ("--set", value)]


def run(ctx) -> dict:
    import json

    sizes = QUICK_SIZES if ctx.quick else SIZES
    if not ctx.large_memory:
        sizes = {k: v for k, v in sizes.items() if k != "large"}
    env = {**os.environ, "TQDM_DISABLE": "1"}
    out = {"soundfont": Path(SOUNDFONT).name,
           "sampler": "every 50 ms, /proc/PID/smaps_rollup of the command and all its descendants, summed",
           "runs": {}}
    for label, velocities in sizes.items():
        root = ctx.scratch / "memory" / label
        root.mkdir(parents=True, exist_ok=True)
        args = overrides(root, velocities, ctx.quick)
        runs = {}
        for stage in ("data", "features"):
            result = run_with_peak_rss([sys.executable, "-m", "pipeline", stage, *args], env=env, cwd=str(ctx.repo))
            if result["returncode"] != 0:
                raise RuntimeError(f"pipeline {stage} failed in the memory benchmark:\n{result['output_tail']}")
            result.pop("output_tail")
            runs[stage] = result
        data_dir = root / "data" / "bench_memory"
        clips = json.loads((data_dir / "dataset.json").read_text())["clips"]
        out["runs"][label] = {"clips": clips, "velocities": len(velocities), **runs}
    if "large" in out["runs"]:
        small, large = out["runs"]["small"], out["runs"]["large"]
        grow = lambda stage, key: round(large[stage][key] / small[stage][key], 3)  # noqa: E731
        out["growth"] = {stage: grow(stage, "peak_tree_anon_mib") for stage in ("data", "features")}
        out["growth_rss"] = {stage: grow(stage, "peak_tree_rss_mib") for stage in ("data", "features")}
        out["clips_ratio"] = round(large["clips"] / small["clips"], 2)
        # judged on anonymous memory (heap): file-backed pages (shared libraries, files read) are
        # page cache the kernel reclaims at will; RSS is reported beside it
        out["flat"] = all(g <= GROWTH_LIMIT for g in out["growth"].values())
    else:
        out["growth"], out["flat"] = None, None
        out["note"] = "large run skipped (--no-large-memory)"
    return out
