"""General MIDI instruments: the 128 program names, their families, and lookup by name or number."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from functools import cache

from pipeline.core.errors import PipelineError

GM_FAMILIES = ("piano", "chromatic_percussion", "organ", "guitar", "bass", "strings", "ensemble", "brass",
               "reed", "pipe", "synth_lead", "synth_pad", "synth_effects", "ethnic", "percussive",
               "sound_effects")  # eight programs each, in order
GM_PROGRAMS = (
    "Acoustic Grand Piano", "Bright Acoustic Piano", "Electric Grand Piano", "Honky-tonk Piano",
    "Electric Piano 1", "Electric Piano 2", "Harpsichord", "Clavinet",
    "Celesta", "Glockenspiel", "Music Box", "Vibraphone", "Marimba", "Xylophone", "Tubular Bells", "Dulcimer",
    "Drawbar Organ", "Percussive Organ", "Rock Organ", "Church Organ", "Reed Organ", "Accordion",
    "Harmonica", "Tango Accordion",
    "Acoustic Guitar (nylon)", "Acoustic Guitar (steel)", "Electric Guitar (jazz)", "Electric Guitar (clean)",
    "Electric Guitar (muted)", "Overdriven Guitar", "Distortion Guitar", "Guitar Harmonics",
    "Acoustic Bass", "Electric Bass (finger)", "Electric Bass (pick)", "Fretless Bass", "Slap Bass 1",
    "Slap Bass 2", "Synth Bass 1", "Synth Bass 2",
    "Violin", "Viola", "Cello", "Contrabass", "Tremolo Strings", "Pizzicato Strings", "Orchestral Harp",
    "Timpani",
    "String Ensemble 1", "String Ensemble 2", "Synth Strings 1", "Synth Strings 2", "Choir Aahs",
    "Voice Oohs", "Synth Voice", "Orchestra Hit",
    "Trumpet", "Trombone", "Tuba", "Muted Trumpet", "French Horn", "Brass Section", "Synth Brass 1",
    "Synth Brass 2",
    "Soprano Sax", "Alto Sax", "Tenor Sax", "Baritone Sax", "Oboe", "English Horn", "Bassoon", "Clarinet",
    "Piccolo", "Flute", "Recorder", "Pan Flute", "Blown Bottle", "Shakuhachi", "Whistle", "Ocarina",
    "Lead 1 (square)", "Lead 2 (sawtooth)", "Lead 3 (calliope)", "Lead 4 (chiff)", "Lead 5 (charang)",
    "Lead 6 (voice)", "Lead 7 (fifths)", "Lead 8 (bass + lead)",
    "Pad 1 (new age)", "Pad 2 (warm)", "Pad 3 (polysynth)", "Pad 4 (choir)", "Pad 5 (bowed)",
    "Pad 6 (metallic)", "Pad 7 (halo)", "Pad 8 (sweep)",
    "FX 1 (rain)", "FX 2 (soundtrack)", "FX 3 (crystal)", "FX 4 (atmosphere)", "FX 5 (brightness)",
    "FX 6 (goblins)", "FX 7 (echoes)", "FX 8 (sci-fi)",
    "Sitar", "Banjo", "Shamisen", "Koto", "Kalimba", "Bagpipe", "Fiddle", "Shanai",
    "Tinkle Bell", "Agogo", "Steel Drums", "Woodblock", "Taiko Drum", "Melodic Tom", "Synth Drum",
    "Reverse Cymbal",
    "Guitar Fret Noise", "Breath Noise", "Seashore", "Bird Tweet", "Telephone Ring", "Helicopter",
    "Applause", "Gunshot",
)
assert len(GM_PROGRAMS) == 128


@dataclass(frozen=True)
class Instrument:
    program: int   # 0-based GM program number
    name: str      # GM name
    family: str

    @property
    def slug(self) -> str:
        return "".join(ch if ch.isalnum() else "_" for ch in self.name.lower()).strip("_").replace("__", "_")


@cache
def resolve_instrument(spec: str | int) -> Instrument:
    """A GM instrument by name (case-insensitive) or 0-based program number (cached: every
    NoteSpec.instrument call lands here, nine times per note)."""
    names = {n.lower(): i for i, n in enumerate(GM_PROGRAMS)}
    text = str(spec).strip()
    if text.isdigit():
        program = int(text)
        if not 0 <= program < 128:
            raise PipelineError(f"unknown instrument {spec!r}: GM program numbers run 0 to 127")
    elif text.lower() in names:
        program = names[text.lower()]
    else:
        close = difflib.get_close_matches(text, GM_PROGRAMS, n=3, cutoff=0.5)
        hint = f"did you mean {' or '.join(repr(c) for c in close)}?" if close else \
            "use a General MIDI name such as 'Violin' or a program number 0-127"
        raise PipelineError(f"unknown instrument {spec!r}; {hint}")
    return Instrument(program, GM_PROGRAMS[program], GM_FAMILIES[program // 8])


# Where each instrument is played, as MIDI notes (low, high): phrases keep their melodies inside
# it (a violin line at A0 is no violin). By family, then the programs whose range differs.
FAMILY_RANGES = {
    "piano": (21, 108), "chromatic_percussion": (48, 96), "organ": (36, 96), "guitar": (40, 88),
    "bass": (28, 67), "strings": (36, 96), "ensemble": (36, 96), "brass": (36, 84), "reed": (44, 88),
    "pipe": (60, 96), "synth_lead": (36, 96), "synth_pad": (36, 96), "synth_effects": (36, 96),
    "ethnic": (48, 84), "percussive": (36, 84), "sound_effects": (36, 84),
}
PROGRAM_RANGES = {
    "Celesta": (60, 108), "Glockenspiel": (79, 108), "Music Box": (60, 96), "Vibraphone": (53, 89),
    "Marimba": (45, 96), "Xylophone": (65, 108), "Tubular Bells": (60, 77),
    "Violin": (55, 100), "Viola": (48, 88), "Cello": (36, 76), "Contrabass": (28, 67),
    "Orchestral Harp": (24, 103), "Timpani": (40, 57),
    "Choir Aahs": (43, 84), "Voice Oohs": (43, 84), "Synth Voice": (43, 84),
    "Trumpet": (54, 86), "Trombone": (40, 72), "Tuba": (28, 58), "Muted Trumpet": (54, 84),
    "French Horn": (34, 77),
    "Soprano Sax": (56, 88), "Alto Sax": (49, 81), "Tenor Sax": (44, 76), "Baritone Sax": (36, 69),
    "Oboe": (58, 91), "English Horn": (52, 81), "Bassoon": (34, 75), "Clarinet": (50, 94),
    "Piccolo": (74, 108), "Fiddle": (55, 100),
}


def playable_range(program: int) -> tuple[int, int]:
    """The MIDI notes (low, high) a GM program is usually played in."""
    inst = resolve_instrument(program)
    return PROGRAM_RANGES.get(inst.name, FAMILY_RANGES[inst.family])


# --- NSynth's labels ----------------------------------------------------------------------------------
# NSynth (Engel et al. 2017) labels each note with one of 11 instrument families and one of three
# sources: acoustic (a recorded acoustic instrument), electronic (a recorded electronic one: electric
# piano, electric guitar, drawbar organ) and synthetic (a synthesiser). Its lists, in its order (the
# integer codes of its examples.json are the positions here).
NSYNTH_FAMILIES = ("bass", "brass", "flute", "guitar", "keyboard", "mallet", "organ", "reed", "string",
                   "synth_lead", "vocal")
NSYNTH_SOURCES = ("acoustic", "electronic", "synthetic")
NSYNTH_QUALITIES = ("bright", "dark", "distortion", "fast_decay", "long_release", "multiphonic", "nonlinear_env",
                    "percussive", "reverb", "tempo-synced")
# Each GM family's NSynth family and source, then the programs that differ from their GM family's.
# NSynth labels instruments one by one; this is our reading of the GM names, not NSynth's: GM has
# pads, effects and sound effects NSynth has no family for (synth_lead takes them), and free reeds
# (accordion, harmonica) and bagpipes go to reed.
_NSYNTH_BY_GM_FAMILY = {
    "piano": ("keyboard", "acoustic"), "chromatic_percussion": ("mallet", "acoustic"),
    "organ": ("organ", "electronic"), "guitar": ("guitar", "electronic"), "bass": ("bass", "electronic"),
    "strings": ("string", "acoustic"), "ensemble": ("string", "acoustic"), "brass": ("brass", "acoustic"),
    "reed": ("reed", "acoustic"), "pipe": ("flute", "acoustic"), "synth_lead": ("synth_lead", "synthetic"),
    "synth_pad": ("synth_lead", "synthetic"), "synth_effects": ("synth_lead", "synthetic"),
    "ethnic": ("guitar", "acoustic"), "percussive": ("mallet", "acoustic"),
    "sound_effects": ("synth_lead", "electronic"),
}
_NSYNTH_BY_PROGRAM = {
    2: ("keyboard", "electronic"), 4: ("keyboard", "electronic"), 5: ("keyboard", "electronic"),
    7: ("keyboard", "electronic"), 8: ("keyboard", "acoustic"),                        # celesta
    19: ("organ", "acoustic"), 20: ("organ", "acoustic"),                              # church, reed organ
    21: ("reed", "acoustic"), 22: ("reed", "acoustic"), 23: ("reed", "acoustic"),      # accordions, harmonica
    24: ("guitar", "acoustic"), 25: ("guitar", "acoustic"), 32: ("bass", "acoustic"),
    38: ("bass", "synthetic"), 39: ("bass", "synthetic"), 47: ("mallet", "acoustic"),  # synth basses; timpani
    50: ("string", "synthetic"), 51: ("string", "synthetic"), 52: ("vocal", "acoustic"), 53: ("vocal", "acoustic"),
    54: ("vocal", "synthetic"), 55: ("string", "electronic"),                          # synth voice; orchestra hit
    62: ("brass", "synthetic"), 63: ("brass", "synthetic"), 85: ("vocal", "synthetic"),  # synth brass; lead 6 (voice)
    108: ("mallet", "acoustic"), 109: ("reed", "acoustic"), 110: ("string", "acoustic"),  # kalimba, bagpipe, fiddle
    111: ("reed", "acoustic"), 118: ("mallet", "synthetic"), 119: ("mallet", "electronic"),  # shanai; synth drum
    120: ("guitar", "acoustic"), 121: ("flute", "acoustic"),                          # fret noise, breath noise
}


def nsynth_labels(program: int) -> tuple[str, str]:
    """NSynth's (instrument family, source) of a GM program: 40 (Violin) -> ('string', 'acoustic');
    -1 (a synthetic tone of this package) -> ('synth_lead', 'synthetic')."""
    if program == -1:
        return "synth_lead", "synthetic"
    if not 0 <= program < 128:
        raise PipelineError(f"no NSynth labels for program {program}: GM program numbers run 0 to 127 (-1: a tone)")
    return _NSYNTH_BY_PROGRAM.get(program) or _NSYNTH_BY_GM_FAMILY[GM_FAMILIES[program // 8]]
