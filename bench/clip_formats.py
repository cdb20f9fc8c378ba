"""Clip formats: the data stage and the frame examples on one plan of notes, in the default clips
(16 kHz, 330 ms, 16-bit WAV) and in the formats a user may ask for (docs/dataset.md).

Every format renders the same notes with the same hold and release (2.5 s + 2.0 s, room for a
2-second clip), so the differences are the formats' own: resampling (none at 44.1 kHz), more
samples to slice, audit (always at 16 kHz), encode and write; then the frame model's examples
(the clips read, resampled to 16 kHz). Reported: audio seconds written per wall second, clips per
second, bytes per clip and on disk, each format's build time over the default's.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

from bench import REPO
from bench.timing import Stopwatch, Timing, load

SOUNDFONT, QUICK_SOUNDFONT = "soundfonts/FluidR3_GM.sf2", "soundfonts/TimGM6mb.sf2"
INSTRUMENTS = ("Violin", "Acoustic Grand Piano", "Trumpet", "Flute")
NOTE_LOW, NOTE_HIGH, QUICK_NOTE_HIGH = 48, 83, 53
FORMATS = {   # name: the [data] settings besides the plan's
    "16 kHz 330 ms int16 WAV (default)": [],
    "44.1 kHz 2 s int16 FLAC": ["data.sample_rate=44100", "data.clip_seconds=2.0", 'data.file_format="flac"'],
    "48 kHz 330 ms float32 WAV": ["data.sample_rate=48000", 'data.sample_format="float32"'],
    "22.05 kHz whole notes int24 FLAC": ["data.sample_rate=22050", 'data.sample_format="int24"',
                                         'data.file_format="flac"', 'data.segments=["whole"]'],
}


def config(root: Path, quick: bool, settings: list[str]):
    from pipeline.core.config import load_config

    font = (REPO / (QUICK_SOUNDFONT if quick else SOUNDFONT)).resolve()
    names = ", ".join(f'"{i}"' for i in (INSTRUMENTS[:2] if quick else INSTRUMENTS))
    root.mkdir(parents=True, exist_ok=True)
    return load_config(None, [
        f'root="{root}"', 'name="bench_formats"', f'data.soundfonts=["{font}"]', f"data.instruments=[{names}]",
        f"data.note_low={NOTE_LOW}", f"data.note_high={QUICK_NOTE_HIGH if quick else NOTE_HIGH}",
        "data.velocities=[100]", 'data.segments=["sustain", "decay"]', "data.hold_seconds=2.5",
        "data.release_seconds=2.0", "data.workers=0", 'split.test="random"', 'features.kind="frames"',
        'model.variant="frames"', *settings])


def _measure(ctx, name: str, settings: list[str], rep: int) -> dict:
    from pipeline.core.audio_format import clip_format
    from pipeline.data.dataset import build_dataset
    from pipeline.data.features import build_features

    cfg = config(ctx.scratch / f"formats-{rep}-{len(settings)}-{abs(hash(name)) % 10_000}", ctx.quick, settings)
    data, features = Timing(), Timing()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        with Stopwatch(data):
            manifest = build_dataset(cfg)
        with Stopwatch(features):
            done = build_features(cfg)
    fmt = clip_format(cfg.data)
    sizes = [(cfg.data_dir / p).stat().st_size for p in manifest["path"]]
    notes = json.loads((cfg.data_dir / "dataset.json").read_text())["notes"]
    return {"format": fmt.to_dict(), "notes": notes, "clips": len(manifest), "data_seconds": data.best,
            "features_seconds": features.best, "examples": sum(done["counts"].values()),
            "audio_seconds": round(len(manifest) * fmt.seconds, 2), "bytes": sum(sizes),
            "bytes_per_clip": round(sum(sizes) / max(len(sizes), 1))}


def run(ctx) -> dict:
    loads, results = [load()], {}
    _measure(ctx, "warm-up", [], -1)   # imports, soundfont hashing, worker start-up paths
    for rep in range(1 if ctx.quick else 2):   # interleaved: a busy moment hits every format alike
        for name, settings in FORMATS.items():
            got = _measure(ctx, name, settings, rep)
            best = results.get(name)
            if best is None or got["data_seconds"] < best["data_seconds"]:
                results[name] = got
            loads.append(load())
    default = results[next(iter(FORMATS))]
    for got in results.values():
        got["clips_per_second"] = round(got["clips"] / got["data_seconds"], 1)
        got["audio_seconds_per_second"] = round(got["audio_seconds"] / got["data_seconds"], 1)
        got["data_time_vs_default"] = round(got["data_seconds"] / default["data_seconds"], 2)
        got["mib"] = round(got["bytes"] / 2**20, 2)
    return {"notes": default["notes"], "load_average": loads, "formats": results}
