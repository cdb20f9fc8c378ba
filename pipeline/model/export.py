"""Export: the trained stream network as an ONNX graph that slides along a long spectrogram.

Training sees one 513x90 window at a time; prediction wants an output every 10 ms of a whole
recording. The stream network (pipeline.model.stream_network) is built so that nothing but its time
pooling depends on where a window starts. A window that starts on a multiple of the pooling
factor (3 frames, 168 samples, 10.5 ms) pools exactly the frames it pooled in training, so
here the spectral path runs once over the whole recording's pooled frames and every window
reads its share; the modulation path is computed for each chosen window. The graph:

    spectrogram (N, 513, T)  the scaled log spectrogram, hop 56 samples (T >= 90)
    positions   (F,)         window starts (columns) to evaluate: multiples of the pooling
                             factor, each in 0 .. T - 90
    probs       (N, bins, F) the softmax over pitch bins of each window

Weights are stored as float16 by default (half the file; cast to float32 once when ONNX
Runtime loads the graph). Only `pip install onnx` is needed to export; predicting needs
ONNX Runtime alone, no TensorFlow."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.core import constants as C
from pipeline.core.artifacts import sha256_bytes, write_bytes
from pipeline.core.config import ModelConfig
from pipeline.core.errors import PipelineError
from pipeline.model.metadata import (
    FILES,
    MODEL_ID,
    check_model_file,
    file_kind,
    keras_model_id,
    read_metadata,
    sidecar_path,
    write_metadata,
)
from pipeline.model.stream_network import (
    MODULATION_BANDS,
    MODULATION_FLOOR,
    MODULATION_FREQS,
    MODULATION_ROWS,
    modulation_kernels,
    receptive_field,
    stack_candidates,
    stack_taps,
)

OPSET = 17
INPUT, POSITIONS, OUTPUT = "spectrogram", "positions", "probs"


class _Graph:
    """The nodes and initializers of the graph being written, with unique names."""

    def __init__(self, half: bool):
        from onnx import helper, numpy_helper

        self.helper, self.numpy_helper, self.half = helper, numpy_helper, half
        self.nodes, self.initializers, self.count = [], [], 0

    def name(self, base: str) -> str:
        self.count += 1
        return f"{base}_{self.count}"

    def weight(self, base: str, array) -> str:
        """A float weight, stored as float16 (and cast back) when exporting at half precision."""
        array = np.asarray(array, dtype=np.float32)
        name = self.name(base)
        if not self.half:
            self.initializers.append(self.numpy_helper.from_array(array, name))
            return name
        self.initializers.append(self.numpy_helper.from_array(array.astype(np.float16), name + "_f16"))
        return self.op("Cast", [name + "_f16"], base, to=1)  # 1 = FLOAT

    def ints(self, base: str, values) -> str:
        name = self.name(base)
        self.initializers.append(self.numpy_helper.from_array(np.asarray(values, dtype=np.int64), name))
        return name

    def op(self, op_type: str, inputs: list[str], base: str, **attributes) -> str:
        out = self.name(base)
        self.nodes.append(self.helper.make_node(op_type, inputs, [out], **attributes))
        return out

    def dense(self, x: str, layer, relu: bool) -> str:
        """A Keras Dense layer on the channel axis: a 1x1 convolution."""
        kernel, bias = layer.get_weights()
        y = self.op("Conv", [x, self.weight(layer.name + "_w", kernel.T[:, :, None]),
                             self.weight(layer.name + "_b", bias)], layer.name)
        return self.op("Relu", [y], layer.name + "_relu") if relu else y


def export_network(network, model_cfg: ModelConfig, variant: str, half: bool = True, model_id: str | None = None):
    """The ONNX form of a trained stream or frame network (an onnx.ModelProto, checked); `model_id`
    (the training run's, as model.json records it) goes into the graph's metadata."""
    if variant == "stream":
        return export_stream(network, model_cfg, half, model_id)
    import onnx

    from pipeline.model.frame_export import export_frames

    g = _Graph(half)
    inputs, outputs = export_frames(network, model_cfg, g)
    h = g.helper
    model = h.make_model(h.make_graph(g.nodes, "f0_frames", inputs, outputs, g.initializers),
                         opset_imports=[h.make_opsetid("", OPSET)], producer_name="pitch-pipeline")
    if model_id:
        h.set_model_props(model, {MODEL_ID: model_id})
    onnx.checker.check_model(model)
    return model


def export_stream(network, model_cfg: ModelConfig, half: bool = True, model_id: str | None = None):
    """The sliding form of a trained stream network, as an onnx.ModelProto (checked); `model_id` (the
    training run's, as model.json records it) goes into the graph's metadata."""
    import onnx

    layers = {layer.name: layer for layer in network.layers}
    g = _Graph(half)
    mean, scale = _standardization(layers["standardize"])
    parts = [_spectral_path(g, INPUT, layers, model_cfg, scale)]
    if model_cfg.modulation:
        parts.append(_modulation_path(g, INPUT, layers, model_cfg.modulation_bands, mean, scale))
    merged = g.op("Concat", parts, "merge", axis=1) if len(parts) > 1 else parts[0]
    head = g.dense(merged, layers["head"], relu=True)
    g.nodes.append(g.helper.make_node("Softmax", [g.dense(head, layers["pitch_bins"], relu=False)], [OUTPUT],
                                      axis=1))
    h = g.helper
    graph = h.make_graph(g.nodes, "f0_stream",
                         [h.make_tensor_value_info(INPUT, onnx.TensorProto.FLOAT, ["N", C.N_FREQ_BINS, "T"]),
                          h.make_tensor_value_info(POSITIONS, onnx.TensorProto.INT64, ["F"])],
                         [h.make_tensor_value_info(OUTPUT, onnx.TensorProto.FLOAT, ["N", "bins", "F"])],
                         g.initializers)
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", OPSET)], producer_name="pitch-pipeline")
    if model_id:
        h.set_model_props(model, {MODEL_ID: model_id})
    onnx.checker.check_model(model)
    return model


def _standardization(layer) -> tuple[float, float]:
    """Keras' Normalization as (mean, scale): (x - mean) / max(sqrt(variance), epsilon). Both paths
    fold it into their first linear step instead of touching every value of the input."""
    import keras

    mean, variance = (float(np.asarray(v).reshape(-1)[0]) for v in (layer.mean, layer.variance))
    return mean, 1.0 / max(np.sqrt(variance), keras.config.epsilon())


def _spectral_path(g: _Graph, x: str, layers: dict, model_cfg: ModelConfig, scale: float) -> str:
    """Pooled frames at the pooling's own stride (a window starts on a multiple of it): their
    centring, the harmonic stack and its MLPs, dilated residual convolutions and the window
    mean, shared by the overlapping windows; then the chosen windows."""
    pool = model_cfg.time_pool
    y = g.op("AveragePool", [x], "time_pool", kernel_shape=[pool], strides=[pool]) if pool > 1 else x
    y = g.op("Sub", [y, g.op("ReduceMean", [y], "frame_mean", axes=[1], keepdims=1)], "centre")
    y = g.op("Transpose", [y], "frames_first", perm=[0, 2, 1])                       # (N, P, 513)
    frames = g.op("Shape", [y], "frames_shape")
    # the centring removes the standardisation's mean; its scale goes into the first MLP layer
    y = _harmonic_stack(g, y, layers, model_cfg, scale)                               # (N, P, count * units)
    encoders = [layers[f"encoder{i}"].get_weights() for i in range(len(model_cfg.encoder_units))]
    shape = g.op("Concat", [g.op("Slice", [frames, g.ints("s0", [0]), g.ints("s2", [2])], "np"),
                            g.ints("units", [model_cfg.encoder_units[-1]])], "encoded_shape", axis=0)
    y = _dense_layers_to(g, y, encoders, shape)
    y = g.op("Transpose", [y], "channels_first", perm=[0, 2, 1])                     # (N, units, P)
    for i, dilation in enumerate(model_cfg.temporal_dilations):
        kernel, bias = layers[f"temporal{i}"].get_weights()          # (3, in, out)
        z = g.op("Conv", [y, g.weight(f"temporal{i}_w", np.transpose(kernel, (2, 1, 0))),
                          g.weight(f"temporal{i}_b", bias)], f"temporal{i}", dilations=[dilation])
        z = g.op("Relu", [z], f"temporal{i}_relu")
        y = g.op("Slice", [y, g.ints("crop_start", [dilation]), g.ints("crop_end", [-dilation]),
                           g.ints("time_axis", [2])], f"crop{i}")
        y = g.op("Add", [y, z], f"residual{i}")
    positions = C.N_FRAMES // pool - receptive_field(model_cfg) + 1
    channels = model_cfg.encoder_units[-1]   # residual convolutions keep the encoder's width
    taps = np.full((channels, 1, positions), 1.0 / positions, dtype=np.float32)
    means = g.op("Conv", [y, g.weight("window_mean_w", taps)], "window_mean", group=channels)
    pooled_starts = g.op("Div", [POSITIONS, g.ints("pool", pool)], "pooled_starts")
    return g.op("Gather", [means, pooled_starts], "chosen_windows", axis=2)   # (N, channels, F)


def _dense_layers_to(g: _Graph, x: str, weights: list, shape: str) -> str:
    """Dense layers (each [kernel, bias], each with its ReLU) on the last axis of `x`, as Gemm + Relu
    on the rows (which ONNX Runtime fuses); the result reshaped to the shape tensor `shape`."""
    y = g.op("Reshape", [x, g.ints("rows", [-1, weights[0][0].shape[0]])], "rows")
    for kernel, bias in weights:
        y = g.op("Gemm", [y, g.weight("dense_w", kernel), g.weight("dense_b", bias)], "dense")
        y = g.op("Relu", [y], "dense_relu")
    return g.op("Reshape", [y, shape], "unrows")


def _harmonic_stack(g: _Graph, y: str, layers: dict, model_cfg: ModelConfig, scale: float) -> str:
    """(N, P, 513) centred frames -> (N, P, candidates * units): the stack read with a Gather in
    Keras' order, the per-candidate MLP on the last axis, flattened as Keras does."""
    count, harmonics = len(stack_candidates(model_cfg)), len(model_cfg.harmonics)
    indices, weights = stack_taps(model_cfg)                            # (count, H, 2) flattened
    taps = g.op("Gather", [y, g.ints("stack_bins", indices)], "stack_taps", axis=2)
    taps = g.op("Mul", [taps, g.weight("stack_weights", weights)], "stack_weighted")
    taps = g.op("Reshape", [taps, g.ints("stack_shape", [0, 0, count, harmonics, 2])], "stack_pairs")
    z = g.op("ReduceSum", [taps, g.ints("pair_axis", [4])], "stack", keepdims=0)       # (N, P, count, H)
    mlp = [layers[f"harmonic{i}"].get_weights() for i in range(len(model_cfg.harmonic_units))]
    mlp[0] = [mlp[0][0] * np.float32(scale), mlp[0][1]]
    frames = g.op("Shape", [y], "stack_frames")
    shape = g.op("Concat", [g.op("Slice", [frames, g.ints("s0", [0]), g.ints("s2", [2])], "np"),
                            g.ints("candidates", [count * model_cfg.harmonic_units[-1]])], "candidates_shape", axis=0)
    return _dense_layers_to(g, z, mlp, shape)


def _modulation_path(g: _Graph, x: str, layers: dict, groups: int, mean: float, scale: float) -> str:
    """Narrow bands on every column; for each chosen window, the fixed DFT over its 90 frames as
    one matrix product, the magnitudes averaged within groups of bands, logged; the dense layer."""
    rows = MODULATION_BANDS * MODULATION_ROWS
    low = g.op("Slice", [x, g.ints("rows_start", [0]), g.ints("rows_end", [rows]), g.ints("freq_axis", [1])],
               "low_rows")
    low = g.op("Reshape", [low, g.ints("band_shape", [0, MODULATION_BANDS, MODULATION_ROWS, -1])], "band_rows")
    bands = g.op("ReduceMean", [low], "bands", axes=[2], keepdims=0)                   # (N, B, T)
    bands = g.op("Sub", [bands, g.weight("input_mean", mean)], "bands_centred")      # the scale is in the DFT
    bands = g.op("Transpose", [bands], "bands_last", perm=[0, 2, 1])                   # (N, T, B)
    frames = g.op("Gather", [bands, _window_columns(g, C.N_FRAMES, 1)], "window_frames", axis=1)  # (N, F, 90, B)
    kernels = modulation_kernels().T * np.float32(scale)                               # (2M, 90): cosines, sines
    parts = [g.op("MatMul", [g.weight(f"modulation_{name}", kernels[i * MODULATION_FREQS:(i + 1) * MODULATION_FREQS]),
                             frames], f"modulation_{name}") for i, name in enumerate(("cos", "sin"))]  # (N, F, M, B)
    power = g.op("Add", [g.op("Mul", [p, p], "square") for p in parts], "power")
    magnitude = g.op("Sqrt", [g.op("Add", [power, g.weight("tiny", 1e-12)], "power_floor")], "magnitude")
    magnitude = g.op("Reshape", [magnitude, g.ints("group_shape", [0, 0, MODULATION_FREQS, groups, -1])],
                     "grouped")
    mean = g.op("ReduceMean", [magnitude], "group_mean", axes=[4], keepdims=0)         # (N, F, M, G)
    logged = g.op("Log", [g.op("Add", [mean, g.weight("floor", MODULATION_FLOOR)], "floored")], "log_magnitude")
    ordered = g.op("Transpose", [logged], "group_major", perm=[0, 1, 3, 2])            # (N, F, G, M): Keras' order
    flat = g.op("Reshape", [ordered, g.ints("flat_shape", [0, 0, groups * MODULATION_FREQS])], "modulation_flat")
    ordered = g.op("Transpose", [flat], "modulation_channels", perm=[0, 2, 1])         # (N, G * M, F)
    return g.dense(ordered, layers["modulation_dense"], relu=True)


def _window_columns(g: _Graph, count: int, step: int) -> str:
    """(F, count) columns: each chosen window's start + step * (0 .. count - 1)."""
    offsets = g.ints("offsets", np.arange(count) * step)
    starts = g.op("Unsqueeze", [POSITIONS, g.ints("last_axis", [1])], "starts")
    return g.op("Add", [starts, offsets], "columns")


def write_onnx(model, path: str | Path) -> Path:
    """Write the ONNX model atomically; PipelineError when the onnx package is missing is raised earlier."""
    path = Path(path)
    write_bytes(path, model.SerializeToString())
    return path


def require_onnx() -> None:
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise PipelineError("exporting the stream model needs the onnx package; pip install onnx "
                            "(or make setup)") from None


SHIPPED_LIMIT_BYTES = 5 * 1024 * 1024   # the package carries at most this much model


def export_model(model_path: str | Path, half: bool = True) -> Path:
    """models/NAME/model.keras (a stream model) -> models/NAME/model.onnx beside it, and model.json
    recording its checksum; returns its path."""
    from pipeline.core.backend import import_keras
    from pipeline.model.networks import custom_layers

    model_path = Path(model_path)
    meta = read_metadata(model_path)
    if meta.get("variant") not in ("stream", "frames"):
        raise PipelineError(f"{model_path} is a {meta.get('variant')!r} model; only stream and frame models export "
                            "to ONNX (set model.variant = \"frames\" and retrain)")
    check_model_file(model_path, meta, embedded_id=keras_model_id(model_path))
    require_onnx()
    keras = import_keras()
    network = keras.saving.load_model(model_path, compile=False, custom_objects=custom_layers())
    model_cfg = ModelConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in meta["config"]["model"].items()})
    graph = export_network(network, model_cfg, meta["variant"], half=half, model_id=meta.get(MODEL_ID))
    data = graph.SerializeToString()
    target = model_path.with_suffix(".onnx")
    write_bytes(target, data)
    write_metadata(model_path, meta, {**meta[FILES], file_kind(target): sha256_bytes(data)})
    return target


def install_default(onnx_file: str | Path, package_models: Path) -> list[Path]:
    """Copy a stream model's ONNX file and its metadata (which records the file's sha256, checked at
    every load) into the package as the default model."""
    onnx_file = Path(onnx_file)
    size = onnx_file.stat().st_size
    if size > SHIPPED_LIMIT_BYTES:
        raise PipelineError(f"{onnx_file} is {size / 2**20:.1f} MiB; the package ships at most "
                            f"{SHIPPED_LIMIT_BYTES / 2**20:.0f} MiB: use a smaller network")
    meta = read_metadata(onnx_file)
    check_model_file(onnx_file, meta)
    targets = [package_models / "default.onnx", package_models / "default.json"]
    write_bytes(targets[0], onnx_file.read_bytes())
    write_bytes(targets[1], sidecar_path(onnx_file).read_bytes())
    return targets
