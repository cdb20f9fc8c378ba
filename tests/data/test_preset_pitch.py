"""The preset's own pitch modulation (vibrato LFO, modulation LFO, modulation envelope) is
switched off: the generators read back zero, and a held note's measured f0 stops wobbling."""

import numpy as np
import pytest

from pipeline.data import fluid as F
from pipeline.data.phrase_midi import Event, bend_step_cents
from pipeline.data.phrase_rendering import PITCH_GENERATORS
from pipeline.dsp.frame_pitch import yin
from tests.data.phrase_measure import to_16k

KEY = 67
# (font, program, what the preset carries) - measured wobble without -> with the control, cents p95-p5
PRESETS = [("timgm", 40, "Violin: modLfoToPitch 10"),            # 16.5 -> 0.0
           ("fluidr3", 51, "Synth Strings 2: vibLfoToPitch -15"),  # 26.2 -> 1.4
           ("fluidr3", 111, "Shenai: modLfoToPitch 5"),          # 8.2 -> 0.1
           ("musescore", 63, "Synth Brass 2: vibLfoToPitch 10")]   # 16.9 -> 0.5


def held(program, seconds=3.0):
    n = int(seconds * 44100 / 64)
    return [Event(0, "program", value=program), Event(0, "bend_range", value=2),
            Event(0, "bend", value=8192 + round(0.5 / bend_step_cents(2))), Event(0, "note_on", KEY, 100),
            Event(n - 60, "note_off", KEY, release_s=0.05)], n


def wobble(audio) -> float:
    """p95 - p5 of the measured f0 (cents) over the held part, 0.5-2.7 s."""
    t = np.arange(50, 270) * 0.01
    cents = 1200 * np.log2(yin(to_16k(audio), t).f0_hz / 440)
    return float(np.nanpercentile(cents, 95) - np.nanpercentile(cents, 5))


@pytest.mark.parametrize("font,program,what", PRESETS)
def test_preset_vibrato_is_gone(renderers, font, program, what):
    r = renderers(font)
    events, n = held(program)
    kept = wobble(r.render_events(events, n, preset_pitch=True))
    removed = wobble(r.render_events(events, n, preset_pitch=False))
    print(f"\n{font} {program} {what}: held-note wobble {kept:.1f} cents with the preset's modulation, "
          f"{removed:.1f} without")
    assert removed < 2.0
    assert kept > 3 * removed + 4.0


def test_the_voices_pitch_generators_read_back_zero(renderers):
    r = renderers("timgm")
    lib = r.lib
    seen = []
    original = r.note_on

    def spy(synth, e):
        original(synth, e)
        seen.append([(lib.gen_get(v, g), g) for v in lib.playing_voices(synth) for g in PITCH_GENERATORS])

    r.note_on = spy
    try:
        events, n = held(40, 0.5)
        r.render_events(events, n)
    finally:
        r.note_on = original
    # the spy runs before the renderer's control: the preset's own value is there ...
    assert any(v != 0 for v, g in seen[0] if g == F.GEN_MODLFOTOPITCH)
    # ... and after the control the voices read zero
    synth = lib.new_synth(r.keeper.settings)
    try:
        sfid = lib.add_sfont(synth, r.sfont)
        for e in events[:4]:
            r.apply(synth, sfid, e, preset_pitch=False)
        values = [lib.gen_get(v, g) for v in lib.playing_voices(synth) for g in PITCH_GENERATORS]
        assert values and all(v == 0 for v in values)
        assert all(lib.gen_get(v, F.GEN_VIBLFODELAY) == 5000 for v in lib.playing_voices(synth))
    finally:
        lib.remove_sfont(synth, r.sfont)
        lib.delete_synth(synth)
