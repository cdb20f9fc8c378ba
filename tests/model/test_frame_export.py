"""The frame network's ONNX export (pipeline/model/frame_export.py): one pass over a stretch of frames
gives, frame by frame, what Keras gives each frame's context window; the graph carries the run's id."""

import numpy as np
import pytest

from pipeline.core import constants as C
from pipeline.core.config import load_config
from pipeline.dsp.log_spectrum import GRID_BINS, WINDOWS, frame_spectra
from pipeline.model.encodings import make_encoding
from pipeline.model.export import export_network
from pipeline.model.frame_network import build_frame_network, candidate_step, candidates, context_frames
from pipeline.model.metadata import MODEL_ID


def onnx_session(model):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def frame_network():
    """The default frame network, seeded, its weights (biases too) made larger than at initialisation
    so that the activations spread over (0, 1) and any misplaced weight shows."""
    import keras

    cfg = load_config(None, ['model.variant="frames"', 'features.kind="frames"'])
    keras.utils.set_random_seed(0)
    network = build_frame_network(cfg.model)
    rng = np.random.default_rng(0)
    for layer in network.layers:
        if layer.get_weights():
            layer.set_weights([w + rng.standard_normal(w.shape).astype(np.float32) * 0.3 for w in layer.get_weights()])
    return cfg, network


@pytest.fixture(scope="module")
def spectra() -> np.ndarray:
    """300 frames of real log spectra: a tone gliding over two octaves, in noise, then silence."""
    rng = np.random.default_rng(1)
    t = np.arange(3 * C.SAMPLE_RATE) / C.SAMPLE_RATE
    phase = 2 * np.pi * np.cumsum(110.0 * 4 ** (t / 3)) / C.SAMPLE_RATE
    audio = sum(np.sin(k * phase) / k for k in range(1, 6)) * 0.2 + 0.01 * rng.standard_normal(len(t))
    audio[-8000:] = 0.0
    return frame_spectra(audio)


def keras_per_frame(network, spectra: np.ndarray, k: int) -> np.ndarray:
    """Each inner frame's activations from its own context window: what training sees."""
    windows = np.stack([spectra[j:j + k] for j in range(len(spectra) - k + 1)])
    return network.predict(windows, verbose=0, batch_size=64)[:, 0]


@pytest.mark.parametrize("half, tolerance", [(False, 1e-5), (True, 5e-3)])
def test_one_pass_over_a_stretch_equals_keras_frame_by_frame(frame_network, spectra, half, tolerance):
    cfg, network = frame_network
    k = context_frames(cfg.model)
    expected = keras_per_frame(network, spectra, k)
    activations = onnx_session(export_network(network, cfg.model, "frames", half=half)).run(
        None, {"log_spectra": spectra})[0]
    assert activations.shape == (len(spectra) - k + 1, candidates(candidate_step(cfg.model)))
    assert expected.std() > 0.05                       # activations that differ from frame to frame and bin to bin
    np.testing.assert_allclose(activations, expected, atol=tolerance)
    assert (activations.argmax(axis=1) == expected.argmax(axis=1)).mean() > 0.98


def test_the_outputs_match_the_frame_encoding(frame_network, spectra):
    """The graph's candidates are the encoding's bins: what FramePredictor checks at every call."""
    cfg, network = frame_network
    encoding = make_encoding(cfg, "frames", np.zeros(0))
    session = onnx_session(export_network(network, cfg.model, "frames", half=False))
    (inputs,), (outputs,) = session.get_inputs(), session.get_outputs()
    assert (inputs.name, inputs.shape[1:]) == ("log_spectra", [len(WINDOWS), GRID_BINS])
    assert (outputs.name, outputs.shape[1]) == ("activations", encoding.n_outputs)
    assert encoding.low_hz == pytest.approx(25.0) and encoding.bins_per_octave == cfg.model.frame_bins_per_octave
    # the shortest stretch it reads: one frame and its context
    k = context_frames(cfg.model)
    assert session.run(None, {"log_spectra": spectra[:k]})[0].shape == (1, encoding.n_outputs)


def test_the_graph_carries_the_model_id_and_half_precision_halves_its_weights(frame_network):
    cfg, network = frame_network
    half = export_network(network, cfg.model, "frames", model_id="run-1234")
    assert {p.key: p.value for p in half.metadata_props} == {MODEL_ID: "run-1234"}
    assert onnx_session(half).get_modelmeta().custom_metadata_map[MODEL_ID] == "run-1234"
    full = export_network(network, cfg.model, "frames", half=False)
    assert not full.metadata_props
    assert weight_bytes(half) == {"float16": weight_bytes(full)["float32"] // 2}


def weight_bytes(model) -> dict[str, int]:
    """Bytes of the graph's float initializers, by type (the weights, stored as they are)."""
    from onnx import helper, numpy_helper

    sizes = {}
    for tensor in model.graph.initializer:
        kind = helper.tensor_dtype_to_np_dtype(tensor.data_type)
        if np.issubdtype(kind, np.floating):
            sizes[kind.name] = sizes.get(kind.name, 0) + numpy_helper.to_array(tensor).nbytes
    return sizes
