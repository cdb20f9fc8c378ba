"""Every audio and model constant lives here; the rest of the package imports them.

Derived values are computed from the few base ones so they cannot drift apart.
"""

# --- Audio --------------------------------------------------------------------------
SAMPLE_RATE = 16_000            # Hz, the dataset's and the model's rate
RENDER_RATE = 44_100            # Hz, what FluidSynth renders at before resampling
CLIP_SECONDS = 0.330
CLIP_SAMPLES = round(SAMPLE_RATE * CLIP_SECONDS)  # 5,280
SAMPLE_WIDTH_BITS = 16
PEAK_NORMALIZE_DBFS = -1.0      # every clip is scaled so its peak sits here
PEAK_NORMALIZE_LINEAR = 10.0 ** (PEAK_NORMALIZE_DBFS / 20.0)
SILENCE_DB = -200.0             # the level reported for digital silence (where log10(0) would be)
FLUID_BLOCK = 64                # FluidSynth renders in blocks of 64 samples

SEGMENTS = ("attack", "sustain", "decay")
SOUNDING_RANGE_DB = 40.0        # a 10 ms frame "sounds" within this many dB of the clip's loudest

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

# --- Features (pipeline/features.py) -------------------------------------------------
# Floor added to the magnitude before the log: about 120 dB below full scale and above
# the 16-bit quantisation noise, so silence maps to one value instead of dither patterns.
LOG_EPSILON = 1e-6
FEATURES_VERSION = 1            # bump when the stored features change for the same config

# --- Model (pipeline/model.py) --------------------------------------------------------
REFERENCE_FILTERS = (64, 128, 128, 256)  # the original experiment's four Conv2D layers
CONV_KERNEL = (3, 3)
POOL_SIZE = (2, 2)
MODEL_FORMAT = "pitch-pipeline-f0-model"
MODEL_FORMAT_VERSION = 1        # bump when model.json or the saved model changes incompatibly
BIN_MARGIN_SEMITONES = 1        # pitch bins reach this far beyond the note range and its detune
DECODE_HALF_WIDTH_BINS = 4      # soft-argmax window: argmax +- this many bins (CREPE uses 4)
PREDICT_BATCH = 256

# --- Evaluation and report ------------------------------------------------------------
CENT_TOLERANCE = 50.0           # mir_eval's raw pitch/chroma accuracy tolerance; also the octave-error window
FINE_CENT_TOLERANCE = 10.0      # the stricter raw pitch accuracy
MODEL_FILE = "model.keras"      # models/NAME/MODEL_FILE, and models/NAME/reference/MODEL_FILE
PLOT_DPI = 120
PLOT_LOG_FLOOR = 0.01           # a zero error drawn at this height on the plot's log axes

# --- Baselines (pipeline/baselines.py) ------------------------------------------------
BASELINES = ("pyin", "praat", "swift_f0", "crepe", "crepe_tiny")  # the registry's names, for config checks
BASELINE_BATCH = 256            # clips per tracker call where the tracker batches
BASELINE_FMIN_HZ = 30.0         # below MIDI 24 (32.7 Hz), the lowest note a config is likely to render
PYIN_FMAX_HZ = SAMPLE_RATE / 2  # up to Nyquist: the dataset reaches MIDI 119 (7.9 kHz)
PYIN_FRAME_LENGTH = 2048        # YIN needs frame_length - frame_length//2 > SAMPLE_RATE / fmin (533 samples)
PYIN_HOP = 256                  # 16 ms: about 21 frames in a 330 ms clip
PRAAT_TIME_STEP = 0.01          # s
PRAAT_CEILING_HZ = SAMPLE_RATE / 2
SWIFT_F0_VOICING = 0.5          # SwiftF0's documented voicing threshold
CREPE_WINDOW = 1024             # samples: CREPE's fixed input at 16 kHz
CREPE_HOP = 512                 # 32 ms: 9 frames inside a clip (frames are independent; CPU time is the cost)
CREPE_VOICING = 0.5             # periodicity threshold for a voiced frame
CREPE_FMIN_HZ = 32.0            # CREPE's lowest bin is 31.7 Hz; a lower fmin makes torchcrepe mask every bin

# --- Prediction (pipeline/prediction.py) ---------------------------------------------
PREDICT_HOP_SECONDS = 0.010     # CREPE's default: 100 frames per second of audio
SUMMARY_HOP_SECONDS = CLIP_SECONDS / 2  # --summary: every sample lies in two windows (6 per second)
HALF_CLIP = CLIP_SAMPLES // 2   # 2,640: frames are centred, so the audio is padded by this on both sides
F0_CSV_SUFFIX = ".f0.csv"       # song.wav -> song.f0.csv, CREPE's name
# energy score, from the frame's RMS over its 5,280 samples (a ramp in dB, 0 at the floor, 1 at full)
ENERGY_FLOOR_DBFS = -90.0       # absolute: at or below this a frame is silence and is not analysed
ENERGY_FULL_DBFS = -70.0        # (16-bit dither is about -101 dBFS; each window is peak-normalised anyway)
ENERGY_FLOOR_DB_BELOW_LOUDEST = 40.0  # as gate.min_rms_db_below_note: the model never saw quieter segments
ENERGY_FULL_DB_BELOW_LOUDEST = 20.0
# periodicity score, from YIN's cumulative mean normalised difference d' (de Cheveigne & Kawahara 2002):
# its minimum over the lags of 30 Hz .. 8 kHz is ~0 for a periodic frame and ~1 for noise
PERIODICITY_FMIN_HZ = 30.0
PERIODICITY_MIN_LAG = 2         # samples: SAMPLE_RATE / 2 = 8 kHz, the Nyquist frequency
PERIODICITY_MAX_LAG = -(-SAMPLE_RATE // int(PERIODICITY_FMIN_HZ))  # 534 samples
APERIODIC_DPRIME = 0.8          # min d' at or above this: score 0 (noise: 0.92 and up; notes: 95% under 0.14)
PERIODIC_DPRIME = 0.2           # min d' at or below this: score 1
SUMMARY_FRAME_SHARE = 0.5       # --summary: frames with at least this share of the best frame's confidence
SUMMARY_MIN_CONFIDENCE = 0.1    # --summary: a file whose best frame is below this has no pitch
# Modulation spectrum (bins variant): below about 130 Hz a note's harmonics are closer than
# the 256-sample window resolves, but they beat at f0 in every frequency row over time; the
# magnitude of an FFT over each row's 90 frames shows that beat, up to half the frame rate.
FRAME_RATE = SAMPLE_RATE / HOP                 # 285.7 frames per second
MODULATION_ROWS = 256           # frequency rows used, 0-4 kHz, where the harmonics of low notes lie
MODULATION_BANDS = 8            # rows averaged into this many bands after the FFT
MODULATION_FFT = 512            # zero-padded: 0.56 Hz between modulation bins
MODULATION_LOW_HZ = 25.0        # kept modulation range: below MIDI 36 (65 Hz) with margin ...
MODULATION_HIGH_HZ = FRAME_RATE / 2  # ... up to the frame rate's Nyquist
