"""Band-limited additive tones that follow any f0 curve, bit for bit reproducible.

`render_contour(f0_hz, sr, partial_gains)` renders partial n as
    gain_n(t) · fade(f_n(t)) · sin(2π·(r_n·Φ(t) + phase_n)),
where Φ is the phase accumulated from the per-sample f0 curve (trapezoidal rule, in turns),
r_1 = 1 (partial 1 is at exactly f0(t) at every sample) and r_n = n for harmonic tones or
n·sqrt((1 + B·n²)/(1 + B)) for a stiff string (inharmonicity B; partial 1 stays at f0).
f_n(t) = r_n·f0(t). `fade` is 1 below band_limit - fade_band, 0 at and above the band limit
and a smootherstep (C2) between, so a partial that a rising f0 pushes towards the limit fades out
(and back in when f0 falls) without a click and nothing is ever rendered above the limit.
Samples with f0 = 0 or NaN are silent; each voiced stretch fades in and out over
`edge_fade_s` inside the stretch (the phase does not move while silent).

Harmonic partials are summed by Horner's rule in z = exp(2πiΦ) (8 real array operations a
partial, no per-partial sine); stretched partials look up a sine table each. Both run over
chunks of samples so the work stays in cache. Everything per sample is +, -, *, /, sqrt,
cumsum and table lookups (see detmath), so the same inputs give the same bytes whichever SIMD
code numpy picks (tests/test_determinism.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.dsp.detmath import cos_turns, db_to_gain, sin_turns, smootherstep, snap

BAND_LIMIT_HZ = 7600.0           # 95% of the 16 kHz dataset's Nyquist frequency
FADE_BAND_HZ = 300.0             # partials fade out over the last 300 Hz below the band limit
EDGE_FADE_S = 0.005              # fade in/out of every voiced stretch
PEAK = 0.5                       # render_contour's default peak
CHUNK = 8192                     # samples per block: a few 64 kB rows stay in L2
LOWEST_F0_HZ = 50.0              # draw_tone_timbre draws enough partials for this f0

WAVEFORM_KINDS = ("sine", "triangle", "square", "sawtooth")
RANDOM_KINDS = ("harmonic", "missing_fundamental", "stretched")
TONE_KINDS = WAVEFORM_KINDS + RANDOM_KINDS

# draw ranges of the random spectra (uniform unless noted)
SLOPE_DB_PER_OCTAVE = (-15.0, -3.0)
EVEN_DB = (-20.0, 3.0)           # even partials relative to odd ones
LEVEL_JITTER_DB = (0.0, 6.0)     # per-partial levels uniform within +- this
FUNDAMENTAL_DB = (-40.0, -20.0)  # missing_fundamental: partial 1 (or absent, 1 draw in 4)
INHARMONICITY = (1e-5, 5e-4)     # stretched: B, log-uniform, capped by `max_inharmonicity`


# --- the f0 curve -------------------------------------------------------------------------
def clean_f0(f0_hz) -> np.ndarray:
    """float64 copy with NaN (and 0) as 0 = unvoiced; negative or infinite values are errors."""
    f0 = np.array(f0_hz, dtype=np.float64, copy=True).ravel()
    f0[np.isnan(f0)] = 0.0
    if not np.all(np.isfinite(f0)) or np.any(f0 < 0):
        raise ValueError("f0 must be >= 0 Hz, finite, or NaN for unvoiced samples")
    return f0


def phase_turns(f0_hz, sr: int) -> np.ndarray:
    """Φ[m] in turns: Φ[0] = 0, Φ[m+1] = Φ[m] + (f0[m] + f0[m+1]) / (2·sr) (a sequential cumsum)."""
    f0 = clean_f0(f0_hz)
    steps = (f0[:-1] + f0[1:]) / (2.0 * sr)
    return np.concatenate([[0.0], np.cumsum(steps)])[: f0.size]


def voicing_envelope(f0_hz, sr: int, rise_s: float = EDGE_FADE_S, fall_s: float | None = None) -> np.ndarray:
    """1 on voiced samples, 0 on unvoiced ones, smootherstep ramps inside each voiced stretch.

    A stretch shorter than rise + fall never reaches 1 (the two ramps multiply).
    """
    voiced = clean_f0(f0_hz) > 0
    rise = rise_s * sr + 1.0                     # samples; +1: a 0 s ramp leaves every sample at 1
    fall = (rise_s if fall_s is None else fall_s) * sr + 1.0
    since_start = _samples_since_run_start(voiced)
    until_end = _samples_since_run_start(voiced[::-1])[::-1]
    envelope = smootherstep((since_start + 1.0) / rise) * smootherstep((until_end + 1.0) / fall)
    return np.where(voiced, envelope, 0.0)


def _samples_since_run_start(mask: np.ndarray) -> np.ndarray:
    index = np.arange(mask.size)
    starts = mask & ~np.concatenate([[False], mask[:-1]])
    return index - np.maximum.accumulate(np.where(starts, index, 0))


def partial_ratios(count: int, inharmonicity: float = 0.0) -> np.ndarray:
    """r_n for n = 1..count: n, or n·sqrt((1 + B n²)/(1 + B)) with r_1 = 1 exactly."""
    n = np.arange(1, count + 1, dtype=np.float64)
    if inharmonicity == 0:
        return n
    ratios = n * np.sqrt((1.0 + inharmonicity * n * n) / (1.0 + inharmonicity))
    ratios[0] = 1.0
    return ratios


def band_fade(frequency_hz, band_limit_hz: float = BAND_LIMIT_HZ, fade_band_hz: float = FADE_BAND_HZ) -> np.ndarray:
    """1 up to band_limit - fade_band, 0 from band_limit on, a smootherstep (C2) between."""
    return smootherstep((band_limit_hz - np.asarray(frequency_hz, dtype=np.float64)) / fade_band_hz)


# --- rendering ----------------------------------------------------------------------------
def render_contour(f0_hz, sr: int, partial_gains, band_limit_hz: float = BAND_LIMIT_HZ, *,
                   phases_turns=None, inharmonicity: float = 0.0, gain_hop: int | None = None,
                   fade_band_hz: float = FADE_BAND_HZ, edge_fade_s: float = EDGE_FADE_S,
                   peak: float | None = PEAK) -> np.ndarray:
    """float32 audio, one sample per f0 sample, partial 1 at exactly f0(t) (see the module doc).

    partial_gains: (P,) per partial, or (P, K) time-varying with frame k at sample k·gain_hop
    (linearly interpolated, the last frame held). phases_turns: (P,) start phases in turns
    (default 0: sine phase). The result is scaled to `peak` (None: left as summed).
    """
    f0 = clean_f0(f0_hz)
    _check_rate_and_limit(f0, sr, band_limit_hz)
    audio = additive(phase_turns(f0, sr), f0, sr, partial_gains, phases_turns=phases_turns,
                     inharmonicity=inharmonicity, gain_hop=gain_hop, band_limit_hz=band_limit_hz,
                     fade_band_hz=fade_band_hz)
    audio *= voicing_envelope(f0, sr, edge_fade_s)
    return to_float32(audio, peak)


def _check_rate_and_limit(f0: np.ndarray, sr: int, band_limit_hz: float) -> None:
    if not (isinstance(sr, (int, np.integer)) and sr > 0):
        raise ValueError(f"sample rate {sr!r} must be a positive integer")
    if not 0 < band_limit_hz <= sr / 2:
        raise ValueError(f"band limit {band_limit_hz} Hz must lie in (0, {sr / 2}] (Nyquist)")
    if f0.size and f0.max() >= band_limit_hz:
        raise ValueError(f"f0 reaches {f0.max():g} Hz, at or above the band limit {band_limit_hz:g} Hz")


def to_float32(audio: np.ndarray, peak: float | None = PEAK) -> np.ndarray:
    """float32, scaled so that the largest |sample| is `peak` (None, or all zeros: unscaled)."""
    top = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak is not None and top > 0:
        audio = audio * (peak / top)
    return audio.astype(np.float32)


def additive(phase: np.ndarray, freq_hz: np.ndarray, sr: int, partial_gains, *, phases_turns=None,
             inharmonicity: float = 0.0, gain_hop: int | None = None,
             band_limit_hz: float = BAND_LIMIT_HZ, fade_band_hz: float = FADE_BAND_HZ) -> np.ndarray:
    """float64 Σ_n gain_n(t)·fade(r_n·freq(t))·sin(2π(r_n·phase(t) + phase_n)), no edge fades.

    `phase` (turns, unreduced) and `freq_hz` (its instantaneous frequency, 0 = unvoiced, for
    the band-limit fades only) come from the caller, so a voice can add jitter to both.
    """
    gains = np.asarray(partial_gains, dtype=np.float64)
    gains = gains[:, None] if gains.ndim == 1 else gains
    if gains.ndim != 2 or (gains.shape[1] > 1 and not gain_hop):
        raise ValueError("partial_gains must be (P,) or (P, K) with a gain_hop")
    count = gains.shape[0]
    turns = np.zeros(count) if phases_turns is None else snap(np.asarray(phases_turns, dtype=np.float64))
    # Re((a_re + i·a_im)·e^{iθ}) = sin(θ + 2π·phase_n)
    a_re, a_im = sin_turns(turns), -cos_turns(turns)
    ratios = partial_ratios(count, inharmonicity)
    out = np.zeros(len(phase))
    for start in range(0, len(phase), CHUNK):
        chunk = slice(start, min(start + CHUNK, len(phase)))
        freq = freq_hz[chunk]
        voiced = freq > 0
        if not voiced.any():
            continue
        top = int(np.searchsorted(ratios * freq[voiced].min(), band_limit_hz))  # partials below the limit somewhere
        if top == 0:
            continue
        rows = _chunk_rows(gains[:top], ratios[:top], a_re, a_im, freq, chunk, gain_hop, band_limit_hz, fade_band_hz)
        if inharmonicity == 0:
            out[chunk] = _horner(phase[chunk], rows)
        else:
            out[chunk] = _stretched(phase[chunk], ratios[:top], turns[:top], rows)
    return out


def _chunk_rows(gains, ratios, a_re, a_im, freq, chunk, gain_hop, band_limit_hz, fade_band_hz):
    """Per partial: (gain·fade as a scalar or an array over the chunk, a_re, a_im)."""
    fading = ratios * freq.max() > band_limit_hz - fade_band_hz
    varying = gains.shape[1] > 1
    if varying:                                  # linear between frames k·gain_hop, the last one held
        position = np.minimum(np.arange(chunk.start, chunk.stop) / gain_hop, gains.shape[1] - 1)
        frame = np.minimum(position.astype(np.int64), gains.shape[1] - 2)
        fraction = position - frame
        steps = np.diff(gains, axis=1)
    rows = []
    for n in range(len(ratios)):
        gain = gains[n].take(frame) + steps[n].take(frame) * fraction if varying else float(gains[n, 0])
        if fading[n]:
            gain = gain * band_fade(ratios[n] * freq, band_limit_hz, fade_band_hz)
        rows.append((gain, a_re[n], a_im[n]))
    return rows


def _horner(phase: np.ndarray, rows) -> np.ndarray:
    """Re(Σ_n c_n·z^n), z = e^{2πiΦ}, c_n = g_n·(a_re + i·a_im), by Horner's rule in real arithmetic."""
    z_re, z_im = cos_turns(phase), sin_turns(phase)
    gain, a_re, a_im = rows[-1]
    acc_re = np.zeros(len(phase)) + gain * a_re
    acc_im = np.zeros(len(phase)) + gain * a_im
    t, u = np.empty(len(phase)), np.empty(len(phase))
    for gain, a_re, a_im in reversed(rows[:-1]):
        np.multiply(acc_re, z_im, out=t)
        np.multiply(acc_re, z_re, out=acc_re)
        np.multiply(acc_im, z_im, out=u)
        np.subtract(acc_re, u, out=acc_re)       # re·zr - im·zi
        np.multiply(acc_im, z_re, out=acc_im)
        np.add(acc_im, t, out=acc_im)            # im·zr + re·zi
        if np.ndim(gain) or gain != 0:
            acc_re += gain * a_re
            acc_im += gain * a_im
    return acc_re * z_re - acc_im * z_im


def _stretched(phase: np.ndarray, ratios: np.ndarray, turns: np.ndarray, rows) -> np.ndarray:
    """Σ_n g_n·sin(2π(r_n·Φ + phase_n)): one table lookup per partial (r_n is not an integer)."""
    out = np.zeros(len(phase))
    for ratio, turn, (gain, _, _) in zip(ratios, turns, rows):
        if np.ndim(gain) or gain != 0:
            out += gain * sin_turns(ratio * phase + turn)
    return out


# --- timbres ------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class ToneTimbre:
    """Per-partial gains (partial 1 first, largest 1), start phases in turns, and B."""
    kind: str
    gains: np.ndarray
    phases_turns: np.ndarray
    inharmonicity: float = 0.0

    def render(self, f0_hz, sr: int, **options) -> np.ndarray:
        """render_contour with this timbre."""
        return render_contour(f0_hz, sr, self.gains, phases_turns=self.phases_turns,
                              inharmonicity=self.inharmonicity, **options)


def partials_for(lowest_f0_hz: float, band_limit_hz: float = BAND_LIMIT_HZ) -> int:
    """How many partials a tone needs to fill the band at its lowest f0."""
    return int(band_limit_hz // lowest_f0_hz) + 1


def waveform_gains(kind: str, count: int) -> np.ndarray:
    """Fourier series of the band-limited waveforms, as sine amplitudes of partials 1..count."""
    n = np.arange(1, count + 1)
    odd = n % 2 == 1
    if kind == "sine":
        return (n == 1).astype(np.float64)
    if kind == "triangle":      # odd partials, 1/n², alternating sign
        return np.where(odd, np.where(n % 4 == 1, 1.0, -1.0) / (n * n), 0.0)
    if kind == "square":        # odd partials, 1/n
        return np.where(odd, 1.0 / n, 0.0)
    if kind == "sawtooth":      # every partial, 1/n
        return 1.0 / n
    raise ValueError(f"unknown waveform {kind!r}; use one of {', '.join(WAVEFORM_KINDS)}")


def max_inharmonicity(count: int) -> float:
    """B at which the top partial is 15% sharp of count·f0 (B·count² = 0.32): the period still reads f0."""
    return min(INHARMONICITY[1], 0.32 / count ** 2)


def draw_tone_timbre(rng: np.random.Generator, kind: str, lowest_f0_hz: float = LOWEST_F0_HZ) -> ToneTimbre:
    """A timbre of `kind` (TONE_KINDS) with enough partials for `lowest_f0_hz`.

    Waveforms have their fixed Fourier series in sine phase. Random spectra draw a slope
    (dB/octave), an even/odd balance, per-partial levels and phases; missing_fundamental puts
    partial 1 at -40..-20 dB (or removes it) and keeps partials 2 and 3 within 6 dB of the
    strongest; stretched draws B (log-uniform, capped by `max_inharmonicity`).
    """
    count = partials_for(lowest_f0_hz)
    if kind in WAVEFORM_KINDS:
        return ToneTimbre(kind, waveform_gains(kind, count), np.zeros(count))
    if kind not in RANDOM_KINDS:
        raise ValueError(f"unknown tone kind {kind!r}; use one of {', '.join(TONE_KINDS)}")
    n = np.arange(1, count + 1, dtype=np.float64)
    slope = round(rng.uniform(*SLOPE_DB_PER_OCTAVE), 2)
    even = round(rng.uniform(*EVEN_DB), 2)
    spread = round(rng.uniform(*LEVEL_JITTER_DB), 2)
    level_db = slope * snap(np.log2(n)) + np.where(n % 2 == 0, even, 0.0) + spread * rng.uniform(-1, 1, count)
    gains = db_to_gain(level_db - level_db.max())
    phases = np.round(rng.random(count), 4)
    inharmonicity = 0.0
    if kind == "missing_fundamental":
        gains[1:3] = np.maximum(gains[1:3], gains[1:].max() * 0.5)   # partials 2 and 3 carry the period
        absent = rng.random() < 0.25
        gains[0] = 0.0 if absent else gains[1:].max() * float(db_to_gain(round(rng.uniform(*FUNDAMENTAL_DB), 1)))
    if kind == "stretched":
        low, high = np.log(INHARMONICITY[0]), np.log(max(max_inharmonicity(count), INHARMONICITY[0]))
        inharmonicity = float(f"{np.exp(rng.uniform(low, high)):.3g}")
    return ToneTimbre(kind, snap(gains / gains.max()), phases, inharmonicity)
