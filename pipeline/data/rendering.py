"""Rendering: one General MIDI note -> a MIDI file (midiutil) -> audio from FluidSynth, in-process.

A Renderer owns one synth with the soundfont loaded once; a worker process keeps one per
soundfont for its lifetime. Every note starts from a reset synth on a 64-sample block
boundary, so a note's audio does not depend on what the synth rendered before: that is what
makes the dataset byte-identical whatever the number of workers. A note may go through
FluidSynth's own reverb, with its room size, damping and level set for that note alone.

The soundfonts of a config are paths or glob patterns (`soundfont_paths`); one named by file name
alone is looked for in the soundfont folders (`soundfont_folders`: PIPELINE_SOUNDFONT_PATH, then
the system's). Which GM presets a font has is read from its preset headers (`soundfont_presets`),
without loading its samples. Where a font lives is never part of a dataset: its clips are filed
by its file name and its content is known by its sha256.
"""

from __future__ import annotations

import glob
import io
import os
import struct
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from pipeline.core import constants as C
from pipeline.core.artifacts import sha256_file
from pipeline.core.config_files import is_bare_name
from pipeline.core.errors import PipelineError, silenced_stderr
from pipeline.core.instruments import resolve_instrument
from pipeline.data import fluid

SOUNDFONT_SUFFIXES = (".sf2", ".sf3")
GLOB_CHARACTERS = "*?["
# where a soundfont named by file name alone is looked for, after the folders of this variable
SOUNDFONT_PATH_VARIABLE = "PIPELINE_SOUNDFONT_PATH"
SYSTEM_SOUNDFONT_FOLDERS = ("/usr/share/sounds/sf2", "/usr/share/sounds/sf3", "/usr/share/soundfonts")
# the Debian packages of the fonts the configs use, for a missing font's message
FONT_PACKAGES = {"FluidR3_GM.sf2": "fluid-soundfont-gm", "TimGM6mb.sf2": "timgm6mb-soundfont",
                 "MuseScore_General.sf3": "musescore-general-soundfont", "OPL-3_FM_128M.sf2": "opl3-soundfont",
                 "sf_GMbank.sf2": "csound-soundfont"}
PRESET_HEADER_BYTES = 38  # a phdr record: name[20], preset, bank, bag index, library, genre, morphology
# MIDI channel used for every note; channel 10 (index 9) is GM percussion
CHANNEL = 0
MIDI_TEMPO_BPM = 60  # one beat per second, so MIDI times in beats are seconds


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


def soundfont_folders() -> list[Path]:
    """Where a soundfont named by file name alone is looked for, in order: the folders of
    PIPELINE_SOUNDFONT_PATH (separated by os.pathsep), then the system's soundfont folders."""
    listed = [Path(os.path.expanduser(p)) for p in os.environ.get(SOUNDFONT_PATH_VARIABLE, "").split(os.pathsep) if p]
    return [*listed, *(Path(p) for p in SYSTEM_SOUNDFONT_FOLDERS)]


def _find_bare(entry: str) -> list[str]:
    """A file name (or pattern) in the first soundfont folder that has it; PipelineError if none does."""
    folders = soundfont_folders()
    for folder in folders:
        matches = sorted(glob.glob(glob.escape(str(folder)) + os.sep + entry), key=lambda p: (Path(p).name, p))
        if matches:
            return matches
    package = FONT_PACKAGES.get(entry)
    install = f"install it (Debian: apt-get install {package}) or " if package else ""
    raise PipelineError(f"soundfont {entry} not found in the soundfont folders ({', '.join(map(str, folders))}); "
                        f"{install}put it in one of them, add the folder that holds it to {SOUNDFONT_PATH_VARIABLE}, "
                        "or list its path in data.soundfonts")


def soundfont_paths(entries) -> list[Path]:
    """data.soundfonts as files: each entry a path or a glob pattern (its matches sorted by name),
    in the listed order; a file name alone (or a pattern without a folder) that is not a file here
    is looked for in `soundfont_folders()`. A file reached twice (two patterns, a link) counts once,
    where it is first reached; two different files with one name are refused, since a clip's
    source is its font's file name."""
    paths: list[Path] = []
    seen: dict[str, Path] = {}
    for entry in entries:
        if any(ch in entry for ch in GLOB_CHARACTERS):
            matches = sorted(glob.glob(os.path.expanduser(entry)), key=lambda p: (Path(p).name, p))
            if not matches and is_bare_name(entry):
                matches = _find_bare(entry)
            if not matches:
                raise PipelineError(f"data.soundfonts pattern {entry} matches no file; install a soundfont "
                                    "or fix the pattern")
        elif is_bare_name(entry) and not os.path.isfile(entry):
            matches = _find_bare(entry)
        else:
            matches = [os.path.expanduser(entry)]
        for match in matches:
            real = os.path.realpath(match)
            if real in seen:
                continue
            other = next((p for p in paths if p.name == Path(match).name), None)
            if other is not None:
                raise PipelineError(f"data.soundfonts has two different files named {other.name} ({other} and "
                                    f"{match}); rename one, since clips are filed by font name")
            seen[real] = Path(match)
            paths.append(Path(match))
    return paths


@lru_cache(maxsize=16)
def _presets(path: str, size: int, mtime: float) -> dict[int, str]:
    with open(path, "rb") as fh:
        records = _pdta_chunk(fh, b"phdr")
    presets = {}
    for offset in range(0, len(records) - PRESET_HEADER_BYTES, PRESET_HEADER_BYTES):  # the last is EOP
        name, program, bank = struct.unpack_from("<20sHH", records, offset)
        if bank == 0 and program < 128:
            presets[program] = name.split(b"\0")[0].decode("latin-1").strip()
    return presets


def _pdta_chunk(fh, wanted: bytes) -> bytes:
    """The body of a soundfont's pdta sub-chunk (phdr, inst, shdr, ...): the RIFF lists walked by
    seeking, so the samples (nearly all of the file) are never read."""
    end = 8 + int.from_bytes(fh.read(12)[4:8], "little")
    position = 12
    while position + 8 <= end:
        fh.seek(position)
        kind, size = struct.unpack("<4sI", fh.read(8))
        if kind == b"LIST" and fh.read(4) == b"pdta":
            inner = position + 12
            while inner + 8 <= position + 8 + size:
                fh.seek(inner)
                name, length = struct.unpack("<4sI", fh.read(8))
                if name == wanted:
                    return fh.read(length)
                inner += 8 + length + (length & 1)
        position += 8 + size + (size & 1)
    return b""


def soundfont_presets(path: str | Path) -> dict[int, str]:
    """{GM program: preset name} of the font's bank 0, from its preset headers (no samples loaded)."""
    stat = check_soundfont(Path(path))
    return _presets(str(Path(path).resolve()), stat.st_size, stat.st_mtime)


def check_soundfont(path: Path) -> os.stat_result:
    """The file's stat, after checking it exists and has an intact SoundFont header."""
    if not path.is_file():
        raise PipelineError(_missing_font_message(path))
    if path.suffix.lower() not in SOUNDFONT_SUFFIXES:
        raise PipelineError(f"soundfont {path} is not a .sf2 or .sf3 file; list SoundFonts in data.soundfonts")
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


def _missing_font_message(path: Path) -> str:
    """Says what is really missing: this path, while a font of that name may well be installed."""
    elsewhere = next((f / path.name for f in soundfont_folders() if (f / path.name).is_file()), None)
    if elsewhere is not None:
        return (f"soundfont {path} not found (a relative path is relative to the folder of the config file "
                f"that names it, or to the current one); {path.name} is installed as {elsewhere}: list it by "
                f"file name alone, \"{path.name}\", to use that")
    package = FONT_PACKAGES.get(path.name)
    install = f"install it (Debian: apt-get install {package}) and list it by file name, or " if package else ""
    return f"soundfont {path} not found; {install}list existing .sf2/.sf3 files in data.soundfonts"


# --- FluidSynth ----------------------------------------------------------------------
def require_fluidsynth() -> None:
    """PipelineError naming the package when libfluidsynth cannot be loaded: checked before a build
    starts, so that the message comes before any progress."""
    _import_fluidsynth()


def _import_fluidsynth():
    try:
        import fluidsynth
    except ModuleNotFoundError as exc:
        if exc.name != "fluidsynth":
            raise
        raise ModuleNotFoundError("pyfluidsynth is not installed", name="fluidsynth") from None  # its extra
    except (ImportError, OSError):
        raise PipelineError(
            "the FluidSynth library (libfluidsynth) is missing; install it: apt-get install libfluidsynth3 "
            "(or run make setup)") from None
    fluid.fluid()  # FluidSynth's own warnings off: we report the problems ourselves, in one line
    return fluidsynth


@dataclass(frozen=True)
class FluidReverb:
    """FluidSynth's reverb unit for one note: room size, damping and output level, 0..1 each."""
    room_size: float
    damping: float
    level: float
    width: float = 0.5                 # stereo spread (0..100): the notes are mixed to mono anyway

    def label(self) -> str:
        return f"fluid_reverb(room={self.room_size:.2f},damp={self.damping:.2f},level={self.level:.2f})"

    def values(self) -> dict:
        return {"roomsize": self.room_size, "damp": self.damping, "width": self.width, "level": self.level}


class Renderer:
    """Renders notes to float32 stereo with one soundfont, loaded once.

    FluidSynth keeps small traces of earlier notes in a synth (its voices are reused), so
    each note gets a brand-new synth that borrows the already-loaded soundfont: a fresh
    synth costs about 0.1 ms, a soundfont load tens of milliseconds.
    """

    def __init__(self, soundfont: str | Path, gain: float = 0.4, effects: bool = False, sha256: str | None = None):
        """`effects`: the reverb unit is on, for the notes that ask for it; `sha256`: the file's
        checksum when the caller already knows it (skips hashing it again)."""
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
                               **{"synth.reverb.active": int(effects), "synth.chorus.active": 0,
                                  "synth.cpu-cores": 1, "synth.polyphony": 64})
        with silenced_stderr():  # libinstpatch prints glib criticals for files it cannot parse
            sfid = self.keeper.sfload(str(soundfont))
        if sfid < 0:
            self.keeper.delete()
            raise PipelineError(f"soundfont {soundfont} could not be loaded by FluidSynth (corrupt file?); "
                                "replace it or remove it from data.soundfonts")
        self.sfid = sfid
        self._api = fluid.fluid()
        self.sfont = self._api.get_sfont(self.keeper.synth, sfid)

    def has_program(self, program: int) -> bool:
        return self.keeper.sfpreset_name(self.sfid, 0, program) is not None

    def preset_name(self, program: int) -> str:
        """The font's own name for a GM program ("Yamaha Grand Piano"), "" if it has none."""
        return self.keeper.sfpreset_name(self.sfid, 0, program) or ""

    def require_programs(self, programs) -> None:
        """A clear error for GM programs this soundfont has no preset for (they would render silence)."""
        missing = sorted({resolve_instrument(p).name for p in programs if not self.has_program(p)})
        if missing:
            raise PipelineError(f"soundfont {self.soundfont} has no preset for {', '.join(missing)}; "
                                "remove them from data.instruments or use a full General MIDI soundfont")

    def close(self) -> None:
        self.keeper.delete()

    def render(self, midi_file: bytes, seconds: float, reverb: FluidReverb | None = None) -> np.ndarray:
        """Render a MIDI file for `seconds` (rounded up to whole blocks): float32 array (n, 2).
        `reverb` needs a Renderer made with effects on."""
        if reverb is not None and not self.effects:
            raise PipelineError("a note asks for FluidSynth's reverb from a Renderer made without effects; "
                                "make it with effects=True")
        api = self._api
        total = block_align(seconds * self.rate)
        out = np.zeros((total, 2), dtype=np.float32)
        synth = self._fs.new_fluid_synth(self.keeper.settings)
        try:
            sfid = api.add_sfont(synth, self.sfont)
            if self.effects:
                api.reverb(synth, reverb.values() if reverb else None)
            done = 0
            for at, message in midi_events(midi_file):
                position = min(block_align(at * self.rate), total)
                if position > done:
                    api.write(synth, out[done:position])
                    done = position
                send(api, synth, sfid, message)
            if total > done:
                api.write(synth, out[done:])
        finally:
            api.remove_sfont(synth, self.sfont)
            self._fs.delete_fluid_synth(synth)
        return out


def send(api, synth, sfid: int, message) -> None:
    """One channel message of a MIDI file (mido) to a synth."""
    fs, ch = api.fs, message.channel
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
    return int(np.ceil(round(samples, 6) / fluid.FLUID_BLOCK)) * fluid.FLUID_BLOCK
