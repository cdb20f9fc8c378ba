"""The public API: `import pipeline` and the names users call, imported on first use."""

import subprocess
import sys

import numpy as np
import pytest

import pipeline
from tests.conftest import REPO


def test_predict_an_array_with_the_shipped_model():
    t = np.arange(16000) / 16000
    time, frequency, confidence = pipeline.predict(0.5 * np.sin(2 * np.pi * 220 * t), 16000)
    assert len(time) == len(frequency) == len(confidence) == 101
    sure = confidence > 0.5
    assert sure.sum() > 50
    assert abs(1200 * np.log2(np.median(frequency[sure]) / 220)) < 20


def test_predict_accepts_a_model_path_and_a_loaded_model():
    model = pipeline.load_predictor()
    t = np.arange(8000) / 8000
    audio = np.sin(2 * np.pi * 330 * t)
    by_object = pipeline.predict(audio, 8000, model)
    by_path = pipeline.predict(audio, 8000, model.path if hasattr(model, "path") else None)
    np.testing.assert_array_equal(by_object[1], by_path[1])


def test_import_is_light_and_every_name_resolves():
    code = ("import sys, pipeline; light = 'tensorflow' not in sys.modules and 'pipeline.data' not in sys.modules; "
            "names = [getattr(pipeline, n) for n in pipeline.__all__]; print(light, len(names))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.stdout.split() == ["True", str(len(pipeline.__all__))], out.stderr


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        pipeline.nothing  # noqa: B018


def test_the_version_is_the_package_metadata():
    from importlib import metadata

    assert pipeline.__version__ == metadata.version("pitch-pipeline")
