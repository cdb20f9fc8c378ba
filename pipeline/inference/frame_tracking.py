"""A frame model over a recording: an f0 and a confidence every 10 ms, a block at a time.

Frame k is centred on sample k x 160 of the 16 kHz audio (t = k x 10 ms, CREPE's convention;
the audio is silent before its start and after its end). `FrameTracker` takes the audio in
pieces of any size (a file read a block at a time, pipeline.dsp.audio.audio_blocks) and keeps
only what the next frames need, so memory does not grow with the recording: a one-hour file
costs what a one-minute one does, plus its three numbers per frame.

Confidence: the model's own, its largest activation (it learned silence, noise and consonants as
unpitched), scaled so that 0.5 is the voicing threshold: an activation of VOICED_ACTIVATION gives
0.5 (on held-out phrases, 0.5 then calls 96.5 % of the voiced frames voiced and 7 % of the
unvoiced ones); times two energy gates on the frame's 64 ms RMS: an absolute one, 0 at or below
-90 dBFS (no pitch can be heard there, and the model never needs to run) rising to 1 at -70
dBFS, and one relative to the recording's loudest frame, 0 at 50 dB below it rising to 1 at 35 dB
below (as the dataset's labels: a release tail that has fallen that far is no longer a note).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from pipeline.core import constants as C
from pipeline.dsp.confidence import ENERGY_FLOOR_DBFS, ENERGY_FULL_DBFS
from pipeline.dsp.frame_refine import STEADY_FRAMES, refine_frames, steady_low
from pipeline.dsp.log_spectrum import HOP, PAD, WINDOWS, frame_count, spectra_at_samples

BLOCK_FRAMES = 500                 # frames per model call: 5 s of audio, 25 MB of intermediate tensors
LEVEL_WINDOW = WINDOWS[0]          # the energy gates' window (64 ms)
VOICED_ACTIVATION = 0.3            # the largest activation that becomes confidence 0.5
RELATIVE_GATE_DB = (-50.0, -35.0)  # below the loudest frame: confidence 0 at the first, 1 at the second


class FrameTracker:
    """Feed it 16 kHz mono audio in pieces (`feed`), then `finish()`: (hz, confidence, level_db)
    of every frame."""

    def __init__(self, predictor, block_frames: int = BLOCK_FRAMES, fine: bool = True,
                 fmin: float | None = None, fmax: float | None = None):
        """`fine`: each frame's estimate made exact from its partials (pipeline/dsp/frame_refine.py);
        `fmin`, `fmax` (Hz): the model chooses among the pitch bins within them only."""
        self.predictor, self.block, self.fine = predictor, block_frames, fine
        bins = predictor.encoding.low_hz * 2.0 ** (np.arange(predictor.encoding.n_bins)
                                                  / predictor.encoding.bins_per_octave)
        self.outside = (bins < (fmin or 0.0)) | (bins > (fmax or np.inf))
        self.context = predictor.context
        self.margin = PAD + (self.context + 1) * HOP        # samples a frame's context reaches either side
        self.buffer = np.zeros(self.margin, np.float32)      # silence before the audio
        self.origin = -self.margin                           # the sample buffer[0] is
        self.fed = 0
        self.next = 0                                        # the first frame not yet estimated
        self.parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def feed(self, audio: np.ndarray) -> None:
        audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        self.buffer = np.concatenate([self.buffer, audio])
        self.fed += len(audio)
        self._run(final=False)

    def finish(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        self.buffer = np.concatenate([self.buffer, np.zeros(self.margin, np.float32)])
        self._run(final=True)
        if not self.parts:
            return np.zeros(0), np.zeros(0), np.zeros(0)
        hz, confidence, levels = (np.concatenate(column) for column in zip(*self.parts))
        low, high = RELATIVE_GATE_DB
        confidence *= np.clip((levels - levels.max() - low) / (high - low), 0.0, 1.0)
        return hz, confidence, levels

    def _run(self, final: bool) -> None:
        end = self.origin + len(self.buffer)                 # samples held, absolute, exclusive
        available = (end - self.margin) // HOP               # the last frame whose context is all here
        if final:
            available = min(available, frame_count(self.fed) - 1)
        # a frame's fine pitch depends on its neighbours' estimates (is the pitch steady?): a block
        # ends STEADY_FRAMES before the last frame available, whose estimates it also computes, so
        # that the answer is the same however the audio is cut into pieces
        last = available if final else available - STEADY_FRAMES
        while self.next <= last:
            stop = min(self.next + self.block, last + 1)
            self.parts.append(self._frames(self.next, stop, available + 1))
            self.next = stop
        keep = (self.next - STEADY_FRAMES - self.context) * HOP - PAD - HOP - self.origin
        if keep > 0:
            self.buffer, self.origin = self.buffer[keep:], self.origin + keep

    def _frames(self, first: int, stop: int, limit: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Frames first..stop-1, estimated with up to STEADY_FRAMES neighbours either side (below `limit`)."""
        start, end = max(first - STEADY_FRAMES, 0), min(stop + STEADY_FRAMES, limit)
        levels = self._levels(np.arange(start, end) * HOP - self.origin)
        hz, confidence = np.zeros(end - start), np.zeros(end - start)
        loud = np.flatnonzero(levels > ENERGY_FLOOR_DBFS)
        if len(loud):                                        # silence never reaches the model
            lo, hi = loud[0], loud[-1] + 1
            centres = np.arange(start + lo - self.context, start + hi + self.context) * HOP - self.origin
            spectra, magnitudes = spectra_at_samples(self.buffer, centres, magnitudes=True)
            activations = self.predictor.frame_activations(spectra)
            activations[:, self.outside] = 0.0
            found_hz, found = self.predictor.encoding.decode(activations)
            inner = slice(self.context, len(centres) - self.context)
            short, long = (m[inner] for m in magnitudes)
            hz[lo:hi] = np.where(levels[lo:hi] > ENERGY_FLOOR_DBFS, found_hz, 0.0)
            if self.fine:   # steady or not from every neighbour held: the same for any cut into pieces
                hz[lo:hi] = refine_frames(short, long, hz[lo:hi], steady_low(hz)[lo:hi])
            confidence[lo:hi] = found
        keep = slice(first - start, stop - start)
        hz, confidence, levels = hz[keep], confidence[keep], levels[keep]
        gate = np.clip((levels - ENERGY_FLOOR_DBFS) / (ENERGY_FULL_DBFS - ENERGY_FLOOR_DBFS), 0.0, 1.0)
        confidence = np.clip(confidence * (0.5 / VOICED_ACTIVATION), 0.0, 1.0)
        return np.where(gate > 0, hz, 0.0), confidence * gate, levels

    def _levels(self, centres: np.ndarray) -> np.ndarray:
        """RMS (dBFS) of the LEVEL_WINDOW samples around each centre of the buffer."""
        lo = np.clip(centres - LEVEL_WINDOW // 2, 0, len(self.buffer))
        hi = np.clip(centres + LEVEL_WINDOW // 2, 0, len(self.buffer))
        if len(centres) == 0:
            return np.zeros(0)
        first = int(lo.min())   # only the span these frames read: a long buffer was summed whole for each block
        span = self.buffer[first:int(hi.max())]
        power = np.concatenate([[0.0], np.cumsum(np.square(span, dtype=np.float64))])
        mean = (power[hi - first] - power[lo - first]) / LEVEL_WINDOW
        return 10.0 * np.log10(np.maximum(mean, 10.0 ** (C.SILENCE_DB / 10.0)))


def track_audio(pieces: Iterable[np.ndarray], predictor,
                fine: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(hz, confidence, level_db) every 10 ms of 16 kHz audio given in pieces."""
    tracker = FrameTracker(predictor, fine=fine)
    for piece in pieces:
        tracker.feed(piece)
    return tracker.finish()


NOTE_SECONDS = 1.0                 # a one-note summary is made fine from (at most) its middle second
NOTE_STEADY_CENTS = 50.0           # ... when its frames spread less than this (10th to 90th percentile)


def refine_note(blocks: Iterable[np.ndarray], times: np.ndarray, hz: np.ndarray) -> np.ndarray:
    """A frame model's frames of one steady note (`times` in s, `hz`), moved together so that their median
    is what the note's own middle second says (pipeline.dsp.fine_pitch.refine_estimates, as the
    clip models' summaries): one long window resolves the partials far better than a frame's
    64 ms. `blocks`: the recording's 16 kHz audio in pieces (pipeline.dsp.audio.audio_blocks)."""
    from pipeline.dsp.fine_pitch import refine_estimates

    cents = 1200.0 * np.log2(hz)
    low, high = np.percentile(cents, [10, 90])
    if high - low > NOTE_STEADY_CENTS:   # vibrato or a slide: one long window would blur the partials
        return hz
    middle, half = float(np.median(times)), NOTE_SECONDS / 2
    start = round(max(float(times.min()), middle - half) * C.SAMPLE_RATE)
    stop = round(min(float(times.max()), middle + half) * C.SAMPLE_RATE)
    if stop - start < WINDOWS[0]:
        return hz
    centre = float(np.exp(np.median(np.log(hz))))
    fine = refine_estimates(_samples_between(blocks, start, stop)[None], np.array([centre]))[0]
    return hz * (fine / centre) if np.isfinite(fine) and fine > 0 else hz


def _samples_between(blocks: Iterable[np.ndarray], start: int, stop: int) -> np.ndarray:
    """Samples start..stop of audio given in pieces, reading no further than `stop`."""
    parts, at = [], 0
    for block in blocks:
        low, high = max(start - at, 0), min(stop - at, len(block))
        if high > low:
            parts.append(block[low:high])
        at += len(block)
        if at >= stop:
            break
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)
