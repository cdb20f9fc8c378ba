"""The shape of a dataset's clips: sample rate, length, sample format and container.

The default (16 kHz, 5,280 samples, 16-bit WAV) is what the spectrogram models read; the data
stage writes any of the others (`[data]` sample_rate, clip_seconds, sample_format, file_format,
or the "whole" segment), and every stage that reads clips learns their shape from dataset.json's
"audio" record (`pipeline.data.clips.dataset_format`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from pipeline.core import constants as C
from pipeline.core.errors import PipelineError

SAMPLE_RATES = (16_000, 22_050, 44_100, 48_000)
SAMPLE_FORMATS = ("int16", "int24", "float32")
FILE_FORMATS = ("wav", "flac")
BYTES_PER_SAMPLE = {"int16": 2, "int24": 3, "float32": 4}
WAV_HEADER_BYTES = 44             # the canonical header the data stage writes (no extra chunks)


@dataclass(frozen=True)
class ClipFormat:
    rate: int = C.SAMPLE_RATE
    samples: int = C.CLIP_SAMPLES
    sample_format: str = "int16"
    file_format: str = "wav"

    @property
    def suffix(self) -> str:
        return f".{self.file_format}"

    @property
    def is_default(self) -> bool:
        return self == ClipFormat()

    def stamp(self) -> dict:
        """{"audio": this record}, or {} for the default clips: what a stage's stamp or a shard's key adds,
        so that those of outputs made before the clips were settings stay as they were."""
        return {} if self.is_default else {"audio": self.to_dict()}

    @property
    def seconds(self) -> float:
        return self.samples / self.rate

    @property
    def fixed_bytes(self) -> int | None:
        """A WAV clip's size in bytes (44-byte header and the samples); None for FLAC, whose size varies."""
        return WAV_HEADER_BYTES + BYTES_PER_SAMPLE[self.sample_format] * self.samples \
            if self.file_format == "wav" else None

    def describe(self) -> str:
        """'16000 Hz mono 16-bit WAV, 5,280 samples (330 ms)'."""
        kind = {"int16": "16-bit", "int24": "24-bit", "float32": "32-bit float"}[self.sample_format]
        return (f"{self.rate} Hz mono {kind} {self.file_format.upper()}, {self.samples:,} samples "
                f"({1000 * self.seconds:.0f} ms)")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, record: dict | None) -> ClipFormat:
        """dataset.json's "audio" record; a dataset built before it existed has the default clips.
        ValueError for a record that is not one this module writes (a damaged file)."""
        if not record:
            return cls()
        try:
            fmt = cls(**{k: record[k] for k in ("rate", "samples", "sample_format", "file_format")})
        except (KeyError, TypeError):
            raise ValueError(f"not a clip format: {record!r}") from None
        if fmt.rate not in SAMPLE_RATES or type(fmt.samples) is not int or fmt.samples < 1 or \
                fmt.sample_format not in SAMPLE_FORMATS or fmt.file_format not in FILE_FORMATS:
            raise ValueError(f"not a clip format: {record!r}")
        return fmt


def clip_format(data) -> ClipFormat:
    """The clips a [data] section asks for; whole notes (the "whole" segment) last hold + release."""
    seconds = data.hold_seconds + data.release_seconds if C.WHOLE in data.segments else data.clip_seconds
    return ClipFormat(data.sample_rate, round(seconds * data.sample_rate), data.sample_format, data.file_format)


DEFAULT_FORMAT = ClipFormat()


def check_clip_settings(cfg) -> None:
    """The clip settings of a Config that cannot work together, each refused in one line (load_config's
    check; this module sits below pipeline.core.config)."""
    d = cfg.data
    fmt = clip_format(d)
    if d.file_format == "flac" and d.sample_format == "float32":
        raise PipelineError("data.file_format = 'flac' holds whole numbers only, not sample_format = 'float32'; "
                            "use int16 or int24 for FLAC, or file_format = 'wav' for float")
    if C.WHOLE in d.segments and len(d.segments) > 1:
        others = [s for s in d.segments if s != C.WHOLE]
        raise PipelineError(f"data.segments lists 'whole' with {others}: a whole note lasts hold + release seconds, "
                            "the others clip_seconds; set segments = ['whole'] alone")
    if C.WHOLE not in d.segments:
        if d.hold_seconds < d.clip_seconds + 0.05:
            raise PipelineError(f"data.hold_seconds ({d.hold_seconds:g}) is shorter than data.clip_seconds + 0.05 "
                                f"({d.clip_seconds + 0.05:g}): the attack and sustain segments lie inside the hold; "
                                "raise hold_seconds or shorten clip_seconds")
        if d.release_seconds < d.clip_seconds:
            raise PipelineError(f"data.release_seconds ({d.release_seconds:g}) is shorter than data.clip_seconds "
                                f"({d.clip_seconds:g}): the decay segment lies after the note-off; raise "
                                "release_seconds or shorten clip_seconds")
    if cfg.gate.min_sounding_ms > 1000 * fmt.seconds:
        raise PipelineError(f"gate.min_sounding_ms ({cfg.gate.min_sounding_ms}) is longer than a clip "
                            f"({1000 * fmt.seconds:.0f} ms): every clip would be dropped; lower it")


def check_model_input(cfg) -> None:
    """Training's check: the spectrogram models read the default clips' 513x90 spectrogram (and
    `pipeline predict` feeds them that), the frame model clips of any rate and length."""
    fmt = clip_format(cfg.data)
    if cfg.model.variant != "frames" and not fmt.is_default:
        raise PipelineError(f"model.variant = {cfg.model.variant!r} reads 513x90 spectrograms of 330 ms clips at "
                            f"16 kHz, not of {fmt.describe()}; train model.variant = 'frames' with features.kind = "
                            "'frames' (any rate and length), or keep data.sample_rate = 16000 and clip_seconds = 0.33")
