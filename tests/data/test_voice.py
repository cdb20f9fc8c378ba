"""voice: f0 measured from the audio follows the label; jitter, band limit, unvoiced, speed."""

import dataclasses
import functools
import json
import time

import numpy as np
import parselmouth
import pytest
import scipy.signal

from pipeline.data import contour_synth as cs
from pipeline.data import voice as V
from pipeline.data import voice_contours as VC
from pipeline.dsp.detmath import exp2, sin_turns, smoothstep
from tests.data import pitch_probe as P

SR = 44_100
SECONDS = 4.0
DRAWS = {"speech": VC.draw_speech_contour, "sung": VC.draw_sung_line}
SEEDS = (0, 1, 2)


@functools.cache
def phrase(register: str, kind: str, seed: int, sr: int = SR):
    """(spec, contour, audio) for one drawn voice and phrase."""
    rng = np.random.default_rng([seed, V.REGISTERS.index(register), list(DRAWS).index(kind)])
    spec = V.draw_voice(rng, register)
    contour = DRAWS[kind](rng, SECONDS, sr, register)
    return spec, contour, V.render_voice(spec, contour.f0_hz, sr, seed, contour.segments)


def accuracy_row(name: str, f0: np.ndarray, audio: np.ndarray, sr: int = SR):
    """(cents errors on clean frames, a printable row)."""
    at = np.arange(0.02, f0.size / sr - 0.02, 0.01)
    clean = P.clean_frames(f0, sr, at, P.WINDOW_S[1])
    estimate, windows, _ = P.estimate(audio, sr, at[clean], 50.0, 1200.0)
    errors = P.cents(estimate, P.window_label(f0, sr, at[clean], windows))
    voiced = f0[f0 > 0]
    row = (f"{name:28s} f0 {voiced.min():5.0f}-{voiced.max():5.0f} Hz frames={errors.size:4d} "
           f"RPA5={P.rpa(errors, 5):.4f} RPA10={P.rpa(errors, 10):.4f} "
           f"p99={np.nanpercentile(np.abs(errors), 99):5.2f} max={np.nanmax(np.abs(errors)):6.2f} cents")
    return errors, row


# --- f0 measured from the audio -----------------------------------------------------------
@pytest.mark.parametrize("kind", list(DRAWS))
@pytest.mark.parametrize("register", ["male", "female", "soprano"])
def test_measured_f0_follows_the_label(register, kind):
    rows, errors = [], []
    for seed in SEEDS:
        spec, contour, audio = phrase(register, kind, seed)
        e, row = accuracy_row(f"{register} {kind} seed {seed}", contour.f0_hz, audio)
        rows.append(row)
        errors.append(e)
    errors = np.concatenate(errors)
    print("\n" + "\n".join(rows))
    print(f"{register} {kind} all: frames={errors.size} RPA5={P.rpa(errors, 5):.4f} RPA10={P.rpa(errors, 10):.4f}")
    assert errors.size > 300 and P.rpa(errors, 10) >= 0.99


def notes_with_vibrato(hz_list, note_s=0.7, glide_s=0.12, cents=50.0, rate=5.5, sr=SR) -> np.ndarray:
    """Legato notes (smoothstep glides between them) with a ±`cents` vibrato, a pause each end."""
    t = np.arange(round((len(hz_list) * note_s + 0.2) * sr)) / sr
    pitch = np.full(t.size, 1200 * np.log2(hz_list[0] / 440))
    for i in range(1, len(hz_list)):
        boundary = 0.1 + i * note_s
        step = 1200 * np.log2(hz_list[i] / hz_list[i - 1])
        pitch += step * smoothstep((t - boundary + glide_s / 2) / glide_s)
    f0 = 440 * exp2((pitch + cents * sin_turns(rate * t)) / 1200)
    f0[(t < 0.1) | (t > t[-1] - 0.1)] = 0.0
    return f0


@pytest.mark.parametrize("register, hz", [("soprano", [660, 784, 880, 988, 1046]),
                                          ("male", [98, 82, 73, 65, 62]),
                                          ("female", [196, 262, 330, 392, 523])])
def test_measured_f0_at_the_ends_of_the_range(register, hz):
    spec = V.draw_voice(np.random.default_rng(5), register)
    f0 = notes_with_vibrato(hz)
    assert f0.max() <= V.F0_RANGE_HZ[1] and f0[f0 > 0].min() >= V.F0_RANGE_HZ[0]
    errors, row = accuracy_row(f"{register} notes {hz[0]}-{hz[-1]} Hz", f0, V.render_voice(spec, f0, SR, 5))
    print("\n" + row)
    assert P.rpa(errors, 10) >= 0.99


# --- what the label is --------------------------------------------------------------------
@pytest.mark.parametrize("register", ["male", "female", "soprano"])
def test_jitter_is_zero_mean_and_small_per_10ms_frame(register):
    """Exact, from the rendered phase: the mean f0 of each 10 ms frame vs the label's mean."""
    deviations, bound = [], 0.0
    for seed in SEEDS:
        spec, contour, _ = phrase(register, "speech", seed)
        phase, _, _ = V.glottal_cycles(spec, contour.f0_hz, SR, seed)
        label = cs.phase_turns(contour.f0_hz, SR)
        assert np.max(np.abs(phase - label)) <= 1.5 * spec.jitter_percent / 100 + 1e-12   # no drift
        edges = np.arange(0, contour.f0_hz.size - 441, 441)
        voiced = np.array([np.all(contour.f0_hz[a:a + 442] > 0) for a in edges])
        a, b = edges[voiced], edges[voiced] + 441
        deviations.append(1200 * np.log2((phase[b] - phase[a]) / (label[b] - label[a])))
        bound = max(bound, 1200 * np.log2(1 + 3 * spec.jitter_percent / 100))
    d = np.abs(np.concatenate(deviations))
    print(f"\n{register}: rendered vs label mean f0 per 10 ms frame: median {np.median(d):.2f}, "
          f"p99 {np.percentile(d, 99):.2f}, max {d.max():.2f} cents (bound {bound:.2f})")
    assert d.max() <= bound


def test_frame_labels_every_10ms():
    _, contour, _ = phrase("female", "speech", 0)
    labels = VC.frame_labels(contour.f0_hz, SR)
    assert labels.size == int(np.ceil(SECONDS / 0.01))
    assert np.array_equal(labels, contour.f0_hz[np.round(np.arange(labels.size) * 441.0).astype(int)])
    assert (labels == 0).any() and (labels > 0).mean() > 0.5
    means = VC.frame_labels(contour.f0_hz, SR, window_s=0.03)
    for k in range(0, means.size, 7):
        part = contour.f0_hz[max(k * 441 - 662, 0): k * 441 + 663]
        assert means[k] == 0 if np.any(part == 0) else abs(means[k] - 1 / np.mean(1 / part)) < 1e-9 * means[k]


# --- band limit, unvoiced stretches, edges ------------------------------------------------
@pytest.mark.parametrize("sr", [16_000, 44_100])
def test_nothing_above_the_band_limit(sr):
    spec = dataclasses.replace(V.draw_voice(np.random.default_rng(3), "soprano"), breath_db=-20.0, consonant_db=-6.0)
    sung = VC.draw_sung_line(np.random.default_rng(3), SECONDS, sr, "soprano")
    renders = {"noisy soprano sung line": V.render_voice(spec, sung.f0_hz, sr, 1, sung.segments),
               "soprano notes to 1,046 Hz": V.render_voice(spec, notes_with_vibrato([660, 880, 1046], sr=sr), sr, 1),
               "male speech": phrase("male", "speech", 0, sr)[2]}
    for name, audio in renders.items():
        f, psd = scipy.signal.welch(audio.astype(np.float64), sr, window="blackmanharris", nperseg=4096)
        above = f > cs.BAND_LIMIT_HZ
        peak_db = 10 * np.log10(psd[above].max() / psd.max())
        energy_db = 10 * np.log10(psd[above].sum() / psd.sum())
        print(f"{sr} Hz {name:26s} above 7,600 Hz: peak {peak_db:7.1f} dB, energy {energy_db:7.1f} dB")
        assert peak_db < -60 and energy_db < -60


def test_unvoiced_stretches_have_no_periodic_energy():
    """Frames whose window, widened by 20 ms each side, is unvoiced and not silent (> -50 dB)."""
    unvoiced, voiced, praat_voiced = [], [], []
    for register in ("male", "female", "soprano"):
        for kind in DRAWS:
            for seed in SEEDS[:2]:
                _, contour, audio = phrase(register, kind, seed)
                at = np.arange(0.02, SECONDS - 0.02, 0.01)
                quiet = P.unvoiced_frames(contour.f0_hz, SR, at, 0.03)
                peaks, levels = P.periodicity(audio, SR, at[quiet], 0.03)
                unvoiced.append(peaks[levels > -50])
                voiced.append(P.periodicity(audio, SR, at[P.clean_frames(contour.f0_hz, SR, at, 0.03)], 0.03)[0])
                pitch = parselmouth.Sound(P.to_16k(audio, SR), P.RATE).to_pitch_ac(
                    time_step=0.01, pitch_floor=50.0, pitch_ceiling=1100.0)
                praat_voiced += [np.isfinite(pitch.get_value_at_time(t)) for t in at[quiet][levels > -50]]
    unvoiced, voiced = np.concatenate(unvoiced), np.concatenate(voiced)
    print(f"\nunvoiced frames with sound: {unvoiced.size}, autocorrelation peak median {np.median(unvoiced):.2f}, "
          f"p95 {np.percentile(unvoiced, 95):.2f}, max {unvoiced.max():.2f}; Praat finds a pitch in "
          f"{np.mean(praat_voiced):.1%}. Clean voiced frames: median {np.median(voiced):.3f}, "
          f"p5 {np.percentile(voiced, 5):.3f}")
    assert unvoiced.size > 100
    assert np.median(unvoiced) < 0.35 and np.percentile(unvoiced, 95) < 0.6 and np.mean(praat_voiced) <= 0.02
    assert np.median(voiced) > 0.95


def test_silence_and_no_clicks_at_voicing_edges():
    spec, contour, _ = phrase("female", "speech", 1)
    quiet = dataclasses.replace(spec, breath_db=-200.0, consonant_db=-200.0)
    audio = V.render_voice(quiet, contour.f0_hz, SR, 1, contour.segments).astype(np.float64)
    voiced = contour.f0_hz > 0
    assert np.max(np.abs(audio[~voiced])) < 1e-6
    edges = np.flatnonzero(np.diff(voiced.astype(int))) + 1
    near = np.zeros(audio.size - 1, dtype=bool)
    for edge in edges:
        near[max(edge - 441, 0): edge + 441] = True
    step = np.abs(np.diff(audio))
    assert step[near].max() <= step[~near & voiced[1:]].max()


# --- what is drawn ------------------------------------------------------------------------
def test_voice_specs_are_seeded_short_and_json_able():
    for register in V.REGISTERS:
        spec = V.draw_voice(np.random.default_rng(11), register)
        assert spec == V.draw_voice(np.random.default_rng(11), register)
        assert spec != V.draw_voice(np.random.default_rng(12), register)
        assert V.VoiceSpec(**json.loads(json.dumps(dataclasses.asdict(spec)))) == spec
        assert len(repr(spec)) < 320 and "np." not in repr(spec)
    with pytest.raises(ValueError):
        V.draw_voice(np.random.default_rng(0), "tenor")
    with pytest.raises(ValueError):
        V.render_voice(spec, np.full(1000, 1500.0), SR, 0)


@pytest.mark.parametrize("kind", list(DRAWS))
def test_contours_are_in_range_and_segmented(kind):
    slopes = []
    for register in V.REGISTERS:
        for seed in range(6):
            contour = DRAWS[kind](np.random.default_rng(seed), SECONDS, SR, register)
            f0, segments = contour.f0_hz, contour.segments
            assert segments[0].start == 0 and segments[-1].stop == f0.size
            assert all(a.stop == b.start for a, b in zip(segments, segments[1:]))
            mask = np.zeros(f0.size, dtype=bool)
            for s in segments:
                mask[s.start:s.stop] = s.kind == "voiced"
                assert s.kind != "voiced" or s.phone in VC.VOWELS
                assert s.kind != "consonant" or s.phone in VC.CONSONANTS
            assert np.array_equal(mask, f0 > 0)
            low, high = (VC.SPEECH_RANGE_HZ if kind == "speech" else VC.SUNG_RANGE_HZ)[register]
            assert low - 1e-9 <= f0[mask].min() and f0.max() <= high + 1e-9
            runs = VC.stretches(segments)
            if kind == "speech":
                assert all(0.08 * SR - 1 <= b - a <= 0.4 * SR + 1 for a, b in runs)
            step = np.abs(np.diff(1200 * np.log2(np.where(mask, f0, 1.0)))) * SR      # cents/s
            inside = mask[1:] & mask[:-1]
            slopes.append(np.max(step[inside]) if inside.any() else 0.0)
    print(f"\n{kind}: steepest f0 slope {max(slopes) / 100:.0f} semitones/s")
    assert max(slopes) / 100 < 80


def test_same_spec_and_seed_same_bytes():
    spec, contour, audio = phrase("male", "sung", 0)
    again = V.render_voice(spec, contour.f0_hz, SR, 0, contour.segments)
    assert audio.dtype == np.float32 and audio.tobytes() == again.tobytes()
    assert audio.tobytes() != V.render_voice(spec, contour.f0_hz, SR, 1, contour.segments).tobytes()
    bare = V.render_voice(spec, contour.f0_hz, SR, 0)            # vowels and consonants drawn from the seed
    assert bare.tobytes() == V.render_voice(spec, contour.f0_hz, SR, 0).tobytes()


# --- speed --------------------------------------------------------------------------------
def test_speed_is_printed():
    for register, kind in [("male", "speech"), ("female", "speech"), ("soprano", "sung"), ("male", "sung")]:
        spec, contour, _ = phrase(register, kind, 0)
        spent = []
        for _ in range(3):
            start = time.perf_counter()
            V.render_voice(spec, contour.f0_hz, SR, 0, contour.segments)
            spent.append(time.perf_counter() - start)
        print(f"render_voice {register:8s} {kind:7s} {1000 * min(spent) / SECONDS:6.1f} ms per second of 44.1 kHz")
