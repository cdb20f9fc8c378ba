"""A frame model's one estimate per test clip, as `pipeline predict --summary` gives it for a
single-note file: every 10 ms frame of the clip, then the confidence-weighted median of the
frames at least half as sure as the surest (pipeline.inference.prediction.summarize)."""

from __future__ import annotations

import numpy as np

from pipeline.core import constants as C
from pipeline.core.errors import PipelineError
from pipeline.dsp.log_spectrum import HOP
from pipeline.inference.prediction import frame_prediction, summarize

READ_BLOCK = 2048                  # clips read at a time: memory stays flat


def frame_model_estimates(cfg, rows, predictor) -> tuple[np.ndarray, np.ndarray]:
    """(Hz, confidence) per manifest row of `rows`; NaN and 0 where no frame is pitched."""
    from pipeline.data.clips import read_clips

    hz, confidence = np.full(len(rows), np.nan), np.zeros(len(rows))
    for start in range(0, len(rows), READ_BLOCK):
        clips = read_clips(cfg.data_dir, rows.iloc[start:start + READ_BLOCK], C.SAMPLE_RATE)  # the model's rate
        for offset, clip in enumerate(clips):
            frames = frame_prediction([clip], predictor, HOP)
            try:
                summary = summarize(frames.frequency, frames.confidence)
            except PipelineError:
                continue
            hz[start + offset], confidence[start + offset] = summary.frequency, summary.confidence
    return hz, confidence
