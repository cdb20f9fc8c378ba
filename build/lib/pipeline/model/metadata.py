"""A trained model's description: models/NAME/model.json beside model.keras (or model.onnx).

Read without TensorFlow: prediction checks a model's format and version before it loads it.
"""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.core import constants as C
from pipeline.core.errors import PipelineError


def sidecar_path(model_path: str | Path) -> Path:
    """models/NAME/model.keras -> models/NAME/model.json."""
    return Path(model_path).with_suffix(".json")


def read_metadata(model_path: Path) -> dict:
    json_path = sidecar_path(model_path)
    fix = "retrain it with make train (or python -m pipeline train)"
    try:
        meta = json.loads(json_path.read_text())
    except FileNotFoundError:
        raise PipelineError(f"model metadata {json_path} is missing; {fix}") from None
    except (OSError, ValueError) as exc:
        raise PipelineError(f"model metadata {json_path} is unreadable ({exc}); {fix}") from None
    if not isinstance(meta, dict) or meta.get("format") != C.MODEL_FORMAT:
        raise PipelineError(f"{json_path} is not a model description written by this pipeline; {fix}")
    if meta.get("format_version") != C.MODEL_FORMAT_VERSION:
        raise PipelineError(f"model {model_path} has format version {meta.get('format_version')}, this code "
                            f"reads version {C.MODEL_FORMAT_VERSION}; {fix}")
    return meta
