import json
import subprocess
import sys

import numpy as np
import pytest

from pipeline.core import constants as C
from pipeline.core.artifacts import sha256_file
from pipeline.core.config import load_config
from pipeline.core.errors import PipelineError
from pipeline.core.pitch import midi_to_hz
from pipeline.model.encodings import BinEncoding, RegressionEncoding, encoding_to_dict
from pipeline.model.metadata import sidecar_path, write_metadata
from pipeline.model.networks import Predictor, build_network


def test_importing_the_model_module_does_not_import_tensorflow():
    code = ("import sys, pipeline.model.networks, pipeline.model.training, pipeline.data.features; "
            "print('tensorflow' in sys.modules, 'keras' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False"


def test_full_size_reference_model_has_the_original_four_conv_layers():
    import keras

    cfg = load_config(None, ["model.width=1.0", "model.dense_units=[512, 256]"])
    network = build_network(cfg.model, "reference", 1)
    convs = [layer for layer in network.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [layer.filters for layer in convs] == [64, 128, 128, 256]
    assert sum(isinstance(layer, keras.layers.MaxPooling2D) for layer in network.layers) == 4
    assert network.input_shape == (None, 513, 90)
    assert network.output_shape == (None, 1)
    assert 11e6 < network.count_params() < 13.5e6


@pytest.mark.parametrize("target", ["midi", "log_hz", "hz"])
def test_regression_encoding_round_trips(target):
    hz = np.array([65.4, 440.0, 3000.0, 7902.1])
    encoding = RegressionEncoding.fit(target, hz)
    back, confidence = encoding.decode(encoding.encode(hz))
    np.testing.assert_allclose(back, hz, rtol=1e-5)
    assert np.all(confidence == 1.0)


def test_bin_encoding_covers_the_note_range_and_decodes_to_within_a_cent():
    cfg = load_config(None, ["data.note_low=36", "data.note_high=119", "model.bins_per_semitone=5"])
    encoding = BinEncoding.for_config(cfg)
    assert encoding.centers[0] < 36 - 0.5 and encoding.centers[-1] > 119 + 0.5
    midi = np.array([35.6, 36.0, 60.13, 69.0, 100.47, 119.49])
    hz = 440.0 * 2 ** ((midi - 69) / 12)
    targets = encoding.encode(hz)
    np.testing.assert_allclose(targets.sum(axis=1), 1.0, rtol=1e-5)
    back, confidence = encoding.decode(targets)
    assert np.max(np.abs(1200 * np.log2(back / hz))) < 1.0
    assert np.all((confidence > 0.9) & (confidence <= 1.0))


def test_a_flat_bin_distribution_has_low_confidence():
    cfg = load_config(None, [])
    encoding = BinEncoding.for_config(cfg)
    _, confidence = encoding.decode(np.full((1, encoding.n_bins), 1.0 / encoding.n_bins))
    assert confidence[0] < 0.05


def _save(tmp_path, meta_changes=None):
    cfg = load_config(None, ["model.width=0.0625", "model.dense_units=[8]"])
    encoding = BinEncoding.for_config(cfg)
    network = build_network(cfg.model, "bins", encoding.n_outputs)
    path = tmp_path / "model.keras"
    network.save(path)
    meta = {"format": C.MODEL_FORMAT, "format_version": C.MODEL_FORMAT_VERSION, "variant": "bins",
            "scaling": "log", "encoding": encoding_to_dict(encoding), **(meta_changes or {})}
    write_metadata(path, meta, {"keras": sha256_file(path)})
    return path


def test_predictor_loads_and_predicts_hz_and_confidence(tmp_path):
    predictor = Predictor.load(_save(tmp_path))
    assert predictor.scaling == "log" and predictor.variant == "bins"
    x = np.random.default_rng(0).normal(size=(3, 513, 90)).astype(np.float16)
    hz, confidence = predictor.predict(x)
    assert hz.shape == confidence.shape == (3,)
    low, high = midi_to_hz(predictor.encoding.centers[[0, -1]])
    assert np.all((hz >= low) & (hz <= high))
    assert np.all((confidence > 0) & (confidence < 0.5))   # an untrained softmax is spread out
    with pytest.raises(PipelineError, match="513"):
        predictor.predict(np.zeros((1, 100, 90), np.float32))
    # the network made to put all its mass on the bin of A4 (its last layer's weights set by hand): the
    # predictor answers that bin's pitch, surely, whatever the input
    last = predictor.network.get_layer("pitch_bins")
    kernel, bias = last.get_weights()
    k = int(np.argmin(np.abs(predictor.encoding.centers - 69.0)))
    last.set_weights([np.zeros_like(kernel), np.where(np.arange(len(bias)) == k, 30.0, -30.0).astype(bias.dtype)])
    hz, confidence = predictor.predict(x)
    np.testing.assert_allclose(hz, 440.0, rtol=1e-6)
    assert np.all(confidence > 0.99)


def test_predictor_errors_name_the_problem_and_the_fix(tmp_path):
    with pytest.raises(PipelineError, match="not found.*make train"):
        Predictor.load(tmp_path / "nothing.keras")
    path = _save(tmp_path, {"format_version": C.MODEL_FORMAT_VERSION + 1})
    with pytest.raises(PipelineError, match="format version.*make train"):
        Predictor.load(path)
    sidecar_path(path).unlink()
    with pytest.raises(PipelineError, match="metadata.*missing"):
        Predictor.load(path)
    path = _save(tmp_path)
    path.write_bytes(b"PK\x03\x04 truncated zip")
    with pytest.raises(PipelineError, match="is damaged .its sha256 is not the one its metadata records.") as err:
        Predictor.load(path)
    assert "\n" not in str(err.value)
    # a file that is the one recorded but that Keras cannot read (written so by a bug): still one line
    write_metadata(path, json.loads(sidecar_path(path).read_text()), {"keras": sha256_file(path)})
    with pytest.raises(PipelineError, match="cannot be loaded") as err:
        Predictor.load(path)
    assert "\n" not in str(err.value)
