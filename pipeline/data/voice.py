"""A speaking or singing voice whose f0 is known exactly, bit for bit reproducible.

A voice (`VoiceSpec`, drawn by `draw_voice`) is rendered (`render_voice`) along a per-sample
f0 curve (0 = unvoiced), typically one drawn by `draw_speech_contour` or `draw_sung_line`
(a `Contour`: the f0 and its segments, which name the vowels and consonants):

- source: a Rosenberg/KLGLOTT88-like glottal flow pulse (open quotient, opening share and an
  extra spectral tilt drawn per voice), differentiated (lip radiation), synthesised
  additively with contour_synth, so it is band-limited at any f0 (50..1,100 Hz);
- vocal tract: five formants per vowel (i e ae a o u uh; male/female/child tables, a
  per-voice tract-length and bandwidth scale, sopranos keep F1 above f0), gliding between
  vowels, applied as each harmonic's magnitude |H(n·f0(t), t)| at a 2 ms control rate
  (zero phase: a formant's group delay would shift a moving harmonic off n·f0);
- jitter: glottal pulse k moves by δ_k cycles, δ_k uniform and zero-mean, so pulse times never
  drift from the label's; shimmer: each cycle's amplitude by a uniform dB offset;
- aspiration noise, modulated by the glottal cycle (strongest in the open phase), through the
  same formants (bandwidths x3), at breath_db under the voice's local power; unvoiced
  consonants (s sh f h p t k) as shaped noise bursts inside unvoiced stretches only. All
  noise is shaped in an STFT whose spectra end below the band limit.

THE LABEL is the f0 curve given to `render_voice`: the smooth, intended f0 of partial 1,
without jitter (`frame_labels` samples it every 10 ms). The rendered f0 is the label times
(1 + δ_k+1 - δ_k) in cycle k (`glottal_cycles` returns it), |δ_k| <= 1.5·jitter, jitter
0.05-0.2 %: the mean f0 of a stretch of N cycles is off the label by at most 3·jitter/N, a
10 ms frame by at most 10.4 cents (single-cycle frames at the top jitter) and typically 0.5-1.5
cents; estimators with 2-period windows measure it within 10 cents in >= 99.9% of clean frames
(NOTES.md).

Determinism: see detmath (no libm on per-sample arrays, sequential sums); noise is drawn
uniform from generators seeded by `seed`. The same spec, f0, segments, sr and seed give the
same bytes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pipeline.data import contour_synth as cs
from pipeline.data.voice_contours import F0_RANGE_HZ, REGISTERS, Segment, segments_from_f0, uniform_draw
from pipeline.dsp.detmath import db_to_gain, det_sum, moving_average, sin_turns, smoothstep, snap

PEAK = 0.5
CONTROL_S = 0.002                # formant/gain control rate
SQRT3 = 1.7320508075688772       # uniform(-1, 1) · sqrt(3) has unit variance

# F1..F5 (Hz): Peterson & Barney (1952) averages for F1-F3, typical F4/F5.
FORMANTS_HZ = {
    "male": {"i": (270, 2290, 3010, 3500, 4500), "e": (530, 1840, 2480, 3500, 4500),
             "ae": (660, 1720, 2410, 3450, 4500), "a": (730, 1090, 2440, 3400, 4500),
             "o": (570, 840, 2410, 3400, 4500), "u": (300, 870, 2240, 3400, 4500),
             "uh": (640, 1190, 2390, 3400, 4500)},
    "female": {"i": (310, 2790, 3310, 4300, 5300), "e": (610, 2330, 2990, 4300, 5300),
               "ae": (860, 2050, 2850, 4300, 5300), "a": (850, 1220, 2810, 4200, 5300),
               "o": (590, 920, 2710, 4200, 5300), "u": (370, 950, 2670, 4200, 5300),
               "uh": (760, 1400, 2780, 4200, 5300)},
    "child": {"i": (370, 3200, 3730, 4600, 5800), "e": (690, 2610, 3570, 4600, 5800),
              "ae": (1010, 2320, 3320, 4600, 5800), "a": (1030, 1370, 3170, 4500, 5800),
              "o": (680, 1060, 3180, 4500, 5800), "u": (430, 1170, 3260, 4500, 5800),
              "uh": (850, 1590, 3360, 4500, 5800)},
}
FORMANTS_HZ["soprano"] = FORMANTS_HZ["female"]
BANDWIDTHS_HZ = {"male": (60, 90, 140, 200, 260), "female": (70, 100, 160, 230, 300),
                 "child": (80, 120, 180, 260, 340), "soprano": (70, 100, 160, 230, 300)}
NOISE_BANDWIDTH_FACTOR = 3.0     # aspiration excites the tract with the glottis open: broad formants
# consonant spectra: (centre Hz, bandwidth Hz, high-pass Hz, level dB re the consonant level)
CONSONANT_SHAPES = {"s": (6000, 2500, 3500, 0.0), "sh": (3000, 2000, 1800, 0.0), "f": (4000, 8000, 800, -8.0),
                    "p": (1000, 2500, 300, 2.0), "t": (4500, 3500, 2000, 2.0), "k": (2200, 1500, 1000, 2.0)}
H_LEVEL_DB = -4.0                # /h/ and plosive aspiration re the consonant level



# --- what is drawn ------------------------------------------------------------------------
@dataclass(frozen=True)
class VoiceSpec:
    """Everything drawn for one voice (short reprs; JSON-able through dataclasses.asdict)."""
    register: str
    tract_scale: float           # formant frequencies × this (vocal tract length)
    bandwidth_scale: float       # formant bandwidths × this
    open_quotient: float         # open phase / period
    opening_share: float         # share of the open phase spent opening
    tilt_db_per_octave: float    # extra source slope (<= 0)
    jitter_percent: float        # local jitter: mean |T_k - T_(k-1)| / T, in %
    shimmer_db: float            # local shimmer: mean |20·log10(A_k / A_(k-1))|
    breath_db: float             # aspiration re the voiced part, locally (30 ms power): -HNR
    consonant_db: float          # unvoiced consonants re the voiced part (RMS)
    formant_tuning: bool         # F1 kept above f0 (a soprano's resonance tuning)

    def __post_init__(self):
        if self.register not in REGISTERS:
            raise ValueError(f"unknown register {self.register!r}; use one of {', '.join(REGISTERS)}")
        if not (0.2 <= self.open_quotient <= 0.95 and 0.3 <= self.opening_share <= 0.9):
            raise ValueError("open_quotient must lie in [0.2, 0.95] and opening_share in [0.3, 0.9]")
        if not (0 <= self.jitter_percent <= 1 and 0 <= self.shimmer_db <= 2):
            raise ValueError("jitter_percent must lie in [0, 1] and shimmer_db in [0, 2]")


def draw_voice(rng: np.random.Generator, register: str) -> VoiceSpec:
    """A voice of `register` (REGISTERS), every value rounded to a short repr."""
    if register not in REGISTERS:
        raise ValueError(f"unknown register {register!r}; use one of {', '.join(REGISTERS)}")
    soprano = register == "soprano"
    return VoiceSpec(
        register=register,
        tract_scale=uniform_draw(rng, 0.93, 1.07),
        bandwidth_scale=uniform_draw(rng, 0.8, 1.5, 2),
        open_quotient=uniform_draw(rng, 0.55, 0.85, 2) if soprano else uniform_draw(rng, 0.5, 0.8, 2),
        opening_share=uniform_draw(rng, 0.55, 0.8, 2),
        tilt_db_per_octave=uniform_draw(rng, -6.0, 0.0, 1),
        jitter_percent=uniform_draw(rng, 0.05, 0.2, 3),
        shimmer_db=uniform_draw(rng, 0.1, 0.4, 2),
        breath_db=uniform_draw(rng, -40.0, -22.0, 1),
        consonant_db=uniform_draw(rng, -18.0, -6.0, 1),
        formant_tuning=soprano,
    )


# --- contours -----------------------------------------------------------------------------
def render_voice(spec: VoiceSpec, f0_hz, sr: int, seed: int, segments=None) -> np.ndarray:
    """float32 audio (peak PEAK), one sample per f0 sample; voiced where f0 > 0.

    `segments` (from a Contour) name the vowels and consonants; without them each voiced
    stretch gets vowels and each unvoiced one under 200 ms a consonant, drawn from `seed`.
    Voiced f0 must lie in F0_RANGE_HZ; consonant noise only sounds on unvoiced samples.
    """
    f0 = cs.clean_f0(f0_hz)
    voiced = f0 > 0
    if voiced.any() and not (F0_RANGE_HZ[0] <= f0[voiced].min() and f0.max() <= F0_RANGE_HZ[1]):
        raise ValueError(f"voiced f0 must lie in {F0_RANGE_HZ[0]:g}..{F0_RANGE_HZ[1]:g} Hz")
    if not (isinstance(sr, (int, np.integer)) and sr >= 16_000):
        raise ValueError(f"sample rate {sr!r} must be an integer >= 16000")
    if f0.size == 0:
        return np.zeros(0, dtype=np.float32)
    phrase_rng, noise_rng = (np.random.default_rng(s) for s in _streams(seed)[1:])
    segments = tuple(segments) if segments is not None else segments_from_f0(phrase_rng, f0, sr)
    hop = max(1, round(CONTROL_S * sr))
    phase, freq, cycle_gain = glottal_cycles(spec, f0, sr, seed)
    r = _Render(spec, f0, segments, sr, hop, min(cs.BAND_LIMIT_HZ, 0.95 * sr / 2),
                _formant_tracks(spec, segments, f0, sr, hop), phase, _loudness(phrase_rng, f0, sr))
    voice = _harmonics(r, freq) * cycle_gain * r.envelope
    return cs.to_float32(voice + _noise(noise_rng, r, voice), PEAK)


def _streams(seed: int):
    """Independent seed sequences: jitter and shimmer, phrase (vowels, levels), noise."""
    return np.random.SeedSequence(seed).spawn(3)


@dataclass(frozen=True, eq=False)
class _Tracks:
    """Formant frequencies and bandwidths (K × 5) at control frames k·hop, and the f0 there."""
    frequencies: np.ndarray
    bandwidths: np.ndarray
    f0: np.ndarray


@dataclass(frozen=True, eq=False)
class _Render:
    """What the parts of one render share."""
    spec: VoiceSpec
    f0: np.ndarray               # the label, per sample
    segments: tuple
    sr: int
    hop: int                     # control frames, samples
    limit: float                 # band limit, Hz
    tracks: _Tracks
    phase: np.ndarray            # the pulse phase (turns), jitter included
    envelope: np.ndarray         # voicing ramps × stretch levels


def _formant_tracks(spec: VoiceSpec, segments, f0: np.ndarray, sr: int, hop: int) -> _Tracks:
    """Vowel targets per frame (a gap takes the next vowel), glided by two 40 ms boxcars."""
    frames = np.arange(0, f0.size + hop, hop)
    targets = np.zeros((frames.size, 5))
    table = FORMANTS_HZ[spec.register]
    vowels = [s for s in segments if s.kind == "voiced"] or [Segment(0, f0.size, "voiced", "a")]
    for s in segments:
        vowel = s.phone if s.kind == "voiced" else next((v.phone for v in vowels if v.start >= s.stop),
                                                        vowels[-1].phone)
        targets[(frames >= s.start) & (frames < s.stop + (s.stop == f0.size) * hop)] = table[vowel]
    width = max(1, round(0.04 * sr / hop))
    frequencies = moving_average(moving_average(targets * spec.tract_scale, width), width)
    f0_frames = _filled(f0)[np.minimum(frames, f0.size - 1)] if f0.size else np.zeros(frames.size)
    if spec.formant_tuning:           # F1 at least ~1.12·f0, F2 at least 250 Hz above F1 (smooth maxima)
        frequencies[:, 0] = _smooth_max(frequencies[:, 0], 1.12 * f0_frames, 80.0)
        frequencies[:, 1] = _smooth_max(frequencies[:, 1], frequencies[:, 0] + 250.0, 80.0)
    bandwidths = np.tile(np.asarray(BANDWIDTHS_HZ[spec.register], dtype=np.float64) * spec.bandwidth_scale,
                         (frames.size, 1))
    return _Tracks(frequencies, bandwidths, f0_frames)


def _filled(f0: np.ndarray) -> np.ndarray:
    """f0 with each unvoiced sample given the nearest earlier voiced value (leading ones the first)."""
    voiced = f0 > 0
    if not voiced.any():
        return f0
    index = np.maximum.accumulate(np.where(voiced, np.arange(f0.size), 0))
    filled = f0[index]
    filled[: np.argmax(voiced)] = f0[np.argmax(voiced)]
    return filled


def _smooth_max(a, b, width: float) -> np.ndarray:
    return (a + b + np.sqrt((a - b) ** 2 + width * width)) / 2


def tract_gain(frequency_hz, formants_hz, bandwidths_hz) -> np.ndarray:
    """|H(f)| of a cascade of 2-pole resonators (unit gain at 0 Hz), by arithmetic and sqrt.

    formants_hz[j] and bandwidths_hz[j] (j = 0, 1, ...: one resonance each) broadcast against
    frequency_hz; each resonance is (F² + b²)/sqrt((b² + (f-F)²)(b² + (f+F)²)), b = B/2.
    """
    gain = np.ones(np.shape(frequency_hz))
    for centre, bandwidth in zip(formants_hz, bandwidths_hz):
        half = bandwidth / 2
        below, above = frequency_hz - centre, frequency_hz + centre
        gain = gain * (centre * centre + half * half) / np.sqrt(
            (half * half + below * below) * (half * half + above * above))
    return gain


def glottal_spectrum(open_quotient: float, opening_share: float, tilt_db_per_octave: float,
                     count: int) -> tuple[np.ndarray, np.ndarray]:
    """Gains (largest 1) and sine phases (turns) of partials 1..count of the flow derivative.

    Flow over one period (u in [0, 1)): 0.5·(1 - cos(π·u/Tp)) while opening (Tp = OQ·share),
    cos(π/2·(u - Tp)/(OQ - Tp)) while closing, 0 while closed; differentiated (lip
    radiation), then tilted by tilt_db_per_octave. A 4,096-point table, snapped.
    """
    size = 4096
    u = np.arange(size) / size
    tp = open_quotient * opening_share
    flow = np.where(u < tp, 0.5 * (1 - np.cos(np.pi * u / tp)),
                    np.where(u < open_quotient, np.cos(np.pi / 2 * (u - tp) / (open_quotient - tp)), 0.0))
    n = np.arange(1, count + 1)
    harmonics = np.fft.rfft(snap(flow))[np.minimum(n, size // 2)] * (n <= size // 2)
    derivative = 1j * n * harmonics * snap(2.0 ** (tilt_db_per_octave / 6.020599913279624 * np.log2(n)))
    gains = np.abs(derivative)
    phases = np.angle(derivative) / (2 * np.pi) + 0.25     # cos(x + φ) = sin(x + φ + π/2)
    return snap(gains / gains.max()), snap(phases - np.floor(phases))


def glottal_cycles(spec: VoiceSpec, f0_hz, sr: int, seed: int):
    """What render_voice renders for `seed`: the pulse phase (turns; the label's phase plus
    the jitter offset δ_k of each cycle, linear between cycle starts), its frequency (Hz; the
    rendered f0, jitter included), and the shimmer gain (linear between cycle starts).

    δ_k (in cycles) and the shimmer's dB offsets are uniform in ±1.5·(local value): the mean
    |difference| of two such draws is the local jitter/shimmer.
    """
    rng = np.random.default_rng(_streams(seed)[0])
    f0 = cs.clean_f0(f0_hz)
    phase = cs.phase_turns(f0, sr)
    cycles = int(phase[-1]) + 2 if phase.size else 2
    knots = np.arange(cycles + 1, dtype=np.float64)
    offsets = np.round(rng.uniform(-1.0, 1.0, cycles + 1), 6) * (1.5 * spec.jitter_percent / 100)
    shimmer = db_to_gain(np.round(rng.uniform(-1.0, 1.0, cycles + 1), 6) * (1.5 * spec.shimmer_db))
    jittered = phase + np.interp(phase, knots, offsets)
    slope = np.diff(offsets)[np.minimum(phase.astype(np.int64), cycles - 1)]
    return jittered, f0 * (1.0 + slope), np.interp(jittered, knots, shimmer)


def _loudness(rng, f0: np.ndarray, sr: int) -> np.ndarray:
    """Voicing ramps (15 ms in, 30 ms out) times a level of ±3 dB per voiced stretch."""
    voiced = f0 > 0
    starts = voiced & ~np.concatenate([[False], voiced[:-1]])
    levels = db_to_gain(np.round(rng.uniform(-3.0, 3.0, np.count_nonzero(starts)), 2))
    stretch = np.maximum(np.cumsum(starts) - 1, 0)           # which stretch each sample is in
    level = levels[stretch] if levels.size else np.ones(f0.size)
    return cs.voicing_envelope(f0, sr, 0.015, 0.03) * level


def _harmonics(r: _Render, freq: np.ndarray) -> np.ndarray:
    """The glottal source's partials at the pulse phase, each times the tract's |H| at n·f0."""
    voiced = r.f0 > 0
    if not voiced.any():
        return np.zeros(r.f0.size)
    count = cs.partials_for(r.f0[voiced].min() * 0.99, r.limit)        # 0.99: jitter raises f0 a little
    spec = r.spec
    gains, phases = glottal_spectrum(spec.open_quotient, spec.opening_share, spec.tilt_db_per_octave, count)
    frequencies = np.arange(1, count + 1, dtype=np.float64)[:, None] * r.tracks.f0[None, :]   # (P, K)
    partial_gains = gains[:, None] * tract_gain(frequencies, r.tracks.frequencies.T, r.tracks.bandwidths.T)
    return cs.additive(r.phase, freq, r.sr, partial_gains, phases_turns=phases, gain_hop=r.hop,
                       band_limit_hz=r.limit)


# --- noise --------------------------------------------------------------------------------
def _noise(rng, r: _Render, voice: np.ndarray) -> np.ndarray:
    """Aspiration (glottal-cycle modulated, through the formants) at breath_db under the
    voice's local power (about 30 ms); /h/, plosive aspiration and fricative/burst noise at
    consonant_db under the voice's RMS over the voiced samples. The STFT shaping zeroes
    everything above limit - 150 Hz (no IIR low-pass: its ringing would sound periodic)."""
    voiced = r.f0 > 0
    open_phase = (r.phase - np.floor(r.phase)) / r.spec.open_quotient
    hump = np.where(open_phase < 1.0, (1.0 - (2.0 * open_phase - 1.0) ** 2) ** 2, 0.0)   # most turbulence
    breath_in = _white(rng, r.f0.size) * (0.3 + 0.7 * hump) * r.envelope
    fricative_env, aspiration_env, consonants = _consonant_envelopes(rng, r)
    aspiration_in = _white(rng, r.f0.size) * aspiration_env * ~voiced
    fricative_in = _white(rng, r.f0.size) * fricative_env * ~voiced
    frame = 1024 if r.sr > 32_000 else 512
    tract = _tract_frames(r, frame)
    breath = _shape(breath_in, tract, frame)
    breath *= _local_ratio(voice, breath, round(0.01 * r.sr)) * float(db_to_gain(r.spec.breath_db))
    consonant = _shape(aspiration_in, tract, frame) + _shape(fricative_in, _consonant_frames(r, consonants, frame),
                                                             frame)
    level = math.sqrt(det_sum(voice[voiced] ** 2) / max(np.count_nonzero(voiced), 1)) or 1.0
    return breath + consonant * float(snap(level * float(db_to_gain(r.spec.consonant_db))))


def _local_ratio(reference: np.ndarray, noise: np.ndarray, block: int) -> np.ndarray:
    """sqrt(local power of reference / local power of noise), 0 where the noise is silent.

    Powers are means over blocks of `block` samples, averaged over a block each side and
    interpolated between block centres: sums of few samples, no cumulative-sum cancellation.
    """
    def power(x):
        blocks = np.pad(x, (0, -x.size % block)).reshape(-1, block)
        mean = np.cumsum(blocks * blocks, axis=1)[:, -1] / block
        padded = np.concatenate([mean[:1], mean, mean[-1:]])
        return (padded[:-2] + padded[1:-1] + padded[2:]) / 3

    centres = np.arange(-(-reference.size // block)) * block + (block - 1) / 2
    signal, noise_power = power(reference), power(noise)
    ratio = np.sqrt(signal / np.where(noise_power > 0, noise_power, np.inf))
    return np.interp(np.arange(reference.size), centres, ratio)


def _white(rng, count: int) -> np.ndarray:
    """Unit-variance uniform noise (uniform draws need no libm, unlike normal ones)."""
    return rng.uniform(-1.0, 1.0, count) * SQRT3


@dataclass(frozen=True)
class _Consonant:
    start: int                   # its segment, samples
    stop: int
    phone: str


def _consonant_envelopes(rng, r: _Render):
    """Per-sample envelopes of frication (s sh f, plosive bursts) and of aspiration (h, and
    after a burst), each inside its consonant segment 4 ms clear of voicing; the consonants."""
    total = r.f0.size
    fricative, aspiration, consonants = np.zeros(total), np.zeros(total), []
    t = np.arange(total) / r.sr
    guard = round(0.004 * r.sr)
    for s in r.segments:
        if s.kind != "consonant" or s.stop - s.start <= 2 * guard + round(0.01 * r.sr):
            continue
        span = slice(s.start + guard, s.stop - guard)
        level = float(db_to_gain(uniform_draw(rng, -3.0, 3.0, 2)))
        noise, breath = _consonant_shapes(rng, s.phone, t[span], span.start / r.sr, span.stop / r.sr)
        fricative[span] += level * noise
        aspiration[span] += level * float(db_to_gain(H_LEVEL_DB)) * breath
        if s.phone != "h":
            consonants.append(_Consonant(s.start, s.stop, s.phone))
    return fricative, aspiration, consonants


def _consonant_shapes(rng, phone: str, t: np.ndarray, start: float, stop: float):
    """(frication, aspiration) envelopes over times t in [start, stop]: /h/ all aspiration;
    p t k a closure, a 6-15 ms burst, then 20-60 ms of aspiration up to the vowel; s sh f
    frication with 12 ms in and 15 ms out."""
    silent = np.zeros_like(t)
    if phone == "h":
        return silent, _ramp(t, start, stop, 0.015, 0.01)
    if phone in ("p", "t", "k"):
        burst = min(uniform_draw(rng, 0.006, 0.015), (stop - start) / 4)
        after = min(uniform_draw(rng, 0.02, 0.06), (stop - start) / 2)
        burst_at = stop - after - burst
        return _ramp(t, burst_at, burst_at + burst, 0.001, burst * 0.7), _ramp(t, burst_at + burst, stop, 0.005, 0.01)
    return _ramp(t, start, stop, 0.012, 0.015), silent


def _ramp(t, start: float, stop: float, rise: float, fall: float) -> np.ndarray:
    """1 on [start, stop], smoothstep in over `rise` s after start and out over `fall` s before stop."""
    return smoothstep((t - start) / rise) * smoothstep((stop - t) / fall)


def _bins(frame: int, sr: int) -> np.ndarray:
    return np.arange(frame // 2 + 1) * (sr / frame)


def _tract_frames(r: _Render, frame: int) -> np.ndarray:
    """Per STFT frame: |H| of the formants there (bandwidths ×3), over a high-passed noise colour."""
    centres = _frame_centres(frame, r.f0.size)
    controls = np.arange(r.tracks.frequencies.shape[0]) * r.hop
    formants = np.stack([np.interp(centres, controls, track) for track in r.tracks.frequencies.T])
    bandwidths = np.stack([np.interp(centres, controls, track) for track in r.tracks.bandwidths.T])
    f = _bins(frame, r.sr)
    colour = _highpass(f, 500.0) * cs.band_fade(f, r.limit - 150.0, 300.0)
    shapes = tract_gain(f[None, :], formants[:, :, None], bandwidths[:, :, None] * NOISE_BANDWIDTH_FACTOR)
    return _unit_power(shapes * colour)


def _consonant_frames(r: _Render, consonants, frame: int) -> np.ndarray:
    """Per STFT frame: the spectrum of the consonant whose segment is nearest the frame centre."""
    centres = _frame_centres(frame, r.f0.size)
    f = _bins(frame, r.sr)
    out = np.ones((centres.size, f.size))
    for c in consonants:
        centre, width, highpass, level_db = CONSONANT_SHAPES[c.phone]
        centre = min(centre * r.spec.tract_scale, r.limit - 500.0)
        shape = (tract_gain(f, [centre], [width]) * _highpass(f, highpass) * cs.band_fade(f, r.limit - 150.0, 300.0))
        near = (centres >= c.start - frame) & (centres < c.stop + frame)
        out[near] = _unit_power(shape[None, :])[0] * float(db_to_gain(level_db))
    return out


def _highpass(f, corner: float) -> np.ndarray:
    r = (f / corner) ** 2
    return r / np.sqrt(1.0 + r * r)


def _unit_power(magnitudes: np.ndarray) -> np.ndarray:
    """Each row scaled to a mean square of 1 over the bins: white noise keeps its variance."""
    power = np.cumsum(magnitudes * magnitudes, axis=1)[:, -1:] / magnitudes.shape[1]
    return magnitudes / np.sqrt(np.where(power > 0, power, 1.0))


def _frame_centres(frame: int, total: int) -> np.ndarray:
    """Centres (samples) of the STFT frames of `_shape`: frame j starts at j·hop - frame."""
    hop = frame // 4
    count = (total + 2 * frame - frame) // hop + 1
    return np.arange(count) * hop - frame + frame // 2


def _shape(noise: np.ndarray, magnitudes: np.ndarray, frame: int) -> np.ndarray:
    """Time-varying filtering: sqrt-Hann STFT (75% overlap), × magnitudes[j], overlap-add."""
    hop = frame // 4
    total = noise.size
    padded = np.concatenate([np.zeros(frame), noise, np.zeros(frame)])
    count = (padded.size - frame) // hop + 1
    window = sin_turns(np.arange(frame) / (2 * frame))          # sqrt of the periodic Hann window
    frames = np.lib.stride_tricks.sliding_window_view(padded, frame)[::hop][:count] * window
    shaped = np.fft.irfft(np.fft.rfft(frames, axis=1) * magnitudes[:count], n=frame, axis=1) * window
    out = np.zeros(padded.size + frame)
    for r in range(4):                                          # frames r, r+4, ... do not overlap
        group = shaped[r::4].ravel()
        out[r * hop: r * hop + group.size] += group
    return out[frame: frame + total] / 2.0                       # Σ Hann at 75% overlap = 2
