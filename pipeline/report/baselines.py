"""Baselines: established pitch trackers run on the same audio as the model, for the report and evaluate.

Each tracker maps clips (N, 5280) float32 at 16 kHz to one f0 per clip, in Hz, NaN where it
finds no voiced frame: the per-frame track is reduced to the median of its voiced frames,
which is robust to the attack transient and to a stray octave jump at either end.
`run_baseline_on_files` does the same for whole files of single notes (`pipeline evaluate`).

Each also tracks a whole recording (`contour(name, audio)`): a 10 ms hop where the tracker
takes one (SwiftF0's is fixed at 16 ms), voiced as the tracker itself decides (Praat's path
finder, pYIN's HMM, SwiftF0's and CREPE's confidence >= 0.5), with the pitch it gives for
unvoiced frames kept where it gives one (pYIN's best guess, SwiftF0, CREPE), as mir_eval reads it.

Only trackers that run offline are registered: no weights are downloaded at run time
(pYIN and Praat have none; SwiftF0 and torchcrepe ship theirs inside their PyPI packages).
A tracker whose package is not installed is reported as skipped, with the pip command.
"""

from __future__ import annotations

import functools
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
from pipeline.dsp.audio import read_audio, to_model_rate
from pipeline.report.frame_metrics import EVALUATION_HOP_SECONDS, Contour

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
CREPE_FIRST_BIN_CENTS = 1997.3794084376191   # that bin's centre in cents above 10 Hz (mir_eval's scale), as CREPE's
CONTOUR_HOP = round(EVALUATION_HOP_SECONDS * C.SAMPLE_RATE)   # samples between a contour's frames (160)


@dataclass(frozen=True)
class Baseline:
    name: str                      # config and column name
    title: str                     # shown in the report
    modules: tuple[str, ...]       # import names it needs
    install: str                   # how to get them
    range_hz: tuple[float, float]  # what it can answer; notes outside count as errors
    track: Callable[[np.ndarray], np.ndarray]
    contour: Callable[[np.ndarray], Contour] | None = None   # a whole recording at 16 kHz -> its frames
    hop_seconds: float = EVALUATION_HOP_SECONDS             # the contour's hop


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


def median_of(contour: Contour) -> float:
    """A contour's median voiced f0 (median_voiced of one row); NaN when no frame is voiced."""
    return float(median_voiced(contour.frequency[None, :], contour.voiced[None, :])[0])


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
    return np.array([median_of(praat_contour(clip)) for clip in _check_clips(clips)])


def swift_f0(clips: np.ndarray) -> np.ndarray:
    """SwiftF0 (ONNX CNN on 16 kHz audio); a frame is voiced at confidence >= 0.5, as its docs say."""
    return np.array([median_of(swift_f0_contour(clip)) for clip in _check_clips(clips)])


def _crepe_frames(clips: np.ndarray) -> np.ndarray:
    """(N, F, 1024) frames inside each clip, normalised per frame as torchcrepe.preprocess does."""
    frames = np.lib.stride_tricks.sliding_window_view(clips, CREPE_WINDOW, axis=1)[:, ::CREPE_HOP]
    frames = frames - frames.mean(axis=2, keepdims=True)
    return frames / np.maximum(frames.std(axis=2, keepdims=True), 1e-10)


def _import_torchcrepe():
    """torchcrepe, even where torchaudio cannot load, decoding at CREPE's exact bin centres.

    torchcrepe imports torchaudio only to read audio files; PyPI's torchaudio is built for one
    CUDA torch and fails to load beside the CPU torch wheel. We hand torchcrepe arrays, so an
    empty stand-in module is enough there.

    Its weighted-argmax decoder averages bin centres that it draws once per process with
    triangular noise of up to +-20 cents (`convert.dither`, 0.0.24): a 440 Hz tone then comes out
    a few cents off, differently in every process. CREPE's own decoding (marl/crepe's local
    average) uses the exact centres, so we give the decoder those.
    """
    try:
        import torchaudio  # noqa: F401
    except (ImportError, OSError):
        for name in [m for m in sys.modules if m == "torchaudio" or m.startswith("torchaudio.")]:
            del sys.modules[name]
        sys.modules["torchaudio"] = types.ModuleType("torchaudio")
    import torch
    import torchcrepe

    bins = torch.arange(torchcrepe.PITCH_BINS, dtype=torch.float32)
    centres = CREPE_FIRST_BIN_CENTS + torchcrepe.CENTS_PER_BIN * bins
    torchcrepe.decode.weighted_argmax.weights = centres[None, :, None]
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


# --- the trackers over a whole recording ---------------------------------------------------------
def _check_audio(audio: np.ndarray) -> np.ndarray:
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise PipelineError(f"a tracker takes one recording as a (samples,) array at 16 kHz, got shape {audio.shape}")
    return audio


def praat_contour(audio: np.ndarray) -> Contour:
    """Praat's frames every 10 ms, centred where Praat puts them; voiced where its path finder says (f0 > 0)."""
    import parselmouth

    sound = parselmouth.Sound(_check_audio(audio).astype(np.float64), sampling_frequency=C.SAMPLE_RATE)
    pitch = sound.to_pitch_ac(time_step=PRAAT_TIME_STEP, pitch_floor=BASELINE_FMIN_HZ, pitch_ceiling=PRAAT_CEILING_HZ)
    return Contour.from_frequency(pitch.xs(), pitch.selected_array["frequency"])   # 0 where unvoiced


def pyin_contour(audio: np.ndarray) -> Contour:
    """pYIN every 10 ms (centred frames); voiced by its HMM, with its best guess of f0 in unvoiced frames."""
    import librosa

    f0, voiced, _ = librosa.pyin(_check_audio(audio), fmin=BASELINE_FMIN_HZ, fmax=PYIN_FMAX_HZ, sr=C.SAMPLE_RATE,
                                 frame_length=PYIN_FRAME_LENGTH, hop_length=CONTOUR_HOP, fill_na=None)
    return Contour(librosa.times_like(f0, sr=C.SAMPLE_RATE, hop_length=CONTOUR_HOP), f0, voiced)


@functools.lru_cache(maxsize=1)
def _swift_f0_detector():
    from swift_f0 import SwiftF0

    return SwiftF0()


def swift_f0_contour(audio: np.ndarray) -> Contour:
    """SwiftF0's frames (its fixed 16 ms hop); voiced at confidence >= 0.5, a pitch in every frame."""
    result = _swift_f0_detector().detect(_check_audio(audio), C.SAMPLE_RATE)
    return Contour(result.timestamps, result.pitch_hz, result.confidence >= SWIFT_F0_VOICING)


def _crepe_contour(audio: np.ndarray, capacity: str) -> Contour:
    """torchcrepe every 10 ms (centred, zero-padded frames), weighted-argmax decoding; voiced at
    periodicity >= 0.5, a pitch in every frame."""
    import torch

    torchcrepe = _import_torchcrepe()
    with torch.inference_mode():
        f0, periodicity = torchcrepe.predict(torch.from_numpy(_check_audio(audio))[None], C.SAMPLE_RATE,
                                             hop_length=CONTOUR_HOP, fmin=CREPE_FMIN_HZ, fmax=torchcrepe.MAX_FMAX,
                                             model=capacity, decoder=torchcrepe.decode.weighted_argmax,
                                             return_periodicity=True, batch_size=BASELINE_BATCH, device="cpu")
    f0, periodicity = f0[0].numpy(), periodicity[0].numpy()
    return Contour(np.arange(len(f0)) * CONTOUR_HOP / C.SAMPLE_RATE, f0, periodicity >= CREPE_VOICING)


def crepe_contour(audio: np.ndarray) -> Contour:
    return _crepe_contour(audio, "full")


def crepe_tiny_contour(audio: np.ndarray) -> Contour:
    return _crepe_contour(audio, "tiny")


_TORCH = "pip install torch==2.13.0 torchcrepe  (the CPU wheel; or the project's [baselines-torch] extra)"
REGISTRY: dict[str, Baseline] = {b.name: b for b in (
    Baseline("pyin", "pYIN (librosa)", ("librosa",), "pip install librosa",
             (BASELINE_FMIN_HZ, PYIN_FMAX_HZ), pyin, pyin_contour),
    Baseline("praat", "Praat autocorrelation (parselmouth)", ("parselmouth",),
             "pip install praat-parselmouth  (a dependency of this package: pip install -e .)",
             (BASELINE_FMIN_HZ, PRAAT_CEILING_HZ), praat, praat_contour, PRAAT_TIME_STEP),
    Baseline("swift_f0", "SwiftF0 (ONNX)", ("swift_f0", "onnxruntime"),
             "pip install swift-f0  (a dependency of this package: pip install -e .)", (46.875, 2093.75), swift_f0,
             swift_f0_contour, 256 / C.SAMPLE_RATE),
    Baseline("crepe", "CREPE full (torchcrepe)", ("torch", "torchcrepe"), _TORCH, (CREPE_FMIN_HZ, 2006.0), crepe,
             crepe_contour),
    Baseline("crepe_tiny", "CREPE tiny (torchcrepe)", ("torch", "torchcrepe"), _TORCH, (CREPE_FMIN_HZ, 2006.0),
             crepe_tiny, crepe_tiny_contour),
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
        if not owners.get(module):   # a lone extension module (parselmouth) is in no top_level.txt
            found[module] = str(getattr(importlib.import_module(module), "__version__", "unknown"))
    return found


def baseline_names(names) -> list[str]:
    """Registry names from a comma-separated text or a list, in order, once each; `swiftf0` and
    `crepe-tiny` name swift_f0 and crepe_tiny. PipelineError naming an unknown one."""
    items = names.split(",") if isinstance(names, str) else list(names)
    spelled = {name.replace("_", ""): name for name in REGISTRY}
    found: list[str] = []
    for item in (str(i).strip() for i in items):
        if not item:
            continue
        name = spelled.get(item.lower().replace("_", "").replace("-", ""))
        if name is None:
            raise PipelineError(f"unknown baseline {item!r}; choose from {', '.join(REGISTRY)}")
        if name not in found:
            found.append(name)
    return found


def availability(name: str) -> tuple[dict, str | None]:
    """(what to record about a baseline, why it cannot run or None); PipelineError for an unknown name."""
    if name not in REGISTRY:
        raise PipelineError(f"unknown baseline {name!r}; choose from {', '.join(REGISTRY)}")
    baseline = REGISTRY[name]
    info = {"title": baseline.title, "range_hz": list(baseline.range_hz), "hop_seconds": baseline.hop_seconds}
    missing = missing_modules(name)
    if missing:
        return info, f"{', '.join(missing)} not installed; {baseline.install}"
    return info | {"versions": versions(name)}, None


def run_baseline(name: str, clips: np.ndarray) -> BaselineResult:
    """Track every clip with one baseline, timed; a missing package gives a skipped result, not an error."""
    info, skipped = availability(name)
    if skipped:
        return BaselineResult(name, None, skipped=skipped, info=info)
    started = time.perf_counter()
    parts = []
    with progress_bar(total=len(clips), unit="clip", desc=f"baseline {name}", leave=False) as bar:
        for start in range(0, len(clips), PROGRESS_CHUNK):  # chunks, so that the bar moves
            parts.append(np.asarray(REGISTRY[name].track(clips[start:start + PROGRESS_CHUNK]), dtype=np.float64))
            bar.update(len(parts[-1]))
    hz = np.concatenate(parts) if parts else np.empty(0)
    return BaselineResult(name, hz, time.perf_counter() - started, info=info)


def contour(name: str, audio: np.ndarray) -> Contour:
    """One baseline over a whole recording (mono, 16 kHz): its frames. PipelineError in one line
    when the tracker fails on this audio (too short for it, ...)."""
    try:
        return REGISTRY[name].contour(_check_audio(audio))
    except PipelineError:
        raise
    except Exception as exc:   # the tracker's own complaint, of its own type: one line, and the run goes on
        reason = (str(exc).strip().splitlines() or [""])[0]
        raise PipelineError(f"{name} failed on it ({type(exc).__name__}: {reason})") from None


def read_mono(path) -> np.ndarray:
    """A file as the trackers and the model hear it: mono, 16 kHz, float32 (pipeline.dsp.audio)."""
    return to_model_rate(*read_audio(path))


def run_baseline_on_files(name: str, paths) -> BaselineResult:
    """One f0 per single-note file: each file read (mono, 16 kHz) and tracked whole, then the
    median of its voiced frames, timed from reading on. info['failed'] holds [path, why] per file
    the tracker failed on (its f0 NaN, a miss); unreadable files are NaN without a line."""
    info, skipped = availability(name)
    if skipped:
        return BaselineResult(name, None, skipped=skipped, info=info)
    hz, failed = np.full(len(paths), np.nan), []
    started = time.perf_counter()
    for i, path in enumerate(paths):
        try:
            audio = read_mono(path)
        except PipelineError:
            continue
        try:
            hz[i] = median_of(contour(name, audio))
        except PipelineError as exc:
            failed.append([str(path), str(exc)])
    return BaselineResult(name, hz, time.perf_counter() - started, info=info | {"failed": failed})


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
