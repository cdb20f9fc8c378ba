"""Every audio and model constant lives here; the rest of the package imports them.

Derived values are computed from the few base ones so they cannot drift apart.
"""

# --- Audio --------------------------------------------------------------------------
SAMPLE_RATE = 16_000            # Hz, the dataset's and the model's rate
RENDER_RATE = 44_100            # Hz, what FluidSynth renders at before sox resamples
CLIP_SECONDS = 0.330
CLIP_SAMPLES = round(SAMPLE_RATE * CLIP_SECONDS)  # 5,280
SAMPLE_WIDTH_BITS = 16
PEAK_NORMALIZE_DBFS = -1.0      # every clip is scaled so its peak sits here
FLUID_BLOCK = 64                # FluidSynth renders in blocks of 64 samples

SEGMENTS = ("attack", "sustain", "decay")

# --- MIDI ---------------------------------------------------------------------------
MIDI_MIN, MIDI_MAX = 0, 127
A4_MIDI, A4_HZ = 69, 440.0
PITCH_BEND_CENTER = 8192        # 14-bit wheel, 0..16383
PITCH_BEND_RANGE_CENTS = 200.0  # GM default sensitivity: +-2 semitones
NOTE_NAMES = ("C", "Cs", "D", "Ds", "E", "F", "Fs", "G", "Gs", "A", "As", "B")

# --- Spectrogram --------------------------------------------------------------------
WINDOW = "hann"
WINDOW_LENGTH = 256
OVERLAP = 200
HOP = WINDOW_LENGTH - OVERLAP   # 56
N_FFT = 1024
N_FREQ_BINS = N_FFT // 2 + 1    # 513
N_FRAMES = (CLIP_SAMPLES - OVERLAP) // HOP  # 90
SPEC_SHAPE = (N_FREQ_BINS, N_FRAMES)

# --- Files --------------------------------------------------------------------------
DATA_ROOT = "data"
MODEL_ROOT = "models"
REPORT_ROOT = "reports"
SPLITS = ("train", "val", "test")

# --- General MIDI -------------------------------------------------------------------
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
