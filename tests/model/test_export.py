"""The stream model's ONNX export: the same outputs as Keras, one pass over a long spectrogram,
and a predictor that loads without TensorFlow."""

import json
import subprocess
import sys

import numpy as np
import pytest

from pipeline.core.config import load_config
from pipeline.dsp.spectrogram import spectrogram, spectrogram_columns
from pipeline.model.export import export_stream
from pipeline.model.networks import build_network
from tests.conftest import REPO, tiny_config

N_BINS = 120


def onnx_session(model):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def stream_network():
    """A small stream network with random, non-trivial weights."""
    cfg = load_config(None, ['model.variant="stream"', "model.harmonic_units=[8,4]", "model.encoder_units=[48,24]",
                             "model.head_units=32", "model.modulation_bands=4"])
    network = build_network(cfg.model, "stream", N_BINS, -10.8, 2.5)
    rng = np.random.default_rng(0)
    for layer in network.layers:
        if layer.trainable and layer.get_weights():
            layer.set_weights([w + rng.standard_normal(w.shape).astype(np.float32) * 0.05
                               for w in layer.get_weights()])
    return cfg, network


def long_spectrogram(columns: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((1, 513, columns)) * 2.5 - 10.8).astype(np.float32)


def keras_windows(network, spec: np.ndarray, positions) -> np.ndarray:
    windows = np.stack([spec[0, :, j:j + 90] for j in positions])
    return network.predict(windows, verbose=0)


@pytest.mark.parametrize("half, tolerance", [(False, 1e-5), (True, 3e-3)])
def test_one_pass_equals_keras_on_every_window(stream_network, half, tolerance):
    cfg, network = stream_network
    spec = long_spectrogram(260)
    positions = np.arange(0, 260 - 89, 3)   # window starts on the pooling grid
    expected = keras_windows(network, spec, positions)
    probs = onnx_session(export_stream(network, cfg.model, half=half)).run(
        None, {"spectrogram": spec, "positions": positions})[0]
    assert probs.shape == (1, N_BINS, len(positions))
    np.testing.assert_allclose(probs[0].T, expected, atol=tolerance)
    assert (probs[0].argmax(axis=0) == expected.argmax(axis=1)).mean() > 0.98


def test_chosen_positions_and_clip_batches(stream_network):
    cfg, network = stream_network
    session = onnx_session(export_stream(network, cfg.model, half=False))
    spec = long_spectrogram(400, seed=2)
    chosen = np.array([0, 6, 123, 309])
    expected = keras_windows(network, spec, chosen)
    probs = session.run(None, {"spectrogram": spec, "positions": chosen})[0][0].T
    np.testing.assert_allclose(probs, expected, atol=1e-5)
    clips = np.stack([spec[0, :, j:j + 90] for j in chosen])   # (N, 513, 90): the report's and evaluate's input
    batch = session.run(None, {"spectrogram": clips, "positions": np.zeros(1, dtype=np.int64)})[0][:, :, 0]
    np.testing.assert_allclose(batch, expected, atol=1e-5)


def test_half_precision_halves_the_file(stream_network):
    cfg, network = stream_network
    full = len(export_stream(network, cfg.model, half=False).SerializeToString())
    half = len(export_stream(network, cfg.model, half=True).SerializeToString())
    assert half < 0.55 * full


def test_recording_columns_are_the_clips_spectrograms_bit_for_bit():
    rng = np.random.default_rng(3)
    audio = (rng.standard_normal(16000 * 2) * 0.1).astype(np.float32)
    columns = spectrogram_columns(audio, "log", block=97)   # blocks that do not divide the length
    for start in (0, 1, 95, 200):
        assert np.array_equal(columns[:, start:start + 90], spectrogram(audio[56 * start:56 * start + 5280])[0])


def test_a_trained_stream_model_predicts_through_onnx_without_tensorflow(tmp_path, tiny_dataset):
    from pipeline.data.features import build_features
    from pipeline.model.training import train

    cfg = tiny_config(tiny_dataset.root, 'model.variant="stream"', "model.harmonic_units=[8,4]",
                      "model.encoder_units=[32,16]",
                      "model.head_units=32", "train.epochs=1", "train.compare_reference=false",
                      f'name="{tiny_dataset.name}"')
    build_features(cfg)
    meta = train(cfg)["stream"]
    model = cfg.model_dir / "model.keras"
    # a softmax over bins learns by cross-entropy (an MSE on the probabilities would sit near 0 and learn nothing)
    assert meta["training"]["epochs_run"] == 1
    assert float((cfg.model_dir / "history.csv").read_text().splitlines()[1].split(",")[1]) > 1.0
    assert model.with_suffix(".onnx").is_file()
    assert json.loads(model.with_suffix(".json").read_text())["variant"] == "stream"
    code = ("import sys, numpy as np; from pipeline.inference.predictor import load_predictor; "
            f"p = load_predictor({str(model)!r}); "
            "hz, c = p.predict(np.full((3, 513, 90), -10.0, np.float32)); "
            "print(type(p).__name__, len(hz), 'tensorflow' in sys.modules, 'keras' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.stdout.split() == ["OnnxPredictor", "3", "False", "False"], out.stderr


def test_installing_a_default_copies_a_model_its_metadata_describes_and_refuses_a_large_file(tmp_path):
    """The default model's metadata records its graph's sha256 (checked at every load): installing copies
    the two files as they are, after checking that they belong together."""
    import hashlib

    from pipeline.core import constants as C
    from pipeline.core.config import load_config
    from pipeline.core.errors import PipelineError
    from pipeline.model.encodings import BinEncoding, encoding_to_dict
    from pipeline.model.export import SHIPPED_LIMIT_BYTES, install_default
    from pipeline.model.metadata import write_metadata

    source = tmp_path / "models" / "model.onnx"
    source.parent.mkdir()
    source.write_bytes(b"onnx bytes")
    meta = {"format": C.MODEL_FORMAT, "format_version": C.MODEL_FORMAT_VERSION, "variant": "stream",
            "scaling": "log", "encoding": encoding_to_dict(BinEncoding.for_config(load_config()))}
    write_metadata(source, meta, {"onnx": hashlib.sha256(b"onnx bytes").hexdigest()})
    package = tmp_path / "package"
    package.mkdir()
    onnx, installed = install_default(source, package)
    assert onnx.read_bytes() == b"onnx bytes" and installed.read_bytes() == source.with_suffix(".json").read_bytes()
    assert json.loads(installed.read_text())["files"] == {"onnx": hashlib.sha256(b"onnx bytes").hexdigest()}
    source.write_bytes(b"onnx bytez")
    with pytest.raises(PipelineError, match="is damaged"):
        install_default(source, package)
    source.write_bytes(b"\0" * (SHIPPED_LIMIT_BYTES + 1))
    with pytest.raises(PipelineError, match="ships at most 5 MiB"):
        install_default(source, package)
    assert onnx.read_bytes() == b"onnx bytes"
