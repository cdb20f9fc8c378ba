"""Prediction speed on one core: this project's predict path against SwiftF0, Praat and pYIN on
the same files, in times real time (audio seconds per second of processing); and the start-up
of `pipeline predict`.

- One child process pinned to one core (`taskset -c 0`; one thread for ONNX Runtime, BLAS,
  OpenMP and numba) measures every tracker on the same files (rendered notes and synthetic
  tones at 16 kHz mono, and a 44.1 kHz stereo file that must be mixed and resampled), each
  run including reading the file and bringing it to the tracker's rate. Trackers are loaded
  and warmed first (the marginal rate: what a long batch of files costs per file); runs are
  interleaved, tracker after tracker, and the best run counts. pYIN (under 1x real time) runs
  once.
- Start-up: wall time of `python -m pipeline predict --summary` on a 1 s file as a fresh
  process (median of 5 after one warm-up run for the OS caches), the same under `-X importtime`
  summed per package, and the predictor's load time in-process.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
              "NUMBA_NUM_THREADS": "1", "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1",
              "TF_CPP_MIN_LOG_LEVEL": "2"}
# seconds of audio per file: rendered notes, synthetic tones (16 kHz mono), notes again at 44.1 kHz stereo
FILE_SECONDS, QUICK_FILE_SECONDS = (12.0, 9.0, 9.0), (2.0, 1.0, 1.0)
ROUNDS, QUICK_ROUNDS = 5, 2          # interleaved runs of every tracker over all the files
SLOW_RUNS = {"pyin": 1}              # pYIN: about 1x real time, one run over the files is enough
STARTUP_RUNS = 5
STARTUP_FILE_SECONDS = 1.0
IMPORT_TOP = 6                       # packages listed in the start-up's import breakdown
TARGET_X_REALTIME = 100.0            # the aim: the 10 ms hop at >= 100x real time on one core
STARTUP_TARGET_SECONDS = 1.0


# --- the parent: files, the child process, the start-up ---------------------------------------------
def run(ctx) -> dict:
    from bench.predict_path import benchmark_model
    from bench.timing import load

    folder = ctx.scratch / "prediction"
    folder.mkdir(parents=True, exist_ok=True)
    files = write_files(ctx, folder)
    startup_file = write_tone_file(folder / "one_second.wav", STARTUP_FILE_SECONDS, seed=1)
    model = benchmark_model(folder)
    pin = ["taskset", "-c", "0"] if shutil.which("taskset") else []
    spec = {"files": [str(f["path"]) for f in files], "warm": str(startup_file), "model": str(model.path),
            "rounds": QUICK_ROUNDS if ctx.quick else ROUNDS}
    (folder / "spec.json").write_text(json.dumps(spec))
    load_before = load()
    done = subprocess.run([*pin, sys.executable, "-m", "bench.prediction", str(folder / "spec.json")],
                          capture_output=True, text=True, cwd=str(ctx.repo), env={**os.environ, **ONE_THREAD})
    if done.returncode != 0:
        raise RuntimeError(f"prediction benchmark failed:\n{done.stderr[-3000:]}")
    child = json.loads(done.stdout.strip().splitlines()[-1])
    startup = measure_startup(pin, startup_file, model.cli_args, ctx.repo)
    audio_seconds = round(sum(f["seconds"] for f in files), 3)
    trackers = child.pop("trackers")
    for t in trackers.values():
        if t.get("runs_seconds"):
            t["best_seconds"] = min(t["runs_seconds"])
            t["x_realtime"] = round(audio_seconds / t["best_seconds"], 2)
    ours = trackers["ours"].get("x_realtime")
    ours_vs = {name: round(ours / t["x_realtime"], 3) if ours and t.get("x_realtime") else None
               for name, t in trackers.items() if not name.startswith("ours")}
    return {"audio_seconds": audio_seconds, "files": [{**f, "path": Path(f["path"]).name} for f in files],
            "pinned": " ".join(pin) or "no taskset", "threads": 1, "model": model.description,
            "trackers": trackers, "ours_vs": ours_vs, "startup": {**startup, **child.pop("load")},
            "target_x_realtime": TARGET_X_REALTIME, "startup_target_seconds": STARTUP_TARGET_SECONDS,
            "load_average": [load_before, load()], **child}


def write_files(ctx, folder: Path) -> list[dict]:
    """The benchmark's recordings: the bench's rendered notes, synthetic tones, and the notes
    again as a 44.1 kHz stereo file (what most users' files are: mixing and resampling included)."""
    import soundfile as sf
    import soxr

    from pipeline.core import constants as C
    notes_s, tones_s, stereo_s = QUICK_FILE_SECONDS if ctx.quick else FILE_SECONDS
    n_clips = int(np.ceil((notes_s + stereo_s) * C.SAMPLE_RATE / C.CLIP_SAMPLES))
    clips = ctx.sample_clips(n_clips).reshape(-1)
    notes, rest = clips[: round(notes_s * C.SAMPLE_RATE)], clips[round(notes_s * C.SAMPLE_RATE):]
    sf.write(str(folder / "notes.wav"), notes, C.SAMPLE_RATE, subtype="PCM_16")
    write_tone_file(folder / "tones.wav", tones_s, seed=0)
    wide = soxr.resample(rest[: round(stereo_s * C.SAMPLE_RATE)], C.SAMPLE_RATE, 44100, quality="VHQ")
    sf.write(str(folder / "notes_44k_stereo.wav"), np.stack([wide, 0.7 * wide], axis=1), 44100, subtype="PCM_16")
    files = []
    for name in ("notes.wav", "tones.wav", "notes_44k_stereo.wav"):
        info = sf.info(str(folder / name))
        files.append({"path": str(folder / name), "seconds": round(info.frames / info.samplerate, 4),
                      "sample_rate": info.samplerate, "channels": info.channels})
    return files


def write_tone_file(path: Path, seconds: float, seed: int) -> Path:
    """Synthetic tones (pipeline.data.tones), one a second, MIDI 36-96, 16 kHz mono."""
    import soundfile as sf

    from pipeline.core import constants as C
    from pipeline.core.pitch import midi_to_hz
    from pipeline.data.tones import draw_tone, render_tone

    rng = np.random.default_rng(seed)
    notes = [render_tone(draw_tone(rng, float(midi_to_hz(rng.integers(36, 97)))), C.SAMPLE_RATE, 0.8, 0.2)
             for _ in range(int(np.ceil(seconds)))]
    audio = np.concatenate(notes)[: round(seconds * C.SAMPLE_RATE)]
    sf.write(str(path), audio, C.SAMPLE_RATE, subtype="PCM_16")
    return path


def measure_startup(pin: list[str], wav: Path, model_args: list[str], repo: Path) -> dict:
    """Wall seconds of `python -m pipeline predict --summary FILE` as a fresh process, and where
    its imports spend their time (`-X importtime`, self time summed per top-level package)."""
    base, args = [*pin, sys.executable], ["-m", "pipeline", "predict", "--summary", str(wav), *model_args]
    env = {**os.environ, **ONE_THREAD}

    def once(extra: tuple[str, ...] = ()) -> tuple[float, subprocess.CompletedProcess]:
        start = time.perf_counter()
        done = subprocess.run([*base, *extra, *args], capture_output=True, text=True, cwd=str(repo), env=env)
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join([*base, *args])} failed ({done.returncode}):\n{done.stderr[-2000:]}")
        return seconds, done

    warmup, first = once()                       # fills the OS caches (files, shared libraries)
    runs = [once()[0] for _ in range(STARTUP_RUNS)]
    traced_seconds, traced = once(("-X", "importtime"))
    imports = import_breakdown(traced.stderr)
    shown = ["python", "-m", "pipeline", "predict", "--summary", wav.name, *model_args[:1], *map(_name, model_args[1:])]
    return {"command": " ".join(shown),
            "file_seconds": STARTUP_FILE_SECONDS, "warmup_seconds": round(warmup, 4),
            "runs_seconds": [round(s, 4) for s in runs], "median_seconds": round(statistics.median(runs), 4),
            "output": first.stdout.strip().replace(str(wav.parent) + os.sep, "")[-200:],
            "importtime_run_seconds": round(traced_seconds, 4), "imports": imports}


def _name(path: str) -> str:
    return Path(path).name


def import_breakdown(stderr: str) -> dict:
    """`-X importtime` lines -> total import seconds and the packages that took most (self time
    of every module, summed by its top-level package: numpy's own modules count as numpy
    wherever they were imported from)."""
    per_package: dict[str, int] = {}
    for line in stderr.splitlines():
        if not line.startswith("import time:"):
            continue
        parts = line[len("import time:"):].split("|")
        if len(parts) != 3 or not parts[0].strip().isdigit():
            continue                              # the header line
        package = parts[2].strip().split(".")[0]
        per_package[package] = per_package.get(package, 0) + int(parts[0])
    total = sum(per_package.values())
    top = sorted(per_package.items(), key=lambda item: -item[1])[:IMPORT_TOP]
    return {"total_seconds": round(total / 1e6, 4), "top_seconds": {k: round(v / 1e6, 4) for k, v in top}}


# --- the child: every tracker on the same files, one core ---------------------------------------------
@dataclass(frozen=True)
class Tracker:
    name: str
    title: str
    hop_seconds: float
    track: Callable[[str], int]            # a file in (read, mixed, resampled, tracked), its frame count out
    settings: dict = field(default_factory=dict)
    runs: int = 0                          # at most this many runs (0: every round)


def ours(predictor, hop: float, name: str, title: str) -> Tracker:
    from pipeline.inference.prediction import predict_from_file

    return Tracker(name, title, hop, lambda path: len(predict_from_file(path, predictor, hop=hop)[0]),
                   {"hop_seconds": hop})


def swift_f0() -> Tracker:
    from swift_f0 import FRAME_PERIOD, SwiftF0

    detector = SwiftF0(threads=1)
    # detect_file: soundfile, then SwiftF0's own mixing and soxr resampling to 16 kHz
    return Tracker("swift_f0", "SwiftF0", FRAME_PERIOD, lambda path: len(detector.detect_file(path).pitch_hz),
                   {"threads": 1})


def _model_rate(path: str) -> np.ndarray:
    from pipeline.dsp.audio import read_audio, to_model_rate

    return to_model_rate(*read_audio(path))   # the same reading, mixing and soxr as the predict path


def praat() -> Tracker:
    import parselmouth

    from pipeline.core import constants as C
    from pipeline.report import baselines as B
    def track(path: str) -> int:
        sound = parselmouth.Sound(_model_rate(path).astype(np.float64), sampling_frequency=C.SAMPLE_RATE)
        return sound.to_pitch_ac(time_step=B.PRAAT_TIME_STEP, pitch_floor=B.BASELINE_FMIN_HZ,
                                 pitch_ceiling=B.PRAAT_CEILING_HZ).get_number_of_frames()

    return Tracker("praat", "Praat (to_pitch_ac)", B.PRAAT_TIME_STEP, track,
                   {"pitch_floor": B.BASELINE_FMIN_HZ, "pitch_ceiling": B.PRAAT_CEILING_HZ})


def pyin() -> Tracker:
    import librosa

    from pipeline.core import constants as C
    from pipeline.inference.prediction import PREDICT_HOP_SECONDS
    from pipeline.report import baselines as B

    kwargs = dict(fmin=B.BASELINE_FMIN_HZ, fmax=B.PYIN_FMAX_HZ, sr=C.SAMPLE_RATE,
                  frame_length=B.PYIN_FRAME_LENGTH, hop_length=round(PREDICT_HOP_SECONDS * C.SAMPLE_RATE))
    return Tracker("pyin", "pYIN (librosa)", PREDICT_HOP_SECONDS,
                   lambda path: len(librosa.pyin(_model_rate(path), **kwargs)[0]),
                   {k: v for k, v in kwargs.items() if k != "sr"}, runs=SLOW_RUNS["pyin"])


def load_trackers(model_path: str) -> tuple[list[Tracker], dict, dict]:
    """Our predictor first (its import and load timed in this fresh process), then the others;
    a tracker whose package is missing is reported as skipped."""
    start = time.perf_counter()
    from pipeline.inference.prediction import PREDICT_HOP_SECONDS, SUMMARY_HOP_SECONDS, is_frame_model
    from pipeline.inference.predictor import load_predictor
    imported = time.perf_counter()
    predictor = load_predictor(model_path)
    loaded = time.perf_counter()
    load_predictor(model_path)
    load = {"import_seconds": round(imported - start, 4), "load_predictor_seconds": round(loaded - imported, 4),
            "load_predictor_again_seconds": round(time.perf_counter() - loaded, 4)}
    trackers = [ours(predictor, PREDICT_HOP_SECONDS, "ours", "predict path")]
    if not is_frame_model(predictor):   # a frame model's --summary reads every 10 ms frame: the same run
        trackers.append(ours(predictor, SUMMARY_HOP_SECONDS, "ours_summary", "predict path, `--summary` hop"))
    skipped = {}
    for name, make in (("swift_f0", swift_f0), ("praat", praat), ("pyin", pyin)):
        try:
            trackers.append(make())
        except ImportError as exc:
            skipped[name] = {"title": name, "skipped": f"{exc}; pip install -e . installs it"}
    return trackers, skipped, load


def measure(trackers: list[Tracker], files: list[str], warm: str, rounds: int) -> dict:
    """Every tracker warmed on `warm`, then `rounds` interleaved runs over all the files."""
    for tracker in trackers:
        tracker.track(warm)                       # sessions, numba compilation, caches
    found = {t.name: {"title": t.title, "hop_seconds": round(t.hop_seconds, 4), "settings": t.settings,
                      "runs_seconds": [], "frames": 0} for t in trackers}
    for r in range(rounds):
        for tracker in trackers:
            if tracker.runs and r >= tracker.runs:
                continue
            start = time.perf_counter()
            frames = sum(tracker.track(path) for path in files)
            found[tracker.name]["runs_seconds"].append(round(time.perf_counter() - start, 4))
            found[tracker.name]["frames"] = frames
    return found


def main(argv: list[str]) -> None:
    spec = json.loads(Path(argv[0]).read_text())
    trackers, skipped, load = load_trackers(spec["model"])
    found = measure(trackers, spec["files"], spec["warm"], spec["rounds"])
    result = {"cores_visible": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
              "load": load, "trackers": {**found, **skipped}, "versions": _versions()}
    print(json.dumps(result))


def _versions() -> dict:
    from importlib import metadata

    found = {}
    for dist in ("onnxruntime", "swift-f0", "praat-parselmouth", "librosa", "soxr"):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[dist] = None
    return found


if __name__ == "__main__":
    main(sys.argv[1:])
