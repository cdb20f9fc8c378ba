"""Post-processing: mono, 16 kHz, then slicing, the quality gate and 16-bit samples.

Notes are mixed to mono (the mean of left and right; synthetic tones are mono already) and
resampled with SoX's resampler at its very-high quality: by default libsoxr in-process
(`data.resampler = "soxr"`, the library SoX's own `rate` effect grew into; also what
`pipeline predict` uses), or a sox process through pysox (`"sox"`, `rate -v`). The two differ
by about -74 dB; the process alone costs as much as FluidSynth's synthesis, which is why it is
no longer the default.

Either way resampling runs once per shard on the shard's notes laid end to end with silent
gaps, never once per clip. Each note's slot is a whole number of 441-sample periods, so at
160/441 (44.1 kHz -> 16 kHz) every slot maps to an exact sample count and the notes can be
cut apart again exactly. Peak normalisation is per clip, so it is done here in numpy rather
than by sox's `norm`, which would see the whole shard.

A note is sliced into 330 ms segments at fixed places (`segment_starts`): `attack` from the
detected onset, `sustain` mid-hold, `decay` from the note-off, and two that do not start on
the onset, as a frame of `pipeline predict` on real audio does not: `onset` starts a drawn
time before the onset (the note begins inside it; PRE_ROLL_SECONDS of silence before the
note-on make room for it), `release` holds the note-off at a drawn share of its length.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import tempfile
from typing import TYPE_CHECKING

import numpy as np

from pipeline.core import constants as C
from pipeline.core.errors import PipelineError

if TYPE_CHECKING:
    from pipeline.core.config import GateConfig

RATE_PERIOD_IN = 441    # 44,100 / 100
RATE_PERIOD_OUT = 160   # 16,000 / 100
GAP_SECONDS = 0.1       # silence between notes in a batch: far longer than the resampling filter
ONSET_THRESHOLD = 0.01  # onset = first sample above 1% of the note's peak
ONSET_SEARCH_SECONDS = 0.05
PRE_ROLL_SECONDS = 0.3  # silence laid before each note at 16 kHz: the longest lead of an onset segment


def require_sox() -> str:
    """The sox program's path; PipelineError naming the package when it is missing."""
    path = shutil.which("sox")
    if path is None:
        raise PipelineError("the sox program is missing; install it: apt-get install sox libsox-fmt-all "
                            "(or run make setup)")
    return path


def _sox():
    require_sox()
    import sox

    logging.getLogger("sox").setLevel(logging.ERROR)  # pysox warns about array output on every call
    return sox


def rate_periods(rate: int = C.SAMPLE_RATE) -> tuple[int, int]:
    """(in, out): the shortest whole numbers of samples at the render rate and at `rate` that last
    the same time: 441 and 160 for 16 kHz, 147 and 160 for 48 kHz, 1 and 1 for 44.1 kHz."""
    common = math.gcd(C.RENDER_RATE, rate)
    return C.RENDER_RATE // common, rate // common


def slot_length(render_samples: int, rate: int = C.SAMPLE_RATE) -> int:
    """Samples (at the render rate) one note occupies in a batch: render + gap, whole periods."""
    need = render_samples + round(GAP_SECONDS * C.RENDER_RATE)
    period = rate_periods(rate)[0]
    return -(-need // period) * period


def _effect_args(channels: int, rate: int) -> list[str]:
    """sox effect arguments (mono mix, resampling), built and validated by pysox's Transformer."""
    sox = _sox()
    tfm = sox.Transformer()
    if channels == 2:
        tfm.remix({1: [1, 2]})  # mono: the mean of left and right (sox scales a mix to avoid clipping)
    tfm.rate(rate, quality="v")
    return tfm.effects


def to_dataset_rate(audio: np.ndarray, rate: int = C.SAMPLE_RATE) -> np.ndarray:
    """44.1 kHz float32 stereo (n, 2) or mono (n,) -> float32 mono at `rate` with one sox process.

    The input goes through a temporary raw file rather than a pipe: pysox's pipe writes
    in 4 KB pieces, which cost more than the resampling itself.
    """
    sox = _sox()
    channels = 2 if audio.ndim == 2 else 1
    args_out = ["-t", "f32", "-r", str(rate), "-c", "1", "-"]
    with tempfile.NamedTemporaryFile(suffix=".f32", dir=_scratch_dir()) as raw:
        np.ascontiguousarray(audio, dtype=np.float32).tofile(raw.name)
        # -D: no dither, which is random noise and would break byte-identity
        args = ["-D", "-V1", "-t", "f32", "-r", str(C.RENDER_RATE), "-c", str(channels), raw.name, *args_out,
                *_effect_args(channels, rate)]
        status, out, err = sox.core.sox(args, None, False)
    if status != 0:
        raise PipelineError(f"sox failed while resampling ({str(err).strip()[-200:]}); "
                            "check that sox and libsox-fmt-all are installed")
    return np.frombuffer(out, dtype=np.float32).copy()


def _scratch_dir() -> str | None:
    """RAM-backed /dev/shm when there is one: the raw batch never needs to reach a disk."""
    return "/dev/shm" if os.access("/dev/shm", os.W_OK) else None


def to_mono(note: np.ndarray) -> np.ndarray:
    """(n, 2) float32 -> (n,) float32, the mean of the two channels; a mono (n,) note as it is."""
    if note.ndim == 1:
        return note.astype(np.float32, copy=False)
    return (note[:, 0] + note[:, 1]) * np.float32(0.5)


def resample(mono: np.ndarray, resampler: str = "soxr", rate: int = C.SAMPLE_RATE) -> np.ndarray:
    """44.1 kHz float32 mono -> float32 mono at `rate` (SoX's very-high quality; 44.1 kHz: as it is)."""
    if rate == C.RENDER_RATE:
        return mono
    if resampler == "sox":
        return to_dataset_rate(mono, rate)
    import soxr

    return soxr.resample(mono, C.RENDER_RATE, rate, quality="VHQ")


def batch_to_dataset_rate(notes: list[np.ndarray], resampler: str = "soxr",
                          rate: int = C.SAMPLE_RATE) -> list[np.ndarray]:
    """Resample many 44.1 kHz notes (stereo or mono) in one call; returns each note's mono audio at `rate`."""
    if not notes:
        return []
    slots = [slot_length(len(n), rate) for n in notes]
    batch = np.zeros(sum(slots), dtype=np.float32)
    starts = np.concatenate([[0], np.cumsum(slots)[:-1]])
    for note, start in zip(notes, starts):
        batch[start:start + len(note)] = to_mono(note)
    mono = resample(batch, resampler, rate)
    period_in, period_out = rate_periods(rate)
    scale = period_out / period_in
    expected = round(len(batch) * scale)
    if len(mono) != expected:
        raise PipelineError(f"{resampler} returned {len(mono)} samples where {expected} were expected; "
                            "check the installation (sox --version, pip show soxr)")
    return [mono[round(s * scale):round((s + n) * scale)] for s, n in zip(starts, map(len, notes))]


def find_onset(audio: np.ndarray, rate: int = C.SAMPLE_RATE) -> int:
    """First sample above ONSET_THRESHOLD of the peak, searched only near the start."""
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak == 0.0:
        return 0
    head = np.abs(audio[: round(ONSET_SEARCH_SECONDS * rate)])
    above = np.flatnonzero(head >= ONSET_THRESHOLD * peak)
    return int(above[0]) if above.size else 0


def segment_starts(hold_samples: int, sustain_at: float, onset: int, onset_lead: int | None = None,
                   release_at: float | None = None, note_on: int = 0,
                   clip_samples: int = C.CLIP_SAMPLES) -> dict[str, int]:
    """Where each segment of `clip_samples` starts, in samples of the audio whose note-on is at
    `note_on` and onset at `onset`; the note-off is `hold_samples` after the note-on. `onset`
    and `release` segments only when their lead (samples before the onset) and share are given."""
    half = clip_samples // 2
    note_off = note_on + hold_samples
    sustain = int(np.clip(note_on + round(hold_samples * sustain_at) - half, onset + clip_samples // 4,
                          max(note_off - clip_samples, 0)))
    starts = {"attack": onset, "sustain": sustain, "decay": note_off}
    if onset_lead is not None:
        starts["onset"] = max(onset - onset_lead, 0)
    if release_at is not None:
        starts["release"] = max(note_off - round(release_at * clip_samples), 0)
    return starts


def slice_segments(audio: np.ndarray, starts: dict[str, int],
                   clip_samples: int = C.CLIP_SAMPLES) -> dict[str, np.ndarray]:
    out = {}
    for name, start in starts.items():
        clip = audio[start:start + clip_samples]
        if len(clip) < clip_samples:  # a note shorter than its segment: pad with silence, the gate decides
            clip = np.pad(clip, (0, clip_samples - len(clip)))
        out[name] = clip
    return out


def level_dbfs(clip: np.ndarray) -> tuple[float, float]:
    """(peak, RMS) in dBFS of a float clip (full scale = 1.0)."""
    peak = float(np.max(np.abs(clip)))
    rms = float(np.sqrt(np.mean(np.square(clip, dtype=np.float64))))
    to_db = lambda v: round(20 * np.log10(v), 3) if v > 0 else C.SILENCE_DB  # noqa: E731
    return to_db(peak), to_db(rms)


def sounding_ms(clip: np.ndarray, rate: int = C.SAMPLE_RATE) -> int:
    """How long the clip sounds: 10 ms frames within SOUNDING_RANGE_DB of its loudest frame."""
    frame = rate // 100
    frames = clip[: len(clip) // frame * frame].reshape(-1, frame).astype(np.float64)
    power = np.mean(frames * frames, axis=1)
    if power.max() <= 0.0:
        return 0
    return int(10 * np.count_nonzero(power >= power.max() * 10 ** (-C.SOUNDING_RANGE_DB / 10)))


def gate_reason(peak_dbfs: float, rms_dbfs: float, loudest_rms_dbfs: float, sounding: int,
                gate: GateConfig) -> str | None:
    """Why a clip must be dropped (it carries no note worth its label), or None to keep it."""
    if peak_dbfs < gate.silent_peak_dbfs:
        return "silent"
    if rms_dbfs < loudest_rms_dbfs - gate.min_rms_db_below_note:
        return "too_quiet"
    if sounding < gate.min_sounding_ms:
        return "too_short"
    return None


def to_pcm16(clip: np.ndarray) -> np.ndarray:
    """Peak-normalise to PEAK_NORMALIZE_DBFS and quantise to int16 (round half to even)."""
    return quantize(clip, "int16")


# the integer formats: the full-scale value the peak is set against, and the array type that holds them
INTEGER_FORMATS = {"int16": (32767, np.int16), "int24": (2**23 - 1, np.int32)}


def quantize(clip: np.ndarray, sample_format: str = "int16") -> np.ndarray:
    """Peak-normalise to PEAK_NORMALIZE_DBFS in the clip's sample format: whole numbers rounded half to
    even (int16; int32 holding 24-bit values), or float32 (the same peak, no rounding)."""
    peak = float(np.max(np.abs(clip)))
    if sample_format == "float32":
        return (clip.astype(np.float64) * (C.PEAK_NORMALIZE_LINEAR / peak if peak else 0.0)).astype(np.float32)
    full_scale, dtype = INTEGER_FORMATS[sample_format]
    if peak == 0.0:
        return np.zeros(len(clip), dtype=dtype)
    return np.round(clip.astype(np.float64) * (C.PEAK_NORMALIZE_LINEAR * full_scale / peak)).astype(dtype)
