"""The original experiment's way to make the same clips: one `fluidsynth` process per note
(a MIDI file written by midiutil), then one `sox` process per file, then slicing.

Each note: write note.mid -> `fluidsynth -ni -g GAIN -R 0 -C 0 -F note.wav -r 44100 FONT
note.mid` (the command-line player; reverb and chorus off and the same gain as the
engine, so the audio matches) -> `sox note.wav -c 1 -r 16000 -b 16 note16.wav norm` ->
three 330 ms segments cut with the engine's own onset and segment rules and written as
16-bit WAVs. No gate and no manifest: that only flatters this side.
"""

from __future__ import annotations

import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from pipeline.core import constants as C
from pipeline.core.errors import PipelineError
from pipeline.data import postprocessing as post
from pipeline.data.rendering import note_midi_bytes


def _run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise PipelineError(f"{command[0]} failed in the naive benchmark: {done.stderr.strip()[-300:]}")


def render_note(note, soundfont: str, gain: float, hold_seconds: float, sustain_at: float, folder: Path) -> int:
    """One note the straightforward way; returns how many clips it wrote."""
    import soundfile as sf

    stem = folder / f"{note.program}_{note.midi}_{note.velocity}"
    midi, wav, wav16 = stem.with_suffix(".mid"), stem.with_suffix(".wav"), Path(f"{stem}_16k.wav")
    midi.write_bytes(note_midi_bytes(note.program, note.midi, note.velocity, note.bend, hold_seconds))
    _run(["fluidsynth", "-ni", "-q", "-g", str(gain), "-R", "0", "-C", "0", "-F", str(wav),
          "-r", str(C.RENDER_RATE), soundfont, str(midi)])
    _run(["sox", str(wav), "-c", "1", "-r", str(C.SAMPLE_RATE), "-b", "16", str(wav16), "norm"])
    audio, _ = sf.read(str(wav16), dtype="float32")
    hold = round(hold_seconds * C.SAMPLE_RATE)
    clips = post.slice_segments(audio, post.segment_starts(hold, sustain_at, post.find_onset(audio)))
    for name, clip in clips.items():
        sf.write(f"{stem}_{name}.wav", clip, C.SAMPLE_RATE, subtype="PCM_16")
    return len(clips)


def render_notes(notes, soundfont: str, gain: float, hold_seconds: float, sustain_at: float, folder: Path,
                 workers: int) -> int:
    """Every note, `workers` at a time (threads: the work is in the child processes)."""
    os.makedirs(folder, exist_ok=True)
    job = lambda note: render_note(note, soundfont, gain, hold_seconds, sustain_at, folder)  # noqa: E731
    if workers <= 1:
        return sum(map(job, notes))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return sum(pool.map(job, notes))


def clip_lengths_ok(folder: Path) -> bool:
    """Every clip it wrote is CLIP_SAMPLES long (the same output kind as the engine's)."""
    import soundfile as sf

    infos = [sf.info(str(p)) for p in Path(folder).glob("*_attack.wav")]
    return bool(infos) and all(i.frames == C.CLIP_SAMPLES and i.samplerate == C.SAMPLE_RATE for i in infos)


def spectral_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two clips' windowed magnitude spectra (insensitive to a time shift)."""
    window = np.hanning(len(a))
    sa, sb = np.abs(np.fft.rfft(a * window)), np.abs(np.fft.rfft(b * window))
    return float(np.dot(sa, sb) / max(np.linalg.norm(sa) * np.linalg.norm(sb), 1e-12))
