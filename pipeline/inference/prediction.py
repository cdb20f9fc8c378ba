"""Prediction: f0 and a per-frame confidence for any audio file, from a trained model.

Layers, each adding one concern (as in torchcrepe):
- `predict(audio, sr, model=None)`: an array in, `(time, frequency, confidence)` arrays out;
- `predict_from_file(path, model=None)`: reads WAV, FLAC, MP3 or OGG (libsndfile) first;
- `predict_file_to_csv(path, out_csv, model=None)`: writes CREPE's `time,frequency,confidence` CSV;
- `predict_files(paths, model_path, ...)`: many files, the model loaded once and the windows
  of consecutive files sharing batches; a bad file gets its message, the others go on;
- `summarize(...)` / `summarize_files(paths, model_path)`: one f0, note and cents per single-note file;
  (`pipeline predict` is `iter_files` with its results printed by pipeline.cli).

Frames (pipeline.inference.frames). The audio is mixed to mono (the mean of its channels) and resampled
to 16 kHz with soxr (very high quality, as the dataset's clips). Frame k is a 330 ms window
centred at `time = k*hop` of the audio zero-padded by 2,640 samples at both ends (CREPE's
centred frames): the first frame is centred at 0 s and the last at the last multiple of the
hop inside the audio, 1 + floor(samples / hop) frames. The hop is rounded to whole samples at
16 kHz (10 ms = 160 samples); `time` is exact for that hop. A stream model reads the whole
recording's spectrogram once (windows on its pooling grid, within 5.25 ms of each frame's);
the other models read each window scaled to a -1 dBFS peak.

Confidence, 0..1, is the product of the model's own (the probability mass of the +-4 bins
around the peak; the `reference` regressor has none and gives 1), the frame's energy, and its
periodicity (pipeline.dsp.confidence; for a stream model computed every 80 ms, pipeline.inference.frames).

So digital silence and very quiet frames get 0, noise nearly 0, a steady note about the
model's own confidence. Use it as CREPE's: keep the frames above a threshold (0.5 is a
sensible start). Frequency is the model's estimate for every frame it analysed, confident
or not, as CREPE reports it; frames whose energy factor is 0 are not sent to the model at
all (that is also what makes silence cheap) and get frequency 0 (mir_eval's "unvoiced") and
confidence 0. An all-silent file therefore gives a CSV of zeros and a warning.

The model comes from pipeline.inference.predictor.load_predictor: a stream model runs in ONNX Runtime
and never imports TensorFlow; the others load it in Keras.
"""

from __future__ import annotations

import csv
import functools
import io
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.core import constants as C
from pipeline.core.artifacts import write_text
from pipeline.core.errors import PipelineError
from pipeline.core.pitch import hz_to_midi, midi_to_hz, note_name
from pipeline.dsp.audio import audio_blocks, read_audio, to_model_rate
from pipeline.dsp.fine_pitch import refine_estimates
from pipeline.dsp.log_spectrum import HOP
from pipeline.inference.frame_tracking import FrameTracker, refine_note
from pipeline.inference.frames import MIN_AUDIO_SECONDS, Prediction, Track, analyse
from pipeline.inference.outputs import output_path, write_csv, write_prediction
from pipeline.inference.predictor import load_predictor

PREDICT_HOP_SECONDS = 0.010     # CREPE's default: 100 frames per second of audio
SUMMARY_HOP_SECONDS = C.CLIP_SECONDS / 2  # --summary: every sample lies in two windows (6 per second)
F0_CSV_SUFFIX = ".f0.csv"       # song.wav -> song.f0.csv, CREPE's name
SUMMARY_FRAME_SHARE = 0.5       # --summary: frames with at least this share of the best frame's confidence
SUMMARY_MIN_CONFIDENCE = 0.1    # --summary: a file whose best frame is below this has no pitch
SPREAD_WARNING_CENTS = 100.0    # --summary: frames used spreading wider (10th to 90th percentile) warn: not one note


# --- frames -------------------------------------------------------------------------------------
def hop_samples(hop: float) -> int:
    """A hop in seconds -> whole samples at 16 kHz (at least one)."""
    try:
        seconds = float(hop)
    except (TypeError, ValueError):
        seconds = float("nan")
    if not np.isfinite(seconds):
        raise PipelineError(f"hop must be a number of seconds, got {hop!r}; e.g. {PREDICT_HOP_SECONDS}")
    samples = round(seconds * C.SAMPLE_RATE)
    if samples < 1:
        raise PipelineError(f"hop {hop!r} s is shorter than one sample at {C.SAMPLE_RATE} Hz; "
                            f"use e.g. {PREDICT_HOP_SECONDS}")
    return int(samples)


# --- the model -------------------------------------------------------------------------------
def as_predictor(model=None):
    """A loaded predictor for `model`: None (the shipped default), a model file's path, or a
    predictor already loaded with `load_predictor` (returned as it is). A file is loaded once, and
    again when it changes."""
    if model is None or isinstance(model, (str, Path)):
        path = Path(model).resolve() if model is not None else None
        changed = path.stat().st_mtime_ns if path is not None and path.is_file() else 0
        return _cached_predictor(None if path is None else str(path), changed)
    return model


@functools.lru_cache(maxsize=4)
def _cached_predictor(path: str | None, mtime_ns: int):
    return load_predictor(path)


# --- layer 1: arrays ----------------------------------------------------------------------
def predict_frames(audio: np.ndarray, sr: int, model=None, hop: float = PREDICT_HOP_SECONDS,
                   batch_size: int = C.PREDICT_BATCH) -> Prediction:
    """Like `predict`, returning a Prediction (which also knows whether the audio was silent)."""
    predictor = as_predictor(model)
    audio16 = to_model_rate(audio, sr)
    if is_frame_model(predictor):
        return frame_prediction([audio16], predictor, hop_samples(hop))
    track = Track.from_audio(audio16, hop_samples(hop))
    for _, done in analyse([(None, track)], predictor, batch_size):
        return done.prediction()
    raise AssertionError("unreachable")


def is_frame_model(predictor) -> bool:
    return hasattr(predictor, "frame_activations")


def frame_prediction(pieces, predictor, hop: int, fmin: float | None = None,
                     fmax: float | None = None) -> Prediction:
    """A frame model's Prediction of 16 kHz audio given in pieces, at `hop` samples: its 10 ms
    frames, each requested frame taking the nearest one; pitches between `fmin` and `fmax` only."""
    tracker = FrameTracker(predictor, fmin=fmin, fmax=fmax)
    for piece in pieces:
        tracker.feed(piece)
    hz, confidence, levels = tracker.finish()
    if tracker.fed < round(MIN_AUDIO_SECONDS * C.SAMPLE_RATE):
        raise PipelineError(f"the audio lasts {1000 * tracker.fed / C.SAMPLE_RATE:.0f} ms, too short to analyse; "
                            f"give at least {1000 * MIN_AUDIO_SECONDS:.0f} ms")
    frames = np.arange(1 + tracker.fed // hop)
    nearest = np.minimum(np.rint(frames * hop / HOP).astype(np.int64), len(hz) - 1)
    return Prediction(frames * hop / C.SAMPLE_RATE, hz[nearest], confidence[nearest], float(levels.max()))


def predict(audio: np.ndarray, sr: int, model=None, hop: float = PREDICT_HOP_SECONDS,
            batch_size: int = C.PREDICT_BATCH) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The f0 of an array, one frame every `hop` seconds.

    Parameters
    ----------
    audio : np.ndarray, shape (samples,) or (samples, channels)
        Any sample rate; channels are mixed to mono, the audio resampled to 16 kHz.
    sr : int
        The sample rate of `audio` in Hz.
    model : None, str, Path or a loaded predictor
        None: the model shipped in the package; a path: models/NAME/model.keras (or .onnx).
    hop : float
        Seconds between frames (10 ms, CREPE's default).

    Returns
    -------
    time, frequency, confidence : np.ndarray, shape (frames,) each
        Frame centres in seconds (the first at 0), f0 in Hz (0 where the frame was not analysed)
        and confidence 0..1 (see the module docstring).

    Examples
    --------
    >>> t = np.arange(16000) / 16000
    >>> time, frequency, confidence = predict(np.sin(2 * np.pi * 440 * t), 16000)
    >>> len(time), bool(abs(np.median(frequency[confidence > 0.5]) - 440) < 5)
    (101, True)
    """
    p = predict_frames(audio, sr, model, hop, batch_size)
    return p.time, p.frequency, p.confidence


# --- layer 2: a file ------------------------------------------------------------------------
def predict_from_file(path: str | Path, model=None, hop: float = PREDICT_HOP_SECONDS,
                      batch_size: int = C.PREDICT_BATCH) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`predict` on a WAV, FLAC, MP3 or OGG file at any sample rate and channel count.

    Examples
    --------
    >>> time, frequency, confidence = predict_from_file("song.wav")  # doctest: +SKIP
    """
    p = _prediction_of_file(path, as_predictor(model), hop, batch_size)
    return p.time, p.frequency, p.confidence


def _prediction_of_file(path, predictor, hop, batch_size) -> Prediction:
    audio, sr = read_audio(path)
    try:
        return predict_frames(audio, sr, predictor, hop, batch_size)
    except PipelineError as exc:
        raise PipelineError(f"{path}: {exc}") from None


# --- layer 3: a file to a CSV (pipeline.inference.outputs: also NPZ and JSON) -------------------------
def predict_file_to_csv(path: str | Path, out_csv: str | Path, model=None, hop: float = PREDICT_HOP_SECONDS,
                        batch_size: int = C.PREDICT_BATCH) -> Path:
    """Predict a file and write its CSV (`time,frequency,confidence`); returns the CSV's path.

    Examples
    --------
    >>> predict_file_to_csv("song.wav", "song.f0.csv")  # doctest: +SKIP
    PosixPath('song.f0.csv')
    """
    return write_csv(out_csv, *predict_from_file(path, model, hop, batch_size))


def csv_path(audio_path: str | Path, output_dir: str | Path | None = None) -> Path:
    """song.wav -> song.f0.csv, beside the audio or in `output_dir`."""
    return output_path(audio_path, output_dir, "csv")


# --- one number for a single-note file ----------------------------------------------------------
@dataclass(frozen=True)
class Summary:
    frequency: float             # Hz: the confidence-weighted median of the frames used
    midi: int                    # the nearest MIDI note
    note: str                    # its name, e.g. A4, Cs4
    cents: float                 # frequency relative to that note, -50..+50
    confidence: float            # the mean confidence of the frames used
    frames: int                  # how many frames were used
    spread_cents: float = 0.0    # how far apart the frames used lie: 10th to 90th percentile

    def line(self) -> str:
        return (f"{self.frequency:.2f} Hz, {self.note} {self.cents:+.1f} cents "
                f"(confidence {self.confidence:.2f}, {self.frames} frames)")


def _weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    order = np.argsort(values)
    cumulative = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cumulative, 0.5 * cumulative[-1])])


def summarize(frequency: np.ndarray, confidence: np.ndarray, refine=None) -> Summary:
    """A single note's f0 from its frames: the confidence-weighted median (in cents) of the frames
    whose confidence is at least half the best frame's. PipelineError if no frame is confident.
    `refine(frames, hz) -> hz` may make those frames' estimates fine first (see iter_files)."""
    frequency, confidence = np.asarray(frequency, np.float64), np.asarray(confidence, np.float64)
    usable = (frequency > 0) & np.isfinite(frequency) & (confidence > 0)
    best = float(confidence[usable].max()) if usable.any() else 0.0
    if best < SUMMARY_MIN_CONFIDENCE:
        raise PipelineError(f"no pitched frame (best confidence {best:.2f} < {SUMMARY_MIN_CONFIDENCE}): "
                            "silent, noise or not a pitched note?")
    used = usable & (confidence >= SUMMARY_FRAME_SHARE * best)
    hz = frequency[used] if refine is None else refine(np.flatnonzero(used), frequency[used])
    midi_f0 = _weighted_median(hz_to_midi(hz), confidence[used])
    nearest = int(np.clip(round(midi_f0), C.MIDI_MIN, C.MIDI_MAX))
    low, high = np.percentile(hz_to_midi(hz), [10, 90])
    return Summary(float(midi_to_hz(midi_f0)), nearest, note_name(nearest), 100.0 * (midi_f0 - nearest),
                   float(confidence[used].mean()), int(used.sum()), round(100.0 * float(high - low), 1))


# --- layer 4: many files, the model loaded once -----------------------------------------------------
@dataclass
class FileResult:
    """What became of one input file: a CSV and/or a summary, or an error; maybe a warning."""
    path: Path
    prediction: Prediction | None = None
    csv: Path | None = None
    summary: Summary | None = None
    error: str | None = None
    warning: str | None = None
    plot: Path | None = None     # its PNG, when one was asked for (pipeline.inference.files)

    @property
    def ok(self) -> bool:
        return self.error is None


def _tracks(paths: Sequence[Path], hop: int) -> Iterator[tuple[Path, Track | PipelineError]]:
    """Read and frame the files one at a time (only the files in the current batch are in memory)."""
    for path in paths:
        try:
            audio, sr = read_audio(path)
            try:
                track = Track.from_audio(to_model_rate(audio, sr), hop)
            except MemoryError:
                raise PipelineError(f"{path}: too long to hold in memory; cut it into shorter files") from None
            except PipelineError as exc:
                raise PipelineError(f"{path}: {exc}") from None
            yield path, track
        except PipelineError as exc:
            yield path, exc


def _predictions(paths: Sequence[Path], predictor, hop: int, batch_size: int, pitch_range=(None, None)):
    """(path, (Prediction, its Track or None) or PipelineError) per file, in order: a frame model
    streams each file a block at a time; the others frame the whole file (Track) and share batches."""
    if not is_frame_model(predictor):
        for key, item in analyse(_tracks(paths, hop), predictor, batch_size):
            yield key, item if isinstance(item, PipelineError) else (_in_range(item.prediction(), pitch_range), item)
        return
    for path in paths:
        try:
            yield path, (frame_prediction(audio_blocks(path), predictor, hop, *pitch_range), None)
        except PipelineError as exc:
            yield path, PipelineError(str(exc) if str(exc).startswith(str(path)) else f"{path}: {exc}")


def _note_refinement(path: Path, prediction: Prediction, track: Track | None):
    """How a summary's frames (frame indices, hz) are made fine from the file's own audio: a clip
    model's each from its window; a frame model's together, from the note's middle second."""
    if track is not None:
        return lambda frames, hz: refine_estimates(track.windows(frames), hz)
    return lambda frames, hz: refine_note(audio_blocks(path), prediction.time[frames], hz)


def _in_range(prediction: Prediction, pitch_range) -> Prediction:
    """A clip model's frames outside (fmin, fmax) get confidence 0."""
    fmin, fmax = pitch_range
    outside = (prediction.frequency < (fmin or 0.0)) | (prediction.frequency > (fmax or np.inf))
    prediction.confidence[outside] = 0.0
    return prediction


def iter_files(paths: Iterable[str | Path], predictor, output_dir: str | Path | None = None,
               hop: float | None = None, summary: bool = False,
               batch_size: int = C.PREDICT_BATCH, refine: bool = True,
               output_format: str = "csv", pitch_range: tuple = (None, None)) -> Iterator[FileResult]:
    """Predict many files with one loaded model, yielding a FileResult per file, in order.

    Without `summary`, each file's CSV (or `output_format`: pipeline.inference.outputs) is written
    (beside it, or in `output_dir`); with
    `summary`, no CSV is written and each result carries a Summary (or an error when the
    file has no confident frame), its frames made fine from their own audio unless `refine`
    is False (pipeline.dsp.fine_pitch.refine_estimates). `hop` defaults to 10 ms, or 165 ms with `summary`
    for the clip models. `pitch_range` (fmin, fmax in Hz, None for no bound): a frame model chooses
    among those pitches only; the clip models' frames outside get confidence 0. A summary whose
    frames spread over more than SPREAD_WARNING_CENTS carries a warning: not one note.
    """
    paths = [Path(p) for p in paths]
    if hop is None:   # a frame model's summary uses every 10 ms frame: they cost no more
        hop = SUMMARY_HOP_SECONDS if summary and not is_frame_model(predictor) else PREDICT_HOP_SECONDS
    hop_n = hop_samples(hop)
    owners: dict[Path, Path] = {}
    for key, item in _predictions(paths, predictor, hop_n, batch_size, pitch_range):
        result = FileResult(key)
        if isinstance(item, PipelineError):
            result.error = str(item)
            yield result
            continue
        prediction, track = item
        result.prediction = prediction
        if summary:
            try:
                fine = _note_refinement(key, prediction, track) if refine else None
                result.summary = summarize(prediction.frequency, prediction.confidence, fine)
                if result.summary.spread_cents > SPREAD_WARNING_CENTS:
                    result.warning = (f"{key}: its frames spread over {result.summary.spread_cents:.0f} cents: a "
                                      "melody, a glide or speech is not one note (use the frames, without --summary)")
            except PipelineError as exc:
                result.error = f"{key}: {prediction.silence_note() if prediction.silent else exc}"
        else:
            out = output_path(key, output_dir, output_format)
            resolved = out.resolve()
            if resolved in owners:
                result.error = (f"{key}: its CSV {out} would overwrite the one of {owners[resolved]}; "
                                "give files with the same name different output folders")
            else:
                try:
                    result.csv = write_prediction(out, prediction.time, prediction.frequency, prediction.confidence,
                                                  output_format)
                    owners[resolved] = key
                except PipelineError as exc:
                    result.error = f"{key}: {exc}"
                except OSError as exc:
                    result.error = f"{key}: cannot write {out} ({exc.strerror or exc})"
            if result.ok and prediction.silent:
                result.warning = f"{key}: {prediction.silence_note()}"
        yield result


def predict_files(paths: Iterable[str | Path], model_path: str | Path, output_dir: str | Path | None = None,
                  hop: float | None = None, summary: bool = False,
                  batch_size: int = C.PREDICT_BATCH, refine: bool = True) -> list[FileResult]:
    """Load the model once and predict every file (see iter_files); PipelineError only for the model."""
    return list(iter_files(paths, load_predictor(model_path), output_dir, hop, summary, batch_size, refine))


def summarize_files(paths: Sequence[str | Path], model_path: str | Path, hop: float | None = None,
                    batch_size: int = C.PREDICT_BATCH, with_errors: bool = False, refine: bool = True):
    """Each single-note file's f0 in Hz, NaN where it failed (unreadable, silent, no pitch); `hop`: see
    iter_files (None: every 10 ms frame of a frame model, 165 ms windows of a clip model).

    With `with_errors`, returns (hz, messages) where messages[i] is None or why file i failed.
    """
    results = predict_files(paths, model_path, None, hop, summary=True, batch_size=batch_size, refine=refine)
    hz = np.array([r.summary.frequency if r.summary else np.nan for r in results], dtype=np.float64)
    if with_errors:
        return hz, [r.error for r in results]
    return hz


# --- for the command line (pipeline.cli prints) ----------------------------------------------------
def check_options(hop: float | None, summary: bool, batch_size: int, fmin: float | None = None,
                  fmax: float | None = None) -> float | None:
    """The hop as given (None: `iter_files` chooses); PipelineError for a hop, a batch size or a
    pitch range it cannot use, before the model is loaded."""
    if hop is not None:
        hop_samples(hop)
    if batch_size < 1:
        raise PipelineError(f"the batch size must be at least 1, got {batch_size}")
    for name, value in (("fmin", fmin), ("fmax", fmax)):
        if value is not None and not (np.isfinite(value) and 0 < value < C.SAMPLE_RATE / 2):
            raise PipelineError(f"{name} must be a frequency between 0 and {C.SAMPLE_RATE // 2} Hz, got {value!r}")
    if fmin is not None and fmax is not None and fmin >= fmax:
        raise PipelineError(f"fmin ({fmin:g} Hz) must be below fmax ({fmax:g} Hz)")
    return hop


def write_summary_table(out_csv: str | Path, results: Iterable[FileResult]) -> Path:
    """`path,frequency,note,cents,confidence`, a row per file with a summary; written atomically."""
    table = io.StringIO()
    writer = csv.writer(table, lineterminator="\n")
    writer.writerow(["path", "frequency", "note", "cents", "confidence"])
    for r in results:
        if r.summary:
            s = r.summary
            writer.writerow([r.path, f"{s.frequency:.3f}", s.note, f"{s.cents:.2f}", f"{s.confidence:.4f}"])
    write_text(out_csv, table.getvalue())
    return Path(out_csv)
