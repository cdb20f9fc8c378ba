"""Rendering: one General MIDI note -> a MIDI file (midiutil) -> audio from FluidSynth, in-process.

A Renderer owns one synth with the soundfont loaded once; a worker process keeps one for
its lifetime. Every note starts from a reset synth on a 64-sample block boundary, so a
note's audio does not depend on what the synth rendered before: that is what makes the
dataset byte-identical whatever the number of workers.
"""

from __future__ import annotations

import ctypes
import io
import os
from functools import lru_cache
from pathlib import Path

import numpy as np

from pipeline import constants as C
from pipeline.artifacts import sha256_file
from pipeline.errors import PipelineError, silenced_stderr
from pipeline.instruments import resolve_instrument

SOUNDFONT_SUFFIXES = (".sf2", ".sf3")
# MIDI channel used for every note; channel 10 (index 9) is GM percussion
CHANNEL = 0
MIDI_TEMPO_BPM = 60  # one beat per second, so MIDI times in beats are seconds
FLUID_BLOCK = 64     # FluidSynth renders in blocks of 64 samples


# --- MIDI ----------------------------------------------------------------------------
def check_note(midi: int) -> None:
    if not C.MIDI_MIN <= midi <= C.MIDI_MAX:
        raise PipelineError(f"note {midi} is outside MIDI 0-127; set data.note_low/note_high inside that range")


def note_midi_bytes(program: int, midi: int, velocity: int, bend: int, hold_seconds: float) -> bytes:
    """A one-note Standard MIDI File: program change, bend range, pitch bend, note on and off."""
    from midiutil import MIDIFile

    check_note(midi)
    track = 0
    mf = MIDIFile(1, adjust_origin=False, deinterleave=False)
    mf.addTempo(track, 0, MIDI_TEMPO_BPM)
    mf.addProgramChange(track, CHANNEL, 0, program)
    # RPN 0 = pitch-bend sensitivity, set explicitly to the GM default of 2 semitones
    for controller, value in ((101, 0), (100, 0), (6, int(C.PITCH_BEND_RANGE_CENTS // 100)), (38, 0)):
        mf.addControllerEvent(track, CHANNEL, 0, controller, value)
    mf.addPitchWheelEvent(track, CHANNEL, 0, bend)
    mf.addNote(track, CHANNEL, midi, 0, hold_seconds, velocity)
    buffer = io.BytesIO()
    mf.writeFile(buffer)
    return buffer.getvalue()


def midi_events(data: bytes) -> list[tuple[float, object]]:
    """(seconds, message) for each channel message of a MIDI file, in order."""
    import mido

    events, now = [], 0.0
    for message in mido.MidiFile(file=io.BytesIO(data)):
        now += message.time  # mido yields delta times in seconds, tempo applied
        if not message.is_meta:
            events.append((now, message))
    return events


# --- soundfont -----------------------------------------------------------------------
@lru_cache(maxsize=8)
def _soundfont_info(path: str, size: int, mtime: float) -> dict:
    return {"path": path, "name": Path(path).name, "bytes": size, "sha256": sha256_file(path)}


def soundfont_info(path: str | Path) -> dict:
    """Name, size and sha256 of a soundfont, after checking it exists and looks like one."""
    path = Path(path)
    stat = check_soundfont(path)
    return _soundfont_info(str(path.resolve()), stat.st_size, stat.st_mtime)


def clear_soundfont_cache() -> None:
    """Forget the soundfonts hashed so far: the next soundfont_info hashes the file again."""
    _soundfont_info.cache_clear()


def soundfont_stat(path: str | Path) -> tuple[int, int]:
    """(size, mtime in ns): tells a local worker the file is the one the plan hashed."""
    stat = os.stat(path)
    return stat.st_size, stat.st_mtime_ns


def check_soundfont(path: Path) -> os.stat_result:
    """The file's stat, after checking it exists and has an intact SoundFont header."""
    if not path.is_file():
        raise PipelineError(
            f"soundfont {path} not found; install it (apt-get install fluid-soundfont-gm) "
            "or set data.soundfont to an existing .sf2/.sf3 file")
    if path.suffix.lower() not in SOUNDFONT_SUFFIXES:
        raise PipelineError(f"soundfont {path} is not a .sf2 or .sf3 file; point data.soundfont at a SoundFont")
    with open(path, "rb") as fh:
        head = fh.read(12)
    stat = path.stat()
    if head[:4] != b"RIFF" or head[8:12] != b"sfbk":
        raise PipelineError(f"soundfont {path} is corrupt (no RIFF sfbk header); replace the file or choose another")
    if int.from_bytes(head[4:8], "little") + 8 != stat.st_size:
        raise PipelineError(f"soundfont {path} is corrupt (truncated: its header promises "
                            f"{int.from_bytes(head[4:8], 'little') + 8} bytes, the file has {stat.st_size}); "
                            "download or copy it again")
    return stat


# --- FluidSynth ----------------------------------------------------------------------
def _import_fluidsynth():
    try:
        import fluidsynth
    except (ImportError, OSError):
        raise PipelineError(
            "the FluidSynth library (libfluidsynth) is missing; install it: apt-get install libfluidsynth3 "
            "(or run make setup)") from None
    _quiet_fluidsynth_warnings(fluidsynth)
    return fluidsynth


@lru_cache(maxsize=1)
def _quiet_fluidsynth_warnings(fs) -> None:
    """FluidSynth logs warnings for every new synth, and its own errors for problems we report
    ourselves in one line (a soundfont it cannot load), so only panics stay on."""
    set_log = fs.cfunc("fluid_set_log_function", ctypes.c_void_p, ("level", ctypes.c_int, 1),
                       ("fun", ctypes.c_void_p, 1), ("data", ctypes.c_void_p, 1))
    if set_log is not None:
        for level in (1, 2, 3, 4):  # FLUID_ERR, FLUID_WARN, FLUID_INFO, FLUID_DBG
            set_log(level, None, None)


class Renderer:
    """Renders notes to float32 stereo with one soundfont, loaded once.

    FluidSynth keeps small traces of earlier notes in a synth (its voices are reused), so
    each note gets a brand-new synth that borrows the already-loaded soundfont: a fresh
    synth costs about 0.1 ms, a soundfont load tens of milliseconds.
    """

    def __init__(self, soundfont: str | Path, gain: float = 0.4, effects: bool = False, sha256: str | None = None):
        """`sha256`: the file's checksum when the caller already knows it (skips hashing it again)."""
        fs = _import_fluidsynth()
        self._fs = fs
        self.soundfont = str(soundfont)
        if sha256:
            check_soundfont(Path(soundfont))
        self.soundfont_sha256 = sha256 or soundfont_info(soundfont)["sha256"]  # which checks it too
        self.rate = C.RENDER_RATE
        self.effects = effects
        # the keeper synth owns the loaded soundfont; its settings are reused for every note
        self.keeper = fs.Synth(gain=float(gain), samplerate=float(self.rate), channels=16,
                               **{"synth.reverb.active": int(effects), "synth.chorus.active": int(effects),
                                  "synth.cpu-cores": 1, "synth.polyphony": 64})
        with silenced_stderr():  # libinstpatch prints glib criticals for files it cannot parse
            sfid = self.keeper.sfload(str(soundfont))
        if sfid < 0:
            self.keeper.delete()
            raise PipelineError(f"soundfont {soundfont} could not be loaded by FluidSynth (corrupt file?); "
                                "replace it or set data.soundfont to another .sf2/.sf3")
        self.sfid = sfid
        self._api = _FluidApi(fs)
        self.sfont = self._api.get_sfont(self.keeper.synth, sfid)

    def has_program(self, program: int) -> bool:
        return self.keeper.sfpreset_name(self.sfid, 0, program) is not None

    def require_programs(self, programs) -> None:
        """A clear error for GM programs this soundfont has no preset for (they would render silence)."""
        missing = sorted({resolve_instrument(p).name for p in programs if not self.has_program(p)})
        if missing:
            raise PipelineError(f"soundfont {self.soundfont} has no preset for {', '.join(missing)}; "
                                "remove them from data.instruments or use a full General MIDI soundfont")

    def close(self) -> None:
        self.keeper.delete()

    def render(self, midi_file: bytes, seconds: float, reverb: bool = False, chorus: bool = False) -> np.ndarray:
        """Render a MIDI file for `seconds` (rounded up to whole blocks): float32 array (n, 2)."""
        api = self._api
        total = block_align(seconds * self.rate)
        out = np.zeros((total, 2), dtype=np.float32)
        synth = self._fs.new_fluid_synth(self.keeper.settings)
        try:
            sfid = api.add_sfont(synth, self.sfont)
            if self.effects:
                api.fx_on(synth, "reverb", reverb)
                api.fx_on(synth, "chorus", chorus)
            done = 0
            for at, message in midi_events(midi_file):
                position = min(block_align(at * self.rate), total)
                if position > done:
                    api.write(synth, out[done:position])
                    done = position
                api.send(synth, sfid, message)
            if total > done:
                api.write(synth, out[done:])
        finally:
            api.remove_sfont(synth, self.sfont)
            self._fs.delete_fluid_synth(synth)
        return out


class _FluidApi:
    """The few libfluidsynth calls pyfluidsynth does not wrap, on raw synth pointers."""

    def __init__(self, fs):
        c = ctypes
        self.fs = fs
        self.get_sfont = fs.cfunc("fluid_synth_get_sfont_by_id", c.c_void_p, ("synth", c.c_void_p, 1),
                                  ("id", c.c_int, 1))
        self.add_sfont = fs.cfunc("fluid_synth_add_sfont", c.c_int, ("synth", c.c_void_p, 1),
                                  ("sfont", c.c_void_p, 1))
        self.remove_sfont = fs.cfunc("fluid_synth_remove_sfont", c.c_int, ("synth", c.c_void_p, 1),
                                     ("sfont", c.c_void_p, 1))
        self._write_float = fs.cfunc(
            "fluid_synth_write_float", c.c_int, ("synth", c.c_void_p, 1), ("len", c.c_int, 1),
            ("lout", c.c_void_p, 1), ("loff", c.c_int, 1), ("lincr", c.c_int, 1),
            ("rout", c.c_void_p, 1), ("roff", c.c_int, 1), ("rincr", c.c_int, 1))
        self._fx_new = {kind: fs.cfunc(f"fluid_synth_{kind}_on", c.c_int, ("synth", c.c_void_p, 1),
                                       ("fx_group", c.c_int, 1), ("on", c.c_int, 1)) for kind in ("reverb", "chorus")}
        self._fx_old = {kind: fs.cfunc(f"fluid_synth_set_{kind}_on", None, ("synth", c.c_void_p, 1),
                                       ("on", c.c_int, 1)) for kind in ("reverb", "chorus")}

    def write(self, synth, out: np.ndarray) -> None:
        """Fill a C-contiguous (n, 2) float32 view with the next n stereo frames."""
        ptr = out.ctypes.data
        self._write_float(synth, len(out), ptr, 0, 2, ptr, 1, 2)

    def fx_on(self, synth, kind: str, on: bool) -> None:
        if self._fx_new[kind] is not None:  # FluidSynth 2.2+
            self._fx_new[kind](synth, -1, int(on))
        elif self._fx_old[kind] is not None:
            self._fx_old[kind](synth, int(on))

    def send(self, synth, sfid: int, message) -> None:
        fs, ch = self.fs, message.channel
        if message.type == "program_change":
            fs.fluid_synth_program_select(synth, ch, sfid, 0, message.program)
        elif message.type == "control_change":
            fs.fluid_synth_cc(synth, ch, message.control, message.value)
        elif message.type == "pitchwheel":
            fs.fluid_synth_pitch_bend(synth, ch, message.pitch + C.PITCH_BEND_CENTER)
        elif message.type == "note_on" and message.velocity > 0:
            fs.fluid_synth_noteon(synth, ch, message.note, message.velocity)
        elif message.type in ("note_off", "note_on"):
            fs.fluid_synth_noteoff(synth, ch, message.note)


def block_align(samples: float) -> int:
    """Round a sample count up to whole FluidSynth blocks (events land on block edges)."""
    return int(np.ceil(round(samples, 6) / FLUID_BLOCK)) * FLUID_BLOCK
