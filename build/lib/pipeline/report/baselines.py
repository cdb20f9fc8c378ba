"""Baselines: established pitch trackers run on the same clips as the model, for the report.

Each tracker maps clips (N, 5280) float32 at 16 kHz to one f0 per clip, in Hz, NaN where it
finds no voiced frame: the per-frame track is reduced to the median of its voiced frames,
which is robust to the attack transient and to a stray octave jump at either end.

Only trackers that run offline are registered: no weights are downloaded at run time
(pYIN and Praat have none; SwiftF0 and torchcrepe ship theirs inside their PyPI packages).
A tracker whose package is not installed is reported as skipped, with the pip command.
"""

from __future__ import annotations

import importlib.util
import sys
import time
import types
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from pipeline.core import constants as C
from pipeline.core.errors import PipelineError
from pipeline.core.progress import bar as progress_bar

BASELINE_BATCH = 256            # clips per tracker call where the tracker batches
BASELINE_FMIN_HZ = 30.0         # below MIDI 24 (32.7 Hz), the lowest note a config is likely to render
PYIN_FMAX_HZ = C.SAMPLE_RATE / 2  # up to Nyquist: the dataset reaches MIDI 119 (7.9 kHz)
PYIN_FRAME_LENGTH = 2048        # YIN needs frame_length - frame_length//2 > SAMPLE_RATE / fmin (533 samples)
PYIN_HOP = 256                  # 16 ms: about 21 frames in a 330 ms clip
PRAAT_TIME_STEP = 0.01          # s
PRAAT_CEILING_HZ = C.SAMPLE_RATE / 2
SWIFT_F0_VOICING = 0.5          # SwiftF0's documented voicing threshold
CREPE_WINDOW = 1024             # samples: CREPE's fixed input at 16 kHz
CREPE_HOP = 512                 # 32 ms: 9 frames inside a clip (frames are independent; CPU time is the cost)
PROGRESS_CHUNK = 4 * 64           # clips tracked per call, between updates of the progress bar
CREPE_VOICING = 0.5             # periodicity threshold for a voiced frame
CREPE_FMIN_HZ = 32.0            # CREPE's lowest bin is 31.7 Hz; a lower fmin makes torchcrepe mask every bin


@dataclass(frozen=True)
class Baseline:
    name: str                      # config and column name
    title: str                     # shown in the report
    modules: tuple[str, ...]       # import names it needs
    install: str                   # how to get them
    range_hz: tuple[float, float]  # what it can answer; notes outside count as errors
    track: Callable[[np.ndarray], np.ndarray]


@dataclass
class BaselineResult:
    name: str
    hz: np.ndarray | None          # (N,) or None when skipped
    seconds: float = 0.0
    skipped: str | None = None     # why it did not run
    info: dict = field(default_factory=dict)

    @property
    def clips_per_second(self) -> float:
        return len(self.hz) / self.seconds if self.hz is not None and self.seconds > 0 else float("nan")


def median_voiced(f0: np.ndarray, voiced: np.ndarray) -> np.ndarray:
    """Per clip (rows), the median f0 of its voiced frames; NaN when none is voiced."""
    masked = np.where(voiced & np.isfinite(f0) & (f0 > 0), f0, np.nan)
    out = np.full(len(masked), np.nan)
    has = np.isfinite(masked).any(axis=1)
    out[has] = np.nanmedian(masked[has], axis=1)
    return out


def _check_clips(clips: np.ndarray) -> np.ndarray:
    clips = np.asarray(clips, dtype=np.float32)
    if clips.ndim != 2:
        raise PipelineError(f"baselines take clips as a (N, samples) array, got shape {clips.shape}")
    return clips


# --- the trackers ------------------------------------------------------------------------
def pyin(clips: np.ndarray) -> np.ndarray:
    """librosa's probabilistic YIN, batched over clips; 10-cent pitch states (librosa's default)."""
    import librosa

    clips = _check_clips(clips)
    out = np.empty(len(clips))
    for start in range(0, len(clips), BASELINE_BATCH):
        batch = clips[start:start + BASELINE_BATCH]
        # librosa treats leading axes as channels, so one call tracks the whole batch
        f0, voiced, _ = librosa.pyin(batch, fmin=BASELINE_FMIN_HZ, fmax=PYIN_FMAX_HZ, sr=C.SAMPLE_RATE,
                                     frame_length=PYIN_FRAME_LENGTH, hop_length=PYIN_HOP)
        out[start:start + len(batch)] = median_voiced(f0.reshape(len(batch), -1), voiced.reshape(len(batch), -1))
    return out


def praat(clips: np.ndarray) -> np.ndarray:
    """Praat's autocorrelation method (Boersma 1993) through parselmouth, Praat's standard settings."""
    import parselmouth

    clips = _check_clips(clips)
    out = np.empty(len(clips))
    for i, clip in enumerate(clips):
        sound = parselmouth.Sound(clip.astype(np.float64), sampling_frequency=C.SAMPLE_RATE)
        pitch = sound.to_pitch_ac(time_step=PRAAT_TIME_STEP, pitch_floor=BASELINE_FMIN_HZ,
                                  pitch_ceiling=PRAAT_CEILING_HZ)
        f0 = pitch.selected_array["frequency"]     # 0 where Praat's path is unvoiced
        out[i] = median_voiced(f0[None, :], f0[None, :] > 0)[0]
    return out


def swift_f0(clips: np.ndarray) -> np.ndarray:
    """SwiftF0 (ONNX CNN on 16 kHz audio); a frame is voiced at confidence >= 0.5, as its docs say."""
    from swift_f0 import SwiftF0

    clips = _check_clips(clips)
    detector = SwiftF0()
    out = np.empty(len(clips))
    for i, clip in enumerate(clips):
        result = detector.detect(clip, C.SAMPLE_RATE)
        out[i] = median_voiced(result.pitch_hz[None, :], result.confidence[None, :] >= SWIFT_F0_VOICING)[0]
    return out


def _crepe_frames(clips: np.ndarray) -> np.ndarray:
    """(N, F, 1024) frames inside each clip, normalised per frame as torchcrepe.preprocess does."""
    frames = np.lib.stride_tricks.sliding_window_view(clips, CREPE_WINDOW, axis=1)[:, ::CREPE_HOP]
    frames = frames - frames.mean(axis=2, keepdims=True)
    return frames / np.maximum(frames.std(axis=2, keepdims=True), 1e-10)


def _import_torchcrepe():
    """torchcrepe, even where torchaudio cannot load.

    torchcrepe imports torchaudio only to read audio files; PyPI's torchaudio is built for one
    CUDA torch and fails to load beside the CPU torch wheel. We hand torchcrepe arrays, so an
    empty stand-in module is enough there.
    """
    try:
        import torchaudio  # noqa: F401
    except (ImportError, OSError):
        for name in [m for m in sys.modules if m == "torchaudio" or m.startswith("torchaudio.")]:
            del sys.modules[name]
        sys.modules["torchaudio"] = types.ModuleType("torchaudio")
    import torchcrepe

    return torchcrepe


def _crepe(clips: np.ndarray, capacity: str) -> np.ndarray:
    """CREPE via torchcrepe: frames from every clip in one forward pass per batch, weighted-argmax decoding.

    Frames are cut inside each clip (no zero padding), so a clip's edges do not add silent frames.
    """
    import torch

    torchcrepe = _import_torchcrepe()
    clips = _check_clips(clips)
    out = np.empty(len(clips))
    for start in range(0, len(clips), BASELINE_BATCH):
        frames = _crepe_frames(clips[start:start + BASELINE_BATCH])
        n, per_clip = frames.shape[:2]
        with torch.inference_mode():
            logits = torchcrepe.infer(torch.from_numpy(frames.reshape(-1, CREPE_WINDOW).astype(np.float32)),
                                      model=capacity)
            f0, periodicity = torchcrepe.postprocess(logits.reshape(1, -1, torchcrepe.PITCH_BINS).transpose(1, 2),
                                                     fmin=CREPE_FMIN_HZ, fmax=torchcrepe.MAX_FMAX,
                                                     decoder=torchcrepe.decode.weighted_argmax,
                                                     return_periodicity=True)
        f0, periodicity = f0.numpy().reshape(n, per_clip), periodicity.numpy().reshape(n, per_clip)
        out[start:start + n] = median_voiced(f0, periodicity >= CREPE_VOICING)
    return out


def crepe(clips: np.ndarray) -> np.ndarray:
    return _crepe(clips, "full")


def crepe_tiny(clips: np.ndarray) -> np.ndarray:
    return _crepe(clips, "tiny")


_TORCH = "pip install torch==2.13.0 torchcrepe  (the CPU wheel; or the project's [baselines-torch] extra)"
REGISTRY: dict[str, Baseline] = {b.name: b for b in (
    Baseline("pyin", "pYIN (librosa)", ("librosa",), "pip install librosa",
             (BASELINE_FMIN_HZ, PYIN_FMAX_HZ), pyin),
    Baseline("praat", "Praat autocorrelation (parselmouth)", ("parselmouth",),
             "pip install praat-parselmouth  (a dependency of this package: pip install -e .)",
             (BASELINE_FMIN_HZ, PRAAT_CEILING_HZ), praat),
    Baseline("swift_f0", "SwiftF0 (ONNX)", ("swift_f0", "onnxruntime"),
             "pip install swift-f0  (a dependency of this package: pip install -e .)", (46.875, 2093.75), swift_f0),
    Baseline("crepe", "CREPE full (torchcrepe)", ("torch", "torchcrepe"), _TORCH, (CREPE_FMIN_HZ, 2006.0), crepe),
    Baseline("crepe_tiny", "CREPE tiny (torchcrepe)", ("torch", "torchcrepe"), _TORCH, (CREPE_FMIN_HZ, 2006.0),
             crepe_tiny),
)}
assert tuple(REGISTRY) == C.BASELINES, "constants.BASELINES lists the registry's names for config checks"


# --- running them --------------------------------------------------------------------------
def missing_modules(name: str) -> list[str]:
    return [m for m in REGISTRY[name].modules if importlib.util.find_spec(m) is None]


def versions(name: str) -> dict[str, str]:
    """The installed distributions behind a baseline's modules, for the report's metrics.json."""
    from importlib import metadata

    owners = metadata.packages_distributions()
    found = {}
    for module in REGISTRY[name].modules:
        for dist in owners.get(module, []):
            found[dist] = metadata.version(dist)
    return found


def run_baseline(name: str, clips: np.ndarray) -> BaselineResult:
    """Track every clip with one baseline, timed; a missing package gives a skipped result, not an error."""
    if name not in REGISTRY:
        raise PipelineError(f"unknown baseline {name!r}; choose from {', '.join(REGISTRY)}")
    baseline = REGISTRY[name]
    info = {"title": baseline.title, "range_hz": list(baseline.range_hz)}
    missing = missing_modules(name)
    if missing:
        return BaselineResult(name, None, skipped=f"{', '.join(missing)} not installed; {baseline.install}",
                              info=info)
    info["versions"] = versions(name)
    started = time.perf_counter()
    parts = []
    with progress_bar(total=len(clips), unit="clip", desc=f"baseline {name}", leave=False) as bar:
        for start in range(0, len(clips), PROGRESS_CHUNK):  # chunks, so that the bar moves
            parts.append(np.asarray(baseline.track(clips[start:start + PROGRESS_CHUNK]), dtype=np.float64))
            bar.update(len(parts[-1]))
    hz = np.concatenate(parts) if parts else np.empty(0)
    return BaselineResult(name, hz, time.perf_counter() - started, info=info)



def run_baselines(names, clips: np.ndarray, progress: Callable[[str], None] = print) -> dict[str, BaselineResult]:
    results = {}
    for name in names:
        result = run_baseline(name, clips)
        if result.skipped:
            progress(f"baseline {name}: skipped ({result.skipped})")
        else:
            progress(f"baseline {name}: {len(clips)} clips in {result.seconds:.1f} s "
                     f"({result.clips_per_second:.1f} clips/s)")
        results[name] = result
    return results
