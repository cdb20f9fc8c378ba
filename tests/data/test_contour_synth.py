"""contour_synth: exact partials, f0 measured from the audio, band limit, edges, speed."""

import time

import numpy as np
import pytest
import scipy.signal

from pipeline.data import contour_synth as cs
from tests.data import contour_signals as K
from tests.data import pitch_probe as P

SR = 44_100
CASES = {                                       # name: (contour, cents tolerance that 99% must meet)
    "steady": (K.steady, 5.0),
    "vibrato": (K.vibrato, 5.0),
    "glide": (K.glide, 10.0),
    "trill": (K.trill, 10.0),
}


def timbre(kind: str, f0: np.ndarray) -> cs.ToneTimbre:
    return cs.draw_tone_timbre(np.random.default_rng(7), kind, float(f0[f0 > 0].min()))


# --- the partials are where they should be ------------------------------------------------
def direct_sum(f0, sr, gains, phases, inharmonicity=0.0):
    """The reference: every partial with libm's sin, faded as documented."""
    phase = cs.phase_turns(f0, sr)
    ratios = cs.partial_ratios(len(gains), inharmonicity)
    fade = cs.band_fade(ratios[:, None] * f0[None, :])
    turns = ratios[:, None] * phase[None, :] + phases[:, None]
    return np.sum(gains[:, None] * fade * np.sin(2 * np.pi * turns), axis=0)


@pytest.mark.parametrize("inharmonicity", [0.0, 2e-4])
def test_sum_matches_a_direct_sum_of_sines(inharmonicity):
    rng = np.random.default_rng(1)
    f0 = 150 + 60 * np.sin(2 * np.pi * 2.5 * np.arange(SR // 2) / SR)       # 90..210 Hz
    gains, phases = rng.uniform(-1, 1, 90), rng.random(90)
    fast = cs.additive(cs.phase_turns(f0, SR), f0, SR, gains, phases_turns=phases, inharmonicity=inharmonicity)
    reference = direct_sum(f0, SR, gains, phases, inharmonicity)
    assert np.max(np.abs(fast - reference)) < 1e-5 * np.max(np.abs(reference))


def test_partial_one_is_at_exactly_f0_and_gains_may_vary_in_time():
    f0 = K.vibrato(SR, seconds=0.5)
    sine = cs.render_contour(f0, SR, [1.0], edge_fade_s=0.0, peak=None)
    assert np.max(np.abs(sine - np.sin(2 * np.pi * cs.phase_turns(f0, SR)))) < 1e-6
    frames = np.linspace(0, 1, 30)[None, :] * np.array([1.0, 0.5, 0.25])[:, None]     # (3 partials, 30 frames)
    hop = 800
    varying = cs.additive(cs.phase_turns(f0, SR), f0, SR, frames, gain_hop=hop)
    g = np.array([np.interp(np.arange(f0.size), np.arange(30) * hop, row) for row in frames])
    reference = np.sum(g * np.sin(2 * np.pi * np.arange(1, 4)[:, None] * cs.phase_turns(f0, SR)[None, :]), axis=0)
    assert np.max(np.abs(varying - reference)) < 1e-6


def test_waveforms_and_drawn_timbres_have_their_spectra():
    assert np.allclose(cs.waveform_gains("square", 6), [1, 0, 1 / 3, 0, 1 / 5, 0])
    assert np.allclose(cs.waveform_gains("triangle", 5), [1, 0, -1 / 9, 0, 1 / 25])
    for seed in range(20):
        rng = np.random.default_rng(seed)
        missing = cs.draw_tone_timbre(rng, "missing_fundamental", 100.0)
        assert missing.gains[0] <= 0.1 * missing.gains[1:].max()
        assert missing.gains[1:3].min() >= 0.5 * missing.gains.max()
        stretched = cs.draw_tone_timbre(rng, "stretched", 100.0)
        assert cs.INHARMONICITY[0] <= stretched.inharmonicity <= cs.max_inharmonicity(len(stretched.gains))
        harmonic = cs.draw_tone_timbre(rng, "harmonic", 100.0)
        assert harmonic.gains.max() == 1.0 and len(harmonic.gains) == cs.partials_for(100.0)
    with pytest.raises(ValueError):
        cs.render_contour(np.full(100, 8000.0), SR, [1.0])


# --- f0 measured from the audio -----------------------------------------------------------
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("kind", cs.TONE_KINDS)
def test_measured_f0_follows_the_label(case, kind, record_property):
    contour, tolerance = CASES[case]
    f0 = contour(SR)
    audio = timbre(kind, f0).render(f0, SR)
    at = np.arange(0.02, f0.size / SR - 0.02, 0.01)
    clean = P.clean_frames(f0, SR, at, P.WINDOW_S[1])
    estimate, windows, _ = P.estimate(audio, SR, at[clean], 50.0, 1200.0)
    errors = P.cents(estimate, P.window_label(f0, SR, at[clean], windows))
    row = (f"{case:8s} {kind:20s} frames={errors.size:4d} RPA5={P.rpa(errors, 5):.4f} "
           f"RPA10={P.rpa(errors, 10):.4f} p99={np.nanpercentile(np.abs(errors), 99):6.2f} "
           f"max={np.nanmax(np.abs(errors)):7.2f} cents")
    print(row)
    record_property("accuracy", row)
    assert errors.size > 100
    assert P.rpa(errors, tolerance) >= 0.99, row


# --- band limit and edges -----------------------------------------------------------------
def spectrum_above(audio: np.ndarray, sr: int, limit: float = cs.BAND_LIMIT_HZ):
    """(peak PSD above `limit`, energy above `limit`), both in dB re the whole spectrum."""
    f, psd = scipy.signal.welch(audio.astype(np.float64), sr, window="blackmanharris", nperseg=8192)
    above = f > limit
    return 10 * np.log10(psd[above].max() / psd.max()), 10 * np.log10(psd[above].sum() / psd.sum())


@pytest.mark.parametrize("sr", [16_000, 44_100, 48_000])
def test_nothing_above_the_band_limit(sr):
    glide = K.glide(sr)
    tones = {
        "sawtooth glide C2-C6": cs.render_contour(glide, sr, cs.waveform_gains("sawtooth", 160)),
        "stretched vibrato at 900 Hz": timbre("stretched", K.vibrato(sr, 900.0)).render(K.vibrato(sr, 900.0), sr),
        "square trill at 700 Hz": cs.render_contour(K.trill(sr, 700.0), sr, cs.waveform_gains("square", 12)),
        "sawtooth with gaps": cs.render_contour(K.gappy(sr), sr, cs.waveform_gains("sawtooth", 40)),
    }
    for name, audio in tones.items():
        peak_db, energy_db = spectrum_above(audio, sr)
        print(f"{sr} Hz {name:28s} above 7,600 Hz: peak {peak_db:7.1f} dB, energy {energy_db:7.1f} dB")
        assert peak_db < -60 and energy_db < -60, name


def test_silent_where_unvoiced_and_no_clicks_at_the_edges():
    f0 = K.gappy(SR)
    audio = cs.render_contour(f0, SR, cs.waveform_gains("sawtooth", 40)).astype(np.float64)
    voiced = cs.clean_f0(f0) > 0
    assert np.all(audio[~voiced] == 0)
    edges = np.flatnonzero(np.diff(voiced.astype(int))) + 1
    step = np.abs(np.diff(audio))
    near = np.zeros(step.size, dtype=bool)
    for edge in edges:
        near[max(edge - 441, 0): edge + 441] = True
    assert step[near].max() <= step[~near & voiced[1:]].max()       # no jump bigger than the tone's own


# --- speed --------------------------------------------------------------------------------
def best_ms_per_second(render, seconds: float, tries: int = 3) -> float:
    spent = []
    for _ in range(tries):
        start = time.perf_counter()
        render()
        spent.append(time.perf_counter() - start)
    return 1000 * min(spent) / seconds


def test_speed_is_printed():
    f0 = K.steady(SR, 200.0, 2.0)
    varying = np.tile(cs.waveform_gains("sawtooth", 38)[:, None], (1, 1000))
    runs = {
        "sine 200 Hz": lambda: cs.render_contour(f0, SR, [1.0]),
        "sawtooth 200 Hz (38 partials)": lambda: cs.render_contour(f0, SR, cs.waveform_gains("sawtooth", 38)),
        "sawtooth 200 Hz, gains varying every 2 ms": lambda: cs.render_contour(f0, SR, varying, gain_hop=88),
        "stretched 200 Hz (38 partials, B=2e-4)": lambda: cs.render_contour(
            f0, SR, cs.waveform_gains("sawtooth", 38), inharmonicity=2e-4),
        "sawtooth 50 Hz (153 partials)": lambda: cs.render_contour(
            K.steady(SR, 50.0, 2.0), SR, cs.waveform_gains("sawtooth", 153)),
        "sawtooth glide C2-C6": lambda: cs.render_contour(K.glide(SR), SR, cs.waveform_gains("sawtooth", 160)),
    }
    for name, run in runs.items():
        seconds = 4.0 if "glide" in name else 2.0
        print(f"render_contour {name:42s} {best_ms_per_second(run, seconds):6.1f} ms per second of 44.1 kHz audio")
