"""Inference: a trained model ready to answer, without TensorFlow when it can be.

`load_predictor(path)` gives the fastest predictor a model folder allows:
- a frame model (the default and shipped one) runs in ONNX Runtime, block by block over a
  recording's 10 ms frames (pipeline/inference/frame_tracking.py);
- a stream model (models/NAME/model.keras with its model.onnx beside it, or an .onnx file, or
  the default model shipped in the package) runs in ONNX Runtime: no TensorFlow import, and
  one pass over a recording's spectrogram gives every window's output (`predict_columns`);
- the reference and bins models run in Keras, one 513x90 window at a time.

Both answer `predict(spectrograms)` for clips (N, 513, 90), so the report and `pipeline
evaluate` treat them alike. The default model (`default_model_path()`) ships inside the
package: `pipeline predict file.wav` works without training anything.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.core import constants as C
from pipeline.core.errors import PipelineError, silenced_stderr
from pipeline.model.encodings import encoding_from_dict
from pipeline.model.metadata import MODEL_ID, RETRAIN, check_model_file, read_metadata, sidecar_path
from pipeline.model.networks import Predictor

ONNX_SUFFIX = ".onnx"
SHIPPED_MODEL = "default.onnx"     # pipeline/models/default.onnx and default.json, package data
STREAM_INPUTS = {"spectrogram": "tensor(float)", "positions": "tensor(int64)"}   # pipeline.model.export's graph
STREAM_OUTPUT = "probs"
FRAME_INPUTS = {"log_spectra": "tensor(float)"}                                  # pipeline.model.frame_export's
FRAME_OUTPUT = "activations"


def default_model_path() -> Path:
    """The model shipped in the package (its recipe: configs/shipped.toml, `make shipped-model`)."""
    return Path(__file__).resolve().parents[1] / "models" / SHIPPED_MODEL


def onnx_path(model_path: str | Path) -> Path:
    """models/NAME/model.keras -> models/NAME/model.onnx (written by make train for stream models)."""
    return Path(model_path).with_suffix(ONNX_SUFFIX)


class OnnxPredictor:
    """A stream model in ONNX Runtime: spectrogram columns in, (Hz, confidence) per window out.

    Loaded only when the graph is the file its metadata records (sha256) and takes the inputs
    and gives the output of a stream model's export; its outputs are checked as they come."""

    def __init__(self, path: Path, metadata: dict, fix: str = RETRAIN):
        self.path, self.metadata, self.fix = path, metadata, fix
        self.encoding = encoding_from_dict(metadata["encoding"])
        self.session = _session(path, metadata, fix, STREAM_INPUTS, STREAM_OUTPUT, "a stream model's export")

    scaling = property(lambda self: self.metadata["scaling"])
    variant = property(lambda self: self.metadata["variant"])

    @property
    def window_step(self) -> int:
        """Window starts must be multiples of this many columns (the network's time pooling)."""
        return int(self.metadata.get("config", {}).get("model", {}).get("time_pool", 1))

    def probabilities(self, columns: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """(F, bins) softmax of the windows starting at `positions` of (513, T) or (N, 513, T) columns."""
        columns = np.asarray(columns, dtype=np.float32)
        batch = columns if columns.ndim == 3 else columns[None]
        positions = np.asarray(positions, dtype=np.int64)
        if batch.shape[1] != C.N_FREQ_BINS or batch.shape[2] < C.N_FRAMES:
            raise PipelineError(f"the model reads ({C.N_FREQ_BINS}, >= {C.N_FRAMES}) spectrogram columns, "
                                f"got {tuple(columns.shape)}")
        if positions.size and (positions.min() < 0 or positions.max() > batch.shape[2] - C.N_FRAMES):
            raise PipelineError("window positions fall outside the spectrogram")
        probs = self.session.run(None, {"spectrogram": batch, "positions": positions})[0]
        if probs.ndim != 3 or probs.shape[1] != self.encoding.n_outputs:
            raise PipelineError(f"model {self.path} gives {probs.shape[1:2]} pitch bins where its metadata says "
                                f"{self.encoding.n_outputs}: the two files are of different models; {self.fix}")
        if not np.isfinite(probs).all():
            raise PipelineError(f"model {self.path} gives non-finite outputs (damaged weights?); {self.fix}")
        return np.moveaxis(probs, 1, 2).reshape(-1, probs.shape[1])

    def predict(self, spectrograms: np.ndarray, batch_size: int = C.PREDICT_BATCH) -> tuple[np.ndarray, np.ndarray]:
        """(N, 513, 90) clip spectrograms (may be a memory map) -> (Hz, confidence 0..1)."""
        if len(spectrograms) and tuple(spectrograms.shape[1:]) != C.SPEC_SHAPE:
            raise PipelineError(f"the model expects spectrograms of shape (N, {C.SPEC_SHAPE[0]}, "
                                f"{C.SPEC_SHAPE[1]}), got {tuple(spectrograms.shape)}")
        parts = [self.probabilities(spectrograms[i:i + batch_size], np.zeros(1, dtype=np.int64))
                 for i in range(0, len(spectrograms), batch_size)]
        probs = np.concatenate(parts) if parts else np.zeros((0, self.encoding.n_outputs))
        hz, confidence = self.encoding.decode(probs)
        return hz.astype(np.float64), confidence.astype(np.float64)


class FramePredictor:
    """A frame model in ONNX Runtime: log spectra of consecutive frames in, activations per pitch
    bin of the inner ones out (pipeline/model/frame_export.py). Loaded and checked as OnnxPredictor."""

    def __init__(self, path: Path, metadata: dict, fix: str = RETRAIN):
        self.path, self.metadata, self.fix = path, metadata, fix
        self.encoding = encoding_from_dict(metadata["encoding"])
        self.context = int(metadata.get("config", {}).get("model", {}).get("frame_context", 2))
        self.session = _session(path, metadata, fix, FRAME_INPUTS, FRAME_OUTPUT, "a frame model's export")

    variant = property(lambda self: self.metadata["variant"])

    def frame_activations(self, spectra: np.ndarray) -> np.ndarray:
        """(T, 2, 448) log spectra -> (T - 2 context, bins) activations, checked."""
        acts = self.session.run(None, {"log_spectra": np.ascontiguousarray(spectra, dtype=np.float32)})[0]
        if acts.ndim != 2 or acts.shape[1] != self.encoding.n_outputs:
            raise PipelineError(f"model {self.path} gives {acts.shape[1:2]} pitch bins where its metadata says "
                                f"{self.encoding.n_outputs}: the two files are of different models; {self.fix}")
        if not np.isfinite(acts).all():
            raise PipelineError(f"model {self.path} gives non-finite outputs (damaged weights?); {self.fix}")
        return acts


def _session(path: Path, metadata: dict, fix: str, inputs: dict, output: str, what: str):
    """An ONNX Runtime session of a graph that is the file its metadata records (sha256 and the
    training run's id inside it) and has the given inputs and output; one line for anything else."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1   # prediction scales by files and processes, not threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ONNX Runtime raises its own types for a damaged file
        check_model_file(path, metadata, fix)   # a file that is not the recorded one: named as damaged
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise PipelineError(f"model {path} cannot be loaded ({first[:200]}); {fix}") from None
    check_model_file(path, metadata, fix, embedded_id=session.get_modelmeta().custom_metadata_map.get(MODEL_ID))
    found = {i.name: i.type for i in session.get_inputs()}
    outputs = [o.name for o in session.get_outputs()]
    if found != inputs or outputs != [output]:
        raise PipelineError(f"model {path} is not {what} (inputs {sorted(found)}, outputs {outputs}); {fix}")
    return session


SHIPPED_FIX = "reinstall the package (pip install -e .) or rebuild the model with make shipped-model"


def load_predictor(path: str | Path | None = None):
    """The predictor for a model file (None: the shipped default). A stream model's .onnx is used
    when it exists (no TensorFlow); anything else loads in Keras."""
    shipped = path is None or Path(path) == default_model_path()
    path = default_model_path() if path is None else Path(path)
    if not path.is_file():
        raise PipelineError(f"model {path} not found; " + (SHIPPED_FIX if shipped else
                            "train one with make train (or python -m pipeline train), or give no model "
                            "to use the shipped default"))
    fix = SHIPPED_FIX if shipped else RETRAIN
    metadata = read_metadata(path, fix)
    fast = path if path.suffix == ONNX_SUFFIX else onnx_path(path)
    if metadata.get("variant") in ("stream", "frames") and fast.is_file():
        return (FramePredictor if metadata["variant"] == "frames" else OnnxPredictor)(fast, metadata, fix)
    if path.suffix == ONNX_SUFFIX:
        raise PipelineError(f"{path} is not a stream model's export (its {sidecar_path(path).name} says "
                            f"{metadata.get('variant')!r}); pass its model.keras instead")
    # Keras prints its own warnings about the saved file: the user needs the f0, not those
    with silenced_stderr():  # a failed load still raises its PipelineError, printed afterwards
        return Predictor.load(path)
