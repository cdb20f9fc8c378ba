"""Features: the batched path against a plain per-clip `scipy.signal.spectrogram` loop, values
compared bit for bit, two ways:

- file to file (the headline): `build_features` as `make features` runs it (a worker process
  per core) against the straightforward script: read each clip, one scipy call, the scaling,
  into the split's .npy, one clip at a time in one process. Same dataset, same output bytes.
- in memory, one thread: `pipeline.dsp.spectrogram.spectrogram` on batches against the loop on the
  same clips, which is what batching alone gives.
"""

from __future__ import annotations

import contextlib
import io
import shutil

import numpy as np

from bench import REPO
from bench.timing import Stopwatch, Timing, load
from pipeline.core.measure import cores

CLIPS, QUICK_CLIPS = 2048, 128
REPS = 6                                # cheap, and this machine's speed wanders: best of more runs
FILE_REPS = 3
# the file-to-file dataset: TimGM6mb, 8 instruments x 43 notes x 12 velocities, about 12,000 clips
# (the size of the default dataset: worker start-up weighs on a build as it does in `make`)
INSTRUMENTS = '["Violin", "Acoustic Grand Piano", "Trumpet", "Flute", "Cello", "Clarinet", "Marimba", "Acoustic Bass"]'
VELOCITIES, QUICK_VELOCITIES = "[20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120, 127]", "[100]"


def per_clip(clips: np.ndarray, scaling: str) -> np.ndarray:
    """The straightforward way: one scipy call per clip, then the scaling, as docs/CONTRACTS.md states it."""
    out = np.empty((len(clips), *_shape()), dtype=np.float32)
    for i, clip in enumerate(clips):
        out[i] = _one_clip(clip, scaling)
    return out


def _one_clip(clip: np.ndarray, scaling: str) -> np.ndarray:
    import scipy.signal

    from pipeline.core import constants as C
    from pipeline.dsp.spectrogram import LOG_EPSILON

    _, _, mag = scipy.signal.spectrogram(clip, fs=C.SAMPLE_RATE, window=C.WINDOW, nperseg=C.WINDOW_LENGTH,
                                         noverlap=C.OVERLAP, nfft=C.N_FFT, mode="magnitude")
    if scaling == "log":
        mag = np.log(mag + LOG_EPSILON)
    elif scaling == "db":
        mag = 20.0 * np.log10(mag + LOG_EPSILON)
    return mag


def _shape():
    from pipeline.core import constants as C
    return C.SPEC_SHAPE


def batched(clips: np.ndarray, scaling: str, batch_size: int) -> np.ndarray:
    from pipeline.dsp.spectrogram import spectrogram

    out = np.empty((len(clips), *_shape()), dtype=np.float32)
    for start in range(0, len(clips), batch_size):
        spectrogram(clips[start:start + batch_size], scaling, out=out[start:start + batch_size])
    return out


def naive_features(cfg) -> None:
    """The straightforward script: each split's clips one by one (soundfile, scipy) into a
    memory-mapped .npy."""
    import soundfile as sf

    from pipeline.data.clips import load_manifest
    from pipeline.data.feature_files import features_dir, split_path

    frame = load_manifest(cfg.data_dir)
    features_dir(cfg).mkdir(parents=True, exist_ok=True)
    for split in ("train", "val", "test"):
        paths = list(frame.loc[frame["split"] == split, "path"])
        out = np.lib.format.open_memmap(split_path(cfg, split), mode="w+", dtype=cfg.features.dtype,
                                        shape=(len(paths), *_shape()))
        for i, rel in enumerate(paths):
            out[i] = _one_clip(sf.read(str(cfg.data_dir / rel), dtype="float32")[0], cfg.features.scaling)
        out.flush()
        del out


def _file_dataset(ctx):
    from pipeline.core.config import load_config
    from pipeline.data.dataset import build_dataset

    cfg = load_config(None, [f'root="{ctx.scratch / "features"}"', 'name="bench_features"',
                             f'data.soundfont="{(REPO / "soundfonts" / "TimGM6mb.sf2").resolve()}"',
                             f"data.instruments={INSTRUMENTS}", "data.note_low=48",
                             f"data.note_high={52 if ctx.quick else 90}",
                             f"data.velocities={QUICK_VELOCITIES if ctx.quick else VELOCITIES}",
                             'split.test="random"'])
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        manifest = build_dataset(cfg)
    return cfg, len(manifest)


def _file_to_file(ctx) -> dict:
    from pipeline.data.feature_files import features_dir, split_path
    from pipeline.data.features import build_features

    cfg, n = _file_dataset(ctx)
    ours, naive, same = Timing(), Timing(), True
    for _ in range(FILE_REPS if not ctx.quick else 1):
        shutil.rmtree(features_dir(cfg), ignore_errors=True)
        with Stopwatch(naive):
            naive_features(cfg)
        expected = {s: split_path(cfg, s).read_bytes() for s in ("train", "val", "test")}
        shutil.rmtree(features_dir(cfg))
        with contextlib.redirect_stdout(io.StringIO()), Stopwatch(ours):
            build_features(cfg)
        same = same and all(split_path(cfg, s).read_bytes() == data for s, data in expected.items())
    shutil.rmtree(cfg.data_dir, ignore_errors=True)
    return {"clips": n, "workers": cores(), "build_features": ours.summary(n, "spectrograms"),
            "naive_loop": naive.summary(n, "spectrograms"), "speedup": round(naive.best / ours.best, 2),
            "identical_files": same}


def run(ctx) -> dict:
    from pipeline.core.config import FeaturesConfig
    from pipeline.dsp.spectrogram import CACHE_BATCH

    fc = FeaturesConfig()
    clips = ctx.sample_clips(QUICK_CLIPS if ctx.quick else CLIPS)
    n = len(clips)
    loop, batch = Timing(), Timing()
    loads = [load()]
    per_clip(clips[:2], fc.scaling), batched(clips[:2], fc.scaling, fc.batch_size)  # imports, window caches
    for _ in range(REPS if not ctx.quick else 1):
        with Stopwatch(loop):
            reference = per_clip(clips, fc.scaling)
        with Stopwatch(batch):
            ours = batched(clips, fc.scaling, fc.batch_size)
        loads.append(load())
    files = _file_to_file(ctx)
    loads.append(load())
    diff = float(np.max(np.abs(ours.astype(np.float64) - reference))) if n else 0.0
    return {
        "clips": n, "scaling": fc.scaling, "batch_size": fc.batch_size, "fft_chunk": CACHE_BATCH, "threads": 1,
        "load_average": loads,
        "batched": batch.summary(n, "spectrograms"),
        "per_clip_loop": loop.summary(n, "spectrograms"),
        "speedup": round(loop.best / batch.best, 2),
        "identical": bool(np.array_equal(ours, reference)),
        "allclose": bool(np.allclose(ours, reference, rtol=1e-6, atol=1e-6)), "max_abs_difference": diff,
        "file_to_file": files,
    }
