"""The libfluidsynth calls the phrase renderer makes, on raw synth and voice pointers.

pyfluidsynth declares the MIDI-channel calls (noteon, cc, pitch bend, ...) as module-level
ctypes prototypes; the rest (writing float audio into a numpy buffer, sharing one loaded
soundfont between synths, the voice-level generator calls, legato mode) are declared here with
`fluidsynth.cfunc`, as pipeline/rendering.py does. Written against libfluidsynth 2.3.
"""

from __future__ import annotations

import ctypes
from functools import lru_cache

import numpy as np

FLUID_BLOCK = 64  # FluidSynth renders (and applies events) in blocks of 64 samples

# SoundFont generator numbers (fluid_gen_type); GEN_PITCH is FluidSynth's own "nominal pitch"
GEN_MODLFOTOPITCH = 5
GEN_VIBLFOTOPITCH = 6
GEN_MODENVTOPITCH = 7
GEN_VIBLFODELAY = 23
GEN_VIBLFOFREQ = 24
GEN_VOLENVRELEASE = 38
GEN_COARSETUNE = 51
GEN_FINETUNE = 52
GEN_SCALETUNE = 56
GEN_PITCH = 59

LEGATO_MODE_MULTI_RETRIGGER = 1  # a legato note re-uses the sounding voices (no new attack)
CC_LEGATO_SWITCH = 68
MAX_VOICES = 256


@lru_cache(maxsize=1)
def fluid():
    """The libfluidsynth bindings (pyfluidsynth's plus ours), loaded once, logging silenced."""
    import fluidsynth as fs
    return _Lib(fs)


class _Lib:
    def __init__(self, fs):
        c = ctypes
        self.fs = fs
        self.noteon = fs.fluid_synth_noteon
        self.noteoff = fs.fluid_synth_noteoff
        self.cc = fs.fluid_synth_cc
        self.pitch_bend = fs.fluid_synth_pitch_bend
        self.program_select = fs.fluid_synth_program_select
        self.new_synth = fs.new_fluid_synth
        self.delete_synth = fs.delete_fluid_synth
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
        self.set_legato_mode = fs.cfunc("fluid_synth_set_legato_mode", c.c_int, ("synth", c.c_void_p, 1),
                                        ("chan", c.c_int, 1), ("mode", c.c_int, 1))
        self._voicelist = fs.cfunc("fluid_synth_get_voicelist", None, ("synth", c.c_void_p, 1),
                                   ("buf", c.c_void_p, 1), ("bufsize", c.c_int, 1), ("id", c.c_int, 1))
        self.gen_set = fs.cfunc("fluid_voice_gen_set", None, ("voice", c.c_void_p, 1), ("gen", c.c_int, 1),
                                ("val", c.c_float, 1))
        self.gen_get = fs.cfunc("fluid_voice_gen_get", c.c_float, ("voice", c.c_void_p, 1), ("gen", c.c_int, 1))
        self.update_param = fs.cfunc("fluid_voice_update_param", None, ("voice", c.c_void_p, 1),
                                     ("gen", c.c_int, 1))
        self.voice_key = fs.cfunc("fluid_voice_get_actual_key", c.c_int, ("voice", c.c_void_p, 1))
        self.voice_is_on = fs.cfunc("fluid_voice_is_on", c.c_int, ("voice", c.c_void_p, 1))
        self._get_cc = fs.cfunc("fluid_synth_get_cc", c.c_int, ("synth", c.c_void_p, 1), ("chan", c.c_int, 1),
                                ("num", c.c_int, 1), ("pval", c.POINTER(c.c_int), 1))
        self._cc_value = c.c_int()
        self._voice_buffer = (c.c_void_p * MAX_VOICES)()
        self._reverb_on_new = fs.cfunc("fluid_synth_reverb_on", c.c_int, ("synth", c.c_void_p, 1),
                                       ("fx_group", c.c_int, 1), ("on", c.c_int, 1))
        self._reverb_on_old = fs.cfunc("fluid_synth_set_reverb_on", None, ("synth", c.c_void_p, 1),
                                       ("on", c.c_int, 1))
        self._reverb_group = {name: fs.cfunc(f"fluid_synth_set_reverb_group_{name}", c.c_int,
                                             ("synth", c.c_void_p, 1), ("fx_group", c.c_int, 1),
                                             ("value", c.c_double, 1))
                              for name in ("roomsize", "damp", "width", "level")}
        self._reverb_all = fs.cfunc("fluid_synth_set_reverb", c.c_int, ("synth", c.c_void_p, 1),
                                    ("roomsize", c.c_double, 1), ("damping", c.c_double, 1),
                                    ("width", c.c_double, 1), ("level", c.c_double, 1))
        set_log = fs.cfunc("fluid_set_log_function", c.c_void_p, ("level", c.c_int, 1),
                           ("fun", c.c_void_p, 1), ("data", c.c_void_p, 1))
        for level in (1, 2, 3, 4):  # FluidSynth warns for every new synth; we report our own errors
            set_log(level, None, None)

    def write(self, synth, out: np.ndarray) -> None:
        """Fill a C-contiguous (n, 2) float32 view with the next n stereo frames."""
        ptr = out.ctypes.data
        self._write_float(synth, len(out), ptr, 0, 2, ptr, 1, 2)

    def reverb(self, synth, values: dict | None) -> None:
        """The reverb unit on with these parameters (roomsize, damp, width, level), or off (None)."""
        if self._reverb_on_new is not None:
            self._reverb_on_new(synth, -1, int(values is not None))
        elif self._reverb_on_old is not None:
            self._reverb_on_old(synth, int(values is not None))
        if values is None:
            return
        if all(f is not None for f in self._reverb_group.values()):
            for name, value in values.items():
                self._reverb_group[name](synth, -1, float(value))
        else:
            self._reverb_all(synth, *(float(values[k]) for k in ("roomsize", "damp", "width", "level")))

    def playing_voices(self, synth) -> list[int]:
        """Pointers to the voices that are playing (on, sustained; not released) right now.
        Valid until the next render call."""
        buf = self._voice_buffer
        self._voicelist(synth, ctypes.addressof(buf), MAX_VOICES, -1)
        voices = []
        for pointer in buf:
            if not pointer:
                break
            voices.append(pointer)
        return voices

    def set_voice_gen(self, voice: int, gen: int, value: float) -> None:
        """A voice's generator to `value` (its SoundFont value; modulator and NRPN offsets still
        add). Takes effect at the next `commit`."""
        self.gen_set(voice, gen, value)
        self.update_param(voice, gen)

    def commit(self, synth) -> None:
        """Hand the voice changes made since the last synth call to the renderer. FluidSynth
        queues a voice's parameter changes and commits the queue only when a public synth
        call returns; the voice calls are not synth calls, so without this a change made
        after a note-on waits for the next synth call (measured: a preset's LFO removed right
        after the note-on kept sounding until the note-off). Any cheap synth call will do."""
        self._get_cc(synth, 0, 0, ctypes.byref(self._cc_value))
