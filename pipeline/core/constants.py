"""The constants several modules share, and the few base values they are derived from.

A constant only one module uses lives at the top of that module (the model's filter counts
in pipeline/model/networks.py, the trackers' settings in pipeline/report/baselines.py, RENDER_VERSION in
pipeline/data/plan.py, ...). Derived values are computed from the base ones here, so they cannot
drift apart.
"""

# --- Audio --------------------------------------------------------------------------
SAMPLE_RATE = 16_000            # Hz, the dataset's and the model's rate
RENDER_RATE = 44_100            # Hz, what FluidSynth renders at before resampling
CLIP_SECONDS = 0.330
CLIP_SAMPLES = round(SAMPLE_RATE * CLIP_SECONDS)  # 5,280
PEAK_NORMALIZE_DBFS = -1.0      # every clip is scaled so its peak sits here
PEAK_NORMALIZE_LINEAR = 10.0 ** (PEAK_NORMALIZE_DBFS / 20.0)
SILENCE_DB = -200.0             # the level reported for digital silence (where log10(0) would be)

# where a clip sits on its note: attack (from the onset), sustain (mid-hold), decay (from the note-off);
# onset (the note begins inside it), release (the note-off falls inside it): each clip_seconds long
SEGMENTS = ("attack", "sustain", "decay", "onset", "release")
WHOLE = "whole"                 # the segment of a whole note, note-on to the end of its release, alone in data.segments
SEGMENT_NAMES = (*SEGMENTS, WHOLE)
SYNTHETIC_SOURCE = "synthetic"  # the source name of pipeline/data/tones.py's notes (soundfonts go by file name)
SOUNDING_RANGE_DB = 40.0        # a 10 ms frame "sounds" within this many dB of the clip's loudest

# --- MIDI ---------------------------------------------------------------------------
MIDI_MIN, MIDI_MAX = 0, 127
PITCH_BEND_CENTER = 8192        # 14-bit wheel, 0..16383
PITCH_BEND_RANGE_CENTS = 200.0  # GM default sensitivity: +-2 semitones

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
SPLITS = ("train", "val", "test")
MODEL_FILE = "model.keras"      # models/NAME/MODEL_FILE, and models/NAME/reference/MODEL_FILE

# --- Model --------------------------------------------------------------------------
MODEL_FORMAT = "pitch-pipeline-f0-model"
MODEL_FORMAT_VERSION = 2        # bump when model.json or the saved model changes incompatibly (2: checksums, seal)
PREDICT_BATCH = 256             # spectrograms per model call

# --- Evaluation ---------------------------------------------------------------------
CENT_TOLERANCE = 50.0           # mir_eval's raw pitch/chroma accuracy tolerance; also the octave-error window
BASELINES = ("pyin", "praat", "swift_f0", "crepe", "crepe_tiny")  # the registry's names, for config checks
