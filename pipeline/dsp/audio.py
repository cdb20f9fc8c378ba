"""Audio in: any WAV, FLAC, MP3 or OGG file, at any rate and channel count, as the model hears it.

`read_audio` reads a file with libsndfile; `to_model_rate` mixes to mono (the mean of the
channels) and resamples to 16 kHz with soxr at very high quality, as the dataset's clips
were. Every problem with a file is a PipelineError that names the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.core import constants as C
from pipeline.core.errors import PipelineError

FORMATS = "WAV, FLAC, MP3 and OGG"


def _existing_file(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise PipelineError(f"{path}: is empty (0 bytes)")
    return path


def read_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """(samples, channels) float32 and the sample rate; PipelineError naming the file if unusable."""
    import soundfile as sf  # keeps `import pipeline.dsp.audio` light

    path = _existing_file(path)
    try:
        audio, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, OSError, ValueError, TypeError) as exc:
        reason = getattr(exc, "error_string", None) or str(exc).strip().splitlines()[-1] or type(exc).__name__
        raise PipelineError(f"{path}: cannot be read as audio ({reason.rstrip('.')}); "
                            f"{FORMATS} files are supported") from None
    except MemoryError:
        raise PipelineError(f"{path}: too long to hold in memory; cut it into shorter files") from None
    if audio.size == 0:
        raise PipelineError(f"{path}: has no audio samples (empty file)")
    return audio, sr


def to_model_rate(audio: np.ndarray, sr: int) -> np.ndarray:
    """(samples,) or (samples, channels) at `sr` -> mono float32 at 16 kHz."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim not in (1, 2):
        raise PipelineError(f"audio must be (samples,) or (samples, channels), got shape {audio.shape}")
    if audio.size == 0:
        raise PipelineError("the audio has no samples")
    if audio.ndim == 2:
        audio = audio.mean(axis=1, dtype=np.float32)
    if isinstance(sr, bool) or not isinstance(sr, (int, float, np.number)) or not float(sr).is_integer() or sr <= 0:
        raise PipelineError(f"sample rate must be a positive whole number of Hz, got {sr!r}")
    sr = int(sr)
    if not np.all(np.isfinite(audio)):
        raise PipelineError("the audio contains NaN or infinite samples")
    if sr != C.SAMPLE_RATE:
        import soxr

        audio = soxr.resample(audio, sr, C.SAMPLE_RATE, quality="VHQ")
    return np.ascontiguousarray(audio, dtype=np.float32)


BLOCK_SECONDS = 10.0               # a long file is read, mixed and resampled this much at a time


def audio_blocks(path: str | Path, block_seconds: float = BLOCK_SECONDS):
    """A file as mono float32 16 kHz pieces, read and resampled a block at a time (soxr's stream
    resampler, very high quality): memory stays flat whatever the file's length. The same checks
    and messages as `read_audio`."""
    import soundfile as sf
    import soxr

    path = _existing_file(path)
    try:
        info = sf.info(str(path))
        blocks = sf.blocks(str(path), blocksize=max(1, int(block_seconds * info.samplerate)), dtype="float32",
                           always_2d=True)
        stream = None if info.samplerate == C.SAMPLE_RATE else \
            soxr.ResampleStream(info.samplerate, C.SAMPLE_RATE, 1, dtype="float32", quality="VHQ")
        current = next(blocks, None)
        if current is None or current.size == 0:
            raise PipelineError(f"{path}: has no audio samples (empty file)")
        while current is not None:
            following = next(blocks, None)
            mono = current.mean(axis=1, dtype=np.float32)
            if not np.all(np.isfinite(mono)):
                raise PipelineError(f"{path}: contains NaN or infinite samples")
            yield mono if stream is None else stream.resample_chunk(mono, last=following is None)
            current = following
    except (RuntimeError, OSError, ValueError, TypeError) as exc:
        reason = getattr(exc, "error_string", None) or str(exc).strip().splitlines()[-1] or type(exc).__name__
        raise PipelineError(f"{path}: cannot be read as audio ({reason.rstrip('.')}); "
                            f"{FORMATS} files are supported") from None
