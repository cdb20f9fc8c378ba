"""Synthetic tones: the label is the pitch, nothing sounds above the band limit, same spec same bytes.

The pitch checks use estimators written here, independent of the synthesis: YIN on the
sustained part (upsampled, so short periods fall between more lags) for a coarse f0 free of
octave errors, then the exact frequency of the lowest partial found in a zero-padded
Gaussian-windowed spectrum (its log-magnitude peak is a parabola), over its harmonic number.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.fft
import scipy.signal

from pipeline.core.errors import PipelineError
from pipeline.data import tones as T

RATES = (44_100, 16_000)
PITCHES = (27.5, 110.0, 440.0, 1760.0, 4186.01)   # A0 .. C8
HOLD, RELEASE = 0.6, 0.2
SUSTAINED = (0.1, 0.6)                             # seconds: after every drawn attack, before note-off


def cents(estimate: float, label: float) -> float:
    return 1200 * math.log2(estimate / label)


def sustained(audio: np.ndarray, rate: int) -> np.ndarray:
    return audio[round(SUSTAINED[0] * rate): round(SUSTAINED[1] * rate)].astype(np.float64)


def yin_f0(x: np.ndarray, rate: int, fmin: float = 25.0, threshold: float = 0.1) -> float:
    """YIN (de Cheveigné & Kawahara 2002) with parabolic interpolation of the difference function."""
    up = -(-128_000 // rate)
    x, rate = scipy.signal.resample_poly(x, up, 1), rate * up
    max_lag = int(rate / fmin) + 2
    width = len(x) - max_lag
    corr = scipy.signal.correlate(x, x[:width], mode="valid", method="fft")[: max_lag + 1]
    energy = np.concatenate([[0.0], np.cumsum(x * x)])
    diff = energy[width] + energy[width:width + max_lag + 1] - energy[: max_lag + 1] - 2 * corr
    cmnd = np.ones_like(diff)
    cmnd[1:] = diff[1:] * np.arange(1, max_lag + 1) / np.maximum(np.cumsum(diff[1:]), 1e-300)
    below = np.flatnonzero(cmnd[2:-1] < threshold) + 2
    lag = int(below[0]) if below.size else int(np.argmin(cmnd[2:-1])) + 2
    while lag + 2 < max_lag and cmnd[lag + 1] < cmnd[lag]:
        lag += 1
    a, b, c = diff[lag - 1: lag + 2]
    return rate / (lag + 0.5 * (a - c) / (a - 2 * b + c))


def gaussian_spectrum(x: np.ndarray, rate: int) -> tuple[np.ndarray, float]:
    """Magnitudes of the Gaussian-windowed, 8x zero-padded spectrum, and the bin width in Hz."""
    window = scipy.signal.windows.gaussian(len(x), len(x) / 8)
    size = 8 * scipy.fft.next_fast_len(len(x))
    return np.abs(np.fft.rfft(x * window, size)), rate / size


def spectral_peak(magnitude: np.ndarray, bin_hz: float, low: float, high: float) -> tuple[float, float]:
    """(frequency, magnitude) of the strongest peak in [low, high] Hz, interpolated on log magnitude."""
    first = max(int(low / bin_hz), 1)
    i = first + int(np.argmax(magnitude[first:int(high / bin_hz) + 1]))
    a, b, c = np.log(magnitude[i - 1: i + 2])
    return (i + 0.5 * (a - c) / (a - 2 * b + c)) * bin_hz, float(magnitude[i])


def partial_peaks(x: np.ndarray, rate: int, coarse: float, count: int = 8) -> list[tuple[int, float, float]]:
    """(harmonic number, frequency, magnitude) near each of the first multiples of `coarse`."""
    magnitude, bin_hz = gaussian_spectrum(x, rate)
    return [(n, *spectral_peak(magnitude, bin_hz, (n - 1 / 3) * coarse, (n + 1 / 3) * coarse))
            for n in range(1, count + 1) if (n + 1 / 3) * coarse < rate / 2]


def fine_f0(x: np.ndarray, rate: int, coarse: float) -> float:
    """The lowest partial within 40 dB of the strongest, over its harmonic number."""
    peaks = partial_peaks(x, rate, coarse)
    strongest = max(m for _, _, m in peaks)
    n, frequency, _ = next(p for p in peaks if p[2] >= strongest / 100)
    return frequency / n


def drawn(kind: str, f0: float, seed: int = 0) -> T.ToneSpec:
    return T.draw_tone(np.random.default_rng([seed, round(f0 * 100)]), f0, (kind,))


# --- the label is the pitch ---------------------------------------------------------------
@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("kind", T.ALL_KINDS)
def test_estimated_f0_matches_the_label(kind, rate):
    for f0 in PITCHES:
        if kind == "missing_fundamental" and 3 * f0 >= T.MAX_BAND_LIMIT_HZ:
            continue
        spec = drawn(kind, f0)
        x = sustained(T.render_tone(spec, rate, HOLD, RELEASE), rate)
        coarse = yin_f0(x, rate)
        fine = fine_f0(x, rate, coarse)
        where = f"{spec.label()} at {f0} Hz, {rate} Hz"
        assert abs(cents(coarse, f0)) < 50, f"{where}: YIN says {coarse:.2f} Hz"
        assert abs(cents(fine, f0)) < 1.0, f"{where}: partials say {fine:.4f} Hz"


@pytest.mark.parametrize("rate", RATES)
def test_missing_fundamental_is_weak_yet_the_period_stays(rate):
    specs = [drawn("missing_fundamental", f0, seed) for f0 in (27.5, 110.0, 440.0, 2000.0) for seed in range(3)]
    assert {s.spectrum.fundamental_gain == 0 for s in specs} == {True, False}  # absent and weak both seen
    for spec in specs:
        x = sustained(T.render_tone(spec, rate, HOLD, RELEASE), rate)
        peaks = partial_peaks(x, rate, spec.f0, count=int(T.band_limit(rate) // spec.f0))
        strongest = max(m for _, _, m in peaks)      # a formant may make partial 20 the strongest
        assert 20 * np.log10(peaks[0][2] / strongest) <= -19.5, spec.label()
        coarse = yin_f0(x, rate)
        assert abs(cents(coarse, spec.f0)) < 50, f"{spec.label()}: YIN says {coarse:.2f} Hz"
        assert abs(cents(fine_f0(x, rate, coarse), spec.f0)) < 1.0, spec.label()


def test_stretched_partials_follow_the_stiff_string_formula():
    spec = drawn("stretched", 55.0, seed=1)
    b = spec.spectrum.inharmonicity
    x = sustained(T.render_tone(spec, 44_100, HOLD, RELEASE), 44_100)
    for n, frequency, _ in partial_peaks(x, 44_100, 55.0, count=6):
        expected = n * 55.0 * math.sqrt((1 + b * n * n) / (1 + b))
        assert abs(cents(frequency, expected)) < 0.5, (n, frequency, expected)
    assert T.partials(spec, 44_100).frequencies[0] == 55.0


@pytest.mark.parametrize("f0", [27.5, 61.7, 110.0, 220.0, 440.0, 880.0, 1760.0])
def test_a_tracker_hears_a_stretched_tone_at_its_label(f0):
    """The period (what YIN, and a model, follow) of the most stretched tone drawn at f0 moves less
    than 8 cents from where the same spectrum, unstretched, has it: max_inharmonicity keeps B·N²
    small. (B = 1e-4 at 440 Hz, as a piano's, moved it 10 cents; at 110 Hz even 1e-5 did.)"""
    for seed in range(4):
        spec = drawn("stretched", f0, seed)
        heard = []
        for kind, b in (("stretched", T.max_inharmonicity(f0)), ("harmonic", 0.0)):
            tone = dataclasses.replace(spec, kind=kind, spectrum=dataclasses.replace(spec.spectrum, inharmonicity=b))
            heard.append(yin_f0(T.render_tone(tone, 16_000, 1.0, 0.2)[2640:2640 + 5280].astype(np.float64), 16_000))
        assert abs(cents(*heard)) < 8, spec.label()


# --- what is rendered ---------------------------------------------------------------------
@pytest.mark.parametrize("kind,rate,f0", [("stretched", 16_000, 27.5), ("harmonic", 44_100, 55.0),
                                          ("triangle", 44_100, 4186.01)])
def test_render_is_exactly_its_partials_under_its_envelope(kind, rate, f0):
    spec, hold, release = drawn(kind, f0), 0.25, 0.1
    audio = T.render_tone(spec, rate, hold, release)
    p = T.partials(spec, rate)
    t = np.arange(len(audio)) / rate
    direct = np.zeros(len(audio))
    for frequency, coefficient in zip(p.frequencies, p.coefficients):
        direct += (coefficient * np.exp(2j * np.pi * frequency * t)).real
    direct *= T.envelope_curve(spec.envelope, rate, hold, release)
    direct *= T.PEAK / np.max(np.abs(direct))
    assert audio.dtype == np.float32 and len(audio) == round((hold + release) * rate)
    assert np.max(np.abs(audio)) == pytest.approx(T.PEAK, rel=1e-6)
    np.testing.assert_allclose(audio, direct, rtol=0, atol=2e-6)


def test_waveforms_are_their_fourier_series():
    def amplitudes(kind):   # signed sine amplitudes, partials 1, 2, 3, ...
        p = T.partials(T.ToneSpec(440.0, kind), 44_100)
        numbers = np.rint(p.frequencies / 440.0).astype(int)
        dense = np.zeros(17)
        dense[numbers - 1] = (1j * p.coefficients).real     # c = -i·a for a·sin
        return dense

    n = np.arange(1, 18)
    odd = n % 2 == 1
    np.testing.assert_allclose(amplitudes("sine"), n == 1)
    np.testing.assert_allclose(amplitudes("sawtooth"), 1 / n)
    np.testing.assert_allclose(amplitudes("square"), np.where(odd, 1 / n, 0))
    np.testing.assert_allclose(amplitudes("triangle"), np.where(odd, np.where(n % 4 == 1, 1, -1) / n**2, 0))
    assert T.partials(T.ToneSpec(440.0, "sawtooth"), 44_100).frequencies[-1] == 17 * 440.0  # 7,480 < 7,600


@pytest.mark.parametrize("rate", RATES)
def test_nothing_sounds_above_the_band_limit(rate):
    limit = T.band_limit(rate)
    assert limit == 7_600.0
    for kind in T.ALL_KINDS:
        for f0 in (27.5, 110.0, 1760.0):
            spec = drawn(kind, f0, seed=2)
            assert np.all(T.partials(spec, rate).frequencies < limit)
            audio = T.render_tone(spec, rate, HOLD, RELEASE).astype(np.float64)
            x = sustained(audio, rate)
            power = np.abs(np.fft.rfft(x * scipy.signal.windows.blackmanharris(len(x)))) ** 2
            above = np.fft.rfftfreq(len(x), 1 / rate) >= limit + 20
            assert 10 * np.log10(power[above].max() / power.max()) < -120, spec.label()
            # the whole note, attack and release included: the envelope spreads a little
            power = np.abs(np.fft.rfft(audio)) ** 2
            above = np.fft.rfftfreq(len(audio), 1 / rate) >= limit + 50
            assert 10 * np.log10(power[above].sum() / power.sum()) < -60, spec.label()


def test_higher_partials_are_dropped_not_folded():
    spec = T.ToneSpec(27.5, "sawtooth")
    high, low = T.partials(spec, 44_100), T.partials(spec, 8_000)
    assert len(high.frequencies) == 276 and high.frequencies[-1] < 7_600 <= high.frequencies[-1] + 27.5
    assert low.frequencies[-1] < 4_000 and len(low.frequencies) == 145


# --- envelope -----------------------------------------------------------------------------
def test_envelope_curve_shape():
    env = T.Envelope(attack=0.01, decay=0.02, sustain=0.5, release=0.05)
    rate, hold = 16_000, 160 * 40                          # note-off at sample 6,400
    curve = T.envelope_curve(env, rate, 0.4, 0.3)
    assert len(curve) == round(0.7 * rate) and curve[0] == 0.0
    assert curve[160] == pytest.approx(1.0, abs=1e-3)      # attack done after 10 ms
    assert np.all(np.diff(curve[:160]) > 0) and np.all(np.diff(curve[160:hold]) <= 0)
    assert curve[160 + 320] == pytest.approx(0.5 + 0.5 * math.exp(-1), rel=1e-3)  # one time constant
    assert curve[hold - 1] == pytest.approx(0.5, abs=1e-6)  # 19 time constants later: the sustain level
    release = curve[hold:hold + 800]
    assert np.all(np.diff(release) < 0) and release[0] == pytest.approx(0.5, abs=1e-6)
    assert np.all(curve[hold + 800:] == 0.0)               # silent 50 ms after note-off, exactly
    percussive = T.envelope_curve(T.Envelope(attack=0.0, decay=0.05, sustain=0.0, release=0.05), rate, 0.4, 0.3)
    assert percussive[800] == pytest.approx(math.exp(-1), rel=1e-3)  # one time constant after the strike


def test_note_off_lands_on_its_sample():
    spec = T.ToneSpec(440.0, "sine", envelope=T.Envelope(attack=0.005, decay=0.1, sustain=1.0, release=0.1))
    for rate in RATES:
        audio = T.render_tone(spec, rate, 0.5, 0.3).astype(np.float64)
        carrier = np.sin(2 * np.pi * 440.0 * np.arange(len(audio)) / rate)   # partial 1: a sine from sample 0
        readable = np.flatnonzero(np.abs(carrier) > 0.5)
        amplitude = audio[readable] / carrier[readable]
        off = round(0.5 * rate)
        held = amplitude[(readable >= 0.01 * rate) & (readable < off)]
        np.testing.assert_allclose(held, T.PEAK, rtol=1e-5)                 # flat up to the note-off sample
        after = amplitude[(readable >= off) & (readable < off + 0.1 * rate)]
        assert np.all(np.diff(after) < 0) and after[0] < T.PEAK * (1 - 1e-3) and after[-1] < T.PEAK * 1e-3
        assert np.all(audio[off + round(0.1 * rate):] == 0.0)


def test_every_drawn_tone_ends_silent():
    for seed in range(12):
        spec = T.draw_tone(np.random.default_rng(seed), 110.0)
        audio = T.render_tone(spec, 16_000, 0.5, 0.25)
        assert audio[-1] == 0.0 or np.max(np.abs(audio[-80:])) < T.PEAK * 1e-3, spec   # -60 dB, last 5 ms
        if spec.envelope.release < 0.25:
            assert np.all(audio[round((0.5 + spec.envelope.release) * 16_000):] == 0.0)


# --- determinism and the spec -------------------------------------------------------------
def test_same_spec_same_bytes_and_same_seed_same_spec():
    specs = [T.draw_tone(np.random.default_rng(7), 55.0, (kind,)) for kind in T.ALL_KINDS]
    assert specs == [T.draw_tone(np.random.default_rng(7), 55.0, (kind,)) for kind in T.ALL_KINDS]
    for spec in specs:
        assert T.render_tone(spec, 44_100, 0.3, 0.1).tobytes() == T.render_tone(spec, 44_100, 0.3, 0.1).tobytes()
    others = [T.draw_tone(np.random.default_rng(8), 55.0, (kind,)) for kind in T.ALL_KINDS]
    assert all(a != b for a, b in zip(specs, others))


RENDER_HASHES = """
import hashlib
import numpy as np
from pipeline.data import tones as T
for kind in T.ALL_KINDS:
    spec = T.draw_tone(np.random.default_rng(3), 110.0, (kind,))
    print(hashlib.sha256(T.render_tone(spec, 44_100, 0.3, 0.1).tobytes()).hexdigest())
"""


def test_same_bytes_whatever_simd_numpy_picks():
    """numpy's float64 exp/log/pow take other code (and give other last bits) without AVX-512."""
    try:
        from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__
    except ImportError:
        pytest.skip("this numpy does not say which SIMD extensions it dispatches to")
    optional = [f for f in __cpu_dispatch__ if __cpu_features__.get(f)]
    if not optional:
        pytest.skip("this CPU has none of numpy's optional SIMD extensions to switch off")
    runs = [subprocess.run([sys.executable, "-c", RENDER_HASHES], capture_output=True, text=True, check=True,
                           env={**os.environ, **extra}).stdout
            for extra in ({}, {"NPY_DISABLE_CPU_FEATURES": " ".join(optional)})]
    assert len(runs[0].split()) == len(T.ALL_KINDS) and runs[0] == runs[1]


def test_spec_is_hashable_json_able_and_labelled():
    rng = np.random.default_rng(11)
    specs = [T.draw_tone(rng, np.float64(261.6255653005986), (kind,)) for kind in T.ALL_KINDS]
    for spec in specs:
        text = json.dumps(dataclasses.asdict(spec), allow_nan=False)
        back = T.ToneSpec.from_dict(json.loads(text))
        assert back == spec and hash(back) == hash(spec) and repr(back) == repr(spec)
        assert "np." not in repr(spec) and len(repr(spec)) < 400
        assert spec.f0 == 261.6255653005986                  # the label is kept as given, never rounded
    assert [s.label() for s in specs[:4]] == ["sine", "triangle", "square", "sawtooth"]
    assert specs[4].label().startswith("harmonic(slope=") and "dB/oct" in specs[4].label()
    assert specs[5].label().startswith("missing_fundamental(f1=")
    assert specs[6].label().startswith("stretched(B=")
    assert len({hashlib.sha256(repr(s).encode()).hexdigest() for s in specs}) == len(specs)


def test_draws_stay_in_their_ranges():
    specs = [T.draw_tone(np.random.default_rng(seed), 65.4) for seed in range(400)]
    kinds = [s.kind for s in specs]
    assert set(kinds) == set(T.ALL_KINDS) and max(map(kinds.count, T.ALL_KINDS)) < 90
    b = [s.spectrum.inharmonicity for s in specs if s.kind == "stretched"]
    scale = T.max_inharmonicity(65.4) / T.INHARMONICITY[1]   # a low note: its B range moved down
    assert min(b) >= T.INHARMONICITY[0] * scale * 0.99 and max(b) <= T.max_inharmonicity(65.4) and max(b) / min(b) > 5
    high = [T.draw_tone(np.random.default_rng(seed), 2000.0, ("stretched",)).spectrum.inharmonicity
            for seed in range(40)]
    assert min(high) >= T.INHARMONICITY[0] and max(high) <= T.INHARMONICITY[1] and max(high) > 1e-4
    gains = [s.spectrum.fundamental_gain for s in specs if s.kind == "missing_fundamental"]
    assert 0 in gains and all(g == 0 or 0.01 <= g <= 0.1 for g in gains)
    assert any(s.envelope.percussive for s in specs) and not all(s.envelope.percussive for s in specs)
    assert any(s.spectrum.formants for s in specs)
    high = [T.draw_tone(np.random.default_rng(seed), 3000.0).kind for seed in range(60)]
    assert "missing_fundamental" not in high and len(set(high)) == 6


@pytest.mark.parametrize("make", [
    lambda: T.ToneSpec(440.0, "noise"),
    lambda: T.ToneSpec(7600.0, "sine"),
    lambda: T.ToneSpec(-1.0, "sine"),
    lambda: T.ToneSpec(3000.0, "missing_fundamental"),
    lambda: T.ToneSpec(440.0, "sawtooth", spectrum=T.Spectrum(slope_db_per_octave=-6.0)),
    lambda: T.ToneSpec(440.0, "stretched"),
    lambda: T.ToneSpec(440.0, "missing_fundamental", spectrum=T.Spectrum(fundamental_gain=0.5)),
    lambda: T.Envelope(sustain=1.5),
    lambda: T.draw_tone(np.random.default_rng(0), 3000.0, ("missing_fundamental",)),
    lambda: T.draw_tone(np.random.default_rng(0), 440.0, ("sinus",)),
    lambda: T.render_tone(T.ToneSpec(440.0, "sine"), 16_000, 0.0, 0.1),
    lambda: T.render_tone(T.ToneSpec(2000.0, "missing_fundamental"), 8_000, 0.1, 0.1),
])
def test_bad_input_is_a_pipeline_error(make):
    with pytest.raises(PipelineError):
        make()
