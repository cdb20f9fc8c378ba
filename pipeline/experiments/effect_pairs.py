"""Aligned dry/wet audio pairs for effect_emulation: the same audio, dry and through sox.

Training material is sine, triangle and sawtooth sweeps (log frequency, a range of levels);
the unseen test is piano notes rendered by the project's FluidSynth Renderer. The effect is
sox's `lowpass` then `overdrive`, run on the whole signal at once, so wet sample n is the effect's
output for dry sample n: sox adds no delay and no padding, and the tests check it. Pairs are
written as float32 mono WAVs with a manifest.csv that labels each with its effect; a second
run with the same settings reuses them.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

RATE = 16_000
WAVES = ("sine", "triangle", "sawtooth")
FADE_SECONDS = 0.01
PIANO_PROGRAM = 0          # General MIDI Acoustic Grand Piano
PIANO_PEAK = 0.7
MANIFEST = "manifest.csv"
PARAMS = "params.json"


@dataclass(frozen=True)
class Pair:
    name: str
    kind: str              # sine, triangle, sawtooth or piano
    role: str              # train, val or test
    effect: str            # e.g. lowpass(2000);overdrive(20,20)
    dry: np.ndarray
    wet: np.ndarray


def effect_label(s) -> str:
    return f"lowpass({s.lowpass_hz:g});overdrive({s.overdrive_gain_db:g},{s.overdrive_colour:g})"


def apply_effect(dry: np.ndarray, s) -> np.ndarray:
    """float32 mono at RATE -> the same length through sox: lowpass, then overdrive."""
    import sox

    logging.getLogger("sox").setLevel(logging.ERROR)  # pysox warns about array output on every call
    tfm = sox.Transformer()
    tfm.set_globals(dither=False)
    tfm.lowpass(s.lowpass_hz)
    tfm.overdrive(s.overdrive_gain_db, s.overdrive_colour)
    wet = tfm.build_array(input_array=np.ascontiguousarray(dry, dtype=np.float32), sample_rate_in=RATE)
    if len(wet) != len(dry):
        from pipeline.core.errors import PipelineError

        raise PipelineError(f"sox returned {len(wet)} samples for {len(dry)}; check sox --version")
    return wet.astype(np.float32)


def sweep(kind: str, seconds: float, low: float, high: float, amplitude: float, upward: bool = True) -> np.ndarray:
    """A log-frequency sweep from low to high Hz (or back) of one waveform, faded in and out."""
    import scipy.signal

    t = np.arange(round(seconds * RATE)) / RATE
    ratio = high / low
    phase = 2 * np.pi * low * seconds / np.log(ratio) * (ratio ** (t / seconds) - 1.0)
    if not upward:
        phase = phase[-1] - phase[::-1]
    wave = {"sine": np.sin(phase), "triangle": scipy.signal.sawtooth(phase + np.pi / 2, 0.5),
            "sawtooth": scipy.signal.sawtooth(phase)}[kind]
    fade = np.minimum(1.0, np.minimum(t, t[-1] - t) / FADE_SECONDS)
    return (amplitude * wave * fade).astype(np.float32)


def sweep_pairs(s, seed: int) -> list[Pair]:
    """sweeps_per_wave sweeps of each waveform at levels spread over 0.1-0.9, up and down;
    a share (val_share) of each waveform's sweeps, chosen at random, held out for validation."""
    rng = np.random.default_rng(seed)
    pairs = []
    for kind in WAVES:
        levels = np.linspace(0.1, 0.9, s.sweeps_per_wave)
        held = set(rng.choice(s.sweeps_per_wave, max(1, round(s.val_share * s.sweeps_per_wave)), replace=False))
        for i, level in enumerate(levels):
            dry = sweep(kind, s.sweep_seconds, s.sweep_low_hz, s.sweep_high_hz, float(level), upward=i % 2 == 0)
            pairs.append(Pair(f"{kind}_{i:02d}", kind, "val" if i in held else "train", effect_label(s), dry,
                              apply_effect(dry, s)))
    return pairs


def piano_pairs(s, soundfont: str) -> list[Pair]:
    """The unseen test: piano notes from the project's renderer, mono, 16 kHz, peak PIANO_PEAK."""
    import soxr

    from pipeline.data.rendering import Renderer, note_midi_bytes, soundfont_paths

    renderer = Renderer(soundfont_paths([soundfont])[0])  # a file name alone: found in the soundfont folders
    try:
        pairs = []
        for midi in s.piano_notes:
            midi_file = note_midi_bytes(PIANO_PROGRAM, midi, 100, 0, s.piano_seconds)
            stereo = renderer.render(midi_file, s.piano_seconds + 0.3)
            mono = soxr.resample(stereo.mean(axis=1), renderer.rate, RATE, quality="VHQ")
            dry = (PIANO_PEAK * mono / max(np.abs(mono).max(), 1e-9)).astype(np.float32)
            pairs.append(Pair(f"piano_{midi}", "piano", "test", effect_label(s), dry, apply_effect(dry, s)))
        return pairs
    finally:
        renderer.close()


# --- on disk -------------------------------------------------------------------------------------------
def build_pairs(s, data_root: Path, soundfont: str, seed: int) -> tuple[list[Pair], dict]:
    """The pairs in data_root/NAME (written, or read back when the settings are unchanged)."""
    folder = Path(data_root) / s.name
    params = {"settings": asdict(s), "soundfont": soundfont, "seed": seed, "rate": RATE}
    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()
    try:
        if json.loads((folder / PARAMS).read_text()).get("sha256") == digest:
            return read_pairs(folder), {"path": str(folder), "manifest_sha256": _sha(folder / MANIFEST), "reused": True}
    except (OSError, ValueError):
        pass
    pairs = sweep_pairs(s, seed) + piano_pairs(s, soundfont)
    write_pairs(folder, pairs)
    from pipeline.core.artifacts import write_json

    write_json(folder / PARAMS, {**params, "sha256": digest})
    return pairs, {"path": str(folder), "manifest_sha256": _sha(folder / MANIFEST), "reused": False}


def write_pairs(folder: Path, pairs: list[Pair]) -> None:
    import pandas as pd
    import soundfile as sf

    from pipeline.core.artifacts import atomic_path, write_text

    rows = []
    for p in pairs:
        for side, audio in (("dry", p.dry), ("wet", p.wet)):
            with atomic_path(folder / f"{p.name}_{side}.wav") as tmp:
                sf.write(tmp, audio, RATE, subtype="FLOAT", format="WAV")
        rows.append({"name": p.name, "kind": p.kind, "role": p.role, "effect": p.effect, "samples": len(p.dry),
                     "rate": RATE, "dry": f"{p.name}_dry.wav", "wet": f"{p.name}_wet.wav"})
    write_text(folder / MANIFEST, pd.DataFrame(rows).to_csv(index=False))


def read_pairs(folder: Path) -> list[Pair]:
    import pandas as pd
    import soundfile as sf

    manifest = pd.read_csv(folder / MANIFEST)
    return [Pair(r.name, r.kind, r.role, r.effect, sf.read(folder / r.dry, dtype="float32")[0],
                 sf.read(folder / r.wet, dtype="float32")[0]) for r in manifest.itertuples()]


def _sha(path: Path) -> str:
    from pipeline.core.artifacts import sha256_file

    return sha256_file(path)
