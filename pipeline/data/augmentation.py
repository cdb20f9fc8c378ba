"""Augmentation: the sound of real rooms, noise, microphones and codecs, applied per note.

A model trained on clean soundfont renders breaks on real recordings, so each note can be
played into a synthetic room, coloured by a microphone and EQ, buried in background noise,
ridden by a gain ramp and squeezed through an MP3 or Ogg Vorbis round trip. None of these
changes the pitch: filters and reverberation are linear and time-invariant (they change a
partial's level and phase, never its frequency), noise is added, a slow gain ramp only
modulates the envelope, and the codec runs at the note's own rate, sample-aligned. Nothing
resamples or changes speed, so the label (f0) stays exact.

Each planned note gets an `AugmentSpec` from `draw_augment(rng, settings)`; `apply(audio,
spec)` runs the chain on the note at 16 kHz, before it is sliced into clips. The room and
microphone filters themselves are in pipeline/data/rooms.py. The chain's
order follows the signal's path to a file: source -> room -> microphone/EQ -> noise -> level
-> codec. Noise comes after the colouring so that the SNR is the recording's, and before the
gain ramp because a recorder's gain (fader, AGC) scales both alike: every clip of a note then
keeps the SNR the manifest records. The codec is last, as a file's encoding is.

Determinism: a spec holds every parameter and the seeds of its random parts (rounded, so
its repr rebuilds it exactly); the same spec gives byte-identical output in any process.
"""

from __future__ import annotations

import dataclasses
import io
import math
from dataclasses import dataclass

import numpy as np
import soundfile as sf
from scipy import fft

from pipeline.core import constants as C
from pipeline.core.config import AugmentConfig
from pipeline.core.errors import PipelineError
from pipeline.data.rooms import Band, EqSpec, RoomSpec, Rounded, colour, reverberate, room_impulse_response

SEED_LIMIT = 2**31              # seeds of a spec's random parts lie in [0, this)

# --- Noise ------------------------------------------------------------------------------
NOISE_KINDS = ("white", "pink", "brown", "hum")
NOISE_EXPONENT = {"white": 0.0, "pink": 1.0, "brown": 2.0}  # power spectrum ~ 1/f^exponent
NOISE_LOW_HZ = 20.0             # cut below: infrasound would count toward the SNR while masking nothing
ACTIVE_FRAME_SECONDS = 0.010    # the note's active part: 10 ms frames within C.SOUNDING_RANGE_DB of its loudest

# --- Codecs -----------------------------------------------------------------------------
CODECS = ("mp3", "ogg")
MP3_KBPS_LSF = (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160)  # MPEG-2 Layer III, 16-24 kHz
MP3_KBPS_MPEG1 = (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)  # 32-48 kHz
# Without a LAME tag (frames under 40 kbps at 16 kHz are too small to hold one) the decoder
# cannot trim: the output starts late by LAME's encoder delay (576) plus mpg123's (529).
MP3_UNTRIMMED_DELAY = 576 + 529
CODEC_PEAK = 0.5                # the encoder sees the note at most this loud: headroom for its overshoot


@dataclass(frozen=True)
class NoiseSpec(Rounded):
    kind: str                   # white, pink, brown or hum
    snr_db: float               # against the note's active part
    seed: int
    hum_hz: float = 50.0        # hum only: mains frequency ...
    hum_levels_db: tuple[float, ...] = ()  # ... and the level of harmonics 1, 2, ...


@dataclass(frozen=True)
class LevelSpec(Rounded):
    start_db: float             # gain at the first sample ...
    end_db: float               # ... ramped in dB to this at the last


@dataclass(frozen=True)
class CodecSpec(Rounded):
    codec: str                  # mp3 or ogg
    quality: float              # mp3: kbps; ogg: Vorbis quality 0 (low) .. 1


@dataclass(frozen=True)
class AugmentSpec:
    """What happens to one note; all None = the note as rendered."""

    room: RoomSpec | None = None
    eq: EqSpec | None = None
    noise: NoiseSpec | None = None
    level: LevelSpec | None = None
    codec: CodecSpec | None = None

    @property
    def snr_db(self) -> float | None:
        return self.noise.snr_db if self.noise else None

    def label(self, rate: int = C.SAMPLE_RATE) -> str:
        """Short text for the manifest, e.g. room(rt60=0.62);eq;pink(snr=7.5);mp3(64k): the bitrate
        used at the clips' `rate` (`nearest_mp3_kbps`)."""
        parts = []
        if self.room:
            parts.append(f"room(rt60={self.room.rt60:.2f})")
        if self.eq:
            low = [b.freq_hz for b in self.eq.bands if b.kind == "lowpass"]
            parts.append(f"eq(lp={low[0] / 1000:.1f}k)" if low else "eq")
        if self.noise:
            kind = f"hum{self.noise.hum_hz:g}" if self.noise.kind == "hum" else self.noise.kind
            parts.append(f"{kind}(snr={self.noise.snr_db:.1f})")
        if self.level:
            parts.append(f"level({self.level.start_db:+.1f}>{self.level.end_db:+.1f})")
        if self.codec:
            c = self.codec
            mp3 = c.codec == "mp3"
            parts.append(f"mp3({nearest_mp3_kbps(c.quality, rate):g}k)" if mp3 else f"ogg(q={c.quality:.2f})")
        return ";".join(parts) or "none"


# --- Noise ------------------------------------------------------------------------------

def coloured_noise(kind: str, n: int, rng: np.random.Generator, rate: int = C.SAMPLE_RATE) -> np.ndarray:
    """White, pink (1/f) or brown (1/f^2) noise by shaping a Gaussian spectrum; unit RMS, float64."""
    if kind not in NOISE_EXPONENT:
        raise PipelineError(f"noise kind {kind!r} is not one of {sorted(NOISE_EXPONENT)}; pick one of those")
    size = fft.next_fast_len(n, real=True)  # a note's length can be prime: shape a fast length, keep n
    spectrum = fft.rfft(rng.standard_normal(size))
    freqs = fft.rfftfreq(size, 1.0 / rate)
    audible = freqs >= NOISE_LOW_HZ
    spectrum[~audible] = 0.0
    spectrum[audible] *= freqs[audible] ** (-NOISE_EXPONENT[kind] / 2.0)
    return _unit_rms(fft.irfft(spectrum, size)[:n])


def hum(n: int, rng: np.random.Generator, rate: int = C.SAMPLE_RATE, hz: float = 50.0,
        levels_db: tuple[float, ...] = (0.0,)) -> np.ndarray:
    """Mains hum: harmonics k*hz (k = 1, 2, ...) at levels_db, random phases, below Nyquist; unit RMS."""
    t = np.arange(n) / rate
    phases = rng.uniform(0.0, 2.0 * np.pi, len(levels_db))
    out = np.zeros(n)
    for k, (level, phase) in enumerate(zip(levels_db, phases), start=1):
        if k * hz < rate / 2:
            out += 10.0 ** (level / 20.0) * np.sin(2.0 * np.pi * k * hz * t + phase)
    return _unit_rms(out)


def _unit_rms(x: np.ndarray) -> np.ndarray:
    power = float(np.mean(x**2)) if x.size else 0.0
    return x / math.sqrt(power) if power > 0 else x


def make_noise(spec: NoiseSpec, n: int, rate: int = C.SAMPLE_RATE) -> np.ndarray:
    """The noise a spec describes, n samples, unit RMS."""
    rng = np.random.default_rng(spec.seed)
    if spec.kind == "hum":
        return hum(n, rng, rate, spec.hum_hz, spec.hum_levels_db or (0.0,))
    return coloured_noise(spec.kind, n, rng, rate)


def active_power(audio: np.ndarray, rate: int = C.SAMPLE_RATE) -> float:
    """Mean power of the note's sounding part: 10 ms frames within C.SOUNDING_RANGE_DB of the loudest.

    An SNR against the whole note would count the silence before and after it and bury
    short notes under far more noise than their SNR says."""
    x = np.asarray(audio, dtype=np.float64)
    frame = max(1, round(ACTIVE_FRAME_SECONDS * rate))
    count = x.size // frame
    if count == 0:  # shorter than a frame: the whole thing is the frame
        return float(np.mean(x**2)) if x.size else 0.0
    powers = np.mean(x[: count * frame].reshape(count, frame) ** 2, axis=1)
    loudest = float(powers.max())
    if loudest <= 0:
        return 0.0
    return float(np.mean(powers[powers >= loudest * 10.0 ** (-C.SOUNDING_RANGE_DB / 10.0)]))


def add_noise(audio: np.ndarray, noise: np.ndarray, snr_db: float, rate: int = C.SAMPLE_RATE) -> np.ndarray:
    """audio + noise scaled so that active_power(audio) / power(noise) is snr_db. Silence stays silent."""
    x = np.asarray(audio, dtype=np.float64)
    noise = np.asarray(noise, dtype=np.float64)
    if noise.shape != x.shape:
        raise PipelineError(f"noise has {noise.size} samples for audio of {x.size}; make it as long as the audio")
    signal_power, noise_power = active_power(x, rate), float(np.mean(noise**2)) if noise.size else 0.0
    if signal_power <= 0 or noise_power <= 0:
        return x.astype(np.float32)
    gain = math.sqrt(signal_power / (noise_power * 10.0 ** (snr_db / 10.0)))
    return (x + gain * noise).astype(np.float32)


# --- Level -----------------------------------------------------------

def apply_level(audio: np.ndarray, ramp: LevelSpec) -> np.ndarray:
    """audio times a gain ramped linearly in dB from ramp.start_db (first sample) to ramp.end_db (last)."""
    x = np.asarray(audio, dtype=np.float64)
    return (x * 10.0 ** (np.linspace(ramp.start_db, ramp.end_db, x.size) / 20.0)).astype(np.float32)


# --- Codecs -----------------------------------------------------------------------------

def _mp3_kbps_table(rate: int) -> tuple[tuple[int, ...], int, int]:
    """libsndfile's MP3 bitrates at this rate and the (low, high) its compression level spans."""
    if 16_000 <= rate < 32_000:
        return MP3_KBPS_LSF, 8, 160
    if 32_000 <= rate <= 48_000:
        return MP3_KBPS_MPEG1, 32, 320
    raise PipelineError(f"MP3 round trips need a rate of 16-48 kHz, not {rate} Hz; resample first")


def _codec_args(codec: str, quality: float, rate: int) -> dict:
    """soundfile.write arguments for this codec and quality (libsndfile maps a 0..1 compression level)."""
    if codec == "ogg":
        if not 0 <= quality <= 1:
            raise PipelineError(f"Ogg Vorbis quality {quality} is outside 0..1; pick one inside")
        # libsndfile: Vorbis quality = 1 - compression level
        return {"format": "OGG", "subtype": "VORBIS", "compression_level": 1.0 - quality}
    if codec != "mp3":
        raise PipelineError(f"codec {codec!r} is not one of {CODECS}; pick one of those")
    if "MP3" not in sf.available_formats():
        raise PipelineError("this libsndfile cannot write MP3 (needs 1.1 or newer): pip install -U soundfile")
    table, low, high = _mp3_kbps_table(rate)
    if quality not in table:
        raise PipelineError(f"MP3 at {quality:g} kbps does not exist at {rate} Hz; pick one of {table}")
    # libsndfile truncates high - level * (high - low) to an int: aim a quarter above the bitrate
    level = min(1.0, max(0.0, (high - quality - 0.25) / (high - low)))
    return {"format": "MP3", "subtype": "MPEG_LAYER_III", "compression_level": level, "bitrate_mode": "CONSTANT"}


def codec_round_trip(audio: np.ndarray, rate: int, codec: str, quality: float) -> np.ndarray:
    """audio encoded to MP3 (quality = kbps) or Ogg Vorbis (quality 0..1) in memory and decoded,
    sample-aligned with the input and as long. A loud input is encoded at CODEC_PEAK and scaled
    back, so nothing clips inside the codec.

    The decoded samples repeat bit for bit (LAME, libvorbis and the decoders use no randomness;
    the Ogg file's bytes differ run to run only by libsndfile's random stream serial number).
    libsndfile's MP3 path returns the level x0.95 (-0.45 dB, as sox's decoder also reads it);
    left as is, since clips are peak-normalised after augmentation."""
    x = np.asarray(audio, dtype=np.float64)
    args = _codec_args(codec, quality, rate)
    if x.size == 0:
        return x.astype(np.float32)
    peak = float(np.max(np.abs(x)))
    scale = CODEC_PEAK / peak if peak > CODEC_PEAK else 1.0
    buffer = io.BytesIO()
    sf.write(buffer, (x * scale).astype(np.float32), rate, **args)
    buffer.seek(0)
    decoded, _ = sf.read(buffer, dtype="float64")
    return (_aligned(decoded, x.size, codec) / scale).astype(np.float32)


def _aligned(decoded: np.ndarray, n: int, codec: str) -> np.ndarray:
    """The decoded samples that line up with the input's n.

    With a LAME tag (MP3 from 40 kbps at 16 kHz) the decoder trims the encoder's delay and
    padding itself and returns exactly n samples; Ogg Vorbis is exact by its granule positions.
    An MP3 without the tag comes back longer and late by MP3_UNTRIMMED_DELAY."""
    if decoded.size != n and codec == "mp3":
        decoded = decoded[MP3_UNTRIMMED_DELAY:]
    return np.pad(decoded[:n], (0, max(0, n - decoded.size)))


# --- The chain --------------------------------------------------------------------------

def apply(audio: np.ndarray, spec: AugmentSpec, rate: int = C.SAMPLE_RATE) -> np.ndarray:
    """One note through room -> microphone/EQ -> noise -> level -> codec, as spec says; float32,
    as long as the input. The level is not normalised (that happens per clip later)."""
    x = np.asarray(audio, dtype=np.float32)
    if x.ndim != 1:
        raise PipelineError(f"augmentation takes a mono note (1-D), not shape {x.shape}; mix it to mono first")
    if not np.all(np.isfinite(x)):
        raise PipelineError("the note to augment has NaN or infinite samples; check the render")
    if spec.room:
        r = spec.room
        x = reverberate(x, room_impulse_response(r.rt60, r.drr_db, rate, r.seed, predelay_ms=r.predelay_ms,
                                                 early_reflections=r.early_reflections, hf_decay=r.hf_decay))
    if spec.eq:
        x = colour(x, spec.eq, rate)
    if spec.noise:
        x = add_noise(x, make_noise(spec.noise, x.size, rate), spec.noise.snr_db, rate)
    if spec.level:
        x = apply_level(x, spec.level)
    if spec.codec:
        c = spec.codec
        x = codec_round_trip(x, rate, c.codec, nearest_mp3_kbps(c.quality, rate) if c.codec == "mp3" else c.quality)
    return np.array(x, dtype=np.float32)


def nearest_mp3_kbps(kbps: float, rate: int) -> int:
    """The bitrate MP3 has at this rate nearest the one drawn (the lower of two as near): the draws are
    MPEG-2's (16-24 kHz: every one exists); at 32-48 kHz MPEG-1 has no 8-24 or 144 kbps."""
    table = _mp3_kbps_table(rate)[0]
    return min(table, key=lambda option: (abs(option - kbps), option))


# --- Drawing a spec per note --------------------------------------------------------------

_CONFIG = AugmentConfig()  # the defaults of the keys a config sets


@dataclass(frozen=True)
class AugmentSettings:
    """How often each effect is drawn and from what ranges ((low, high) pairs, uniform unless noted).

    The defaults aim at recordings a user might bring while keeping most clips clearly pitched:
    a fifth of the notes stay clean, broadband noise spreads over 0-40 dB SNR (a quarter below
    10 dB), hum (a second, periodic pitch) stays above 15 dB. What the config's [augment] section
    also sets takes its default from there (one place for each value)."""

    clean_share: float = 0.2                        # notes left exactly as rendered; the shares below apply to the rest
    room_share: float = _CONFIG.room_share
    eq_share: float = _CONFIG.eq_share
    noise_share: float = _CONFIG.noise_share
    level_share: float = _CONFIG.level_share
    codec_share: float = _CONFIG.codec_share
    rt60_s: tuple[float, float] = _CONFIG.rt60_s    # log-uniform: small rooms as often as halls
    drr_db: tuple[float, float] = _CONFIG.drr_db
    predelay_ms: tuple[float, float] = (1.0, 25.0)
    early_reflections: tuple[int, int] = (3, 12)
    hf_decay: tuple[float, float] = (0.3, 1.0)
    noise_kinds: tuple[str, ...] = _CONFIG.noise_kinds
    noise_weights: tuple[float, ...] = _CONFIG.noise_weights
    snr_db: tuple[float, float] = _CONFIG.snr_db    # white, pink, brown
    hum_snr_db: tuple[float, float] = _CONFIG.hum_snr_db
    hum_hz: tuple[float, ...] = (50.0, 60.0)        # one of these
    hum_harmonics: int = 8
    hum_harmonic_db: tuple[float, float] = (-30.0, 0.0)
    highpass_hz: tuple[float, float] = (20.0, 150.0)# every EQ has a microphone's low cut
    shelf_share: float = 0.5                        # each of the low and the high shelf
    lowshelf_hz: tuple[float, float] = (60.0, 400.0)
    highshelf_hz: tuple[float, float] = (2000.0, 6000.0)
    shelf_db: float = 6.0                           # shelf gains within +-this
    peaking_bands: int = 2                          # 0..this peaks, log-uniform in frequency
    peaking_hz: tuple[float, float] = (150.0, 6000.0)
    peaking_db: float = 9.0
    peaking_q: tuple[float, float] = (0.5, 4.0)
    telephone_share: float = _CONFIG.telephone_share# of EQs: a steep low-pass ...
    telephone_hz: tuple[float, float] = (3000.0, 7000.0)# ... at this
    level_db: float = _CONFIG.level_db              # ramp ends within +-this
    mp3_share: float = _CONFIG.mp3_share            # of codec notes; the rest Ogg Vorbis
    mp3_kbps: tuple[int, ...] = _CONFIG.mp3_kbps    # MPEG-2 tops out at 160
    ogg_quality: tuple[float, float] = _CONFIG.ogg_quality

    def __post_init__(self):
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name.endswith("share") and not 0 <= value <= 1:
                raise PipelineError(f"augment setting {f.name} = {value} is outside 0..1; pick a share inside")
            if f.type in ("tuple[float, float]", "tuple[int, int]") and not value[0] <= value[1]:
                raise PipelineError(f"augment setting {f.name} = {value}: the low end is above the high end; swap them")
        for name in LOG_UNIFORM_SETTINGS:
            if getattr(self, name)[0] <= 0:
                raise PipelineError(f"augment setting {name} = {getattr(self, name)} is drawn on a log scale; "
                                    "make both ends positive")
        if not (0 < self.hf_decay[0] and self.hf_decay[1] <= 1):
            raise PipelineError(f"augment setting hf_decay = {self.hf_decay} must lie in (0, 1]; 1 = no damping")
        if len(self.noise_weights) != len(self.noise_kinds) or set(self.noise_kinds) - set(NOISE_KINDS):
            raise PipelineError(f"augment noise_kinds must come from {NOISE_KINDS}, one weight each; "
                                f"got {self.noise_kinds} with weights {self.noise_weights}")
        if set(self.mp3_kbps) - set(MP3_KBPS_LSF) or not self.mp3_kbps:
            raise PipelineError(f"augment mp3_kbps {self.mp3_kbps}: at 16 kHz MP3 has only {MP3_KBPS_LSF}")


LOG_UNIFORM_SETTINGS = ("rt60_s", "highpass_hz", "lowshelf_hz", "highshelf_hz", "peaking_hz", "peaking_q")


def _uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(bounds[0], bounds[1]))


def _log_uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(np.exp(rng.uniform(np.log(bounds[0]), np.log(bounds[1]))))


def _seed(rng: np.random.Generator) -> int:
    return int(rng.integers(SEED_LIMIT))


def _draw_room(rng: np.random.Generator, s: AugmentSettings) -> RoomSpec:
    return RoomSpec(rt60=_log_uniform(rng, s.rt60_s), drr_db=_uniform(rng, s.drr_db),
                    predelay_ms=_uniform(rng, s.predelay_ms),
                    early_reflections=int(rng.integers(s.early_reflections[0], s.early_reflections[1] + 1)),
                    hf_decay=_uniform(rng, s.hf_decay), seed=_seed(rng))


def _draw_noise(rng: np.random.Generator, s: AugmentSettings) -> NoiseSpec:
    weights = np.asarray(s.noise_weights, dtype=float)
    kind = s.noise_kinds[int(rng.choice(len(weights), p=weights / weights.sum()))]
    if kind != "hum":
        return NoiseSpec(kind, _uniform(rng, s.snr_db), _seed(rng))
    levels = tuple(float(v) for v in rng.uniform(*s.hum_harmonic_db, size=s.hum_harmonics))
    return NoiseSpec(kind, _uniform(rng, s.hum_snr_db), _seed(rng), hum_hz=float(rng.choice(s.hum_hz)),
                     hum_levels_db=levels)


def _draw_eq(rng: np.random.Generator, s: AugmentSettings) -> EqSpec:
    bands = [Band("highpass", _log_uniform(rng, s.highpass_hz))]
    for kind, bounds in (("lowshelf", s.lowshelf_hz), ("highshelf", s.highshelf_hz)):
        # drawn whether used or not, so the draws after it do not depend on shelf_share
        freq, gain, on = _log_uniform(rng, bounds), _uniform(rng, (-s.shelf_db, s.shelf_db)), rng.random()
        if on < s.shelf_share:
            bands.append(Band(kind, freq, gain))
    for _ in range(int(rng.integers(0, s.peaking_bands + 1))):
        bands.append(Band("peaking", _log_uniform(rng, s.peaking_hz), _uniform(rng, (-s.peaking_db, s.peaking_db)),
                          _log_uniform(rng, s.peaking_q)))
    if rng.random() < s.telephone_share:
        bands.append(Band("lowpass", _uniform(rng, s.telephone_hz)))
    return EqSpec(tuple(bands))


def _draw_level(rng: np.random.Generator, s: AugmentSettings) -> LevelSpec:
    return LevelSpec(_uniform(rng, (-s.level_db, s.level_db)), _uniform(rng, (-s.level_db, s.level_db)))


def _draw_codec(rng: np.random.Generator, s: AugmentSettings) -> CodecSpec:
    if rng.random() < s.mp3_share:
        return CodecSpec("mp3", float(rng.choice(s.mp3_kbps)))
    return CodecSpec("ogg", _uniform(rng, s.ogg_quality))


EFFECT_DRAWS = (("room", _draw_room), ("eq", _draw_eq), ("noise", _draw_noise), ("level", _draw_level),
                ("codec", _draw_codec))


def draw_augment(rng: np.random.Generator, settings: AugmentSettings = AugmentSettings()) -> AugmentSpec:
    """One note's augmentation, drawn from rng.

    rng gives up a fixed number of values whatever is drawn, and each effect draws from its
    own generator seeded from those: changing one effect's settings changes no other draw."""
    keys = rng.integers(0, 2**63, size=len(EFFECT_DRAWS) + 1)
    gates = np.random.default_rng(keys[0]).random(len(EFFECT_DRAWS) + 1)
    if gates[0] < settings.clean_share:
        return AugmentSpec()
    chosen = {}
    for (name, draw), gate, key in zip(EFFECT_DRAWS, gates[1:], keys[1:]):
        if gate < getattr(settings, f"{name}_share"):
            chosen[name] = draw(np.random.default_rng(key), settings)
    return AugmentSpec(**chosen)
