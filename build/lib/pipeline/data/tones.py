"""Synthetic tones whose f0 is known exactly: the dataset's second kind of sound source.

The f0 model learns from General MIDI soundfont renders only, and fails on timbres unlike
GM presets (a plain 440 Hz sine comes out at 163 Hz). A `ToneSpec` is a tone drawn from a
seeded generator (`draw_tone`), rendered (`render_tone`) to float32 audio that then goes
through the same post-processing as a FluidSynth note (resampling, slicing, gating).

Kinds: band-limited `sine`, `triangle`, `square` and `sawtooth` (their Fourier series);
`harmonic` (random spectrum: a slope, random per-partial levels, an odd/even balance,
sometimes formant-like bumps); `missing_fundamental` (the same, partial 1 at -20..-40 dB or
absent, partials 2 and 3 within 6 dB of the strongest: the period is still 1/f0);
`stretched` (a piano string's inharmonic partials).

The label `f0` is the frequency of partial 1, exactly, for every kind. For `stretched`,
partial n is at n·fs·sqrt(1 + B·n²) with the ideal string's fs = f0 / sqrt(1 + B), so
partial 1 sits at f0 and partial n at n·f0·sqrt((1 + B·n²) / (1 + B)) (the upper partials
are sharp of n·f0, as on a piano; fs is 0.43 cents or less below f0 at B <= 5e-4). B is limited
by pitch (`max_inharmonicity`): the tone's period, what a pitch tracker follows, stays within
6 cents of partial 1 (measured); low notes, with hundreds of partials, are barely stretched.
There is no vibrato and no drift: every partial keeps its frequency for the whole note.

Determinism: the same spec gives the same bytes (single-threaded numpy, a fixed order).
numpy's float64 exp/log/power differ in the last bit between its AVX-512 and AVX2 code for
about 5% of values, so they only make small tables (partial levels and phases, gridding
weights) rounded to a 2^-24 grid; per-sample arrays use +, -, *, /, cumulative products and
an FFT (tested with numpy's AVX code off). Drawn parameters are rounded: a short repr.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np
import scipy.fft

from pipeline.core import constants as C
from pipeline.core.errors import PipelineError

WAVEFORM_KINDS = ("sine", "triangle", "square", "sawtooth")
RANDOM_KINDS = ("harmonic", "missing_fundamental", "stretched")
ALL_KINDS = WAVEFORM_KINDS + RANDOM_KINDS

# Nothing at or above 95% of the dataset's Nyquist frequency (7,600 Hz): what the resampler's
# transition band would fold back, or the spectrogram would show at its very edge.
MAX_BAND_LIMIT_HZ = C.SAMPLE_RATE / 2 * 0.95
PEAK = 0.5                       # every render's peak, well below clipping
MAX_FUNDAMENTAL_GAIN = 0.1       # missing_fundamental: partial 1 at least 20 dB under the strongest one
SNAP_BITS = 24                   # libm results are rounded to 2^-24 (-144 dB) before use (see above)
RELEASE_RANGE_LN = 6.907755278982137  # ln(1000): a release falls 60 dB, then is shifted to end at 0

# Draw ranges (uniform unless noted).
SLOPE_DB_PER_OCTAVE = (-15.0, -3.0)
EVEN_DB = (-20.0, 3.0)           # even partials' level relative to the odd ones
JITTER_DB = (0.0, 6.0)           # per-partial levels uniform within +-this
FORMANT_SHARE = 0.4              # share of random spectra with 1 or 2 formant-like bumps
FORMANT_CENTRE_HZ = (250.0, 5000.0)  # log-uniform
FORMANT_WIDTH_OCTAVES = (0.15, 0.6)
FORMANT_GAIN_DB = (6.0, 20.0)
FUNDAMENTAL_DB = (-40.0, -20.0)  # missing_fundamental: partial 1 relative to the strongest partial ...
FUNDAMENTAL_ABSENT_SHARE = 0.25  # ... or absent altogether
CARRIER_FLOOR = 0.5              # missing_fundamental: partials 2 and 3 at least this (-6 dB) x the strongest
INHARMONICITY = (1e-5, 5e-4)     # log-uniform, piano-like; scaled down for low notes (max_inharmonicity)
# B·N² at most this (N partials under the band limit): YIN then hears partial 1 within 6 cents;
# B = 1e-5 put a 110 Hz tone 10 cents sharp, B = 1e-4 a 440 Hz one (worst of 8 drawn spectra)
STRETCH_BUDGET = 0.012
PERCUSSIVE_SHARE = 0.3           # share of tones that die away while held (sustain 0) ...
STRETCHED_PERCUSSIVE_SHARE = 0.7  # ... more of the piano-like ones
SUSTAINED_ATTACK_S, PERCUSSIVE_ATTACK_S = (0.005, 0.08), (0.003, 0.012)
SUSTAINED_DECAY_S, PERCUSSIVE_DECAY_S = (0.05, 0.4), (0.3, 1.5)
SUSTAIN_LEVEL = (0.4, 1.0)
RELEASE_S = (0.05, 0.4)

# Gaussian gridding (Greengard & Lee 2004): grid oversampling and half-width of the spread in
# grid points; with 2 and 12 the truncation error is about 1e-12, below the 2^-24 snapping.
GRID_OVERSAMPLING = 2
GRID_SPREAD = 12
POWER_BLOCK = 256                # see _powers


@dataclass(frozen=True)
class Formant:
    """A bump in the partial levels: a Gaussian over log2-frequency."""
    centre_hz: float
    width_octaves: float         # the Gaussian's standard deviation
    gain_db: float

    def __post_init__(self):
        for name in ("centre_hz", "width_octaves", "gain_db"):
            object.__setattr__(self, name, float(getattr(self, name)))
        if not (self.centre_hz > 0 and self.width_octaves > 0):
            raise PipelineError(f"formant {self} needs a positive centre and width; fix the tone spec")


@dataclass(frozen=True)
class Spectrum:
    """Partial levels and phases of the random kinds; waveform kinds keep the defaults."""
    slope_db_per_octave: float = 0.0
    even_db: float = 0.0
    jitter_db: float = 0.0       # each partial's level moves uniformly within +-this
    formants: tuple[Formant, ...] = ()
    fundamental_gain: float = 0.0  # missing_fundamental: partial 1 / strongest other partial (0: absent)
    inharmonicity: float = 0.0   # stretched: B
    seed: int = 0                # seeds the per-partial levels and phases

    def __post_init__(self):
        for name in ("slope_db_per_octave", "even_db", "jitter_db", "fundamental_gain", "inharmonicity"):
            object.__setattr__(self, name, float(getattr(self, name)))
        object.__setattr__(self, "formants", tuple(self.formants))
        object.__setattr__(self, "seed", int(self.seed))
        if self.jitter_db < 0 or self.inharmonicity < 0 or self.seed < 0:
            raise PipelineError(f"{self} has a negative jitter, inharmonicity or seed; fix the tone spec")


@dataclass(frozen=True)
class Envelope:
    """A smooth rise, a fall towards the sustain level, a release to silence; percussive tones
    (a pluck, a strike) have sustain 0: they die away while held."""
    attack: float = 0.01         # s, from 0 to 1 (smoothstep)
    decay: float = 0.2           # s, time constant of the exponential fall from 1 to `sustain`
    sustain: float = 1.0         # level held until note-off, 0..1
    release: float = 0.1         # s, from note-off to exact silence (-60 dB at 90% of it)

    def __post_init__(self):
        for name in ("attack", "decay", "sustain", "release"):
            object.__setattr__(self, name, float(getattr(self, name)))
        if not (self.attack >= 0 and self.decay > 0 and 0 <= self.sustain <= 1 and self.release > 0):
            raise PipelineError(f"{self} is out of range (attack >= 0, decay > 0, 0 <= sustain <= 1, "
                                "release > 0); fix the tone spec")

    @property
    def percussive(self) -> bool:
        return self.sustain == 0.0


@dataclass(frozen=True)
class ToneSpec:
    """One synthetic tone. `f0` (Hz) is the label: partial 1's exact frequency."""
    f0: float
    kind: str
    spectrum: Spectrum = field(default_factory=Spectrum)
    envelope: Envelope = field(default_factory=Envelope)

    def __post_init__(self):
        object.__setattr__(self, "f0", float(self.f0))
        _check_spec(self)

    def label(self) -> str:
        """A short description for the manifest: `sawtooth`, `harmonic(slope=-9.1dB/oct,even=-4.0dB)`."""
        if self.kind in WAVEFORM_KINDS:
            return self.kind
        s = self.spectrum
        parts = [f"slope={s.slope_db_per_octave:.1f}dB/oct", f"even={s.even_db:.1f}dB"]
        if s.formants:
            parts.append(f"formants={len(s.formants)}")
        if self.kind == "missing_fundamental":
            f1 = f"{20 * math.log10(s.fundamental_gain):.1f}dB" if s.fundamental_gain > 0 else "absent"
            parts.insert(0, f"f1={f1}")
        if self.kind == "stretched":
            parts.insert(0, f"B={s.inharmonicity:.1e}")
        return f"{self.kind}({','.join(parts)})"

    @classmethod
    def from_dict(cls, data: dict) -> ToneSpec:
        """The inverse of `dataclasses.asdict` (after a trip through JSON)."""
        spectrum = dict(data.get("spectrum", {}))
        spectrum["formants"] = tuple(Formant(**f) for f in spectrum.get("formants", ()))
        return cls(f0=data["f0"], kind=data["kind"], spectrum=Spectrum(**spectrum),
                   envelope=Envelope(**data.get("envelope", {})))


@dataclass(frozen=True, eq=False)
class Partials:
    """A tone's partials below the band limit: partial j is Re(c_j·exp(2πi·f_j·t)), t from the note-on."""
    frequencies: np.ndarray      # Hz, ascending
    coefficients: np.ndarray     # complex; |c_j| is the amplitude (the largest is 1), angle(c_j) the phase


def band_limit(rate: int) -> float:
    """Every partial lies below this (Hz): below Nyquist, and below 95% of the dataset's Nyquist."""
    return min(rate / 2, MAX_BAND_LIMIT_HZ)


def _check_spec(spec: ToneSpec) -> None:
    if spec.kind not in ALL_KINDS:
        raise PipelineError(f"unknown tone kind {spec.kind!r}; use one of {', '.join(ALL_KINDS)}")
    if not (math.isfinite(spec.f0) and 0 < spec.f0 < MAX_BAND_LIMIT_HZ):
        raise PipelineError(f"tone f0 {spec.f0} Hz is outside 0..{MAX_BAND_LIMIT_HZ:g} Hz (the band limit); "
                            "use a lower note")
    s = spec.spectrum
    if spec.kind in WAVEFORM_KINDS and s != Spectrum():
        raise PipelineError(f"a {spec.kind} tone has a fixed spectrum; leave `spectrum` at its defaults")
    if (spec.kind == "stretched") != (s.inharmonicity > 0):
        raise PipelineError("inharmonicity must be > 0 for a stretched tone and 0 for any other kind; "
                            "fix the tone spec")
    if spec.kind != "missing_fundamental" and s.fundamental_gain != 0:
        raise PipelineError("fundamental_gain applies to missing_fundamental tones only; leave it at 0")
    if spec.kind == "missing_fundamental":
        if not 0 <= s.fundamental_gain <= MAX_FUNDAMENTAL_GAIN:
            raise PipelineError(f"fundamental_gain {s.fundamental_gain} is above {MAX_FUNDAMENTAL_GAIN} "
                                "(-20 dB); a missing fundamental must be weak or 0")
        if 3 * spec.f0 >= MAX_BAND_LIMIT_HZ:
            raise PipelineError(f"a missing fundamental at {spec.f0:g} Hz leaves fewer than 2 partials below "
                                f"{MAX_BAND_LIMIT_HZ:g} Hz to carry its pitch; use f0 below "
                                f"{MAX_BAND_LIMIT_HZ / 3:.0f} Hz")


# --- drawing ------------------------------------------------------------------------------
def draw_tone(rng: np.random.Generator, f0: float, kinds: tuple[str, ...] = ALL_KINDS) -> ToneSpec:
    """A random tone of pitch f0 (Hz), its kind drawn uniformly from those of `kinds` that fit.

    `missing_fundamental` fits below 2,533 Hz only (partials 2 and 3 must lie below the band
    limit). Every float is rounded, so the spec's repr and JSON are short and stable.
    """
    unknown = [k for k in kinds if k not in ALL_KINDS]
    if unknown or not kinds:
        raise PipelineError(f"tone kinds {list(kinds)}: use some of {', '.join(ALL_KINDS)}")
    if not 0 < f0 < MAX_BAND_LIMIT_HZ:
        raise PipelineError(f"tone f0 {f0} Hz is outside 0..{MAX_BAND_LIMIT_HZ:g} Hz; use a lower note")
    fitting = [k for k in kinds if k != "missing_fundamental" or 3 * f0 < MAX_BAND_LIMIT_HZ]
    if not fitting:
        raise PipelineError(f"no tone of kinds {list(kinds)} fits f0 {f0:g} Hz; add another kind")
    kind = fitting[int(rng.integers(len(fitting)))]
    spectrum = _draw_spectrum(rng, kind, f0) if kind in RANDOM_KINDS else Spectrum()
    return ToneSpec(f0=f0, kind=kind, spectrum=spectrum, envelope=_draw_envelope(rng, kind))


def _uniform(rng: np.random.Generator, bounds: tuple[float, float], digits: int) -> float:
    return round(float(rng.uniform(*bounds)), digits)


def _log_uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    value = math.exp(rng.uniform(math.log(bounds[0]), math.log(bounds[1])))
    return float(f"{value:.3g}")


def max_inharmonicity(f0: float) -> float:
    """The largest B drawn at f0: STRETCH_BUDGET / N², N = 7600 / f0 (1.6e-7 at A0, 4e-5 at A4, 5e-4 >= 1.4 kHz)."""
    return min(INHARMONICITY[1], STRETCH_BUDGET * (f0 / MAX_BAND_LIMIT_HZ) ** 2)


def _draw_spectrum(rng: np.random.Generator, kind: str, f0: float) -> Spectrum:
    slope, even, jitter = (_uniform(rng, b, 1) for b in (SLOPE_DB_PER_OCTAVE, EVEN_DB, JITTER_DB))
    formants = ()
    if rng.random() < FORMANT_SHARE:
        formants = tuple(Formant(_log_uniform(rng, FORMANT_CENTRE_HZ), _uniform(rng, FORMANT_WIDTH_OCTAVES, 2),
                                 _uniform(rng, FORMANT_GAIN_DB, 1)) for _ in range(int(rng.integers(1, 3))))
    fundamental = inharmonicity = 0.0
    if kind == "missing_fundamental" and rng.random() >= FUNDAMENTAL_ABSENT_SHARE:
        fundamental = float(f"{10 ** (_uniform(rng, FUNDAMENTAL_DB, 1) / 20):.4g}")
    if kind == "stretched":
        # INHARMONICITY's log-uniform range, moved down to end at this pitch's limit
        scale = max_inharmonicity(f0) / INHARMONICITY[1]
        inharmonicity = _log_uniform(rng, (INHARMONICITY[0] * scale, INHARMONICITY[1] * scale))
    return Spectrum(slope, even, jitter, formants, fundamental, inharmonicity, seed=int(rng.integers(2**31)))


def _draw_envelope(rng: np.random.Generator, kind: str) -> Envelope:
    if rng.random() < (STRETCHED_PERCUSSIVE_SHARE if kind == "stretched" else PERCUSSIVE_SHARE):
        return Envelope(attack=_uniform(rng, PERCUSSIVE_ATTACK_S, 4), decay=_uniform(rng, PERCUSSIVE_DECAY_S, 3),
                        sustain=0.0, release=_uniform(rng, RELEASE_S, 3))
    return Envelope(attack=_uniform(rng, SUSTAINED_ATTACK_S, 4), decay=_uniform(rng, SUSTAINED_DECAY_S, 3),
                    sustain=_uniform(rng, SUSTAIN_LEVEL, 3), release=_uniform(rng, RELEASE_S, 3))


# --- partials -----------------------------------------------------------------------------
def _snap(x: np.ndarray) -> np.ndarray:
    """Round to a 2^-SNAP_BITS grid, so that last-bit differences between libm builds vanish."""
    scale = 2.0 ** SNAP_BITS
    if np.iscomplexobj(x):
        return np.round(x.real * scale) / scale + 1j * (np.round(x.imag * scale) / scale)
    return np.round(x * scale) / scale


def partials(spec: ToneSpec, rate: int) -> Partials:
    """Frequencies and complex amplitudes of the tone's partials below `band_limit(rate)`."""
    limit = band_limit(rate)
    if spec.kind in WAVEFORM_KINDS:
        numbers = np.arange(1, int(limit // spec.f0) + 2)
        amplitude = _waveform_amplitudes(spec.kind, numbers[numbers * spec.f0 < limit])
        present = np.flatnonzero(amplitude)
        return Partials((present + 1) * spec.f0, -1j * amplitude[present])  # sin(x) = Re(-i·exp(ix))
    return _random_partials(spec, limit)


def _waveform_amplitudes(kind: str, numbers: np.ndarray) -> np.ndarray:
    """Fourier series of the band-limited waveforms, as sine amplitudes of partials 1, 2, 3, ..."""
    n = numbers.astype(np.float64)
    odd = numbers % 2 == 1
    if kind == "sine":
        return (numbers == 1).astype(np.float64)
    if kind == "triangle":      # odd partials, 1/n^2, alternating sign
        return np.where(odd, np.where(numbers % 4 == 1, 1.0, -1.0) / (n * n), 0.0)
    if kind == "square":        # odd partials, 1/n
        return np.where(odd, 1.0 / n, 0.0)
    return 1.0 / n              # sawtooth: every partial, 1/n


def _random_partials(spec: ToneSpec, limit: float) -> Partials:
    s = spec.spectrum
    # Draws for every partial below the widest band limit, so a 16 kHz and a 44.1 kHz render
    # share their partials' levels and phases.
    count = int(MAX_BAND_LIMIT_HZ // spec.f0) + 1
    draws = np.random.default_rng(s.seed)
    jitter, phase = draws.uniform(-1.0, 1.0, count), draws.random(count)
    numbers = np.arange(1, count + 1, dtype=np.float64)
    stretch = np.sqrt((1 + s.inharmonicity * numbers * numbers) / (1 + s.inharmonicity))
    frequencies = numbers * spec.f0 * stretch
    keep = frequencies < limit
    if spec.kind == "missing_fundamental" and np.count_nonzero(keep) < 3:
        raise PipelineError(f"a missing fundamental at {spec.f0:g} Hz needs partials 2 and 3 below "
                            f"{limit:g} Hz; render at a higher rate or use a lower note")
    numbers, frequencies = numbers[keep], frequencies[keep]
    level_db = (s.slope_db_per_octave * np.log2(numbers) + np.where(numbers % 2 == 0, s.even_db, 0.0)
                + s.jitter_db * jitter[keep] + _formant_db(s.formants, frequencies))
    amplitude = 10.0 ** ((level_db - level_db.max()) / 20)
    if spec.kind == "missing_fundamental":
        # partials 2 and 3 carry the period: without this floor, 4.5% of draws were heard 1-1.5 octaves up
        amplitude[1:3] = np.maximum(amplitude[1:3], amplitude[1:].max() * CARRIER_FLOOR)
        amplitude[0] = s.fundamental_gain * amplitude[1:].max()
    amplitude = _snap(amplitude / amplitude.max())
    turn = 2 * np.pi * phase[keep]
    return Partials(frequencies, amplitude * _snap(np.cos(turn) + 1j * np.sin(turn)))


def _formant_db(formants: tuple[Formant, ...], frequencies: np.ndarray) -> np.ndarray:
    octaves = np.log2(frequencies)
    bumps = [f.gain_db * np.exp(-0.5 * ((octaves - math.log2(f.centre_hz)) / f.width_octaves) ** 2)
             for f in formants]
    return np.sum(bumps, axis=0) if bumps else np.zeros_like(frequencies)


# --- rendering ----------------------------------------------------------------------------
def render_tone(spec: ToneSpec, rate: int, hold_seconds: float, release_seconds: float) -> np.ndarray:
    """The tone as float32 mono at `rate`: note-on at sample 0, note-off at `hold_seconds`.

    round((hold + release) · rate) samples, peak PEAK. A release longer than `release_seconds`
    is shortened to end with the audio, so a render always ends in silence.
    """
    if not (isinstance(rate, (int, np.integer)) and rate > 0):
        raise PipelineError(f"sample rate {rate!r} must be a positive integer (Hz)")
    if not (round(hold_seconds * rate) >= 1 and release_seconds >= 0):
        raise PipelineError(f"hold {hold_seconds} s / release {release_seconds} s: the hold must last "
                            "a sample or more and the release must not be negative")
    p = partials(spec, rate)
    curve = envelope_curve(spec.envelope, rate, hold_seconds, release_seconds)
    audio = sum_of_partials(p.frequencies, p.coefficients, len(curve), rate) * curve
    peak = np.max(np.abs(audio))
    if peak == 0:
        raise PipelineError(f"a tone of {len(curve)} samples is silent; use a longer hold or release")
    return (audio * (PEAK / peak)).astype(np.float32)


def envelope_curve(envelope: Envelope, rate: int, hold_seconds: float, release_seconds: float) -> np.ndarray:
    """The amplitude at each sample (float64, peak <= 1); the release starts at round(hold · rate)."""
    total = round((hold_seconds + release_seconds) * rate)
    hold = min(round(hold_seconds * rate), total)
    held = _held_curve(envelope, rate, hold + 1)        # one more: the level at note-off
    release = max(1, min(round(envelope.release * rate), total - hold))
    curve = np.zeros(total)
    curve[:hold] = held[:hold]
    curve[hold:hold + release] = held[hold] * _release_curve(release)[: total - hold]
    return curve


def _powers(ratio: float, count: int) -> np.ndarray:
    """ratio^0 .. ratio^(count-1) by multiplication only (libm's pow differs between machines), in
    blocks, as an outer product: a cumulative product over every sample would cost 10x more."""
    block = min(count, POWER_BLOCK)
    steps = np.full(block, ratio)
    steps[:1] = 1.0
    within = np.cumprod(steps)                          # ratio^0 .. ratio^(block-1)
    across = np.full(-(-count // max(block, 1)), within[-1] * ratio if block else 1.0)
    across[:1] = 1.0
    return np.outer(np.cumprod(across), within).ravel()[:count]


def _held_curve(envelope: Envelope, rate: int, count: int) -> np.ndarray:
    attack = max(1, round(envelope.attack * rate))
    u = np.arange(min(attack, count)) / attack
    rise = u * u * (3 - 2 * u)                          # smoothstep: no corner at either end
    # a one-pole fall with time constant `decay`: ratio 1 - 1/(decay · rate) per sample
    fall = _powers(1 - 1 / max(envelope.decay * rate, 1.0), max(count - attack, 0))
    return np.concatenate([rise, envelope.sustain + (1 - envelope.sustain) * fall])


def _release_curve(length: int) -> np.ndarray:
    """From 1 to exactly 0 over `length` samples: an exponential fall of 60 dB, shifted down to end at 0."""
    powers = _powers(max(1 - RELEASE_RANGE_LN / length, 0.0), length + 1)
    return (powers[:length] - powers[length]) / (1 - powers[length])


@dataclass(frozen=True, eq=False)
class _Grid:
    """The oversampled frequency grid for `count` output samples (Greengard & Lee's notation)."""
    size: int                    # grid points, >= GRID_OVERSAMPLING x the output span
    half: int                    # output sample m is the sum at k = m - half, k in [-half, half)
    spread: float                # a partial's weight at d grid points is exp(-spread · d²)
    deconvolution: np.ndarray    # per output sample: sqrt(π/τ)·exp(τk²), the Gaussian's transform undone


@functools.lru_cache(maxsize=8)
def _grid(count: int) -> _Grid:
    half = (count + 1) // 2
    size = scipy.fft.next_fast_len(GRID_OVERSAMPLING * 2 * half, real=True)
    ratio = size / (2 * half)
    tau = math.pi * GRID_SPREAD / ((2 * half) ** 2 * ratio * (ratio - 0.5))
    # exp(τk²) for k = 0 .. half by e^(τ(k+1)²) = e^(τk²)·e^(τ(2k+1)): no libm on whole arrays
    by_k = np.concatenate([[1.0], np.cumprod(_powers(math.exp(2 * tau), half) * math.exp(tau))])
    deconvolution = by_k[np.abs(np.arange(count) - half)] * math.sqrt(math.pi / tau)
    deconvolution.flags.writeable = False
    return _Grid(size, half, math.pi * (ratio - 0.5) / (ratio * GRID_SPREAD), deconvolution)


def sum_of_partials(frequencies: np.ndarray, coefficients: np.ndarray, count: int, rate: int) -> np.ndarray:
    """Σ_j Re(c_j·exp(2πi·f_j·m / rate)) for m = 0 .. count-1, in O(count · log count).

    A direct sum costs partials × samples (about 290 × 66,000 for an A0 at 44.1 kHz); this is
    Gaussian gridding (Greengard & Lee 2004, "Accelerating the nonuniform fast Fourier
    transform"): every partial is spread with a narrow Gaussian onto an oversampled frequency
    grid, one inverse FFT gives the sum times the Gaussian's wide transform in time, and
    dividing that out leaves the exact sinusoids: within 4e-7 of the peak of the direct sum
    (-128 dB, set by the 2^-24 snapping). Frequencies are exact, so stretched partials cost
    what harmonic ones do, and no wavetable is interpolated.
    """
    grid = _grid(count)
    smeared = np.fft.irfft(_spread(frequencies, coefficients, grid, rate), n=grid.size)
    smeared = np.concatenate([smeared[grid.size - grid.half:], smeared[: count - grid.half]])
    return smeared * grid.deconvolution


def _spread(frequencies: np.ndarray, coefficients: np.ndarray, grid: _Grid, rate: int) -> np.ndarray:
    """The non-negative half of the Hermitian grid: +f_j with c_j/2, -f_j with conj(c_j)/2."""
    # each partial's phase at m = half (k = 0), from its phase at m = 0 (in turns, reduced exactly)
    turns = frequencies * grid.half / rate
    turns = 2 * np.pi * (turns - np.floor(turns))
    centred = coefficients * _snap(np.cos(turns) + 1j * np.sin(turns))
    position = frequencies * grid.size / rate           # in grid points
    nearest = np.rint(position).astype(np.int64)
    offsets = np.arange(-GRID_SPREAD, GRID_SPREAD + 1)
    weights = _snap(np.exp(-grid.spread * (offsets[None, :] - (position - nearest)[:, None]) ** 2)) / 2
    points = (nearest[:, None] + offsets[None, :]).ravel()
    where = np.concatenate([points % grid.size, -points % grid.size])
    values = np.concatenate([(centred[:, None] * weights).ravel(), (np.conj(centred)[:, None] * weights).ravel()])
    used = where <= grid.size // 2                      # irfft reads the first half only
    where, values = where[used], values[used]
    # bincount adds in input order: the same sums, bit for bit, on every run
    return (np.bincount(where, values.real, grid.size // 2 + 1)
            + 1j * np.bincount(where, values.imag, grid.size // 2 + 1))
