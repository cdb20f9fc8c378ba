"""The trained frame network as an ONNX graph that runs over a whole stretch of frames at once.

    log_spectra   (T, 2, 448)                   the frames' log spectra (pipeline/dsp/log_spectrum.py),
                                                T >= 2 x context + 1
    activations   (T - 2 context, candidates)   the sigmoid per pitch bin of every inner frame

Frames, then candidates, then channels, in row-major order: every layer is one MatMul on the
last axis (the temporal layer's input is its frames' features side by side, one Slice each),
which ONNX Runtime runs without the layout conversions its convolutions would need. Weights are
stored as float16 by default and cast to float32 when the graph loads."""

from __future__ import annotations

import numpy as np

from pipeline.core.config import ModelConfig
from pipeline.dsp.log_spectrum import GRID_BINS, WINDOWS
from pipeline.model.frame_network import (
    CANDIDATE_SPAN,
    FIRST_CANDIDATE,
    FLOOR,
    candidate_step,
    candidates,
    harmonic_offsets,
    padded_bins,
)

INPUT, OUTPUT = "log_spectra", "activations"


def export_frames(network, model_cfg: ModelConfig, graph) -> tuple[list, list]:
    """Fill `graph` (export._Graph) with the frame network; returns (inputs, outputs) value infos."""
    import onnx

    g = graph
    layers = {layer.name: layer for layer in network.layers}
    top = g.op("ReduceMax", [INPUT], "level_max", axes=[1, 2], keepdims=1)
    x = g.op("Max", [g.op("Sub", [INPUT, top], "level"), g.weight("floor", np.array(-FLOOR, np.float32))], "floored")
    x = g.op("Add", [g.op("Mul", [x, g.weight("scale", np.array(2.0 / FLOOR, np.float32))], "scaled"),
                     g.weight("one", np.array(1.0, np.float32))], "unit")
    x = g.op("Transpose", [x], "bins_first", perm=[0, 2, 1])                    # (T, 448, 2)
    pad = g.ints("pads", [0, 0, 0, 0, padded_bins() - GRID_BINS, 0])
    x = g.op("Pad", [x, pad, g.weight("pad_value", np.array(-1.0, np.float32))], "padded", mode="constant")
    step = candidate_step(model_cfg)
    x = g.op("Concat", [_slice(g, x, FIRST_CANDIDATE + o, step) for o in harmonic_offsets()], "stack",
             axis=2)                                                            # (T, P, 2 H)
    x = _dense(g, x, layers["harmonic"], relu=True)
    k = 2 * model_cfg.frame_context + 1
    frames = g.op("Shape", [x], "frames", start=0, end=1)
    inner = g.op("Sub", [frames, g.ints("context", [k - 1])], "inner")
    shifted = [g.op("Slice", [x, g.ints("start", [j]), g.op("Add", [inner, g.ints("shift", [j])], "end"),
                              g.ints("axis", [0])], f"frame_{j}") for j in range(k)]
    x = _dense(g, g.op("Concat", shifted, "context", axis=2), layers["temporal"], relu=True)
    x = _dense(g, x, layers["candidate"], relu=True)
    x = g.op("Sigmoid", [_dense(g, x, layers["logit"], relu=False)], "sigmoid")   # (T', P, 1)
    g.nodes.append(g.helper.make_node("Squeeze", [x, g.ints("squeeze", [2])], [OUTPUT]))
    h = g.helper
    inputs = [h.make_tensor_value_info(INPUT, onnx.TensorProto.FLOAT, ["T", len(WINDOWS), GRID_BINS])]
    outputs = [h.make_tensor_value_info(OUTPUT, onnx.TensorProto.FLOAT, ["frames", candidates(step)])]
    return inputs, outputs


def _slice(g, x: str, start: int, step: int) -> str:
    """Every `step`-th bin of the candidates' span from `start`, on axis 1."""
    return g.op("Slice", [x, g.ints("start", [start]), g.ints("end", [start + CANDIDATE_SPAN + 1]), g.ints("axis", [1]),
                          g.ints("step", [step])], "harmonic")


def _dense(g, x: str, layer, relu: bool) -> str:
    """A Keras Dense layer, or the temporal Conv2D (kernel (k, 1, in, out): its input is the k
    frames' features side by side, frame-major), as a MatMul on the last axis."""
    kernel, bias = layer.get_weights()
    weight = kernel.reshape(-1, kernel.shape[-1])
    y = g.op("Add", [g.op("MatMul", [x, g.weight(layer.name + "_w", weight)], layer.name),
                     g.weight(layer.name + "_b", bias)], layer.name + "_bias")
    return g.op("Relu", [y], layer.name + "_relu") if relu else y
