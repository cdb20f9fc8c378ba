"""What training needs for the frame model beyond the shared loop (pipeline/model/training.py):
its data (the examples of pipeline/data/frame_examples.py) and its validation scores."""

from __future__ import annotations

import numpy as np

from pipeline.core import constants as C
from pipeline.core.config import Config
from pipeline.core.errors import PipelineError
from pipeline.core.pitch import cents, within
from pipeline.data.feature_files import dataset_hash
from pipeline.data.frame_examples import load_examples
from pipeline.model.frame_batches import validation_inputs

VALIDATION_EXAMPLES = 4096         # validation frames scored after every epoch (spectra made once)
VOICED_THRESHOLD = 0.5             # a frame whose largest activation reaches this is called voiced


def load_frame_data(cfg: Config) -> dict:
    """The fields of training.TrainingData for the frame model."""
    audio, examples = load_examples(cfg, "train")
    if len(examples) == 0:
        raise PipelineError(f"the training split of {cfg.name} has no frames; add instruments, notes or phrases")
    if not (examples[:, 1] > 0).any():
        raise PipelineError(f"the training split of {cfg.name} has no voiced frame; check the dataset's gate "
                            "and the phrases' flags")
    val_audio, val_examples = load_examples(cfg, "val")
    val_x, val_hz = validation_inputs(val_audio, val_examples, cfg.model.frame_context, VALIDATION_EXAMPLES,
                                      cfg.train.seed)
    return {"train_x": examples, "train_hz": examples[:, 1].copy(), "val_x": val_x, "val_hz": val_hz,
            "input_mean": 0.0, "input_std": 1.0, "dataset_sha256": dataset_hash(cfg),
            "train_audio": audio}


def validate_frames(network, data, encoding) -> dict:
    """Loss, cents errors on voiced frames, and voicing recall and false alarm."""
    outputs = np.concatenate([np.asarray(network.predict_on_batch(data.val_x[i:i + C.PREDICT_BATCH]))
                              for i in range(0, len(data.val_x), C.PREDICT_BATCH)]).reshape(len(data.val_x), -1)
    hz, confidence = encoding.decode(outputs)
    voiced, called = data.val_hz > 0, confidence >= VOICED_THRESHOLD
    error = np.abs(cents(data.val_hz[voiced], hz[voiced]))
    return {"val_loss": encoding.loss(outputs, encoding.encode(data.val_hz)),
            "val_cents_mean": float(error.mean()) if len(error) else float("nan"),
            "val_cents_median": float(np.median(error)) if len(error) else float("nan"),
            "val_rpa50": float(np.mean(within(error, C.CENT_TOLERANCE))) if len(error) else float("nan"),
            "val_rpa10": float(np.mean(within(error, 10.0))) if len(error) else float("nan"),
            "val_voicing_recall": float(called[voiced].mean()) if voiced.any() else float("nan"),
            "val_voicing_false_alarm": float(called[~voiced].mean()) if (~voiced).any() else float("nan")}
