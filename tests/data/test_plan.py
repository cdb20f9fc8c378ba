"""The plan: sources and their skipped presets, draws that stay put, shards, and the data config's checks."""

import shutil
import struct

import pytest

from pipeline.core import constants as C
from pipeline.core.config import TONE_KINDS, load_config
from pipeline.core.errors import PipelineError
from pipeline.data import tones
from pipeline.data.plan import make_plan, plan_notes, plan_shards
from pipeline.data.splits import check_splits
from tests.conftest import TEST_SOUNDFONT, tiny_config


def without_preset(tmp_path, program: int, name: str = "NoViolin.sf2") -> str:
    """TimGM6mb with the bank-0 preset of `program` moved to bank 1: a font without that instrument."""
    data = bytearray(open(TEST_SOUNDFONT, "rb").read())
    start = data.index(b"phdr") + 8
    length = struct.unpack_from("<I", data, start - 4)[0]
    for offset in range(start, start + length - 38, 38):
        preset, bank = struct.unpack_from("<HH", data, offset + 20)
        if (preset, bank) == (program, 0):
            struct.pack_into("<H", data, offset + 22, 1)
    path = tmp_path / name
    path.write_bytes(bytes(data))
    return str(path)


def test_the_instrument_a_font_lacks_is_skipped_there_and_counted(tmp_path):
    patched = without_preset(tmp_path, 40)
    cfg = tiny_config(tmp_path, f'data.soundfonts=["{TEST_SOUNDFONT}", "{patched}"]',
                      'data.instruments=["Violin", "Flute"]', "data.note_low=60", "data.note_high=62")
    plan = make_plan(cfg)
    assert plan.skipped_presets == {"TimGM6mb.sf2": [], "NoViolin.sf2": ["Violin"]}
    by_source = {(n.source, n.instrument.slug) for n in plan.notes}
    assert by_source == {("TimGM6mb.sf2", "violin"), ("TimGM6mb.sf2", "flute"), ("NoViolin.sf2", "flute")}
    alone = tiny_config(tmp_path, f'data.soundfonts=["{patched}"]', 'data.instruments=["Violin", "Flute"]')
    with pytest.raises(PipelineError, match="no soundfont of data.soundfonts has a preset for Violin"):
        make_plan(alone)


def test_a_build_with_a_font_missing_a_preset_renders_the_rest(tmp_path):
    from pipeline.data.dataset import build_dataset

    patched = without_preset(tmp_path, 40)
    cfg = tiny_config(tmp_path, f'data.soundfonts=["{TEST_SOUNDFONT}", "{patched}"]',
                      'data.instruments=["Violin", "Flute"]', "data.note_low=69", "data.note_high=70",
                      'split.test="random"', "split.test_share=0")
    manifest = build_dataset(cfg)
    assert set(zip(manifest["source"], manifest["instrument"])) == {
        ("TimGM6mb.sf2", "violin"), ("TimGM6mb.sf2", "flute"), ("NoViolin.sf2", "flute")}
    info = (cfg.data_dir / "dataset.json").read_text()
    assert '"NoViolin.sf2": [\n      "Violin"\n    ]' in info


def test_adding_a_source_an_instrument_or_a_velocity_changes_no_other_note(tmp_path):
    font = tmp_path / "Other.sf2"
    shutil.copy(TEST_SOUNDFONT, font)
    base = ('data.instruments=["Violin"]', "data.note_low=60", "data.note_high=65", "augment.share=0.7",
            "augment.fluid_reverb_share=0.5", f"data.segments={list(C.SEGMENTS)}".replace("'", '"'))
    small = plan_notes(tiny_config(tmp_path, *base))
    grown = plan_notes(tiny_config(tmp_path, *base[1:], 'data.instruments=["Flute", "Violin"]',
                                   "data.velocities=[100, 40]", f'data.soundfonts=["{font}", "{TEST_SOUNDFONT}"]',
                                   "tones.enabled=true"))
    assert set(small) < set(grown) and len(grown) == 2 * 2 * 2 * 6 + len(TONE_KINDS) * 6
    assert {n.source for n in grown} == {"Other.sf2", "TimGM6mb.sf2", C.SYNTHETIC_SOURCE}
    assert any(n.reverb for n in small) and any(n.augment.label() != "none" for n in small)


def test_each_kind_of_draw_keeps_its_values_when_another_setting_changes(tmp_path):
    base = ('data.instruments=["Violin"]', "data.note_low=40", "data.note_high=70", "tones.enabled=true",
            'data.segments=["attack", "onset", "release"]')
    plain = plan_notes(tiny_config(tmp_path, *base))
    augmented = plan_notes(tiny_config(tmp_path, *base, "augment.share=1", "augment.fluid_reverb_share=1"))
    detuned = plan_notes(tiny_config(tmp_path, *base, "data.detune_share=1", "augment.share=1"))
    assert [(n.bend, n.onset_lead_ms, n.release_at, n.tone) for n in plain] == \
        [(n.bend, n.onset_lead_ms, n.release_at, n.tone) for n in augmented]
    assert all(n.augment.label() == "none" and n.reverb is None for n in plain)
    assert all(n.augment != a.augment for n, a in zip(augmented, plain) if n.augment.label() != "none")
    assert [n.augment for n in detuned] == [n.augment for n in augmented]  # the detune share moved no effect
    assert sum(a.bend != 0 for a in detuned) > sum(a.bend != 0 for a in plain)
    assert all(n.reverb is None for n in augmented if n.source == C.SYNTHETIC_SOURCE)
    assert all(20 <= n.onset_lead_ms <= 250 and 0.3 <= n.release_at <= 0.9 for n in plain)


def test_tones_respect_their_limits_and_label_the_note(tmp_path):
    cfg = tiny_config(tmp_path, "data.soundfonts=[]", "tones.enabled=true", "data.note_low=96",
                      "data.note_high=108", "tones.variants=2")
    notes = plan_notes(cfg)
    assert all(n.tone.f0 == n.frequency and n.velocity == 0 and n.program == -1 for n in notes)
    kinds = {n.tone.kind for n in notes}
    assert kinds == set(TONE_KINDS)
    assert all(3 * n.frequency < tones.MAX_BAND_LIMIT_HZ for n in notes if n.tone.kind == "missing_fundamental")
    assert sum(n.tone.kind == "missing_fundamental" for n in notes) < sum(n.tone.kind == "sine" for n in notes)
    assert notes[0].clip_name("sustain").endswith("_sustain_t0.wav") and {n.variant for n in notes} == {0, 1}


def test_shards_never_span_two_sources_instruments_or_velocities(tmp_path):
    font = tmp_path / "Other.sf2"
    shutil.copy(TEST_SOUNDFONT, font)
    cfg = tiny_config(tmp_path, f'data.soundfonts=["{TEST_SOUNDFONT}", "{font}"]', "data.velocities=[100, 50]",
                      "tones.enabled=true", "data.shard_size=7")
    plan = make_plan(cfg)
    shards = plan_shards(cfg, list(plan.notes), list(plan.fonts))
    for shard in shards:
        runs = {(n.source, n.program, n.tone.kind if n.tone else "", n.velocity) for n in shard.notes}
        assert len(runs) == 1 and len(shard.notes) <= 7
        assert shard.soundfont.endswith(shard.source) or shard.source == C.SYNTHETIC_SOURCE
    assert sum(len(s.notes) for s in shards) == len(plan.notes)
    assert len({s.key for s in shards}) == len(shards)
    assert [s.key for s in plan_shards(cfg, list(plan.notes))] == [s.key for s in shards]


# --- the data config's checks ---------------------------------------------------------------------
def test_instruments_may_be_program_numbers_and_are_listed_once(tmp_path):
    cfg = load_config(None, ["data.instruments=[40, 73, \"Trumpet\"]", "split.test_instruments=[73]"])
    assert cfg.data.instruments == ("40", "73", "Trumpet") and cfg.split.test_instruments == ("73",)
    for override, message in [("data.instruments=[40, 40]", "lists '40' twice"),
                              ('data.instruments=["Violin", "violin"]', "lists 'violin' twice"),
                              ("data.velocities=[100, 60, 100]", "lists 100 twice"),
                              ('data.soundfonts=["a.sf2", "a.sf2"]', "lists 'a.sf2' twice"),
                              ('split.test_sources=["x.sf2", "x.sf2"]', "lists 'x.sf2' twice"),
                              ("data.onset_lead_ms=[250, 20]", "must be a range"),
                              ("augment.snr_db=[0]", "must be a range"),
                              ("augment.reverb=true", "augment.reverb was removed; use augment.fluid_reverb_share"),
                              ('augment.noise_kinds=["pink", "violet"]', "has value 'violet'"),
                              ('tones.kinds=["sine", "noise"]', "has value 'noise'"),
                              ("augment.noise_weights=[1, 2]", "one weight per augment.noise_kinds entry"),
                              ("data.soundfonts=[]", "nothing to render")]:
        with pytest.raises(PipelineError, match=message):
            load_config(None, [override])
    same = tiny_config(tmp_path, 'data.instruments=["Violin", 40]')
    with pytest.raises(PipelineError, match="names Violin twice"):
        make_plan(same)


def test_the_older_single_soundfont_key_still_reads(tmp_path):
    cfg = load_config(None, ["data.soundfont=soundfonts/TimGM6mb.sf2"])
    assert cfg.data.soundfonts == ("soundfonts/TimGM6mb.sf2",) and cfg.data.soundfont == "soundfonts/TimGM6mb.sf2"
    later = load_config(None, ["data.soundfont=a.sf2", 'data.soundfonts=["b.sf2", "c.sf2"]'])
    assert later.data.soundfonts == ("b.sf2", "c.sf2")
    both = tmp_path / "both.toml"
    both.write_text('[data]\nsoundfont = "a.sf2"\nsoundfonts = ["b.sf2"]\n')
    with pytest.raises(PipelineError, match="both data.soundfont and data.soundfonts"):
        load_config(both)


def test_held_out_sources_and_instruments_must_exist(tmp_path):
    cfg = tiny_config(tmp_path, 'split.test_sources=["Nope.sf2"]')
    with pytest.raises(PipelineError, match="split.test_sources lists 'Nope.sf2'"):
        check_splits(cfg, ["TimGM6mb.sf2"], {"violin", "flute"})
    with pytest.raises(PipelineError, match="holds out every source"):
        check_splits(tiny_config(tmp_path, 'split.test_sources=["TimGM6mb.sf2"]'), ["TimGM6mb.sf2"], {"violin"})
    with pytest.raises(PipelineError, match="set tones.enabled = true"):
        check_splits(tiny_config(tmp_path, 'split.test_sources=["synthetic"]'), ["TimGM6mb.sf2"], {"violin"})
    kinds = tiny_config(tmp_path, 'split.test_instruments=["sawtooth"]')
    check_splits(kinds, ["TimGM6mb.sf2", "synthetic"], {"violin", "sawtooth"})  # a tone kind is an instrument
    with pytest.raises(PipelineError, match="'sawtooth', which is not in data.instruments"):
        check_splits(kinds, ["TimGM6mb.sf2"], {"violin"})


def test_the_clip_settings_change_exactly_the_shard_keys_they_shape(tmp_path):
    """Notes: a shard's key changes with the clips' rate, length and container. Phrases: with the rate
    and container, never with clip_seconds (a phrase keeps its own length)."""
    from pipeline.data.phrase_plan import plan_phrase_shards, plan_phrases

    def keys(*overrides):
        cfg = tiny_config(tmp_path, "phrases.enabled=true", "phrases.per_instrument=1", "phrases.voices=1",
                          "data.hold_seconds=2.5", "data.release_seconds=2.0", *overrides)
        plan = make_plan(cfg)
        return ([t.key for t in plan_shards(cfg, list(plan.notes), list(plan.fonts))],
                [t.key for t in plan_phrase_shards(cfg, plan_phrases(cfg, plan.fonts), plan.fonts)])

    notes, phrases = keys()
    for overrides, phrases_change in [(["data.sample_rate=44100"], True), (['data.file_format="flac"'], True),
                                      (['data.sample_format="int24"'], True), (["data.clip_seconds=2.0"], False)]:
        other_notes, other_phrases = keys(*overrides)
        assert len(other_notes) == len(notes) and not set(other_notes) & set(notes), overrides
        assert (other_phrases != phrases) == phrases_change and len(other_phrases) == len(phrases), overrides
    assert keys() == (notes, phrases)
