"""Features: `pipeline.features.spectrogram` (batched) against a plain per-clip
`scipy.signal.spectrogram` loop on the same clips, values compared bit for bit. The headline
is the batched path as build_features runs it (a thread per core) against the loop; the
batched path on one thread shows what batching alone gives."""

from __future__ import annotations

import numpy as np

from bench.timing import Stopwatch, Timing, cores, load

CLIPS, QUICK_CLIPS = 2048, 128
REPS = 6


def per_clip(clips: np.ndarray, scaling: str) -> np.ndarray:
    """The straightforward way: one scipy call per clip, then the scaling, as docs/CONTRACTS.md states it."""
    import scipy.signal

    from pipeline import constants as C

    out = np.empty((len(clips), *C.SPEC_SHAPE), dtype=np.float32)
    for i, clip in enumerate(clips):
        _, _, mag = scipy.signal.spectrogram(clip, fs=C.SAMPLE_RATE, window=C.WINDOW, nperseg=C.WINDOW_LENGTH,
                                             noverlap=C.OVERLAP, nfft=C.N_FFT, mode="magnitude")
        if scaling == "log":
            mag = np.log(mag + C.LOG_EPSILON)
        elif scaling == "db":
            mag = 20.0 * np.log10(mag + C.LOG_EPSILON)
        out[i] = mag
    return out


def batched(clips: np.ndarray, scaling: str, batch_size: int) -> np.ndarray:
    from pipeline import constants as C
    from pipeline.features import spectrogram

    out = np.empty((len(clips), *C.SPEC_SHAPE), dtype=np.float32)
    for start in range(0, len(clips), batch_size):
        spectrogram(clips[start:start + batch_size], scaling, out=out[start:start + batch_size])
    return out


def threaded(clips: np.ndarray, scaling: str, batch_size: int, workers: int) -> np.ndarray:
    """As build_features runs it: batches spread over a thread per core."""
    from concurrent.futures import ThreadPoolExecutor

    from pipeline import constants as C
    from pipeline.features import spectrogram

    out = np.empty((len(clips), *C.SPEC_SHAPE), dtype=np.float32)

    def fill(start: int) -> None:
        spectrogram(clips[start:start + batch_size], scaling, out=out[start:start + batch_size])

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(fill, range(0, len(clips), batch_size)))
    return out


def run(ctx) -> dict:
    from pipeline.config import FeaturesConfig
    from pipeline.features import CACHE_BATCH

    fc = FeaturesConfig()
    clips = ctx.sample_clips(QUICK_CLIPS if ctx.quick else CLIPS)
    n = len(clips)
    loop, batch, threads = Timing(), Timing(), Timing()
    loads = [load()]
    per_clip(clips[:2], fc.scaling), batched(clips[:2], fc.scaling, fc.batch_size)  # imports, window caches
    for _ in range(REPS if not ctx.quick else 1):  # cheap, and this machine's speed wanders: best of more runs
        with Stopwatch(loop):
            reference = per_clip(clips, fc.scaling)
        with Stopwatch(batch):
            ours = batched(clips, fc.scaling, fc.batch_size)
        with Stopwatch(threads):
            threaded(clips, fc.scaling, fc.batch_size, cores())
        loads.append(load())
    diff = float(np.max(np.abs(ours.astype(np.float64) - reference))) if n else 0.0
    identical = bool(np.array_equal(ours, reference))
    close = bool(np.allclose(ours, reference, rtol=1e-6, atol=1e-6))
    return {
        "clips": n, "scaling": fc.scaling, "batch_size": fc.batch_size, "fft_chunk": CACHE_BATCH, "threads": 1, "load_average": loads,
        "batched": batch.summary(n, "spectrograms"),
        "per_clip_loop": loop.summary(n, "spectrograms"),
        "batched_threads": {**threads.summary(n, "spectrograms"), "threads": cores()},
        "speedup": round(loop.best / batch.best, 2),
        "speedup_threads": round(loop.best / threads.best, 2),
        "identical": identical, "allclose": close, "max_abs_difference": diff,
    }
