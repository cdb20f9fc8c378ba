"""Frames: a recording cut into centred windows, and a model run over them.

Frame k is the 5,280 samples [k*hop - 2640, k*hop + 2640) of the audio zero-padded by 2,640
samples at both ends, so it is centred at `time = k*hop` (CREPE's centred frames). Frames too
quiet to analyse (energy factor 0, pipeline.dsp.confidence) never reach the model.

Two ways to run the model over the frames, by what the predictor can do:
- a stream model (ONNX, pipeline.inference.predictor.OnnxPredictor): the whole recording, scaled once to a
  -1 dBFS peak, becomes one spectrogram (pipeline.dsp.spectrogram.spectrogram_columns) and each frame
  is the window starting on the network's pooling grid (every 3 columns, 168 samples) nearest
  its first sample: within 84 samples (5.25 ms) of the frame's own 330 ms window. One pass gives
  every frame, whatever the hop. Its confidence multiplies the model's own, the frame's energy
  and YIN's periodicity, computed every 80 ms and interpolated between;
- the reference and bins models (Keras): each frame's window is cut, scaled to a -1 dBFS peak
  as the training clips were, and its spectrogram computed; windows of consecutive files share
  batches; confidence multiplies the model's own, the energy and the periodicity of every frame
  (pipeline.dsp.confidence).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from pipeline.core import constants as C
from pipeline.core.errors import PipelineError
from pipeline.dsp.confidence import ENERGY_FLOOR_DBFS, energy_score, frame_levels, periodicity_score

HALF_CLIP = C.CLIP_SAMPLES // 2  # 2,640: frames are centred, so the audio is padded by this on both sides
COLUMN_BLOCK = 8192              # stream: spectrogram columns per model call (about 29 s): memory stays flat
PERIODICITY_STRIDE = 0.08        # seconds between the frames whose periodicity a stream model's frames use
PERIODICITY_BLOCK = 256          # windows at a time (5 MB), so memory stays flat on long recordings
MIN_AUDIO_SECONDS = 0.05         # shorter audio holds too few periods to name a pitch (the dataset's gate: 50 ms)


# --- windows ----------------------------------------------------------------------------------
def normalise_peaks(clips: np.ndarray) -> np.ndarray:
    """Scale each window (in place) to a -1 dBFS peak, as the training clips were; silence stays silent."""
    peaks = np.abs(clips).max(axis=1, keepdims=True)
    scale = np.where(peaks > 0, C.PEAK_NORMALIZE_LINEAR / np.maximum(peaks, np.finfo(np.float32).tiny), 1.0)
    clips *= scale.astype(clips.dtype)
    return clips


# --- frames of one recording ---------------------------------------------------------------
@dataclass
class Track:
    """One recording cut into centred frames, and what has been found for each frame so far."""
    padded: np.ndarray           # mono 16 kHz audio with HALF_CLIP zeros at both ends
    hop: int                     # samples
    levels_db: np.ndarray        # frame RMS, dBFS
    energy: np.ndarray           # energy factor, 0..1
    todo: np.ndarray             # indices of the frames the model must see (energy > 0)
    frequency: np.ndarray = field(init=False)
    model_confidence: np.ndarray = field(init=False)
    periodicity: np.ndarray = field(init=False)
    analysed: int = 0

    def __post_init__(self):
        n = len(self.levels_db)
        self.frequency = np.zeros(n)
        self.model_confidence = np.zeros(n)
        self.periodicity = np.zeros(n)

    @classmethod
    def from_audio(cls, audio16k: np.ndarray, hop: int) -> Track:
        if len(audio16k) < round(MIN_AUDIO_SECONDS * C.SAMPLE_RATE):
            raise PipelineError(f"the audio lasts {1000 * len(audio16k) / C.SAMPLE_RATE:.0f} ms, too short to analyse; "
                                f"give at least {1000 * MIN_AUDIO_SECONDS:.0f} ms")
        n_frames = 1 + len(audio16k) // hop
        padded = np.pad(audio16k, (HALF_CLIP, HALF_CLIP))
        starts = np.arange(n_frames) * hop
        levels = frame_levels(padded, starts)
        energy = energy_score(levels)
        return cls(padded, hop, levels, energy, np.flatnonzero(energy > 0))

    @property
    def finished(self) -> bool:
        return self.analysed == len(self.todo)

    @property
    def time(self) -> np.ndarray:
        return np.arange(len(self.levels_db)) * self.hop / C.SAMPLE_RATE

    @property
    def confidence(self) -> np.ndarray:
        return self.model_confidence * self.energy * self.periodicity

    def windows(self, frames: np.ndarray) -> np.ndarray:
        """A float32 copy of the frames' 5,280-sample windows."""
        view = np.lib.stride_tricks.sliding_window_view(self.padded, C.CLIP_SAMPLES)[::self.hop]
        return np.array(view[frames], dtype=np.float32)

    def prediction(self) -> Prediction:
        return Prediction(self.time, self.frequency, self.confidence, float(self.levels_db.max()))


@dataclass
class Prediction:
    """A recording's frames: centre times (s), f0 (Hz, 0 where not analysed), confidence 0..1."""
    time: np.ndarray
    frequency: np.ndarray
    confidence: np.ndarray
    loudest_dbfs: float          # the loudest frame's RMS

    @property
    def silent(self) -> bool:
        """No frame loud enough to analyse (every frame at or below -90 dBFS RMS)."""
        return self.loudest_dbfs <= ENERGY_FLOOR_DBFS

    def silence_note(self) -> str:
        level = ("digital silence" if self.loudest_dbfs <= C.SILENCE_DB
                 else f"loudest frame {self.loudest_dbfs:.0f} dBFS RMS")
        return f"silent ({level}, at or below {ENERGY_FLOOR_DBFS:.0f} dBFS): every frame has confidence 0"


def _run_windows(pieces: list[tuple[Track, np.ndarray]], predictor) -> None:
    """Analyse the listed frames of one or more tracks in one model call; fill in their results."""
    from pipeline.dsp.spectrogram import spectrogram

    clips = normalise_peaks(np.concatenate([track.windows(frames) for track, frames in pieces]))
    hz, model_confidence = predictor.predict(spectrogram(clips, predictor.scaling))
    periodicity = periodicity_score(clips)
    at = 0
    for track, frames in pieces:
        part = slice(at, at + len(frames))
        track.frequency[frames] = hz[part]
        track.model_confidence[frames] = np.clip(model_confidence[part], 0.0, 1.0)
        track.periodicity[frames] = periodicity[part]
        track.analysed += len(frames)
        at += len(frames)


def analyse(items: Iterable[tuple[object, Track | PipelineError]], predictor,
             batch_size: int) -> Iterator[tuple[object, Track | PipelineError]]:
    """Run the model over the frames of many tracks, `batch_size` windows a call across track
    boundaries; yield each (key, track or error) in input order once its frames are done."""
    if batch_size < 1:
        raise PipelineError(f"batch size must be at least 1, got {batch_size}")
    waiting: deque = deque()
    pieces: list[tuple[Track, np.ndarray]] = []
    filled = 0

    def ready():
        while waiting and (isinstance(waiting[0][1], PipelineError) or waiting[0][1].finished):
            yield waiting.popleft()

    stream = hasattr(predictor, "probabilities")
    for key, track in items:
        waiting.append((key, track))
        if isinstance(track, Track) and stream:
            _run_stream(track, predictor)
        elif isinstance(track, Track):
            start = 0
            while start < len(track.todo):
                take = min(batch_size - filled, len(track.todo) - start)
                pieces.append((track, track.todo[start:start + take]))
                filled += take
                start += take
                if filled == batch_size:
                    _run_windows(pieces, predictor)
                    pieces, filled = [], 0
        yield from ready()
    if pieces:
        _run_windows(pieces, predictor)
    yield from ready()


def _run_stream(track: Track, predictor) -> None:
    """A stream model over every frame of one recording: the recording's spectrogram once, a block
    of columns at a time; each frame reads the window starting at its nearest column."""
    from pipeline.dsp.spectrogram import spectrogram_columns

    if not len(track.todo):
        return
    peak = float(np.abs(track.padded).max())
    audio = track.padded * np.float32(C.PEAK_NORMALIZE_LINEAR / peak)   # one gain for the whole recording
    step = predictor.window_step * C.HOP              # windows start on the network's pooling grid
    last = (len(audio) - C.CLIP_SAMPLES) // step      # the last window that fits
    positions = np.clip(np.rint(track.todo * track.hop / step).astype(np.int64), 0, last) * predictor.window_step
    start = 0
    while start < len(positions):
        first = positions[start]
        stop = int(np.searchsorted(positions, first + COLUMN_BLOCK, side="right"))
        chosen = positions[start:stop]
        piece = audio[first * C.HOP:chosen[-1] * C.HOP + C.CLIP_SAMPLES]
        probs = predictor.probabilities(spectrogram_columns(piece, predictor.scaling), chosen - first)
        frames = track.todo[start:stop]
        track.frequency[frames], confidence = predictor.encoding.decode(probs)
        track.model_confidence[frames] = np.clip(confidence, 0.0, 1.0)
        start = stop
    track.periodicity[track.todo] = _sparse_periodicity(track)
    track.analysed = len(track.todo)


def _sparse_periodicity(track: Track) -> np.ndarray:
    """YIN's periodicity of the frames to analyse, computed on frames PERIODICITY_STRIDE apart and
    interpolated between: 330 ms windows that far apart share three quarters of their audio, so
    it changes little between them, and every frame's own would cost as much as the network.
    (The stream model learned noise as unpitched, but steady white noise still got 0.6.)"""
    todo = track.todo
    every = max(1, round(PERIODICITY_STRIDE * C.SAMPLE_RATE / track.hop))
    picks = np.unique(np.concatenate([todo[::every], todo[-1:]]))
    scores = np.concatenate([periodicity_score(track.windows(picks[i:i + PERIODICITY_BLOCK]))
                             for i in range(0, len(picks), PERIODICITY_BLOCK)])
    return np.interp(todo, picks, scores)
