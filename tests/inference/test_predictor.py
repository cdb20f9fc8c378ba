"""predictor: a model is used only when its files are the ones its description records and its graph
is a stream model's export; a damaged graph, the description of another model, a graph with other
inputs and outputs that do not fit are each one line (a real model, trained one epoch)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from pipeline.core.artifacts import sha256_file
from pipeline.core.errors import PipelineError
from pipeline.inference.predictor import OnnxPredictor, default_model_path, load_predictor
from pipeline.model.metadata import FILES, SEAL, sidecar_path, write_metadata
from pipeline.model.networks import Predictor
from tests.conftest import TINY_MODEL, built, run_cli, tiny_config


@pytest.fixture(scope="module")
def stream_model(tiny_dataset, tmp_path_factory):
    """models/NAME/ of a tiny stream model: model.keras, model.onnx, model.json."""
    cfg = tiny_config(tmp_path_factory.mktemp("predictor"), *TINY_MODEL, 'model.variant="stream"',
                      "model.harmonic_units=[8,4]", "model.encoder_units=[16]", "model.head_units=16",
                      "train.epochs=1", "train.compare_reference=false")
    return built(cfg, tiny_dataset, trained=True).model_dir


@pytest.fixture
def model(stream_model, tmp_path):
    """A private copy of the model's folder; its model.keras path."""
    shutil.copytree(stream_model, tmp_path / "model")
    return tmp_path / "model" / "model.keras"


def flip(path, where=0.7):
    data = bytearray(path.read_bytes())
    data[int(len(data) * where)] ^= 0x40
    path.write_bytes(bytes(data))


def reseal(model_path, change=lambda meta: None, **files):
    """Rewrite model.json as training would (sealed), with `change` made and `files` recorded anew."""
    meta = json.loads(sidecar_path(model_path).read_text())
    change(meta)
    write_metadata(model_path, {k: v for k, v in meta.items() if k != SEAL}, {**meta[FILES], **files})


def test_the_model_loads_and_answers(model):
    predictor = load_predictor(model)
    assert isinstance(predictor, OnnxPredictor)
    hz, confidence = predictor.predict(np.full((2, 513, 90), -5.0, np.float32))
    assert hz.shape == confidence.shape == (2,) and np.isfinite(hz).all()


def test_a_flipped_weight_byte_is_named_not_run(model):
    flip(model.with_suffix(".onnx"))
    with pytest.raises(PipelineError, match="model.onnx is damaged .* retrain it with make train"):
        load_predictor(model)
    flip(model)   # the Keras file, loaded by itself
    with pytest.raises(PipelineError, match="model.keras is damaged"):
        Predictor.load(model)


def test_the_description_of_another_model_is_named(model):
    """The shipped model's description beside this graph: it once made a 440 Hz tone 8.2 Hz."""
    shutil.copy(default_model_path().with_suffix(".json"), sidecar_path(model))
    with pytest.raises(PipelineError, match=f"{sidecar_path(model)} describes another model than "
                                            f"{model.with_suffix('.onnx')} .another training run."):
        load_predictor(model)


def test_the_keras_file_tells_a_damaged_file_from_another_models_description(model):
    reseal(model, lambda meta: meta.update(model_id="another run"), keras="0" * 64)   # another run's description
    with pytest.raises(PipelineError, match=f"describes another model than {model} "):
        Predictor.load(model)


def test_an_edited_description_is_named(model):
    meta = json.loads(sidecar_path(model).read_text())
    meta["encoding"]["bins_per_semitone"] = 7
    sidecar_path(model).write_text(json.dumps(meta))
    with pytest.raises(PipelineError, match="was edited or is damaged"):
        load_predictor(model)


def test_a_graph_with_other_inputs_is_named(model):
    import onnx

    graph = onnx.load(model.with_suffix(".onnx"))
    graph.graph.input[1].name = "starts"
    for node in graph.graph.node:
        node.input[:] = ["starts" if name == "positions" else name for name in node.input]
    onnx.save(graph, model.with_suffix(".onnx"))
    reseal(model, onnx=sha256_file(model.with_suffix(".onnx")))   # its description says it is the file
    with pytest.raises(PipelineError, match=r"is not a stream model's export \(inputs \['spectrogram', 'starts'\]"):
        load_predictor(model)


def test_outputs_that_do_not_fit_the_description_are_named(model):
    reseal(model, lambda meta: meta["encoding"].update(n_bins=meta["encoding"]["n_bins"] + 5))
    predictor = load_predictor(model)
    with pytest.raises(PipelineError, match="pitch bins where its metadata says"):
        predictor.predict(np.zeros((1, 513, 90), np.float32))


def test_predict_with_a_damaged_model_is_one_line(model, tmp_path):
    flip(model.with_suffix(".onnx"))
    import soundfile as sf

    note = tmp_path / "A4.wav"
    sf.write(note, 0.5 * np.sin(2 * np.pi * 440 * np.arange(8000) / 16000), 16000)
    for command in (["predict", "--summary", "--model", str(model), str(note)],
                    ["evaluate", str(tmp_path), "--model", str(model), "--output", str(tmp_path / "out")]):
        done = run_cli(*command)
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
        assert [line for line in done.stderr.splitlines() if line.strip()] == [
            f"error: model {model.with_suffix('.onnx')} is damaged (its sha256 is not the one its metadata records); "
            "retrain it with make train (or python -m pipeline train)"]
