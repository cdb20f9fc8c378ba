"""WAV bytes: their shape (rate, channels, frames) and their samples, for clips of any length.

A clip this package wrote has the canonical 44-byte PCM header (pipeline.data.clips.wav_bytes):
it is read with struct and numpy, int16 / 32768 (what tf.audio.decode_wav and soundfile give);
anything else goes through soundfile.
"""

from __future__ import annotations

import io
import struct

import numpy as np

from pipeline.core.errors import PipelineError

HEADER = 44


def _canonical(data: bytes) -> tuple[int, int, int] | None:
    """(rate, channels, frames) of a 16-bit PCM WAV with the plain 44-byte header, else None."""
    if len(data) < HEADER or data[:4] != b"RIFF" or data[8:16] != b"WAVEfmt " or data[36:40] != b"data":
        return None
    size, fmt, channels, rate, _, block, bits = struct.unpack("<IHHIIHH", data[16:36])
    length = struct.unpack("<I", data[40:44])[0]
    if size != 16 or fmt != 1 or bits != 16 or block != 2 * channels or length != len(data) - HEADER:
        return None
    return rate, channels, length // block


def wav_shape(data: bytes, name: str = "audio") -> tuple[int, int, int]:
    """(sample rate, channels, frames) of a WAV (or any file libsndfile reads) given as bytes."""
    shape = _canonical(data)
    if shape is not None:
        return shape
    import soundfile as sf

    try:
        info = sf.info(io.BytesIO(data))
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise PipelineError(f"{name} is not audio libsndfile can read ({exc}); rebuild the dataset") from None
    return info.samplerate, info.channels, info.frames


def decode_wav(data: bytes, name: str = "audio") -> tuple[np.ndarray, int]:
    """(samples float32 in [-1, 1], shape (frames,) for mono or (frames, channels), sample rate)."""
    shape = _canonical(data)
    if shape is not None:
        rate, channels, _ = shape
        pcm = np.frombuffer(data, dtype="<i2", offset=HEADER).astype(np.float32) / np.float32(32768)
        return (pcm if channels == 1 else pcm.reshape(-1, channels)), rate
    import soundfile as sf

    try:
        audio, rate = sf.read(io.BytesIO(data), dtype="float32")
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise PipelineError(f"{name} is not audio libsndfile can read ({exc}); export the dataset again") from None
    return audio, rate
