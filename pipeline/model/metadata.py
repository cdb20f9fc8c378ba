"""A trained model's description: models/NAME/model.json beside model.keras (and model.onnx).

Read without TensorFlow: prediction checks a model before it loads it. The description records
the sha256 of every model file written with it (`files`: {"keras": ..., "onnx": ...}) and is
sealed by the sha256 of its own content (`content_sha256`), so that a load finds, and names in
one line, a model file that is damaged (a flipped weight byte would still load and answer
wrongly), a description edited or damaged, and a description of another model. The model's
`model_id` (its training run's fingerprint) is also written into the ONNX graph and the .keras
file, which tells a damaged file from a description of another model.
"""

from __future__ import annotations

import json
import math
import zipfile
from pathlib import Path

from pipeline.core import constants as C
from pipeline.core.artifacts import fingerprint, sha256_file, write_text
from pipeline.core.errors import PipelineError
from pipeline.model.encodings import encoding_from_dict

FILES = "files"                 # {"keras": sha256, "onnx": sha256} of the model files it describes
SEAL = "content_sha256"         # sha256 of the rest of the description
MODEL_ID = "model_id"           # the training run's fingerprint, also in the ONNX graph's metadata
VARIANTS = ("reference", "bins", "stream", "frames")
SCALINGS = ("log", "db", "linear")
RETRAIN = "retrain it with make train (or python -m pipeline train)"


def sidecar_path(model_path: str | Path) -> Path:
    """models/NAME/model.keras -> models/NAME/model.json."""
    return Path(model_path).with_suffix(".json")


def file_kind(model_path: str | Path) -> str:
    """The key of a model file in `files`: model.keras -> "keras", default.onnx -> "onnx"."""
    return Path(model_path).suffix.lstrip(".")


def sealed(meta: dict, files: dict[str, str]) -> dict:
    """`meta` (as its JSON reads back) with the checksums of its model files and its seal."""
    meta = json.loads(json.dumps({k: v for k, v in meta.items() if k != SEAL}, default=str))
    meta[FILES] = dict(sorted(files.items()))
    meta[SEAL] = fingerprint(meta)
    return meta


def write_metadata(model_path: str | Path, meta: dict, files: dict[str, str]) -> dict:
    """Write model.json beside `model_path` (atomically): `meta` sealed, recording `files`' sha256s."""
    meta = sealed(meta, files)
    write_text(sidecar_path(model_path), json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return meta


def read_metadata(model_path: str | Path, fix: str = RETRAIN) -> dict:
    """The description of the model at `model_path`, checked: readable, this pipeline's format and
    version, its seal intact, and its values usable. One PipelineError naming the file otherwise."""
    model_path = Path(model_path)
    json_path = sidecar_path(model_path)
    try:
        meta = json.loads(json_path.read_bytes())
    except FileNotFoundError:
        raise PipelineError(f"model metadata {json_path} is missing; {fix}") from None
    except (OSError, ValueError) as exc:
        raise PipelineError(f"model metadata {json_path} is unreadable ({str(exc)[:120]}); {fix}") from None
    if not isinstance(meta, dict) or meta.get("format") != C.MODEL_FORMAT:
        raise PipelineError(f"{json_path} is not a model description written by this pipeline; {fix}")
    if meta.get("format_version") != C.MODEL_FORMAT_VERSION:
        raise PipelineError(f"model {model_path} has format version {meta.get('format_version')}, this code "
                            f"reads version {C.MODEL_FORMAT_VERSION}; {fix}")
    if meta.get(SEAL) != fingerprint({k: v for k, v in meta.items() if k != SEAL}):
        raise PipelineError(f"model metadata {json_path} was edited or is damaged (its content is not what "
                            f"its {SEAL} seals); put back the file written with the model, or {fix}")
    problem = _structure_problem(meta)
    if problem:
        raise PipelineError(f"model metadata {json_path} is not usable ({problem}); {fix}")
    return meta


def check_model_file(path: str | Path, meta: dict, fix: str = RETRAIN, embedded_id: str | None = None) -> None:
    """The model file at `path` is the one its description records (sha256), else one line saying which
    file is wrong: the description of another model (when the file carries another `embedded_id`),
    or a damaged file."""
    path = Path(path)
    recorded = (meta.get(FILES) or {}).get(file_kind(path))
    if not recorded:
        raise PipelineError(f"{sidecar_path(path).name} beside {path} records no checksum of it: it describes "
                            f"another file; {fix}")
    if sha256_file(path) == recorded:
        return
    if embedded_id is not None and embedded_id != meta.get(MODEL_ID):
        raise PipelineError(f"{sidecar_path(path)} describes another model than {path} (another training run); "
                            f"put back the {sidecar_path(path).name} written with it, or {fix}")
    raise PipelineError(f"model {path} is damaged (its sha256 is not the one its metadata records); {fix}")


KERAS_ID_MEMBER = "pipeline/model_id"   # a member added to the .keras zip (Keras reads only its own)


def mark_keras(path: str | Path, model_id: str) -> None:
    """Write the training run's `model_id` into a saved .keras file, as the ONNX graph carries it."""
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr(KERAS_ID_MEMBER, model_id)


def keras_model_id(path: str | Path) -> str | None:
    """The `model_id` a .keras file carries; None when it has none or cannot be read (damaged)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.read(KERAS_ID_MEMBER).decode()
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, EOFError):
        return None


def _structure_problem(meta: dict) -> str | None:
    """What makes a sealed description unusable (one written by hand, or by a bug), or None."""
    if meta.get("variant") not in VARIANTS:
        return f"variant {meta.get('variant')!r} is not one of {', '.join(VARIANTS)}"
    if meta.get("scaling") not in SCALINGS:
        return f"scaling {meta.get('scaling')!r} is not one of {', '.join(SCALINGS)}"
    if not isinstance(meta.get(FILES), dict) or not meta[FILES]:
        return f"no {FILES} with the model files' checksums"
    try:
        encoding = encoding_from_dict(meta["encoding"])
    except (KeyError, TypeError, ValueError, AttributeError):
        return "its encoding is not one this code reads"
    numbers = [value for key, value in vars(encoding).items() if key not in ("kind", "target")]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in numbers):
        return "its encoding holds a value that is not a finite number"
    if (getattr(encoding, "target", "midi") not in ("midi", "log_hz", "hz") or getattr(encoding, "std", 1) <= 0
            or getattr(encoding, "bins_per_semitone", 1) < 1 or not 1 <= encoding.n_outputs <= 100_000):
        return "its encoding is out of range"
    pool = ((meta.get("config") or {}).get("model") or {}).get("time_pool", 1)
    if meta["variant"] == "stream" and not (isinstance(pool, int) and 1 <= pool <= C.N_FRAMES):
        return f"config.model.time_pool {pool!r} is not an integer from 1 to {C.N_FRAMES}"
    return None
