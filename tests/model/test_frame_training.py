"""The frame model end to end on a tiny phrase dataset: dataset, frame examples, a few epochs of
training, its ONNX export beside model.keras agreeing with Keras, and a predictor that loads it
without TensorFlow and finds a 440 Hz tone roughly (a few seconds of training buy no more)."""

import json
import subprocess
import sys

import numpy as np
import pytest

from pipeline.core import constants as C
from pipeline.core.artifacts import sha256_file
from pipeline.dsp.log_spectrum import frame_spectra
from pipeline.model.frame_network import context_frames
from tests.conftest import REPO, tiny_phrase_config

# four epochs at a high constant rate, half the examples plain tones: enough to place a tone
FRAME_TRAINING = ('features.kind="frames"', 'model.variant="frames"', "split.val_share=0.4", "train.epochs=4",
                  "train.batch_size=32", "train.learning_rate=0.01", 'train.schedule="constant"',
                  "train.tone_share=0.5")


def tone(hz: float = 440.0, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(round(seconds * C.SAMPLE_RATE)) / C.SAMPLE_RATE
    return (0.2 * sum(np.sin(2 * np.pi * hz * k * t) / k for k in range(1, 6))).astype(np.float32)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from pipeline.data.dataset import build_dataset
    from pipeline.data.features import build_features
    from pipeline.model.training import train

    cfg = tiny_phrase_config(tmp_path_factory.mktemp("frame_training"), *FRAME_TRAINING)
    build_dataset(cfg)
    build_features(cfg)
    return cfg, train(cfg)


def test_training_writes_a_frame_model_and_its_export(trained):
    cfg, results = trained
    assert list(results) == ["frames"]                         # no comparison reference for a frame model
    model = cfg.model_dir / C.MODEL_FILE
    assert model.is_file() and model.with_suffix(".onnx").is_file()
    meta = json.loads(model.with_suffix(".json").read_text())
    assert meta["variant"] == "frames" and meta["encoding"]["kind"] == "frames"
    assert meta["config"]["features"]["kind"] == "frames" and set(meta["files"]) == {"keras", "onnx"}
    assert meta["training"]["epochs_run"] == 4 and meta["training"]["train_clips"] > 300
    # names its data as a clip model does, so the report knows it was trained on this build
    assert meta["dataset_sha256"] == sha256_file(cfg.data_dir / "manifest.csv")
    # it learned something: validation frames within 50 cents, against none for a network that guesses
    assert meta["training"]["best"]["val_rpa50"] > 0.2


def test_its_onnx_export_agrees_with_keras(trained):
    import keras

    from pipeline.inference.predictor import FramePredictor, load_predictor
    from pipeline.model.frame_network import custom_layers

    cfg, _ = trained
    model = cfg.model_dir / C.MODEL_FILE
    network = keras.saving.load_model(model, compile=False, custom_objects=custom_layers())
    spectra = frame_spectra(np.concatenate([tone(), 0.1 * np.random.default_rng(0).standard_normal(8000)]))
    k = context_frames(cfg.model)
    predictor = load_predictor(model)
    assert isinstance(predictor, FramePredictor) and predictor.context == cfg.model.frame_context
    activations = predictor.frame_activations(spectra)
    expected = network.predict(spectra[None], verbose=0)[0]
    assert activations.shape == expected.shape == (len(spectra) - k + 1, predictor.encoding.n_outputs)
    np.testing.assert_allclose(activations, expected, atol=2e-3)       # float16 weights in the graph


def test_it_predicts_a_tone_without_tensorflow(trained):
    cfg, _ = trained
    code = ("import sys, numpy as np; from pipeline.inference.predictor import load_predictor; "
            "from pipeline.inference.prediction import predict; "
            f"p = load_predictor({str(cfg.model_dir / C.MODEL_FILE)!r}); "
            "t = np.arange(16000) / 16000; x = 0.2 * sum(np.sin(2 * np.pi * 440 * k * t) / k for k in range(1, 6)); "
            "time, hz, c = predict(x, 16000, p); "
            "print(type(p).__name__, 'tensorflow' in sys.modules, len(time), "
            "np.isfinite(hz).all() and np.isfinite(c).all(), np.median(hz[20:80]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    name, tensorflow, frames, finite, median = out.stdout.split()
    assert (name, tensorflow, frames, finite) == ("FramePredictor", "False", "101", "True"), out.stderr
    assert abs(1200 * np.log2(float(median) / 440.0)) < 100          # measured: 427 Hz, 51 cents flat
