"""Phrases in the workers: render, resample, label, audit, augment and write one shard's phrases.

Each phrase is rendered at 44.1 kHz with its exact curve (FluidSynth: per block, the preset's own
pitch modulation switched off; synthetic tones and the voice: per sample), mixed to mono and
resampled to 16 kHz on its own (so its samples depend on no other phrase), labelled every 10 ms
and audited on the clean audio (pipeline/data/phrase_labels.py), then sent through its drawn
room, microphone, noise and codec chain and written, peak-normalised to -1 dBFS, as a 16 kHz mono
16-bit WAV with its frame table (NAME.frames.csv) and exact curve (NAME.curve.npy) beside it.
"""

from __future__ import annotations

import numpy as np

from pipeline.core import constants as C
from pipeline.core.artifacts import sha256_bytes
from pipeline.core.errors import PipelineError
from pipeline.data import augmentation, phrase_labels, voice, voice_contours
from pipeline.data import postprocessing as post
from pipeline.data.augmentation import AugmentSpec
from pipeline.data.clips import clip_bytes, write_clip
from pipeline.data.contours import pitch_curve_samples
from pipeline.data.phrase_plan import PhraseItem, PhraseShardTask, tone_timbre
from pipeline.data.phrase_rendering import EDGE_GUARD_S, PhraseRenderer, clean_frames, frame_times
from pipeline.data.rendering import soundfont_stat

FRAMES_SUFFIX = ".frames.csv"
CURVE_SUFFIX = ".curve.npy"
TONE_RELEASE_S = 0.12              # a synthetic tone's note fades out over this after its note-off
TONE_ATTACK_S = 0.02
FADE_TURNS = 1.0 / (2 * np.pi)

_RENDERERS: dict[str, PhraseRenderer] = {}


def companion(relpath: str, suffix: str) -> str:
    """phrases/x/y/NAME.wav (or .flac) -> phrases/x/y/NAME.frames.csv (or .curve.npy)."""
    return relpath.rsplit(".", 1)[0] + suffix


# --- one phrase at 44.1 kHz, with its exact curve ----------------------------------------------
class Rendered:
    """Mono float32 audio at 44.1 kHz; its curve in MIDI cents per sample (NaN: no pitch); the
    frame times, voicing and clean frames of its 10 ms table; its timbre's name."""

    def __init__(self, audio, curve_cents, voiced, clean, timbre):
        self.audio, self.curve_cents, self.voiced, self.clean, self.timbre = audio, curve_cents, voiced, clean, timbre
        self.times = frame_times(len(audio))


def _renderer(task: PhraseShardTask) -> PhraseRenderer:
    if task.soundfont not in _RENDERERS:
        same_file = not task.on_cluster and soundfont_stat(task.soundfont) == tuple(task.soundfont_stat)
        renderer = PhraseRenderer(task.soundfont, task.settings.gain, effects=task.settings.effects)
        if not same_file:
            from pipeline.data.rendering import soundfont_info

            if soundfont_info(task.soundfont)["sha256"] != task.soundfont_sha256:
                renderer.close()
                raise PipelineError(f"soundfont {task.soundfont} on this worker is not the planned file "
                                    "(another sha256); give every worker the same file")
        _RENDERERS[task.soundfont] = renderer
    return _RENDERERS[task.soundfont]


def render_soundfont(task: PhraseShardTask, item: PhraseItem) -> Rendered:
    renderer = _renderer(task)
    out = renderer.render(item.melody, item.program, reverb=item.reverb)
    curve = np.repeat(out.label.block_cents, len(out.audio) // len(out.label.block_cents))
    return Rendered(out.audio, curve, out.label.voiced, out.label.clean, renderer.preset_name(item.program) or "")


def render_tone(item: PhraseItem) -> Rendered:
    """A synthetic tone along the melody's curve: partial 1 at exactly the curve, each note with
    a short attack and release, silence between."""
    cents = pitch_curve_samples(item.melody, C.RENDER_RATE)
    t = np.arange(len(cents)) / C.RENDER_RATE
    sounding = np.zeros(len(cents), dtype=bool)
    for note in item.melody.notes:
        sounding |= (t >= note.start) & (t < note.end + TONE_RELEASE_S)
    f0 = np.where(sounding & np.isfinite(cents), phrase_labels.cents_to_hz(np.nan_to_num(cents)), 0.0)
    timbre = tone_timbre(item)
    audio = timbre.render(f0, C.RENDER_RATE)
    name = f"{timbre.kind} B={timbre.inharmonicity:.3g}" if timbre.inharmonicity else timbre.kind
    return _synthetic(audio, f0, name, [n.start for n in item.melody.notes])


def render_voice(item: PhraseItem) -> Rendered:
    rng = np.random.default_rng(item.contour_seed)
    draw = voice_contours.draw_speech_contour if item.style == "speech" else voice_contours.draw_sung_line
    contour = draw(rng, item.seconds, C.RENDER_RATE, item.voice.register)
    audio = voice.render_voice(item.voice, contour.f0_hz, C.RENDER_RATE, item.render_seed, contour.segments)
    onsets = [s.start / C.RENDER_RATE for s in contour.segments if s.kind == "voiced"]
    spec = item.voice
    timbre = f"{spec.register} voice (open quotient {spec.open_quotient}, tilt {spec.tilt_db_per_octave} dB/oct)"
    return _synthetic(audio, contour.f0_hz, timbre, onsets)


def _synthetic(audio: np.ndarray, f0_hz: np.ndarray, timbre: str, onsets) -> Rendered:
    times = frame_times(len(audio))
    voiced = phrase_labels.synthetic_voicing(audio, f0_hz, times)
    clean = clean_frames(voiced, times, np.asarray(onsets, dtype=np.float64), EDGE_GUARD_S)
    return Rendered(np.asarray(audio, dtype=np.float32), phrase_labels.hz_to_cents(f0_hz), voiced, clean, timbre)


def render_item(task: PhraseShardTask, item: PhraseItem) -> Rendered:
    if item.kind == "soundfont":
        return render_soundfont(task, item)
    return render_tone(item) if item.kind == "tone" else render_voice(item)


# --- one shard ---------------------------------------------------------------------------------
def render_phrase_shard(task: PhraseShardTask) -> list[dict]:
    """Render, label, audit, augment and write one shard's phrases; a row per phrase. On a cluster
    nothing is written: the row carries the three files' bytes."""
    rows = []
    resampler, rate = task.settings.resampler, task.settings.audio.rate
    for item in task.items:
        rendered = render_item(task, item)
        clean16 = post.batch_to_dataset_rate([rendered.audio], resampler)[0]   # the audit's 16 kHz
        clean = clean16 if rate == C.SAMPLE_RATE else post.batch_to_dataset_rate([rendered.audio], resampler, rate)[0]
        rows.append(_phrase_row(task, item, rendered, clean16, clean))
    return rows


def _phrase_row(task: PhraseShardTask, item: PhraseItem, r: Rendered, clean16: np.ndarray,
                clean: np.ndarray) -> dict:
    """`clean16`: the phrase at 16 kHz, what the audit hears; `clean`: at the dataset's rate, written."""
    fmt = task.settings.audio
    f0 = np.where(r.voiced, phrase_labels.cents_to_hz(np.nan_to_num(
        r.curve_cents[np.minimum(np.round(r.times * C.RENDER_RATE).astype(np.int64), len(r.curve_cents) - 1)])), 0.0)
    flags = phrase_labels.audit_flags(clean16, r.times, r.curve_cents, r.voiced, task.settings.audit_cents)
    heard = augmentation.apply(clean, item.augment, fmt.rate) if item.augment != AugmentSpec() else clean
    if item.augment.room is not None or item.reverb is not None:
        flags[phrase_labels.tail_flags(heard, r.times, r.voiced, fmt.rate) & (flags == "")] = "tail"
    path = item.audio_path(fmt.suffix)
    files = {path: clip_bytes(post.quantize(heard, fmt.sample_format), fmt),
             companion(path, FRAMES_SUFFIX): phrase_labels.frame_table_bytes(r.times, f0, r.voiced, r.clean, flags),
             companion(path, CURVE_SUFFIX): phrase_labels.curve_bytes(
                 np.where(np.isfinite(r.curve_cents), phrase_labels.cents_to_hz(np.nan_to_num(r.curve_cents)), 0))}
    row = _describe(item, r, f0, flags, path, fmt.rate)
    for (path, data), column in zip(files.items(), ("sha256", "frames_sha256", "curve_sha256")):
        row[column] = sha256_bytes(data)
        if task.on_cluster:
            row.setdefault("files", {})[path] = data
        else:
            write_clip(task.data_dir, path, data)
    return row


def _describe(item: PhraseItem, r: Rendered, f0: np.ndarray, flags: np.ndarray, path: str, rate: int) -> dict:
    inst = item.instrument
    voiced_f0 = f0[r.voiced]
    counts = {name: int((flags == name).sum()) for name in phrase_labels.FLAGS}
    return {"path": path, "frames_path": companion(path, FRAMES_SUFFIX),
            "curve_path": companion(path, CURVE_SUFFIX), "source": item.source, "kind": item.kind,
            "instrument": inst.slug, "instrument_name": inst.name, "timbre": r.timbre, "program": item.program,
            "family": inst.family, "style": item.style, "index": item.index,
            "seconds": round(len(r.audio) / C.RENDER_RATE, 4), "frames": len(r.times),
            "voiced_frames": int(r.voiced.sum()), "clean_frames": int(r.clean.sum()),
            "flagged_frames": int((flags != "").sum()), **{f"flag_{k}": v for k, v in counts.items()},
            "f0_min": round(float(voiced_f0.min()), 3) if len(voiced_f0) else None,
            "f0_max": round(float(voiced_f0.max()), 3) if len(voiced_f0) else None,
            "augment": item.augment_label(rate), "snr_db": item.augment.snr_db,
            "sha256": "", "frames_sha256": "", "curve_sha256": ""}
