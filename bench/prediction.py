"""Prediction speed on one core: the predict path (pipeline.prediction) against pYIN (librosa)
on the same audio, in times real time (audio seconds per second of processing).

Both run in one child process pinned to one core (`taskset -c 0`, one thread for
TensorFlow, BLAS and OpenMP), so the comparison is per core whatever the machine.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np

AUDIO_SECONDS, QUICK_AUDIO_SECONDS = 3.0, 1.0
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
              "NUMBA_NUM_THREADS": "1", "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1",
              "TF_CPP_MIN_LOG_LEVEL": "2"}


def run(ctx) -> dict:
    import soundfile as sf

    from pipeline import constants as C

    seconds = QUICK_AUDIO_SECONDS if ctx.quick else AUDIO_SECONDS
    n_clips = int(np.ceil(seconds * C.SAMPLE_RATE / C.CLIP_SAMPLES))
    audio = ctx.sample_clips(n_clips).reshape(-1)[: round(seconds * C.SAMPLE_RATE)]
    folder = ctx.scratch / "prediction"
    folder.mkdir(parents=True, exist_ok=True)
    wav = folder / "notes.wav"
    sf.write(str(wav), audio, C.SAMPLE_RATE, subtype="PCM_16")
    pin = ["taskset", "-c", "0"] if shutil.which("taskset") else []
    command = [*pin, sys.executable, "-m", "bench.prediction", str(wav), str(folder), "1" if ctx.quick else "0"]
    done = subprocess.run(command, capture_output=True, text=True, cwd=str(ctx.repo), env={**os.environ, **ONE_THREAD})
    if done.returncode != 0:
        raise RuntimeError(f"prediction benchmark failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result.update({"audio_seconds": round(len(audio) / C.SAMPLE_RATE, 3), "pinned": " ".join(pin) or "no taskset",
                   "threads": 1})
    ours, pyin = result.get("predict_x_realtime"), result.get("pyin_x_realtime")
    result["speedup_vs_pyin"] = round(ours / pyin, 2) if ours and pyin else None
    return result


# --- the child process ------------------------------------------------------------------------
def _pyin(audio: np.ndarray, reps: int) -> dict:
    import librosa

    from pipeline import baselines as B
    from pipeline import constants as C
    from pipeline.prediction import PREDICT_HOP_SECONDS

    hop = round(PREDICT_HOP_SECONDS * C.SAMPLE_RATE)  # the predict path's hop
    kwargs = dict(fmin=B.BASELINE_FMIN_HZ, fmax=B.PYIN_FMAX_HZ, sr=C.SAMPLE_RATE,
                  frame_length=B.PYIN_FRAME_LENGTH, hop_length=hop)
    librosa.pyin(audio[: C.SAMPLE_RATE // 2], **kwargs)  # warm-up: numba compilation, caches
    best = min(_timed(lambda: librosa.pyin(audio, **kwargs)) for _ in range(reps))
    return {"pyin_seconds": round(best, 4), "pyin_x_realtime": round(len(audio) / C.SAMPLE_RATE / best, 2),
            "pyin_settings": {k: v for k, v in kwargs.items() if k != "sr"}}


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _predict(audio: np.ndarray, folder: str, quick: bool, reps: int) -> dict:
    try:
        from bench.predict_path import measure

        return measure(audio, folder, quick, reps)
    except Exception as exc:  # report it in the table, keep the other rows
        return {"predict_x_realtime": None, "predict_seconds": None,
                "todo": f"TODO: the predict path could not be measured ({type(exc).__name__}: {str(exc)[:300]})"}


def main(argv: list[str]) -> None:
    import soundfile as sf

    wav, folder, quick = argv[0], argv[1], argv[2] == "1"
    audio, _ = sf.read(wav, dtype="float32")
    reps = 1 if quick else 2
    result = {"cores_visible": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None}
    result.update(_pyin(audio, reps))
    result.update(_predict(audio, folder, quick, reps))
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
