"""Reproducible pitch datasets rendered from General MIDI soundfonts and synthetic sources, and
an f0 tracker trained on them.

The names users call, imported on first use (``import pipeline`` stays fast and never imports
TensorFlow):

Prediction (numpy, soundfile, soxr and ONNX Runtime only)
    predict, predict_from_file, predict_from_file_to_file, load_predictor
Datasets and training
    load_config (no argument: the default config, as make's), default_config_path, build_dataset,
    build_features, train, load_manifest, read_clips, load_phrases, load_frames (the phrases and
    their 10 ms frame labels)
Datasets in other formats (docs/dataset-formats.md)
    export_dataset (Parquet, WebDataset, TFRecord, NSynth's layout, with the dataset card)

Examples
--------
>>> import numpy as np, pipeline
>>> t = np.arange(16000) / 16000
>>> time, frequency, confidence = pipeline.predict(np.sin(2 * np.pi * 440 * t), 16000)
>>> bool(abs(np.median(frequency[confidence > 0.5]) - 440) < 5)
True
"""

from __future__ import annotations

import importlib

__version__ = "0.2.0"

# public name -> (module, attribute)
_API = {
    "predict": ("pipeline.inference.prediction", "predict"),
    "predict_from_file": ("pipeline.inference.prediction", "predict_from_file"),
    "predict_from_file_to_file": ("pipeline.inference.prediction", "predict_file_to_csv"),
    "load_predictor": ("pipeline.inference.predictor", "load_predictor"),
    "load_config": ("pipeline.core.config", "load_config"),
    "default_config_path": ("pipeline.core.config", "default_config_path"),
    "build_dataset": ("pipeline.data.dataset", "build_dataset"),
    "build_features": ("pipeline.data.features", "build_features"),
    "train": ("pipeline.model.training", "train"),
    "load_manifest": ("pipeline.data.clips", "load_manifest"),
    "read_clips": ("pipeline.data.clips", "read_clips"),
    "load_phrases": ("pipeline.data.clips", "load_phrases"),
    "load_frames": ("pipeline.data.clips", "load_frames"),
    "export_dataset": ("pipeline.formats.export", "export_dataset"),
    "PipelineError": ("pipeline.core.errors", "PipelineError"),
}
__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name not in _API:
        raise AttributeError(f"module 'pipeline' has no attribute {name!r}")
    module, attribute = _API[name]
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
