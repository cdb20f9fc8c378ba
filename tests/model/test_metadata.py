"""metadata: model.json records its model files' sha256 and is sealed by its own; a load names in one
line a damaged file, an edited description, a description of another model, and unusable values."""

from __future__ import annotations

import hashlib
import json

import pytest

from pipeline.core import constants as C
from pipeline.core.config import load_config
from pipeline.core.errors import PipelineError
from pipeline.model.encodings import BinEncoding, RegressionEncoding, encoding_to_dict
from pipeline.model.metadata import MODEL_ID, check_model_file, read_metadata, sidecar_path, write_metadata


def model_files(tmp_path, **changes):
    """A stand-in model file and its sealed description."""
    path = tmp_path / "model.onnx"
    path.write_bytes(b"graph bytes")
    meta = {"format": C.MODEL_FORMAT, "format_version": C.MODEL_FORMAT_VERSION, "variant": "stream", "scaling": "log",
            "encoding": encoding_to_dict(BinEncoding.for_config(load_config())), MODEL_ID: "run-1",
            "config": {"model": {"time_pool": 3}}, **changes}
    write_metadata(path, meta, {"onnx": hashlib.sha256(b"graph bytes").hexdigest()})
    return path


def edit(path, change) -> None:
    meta = json.loads(sidecar_path(path).read_text())
    change(meta)
    sidecar_path(path).write_text(json.dumps(meta))


def test_a_sealed_description_reads_back_and_its_file_checks(tmp_path):
    path = model_files(tmp_path)
    meta = read_metadata(path)
    assert meta["files"] == {"onnx": hashlib.sha256(b"graph bytes").hexdigest()} and len(meta["content_sha256"]) == 64
    check_model_file(path, meta)


@pytest.mark.parametrize("change", [
    lambda m: m["encoding"].update(bins_per_semitone=7),            # another model's bins: 8.2 Hz for a 440 Hz tone
    lambda m: m.update(variant="bins"), lambda m: m["files"].update(onnx="0" * 64),
    lambda m: m.pop("content_sha256"), lambda m: m["config"]["model"].update(time_pool=0),
])
def test_an_edited_description_is_one_line(tmp_path, change):
    path = model_files(tmp_path)
    edit(path, change)
    with pytest.raises(PipelineError, match="was edited or is damaged .* put back the file written with the model") \
            as err:
        read_metadata(path)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("changes, message", [
    ({"variant": "foo"}, "variant 'foo' is not one of"), ({"scaling": 3}, "scaling 3 is not one of"),
    ({"encoding": "bins"}, "its encoding is not one this code reads"),
    ({"encoding": {**encoding_to_dict(RegressionEncoding("midi", 60.0, 0.0))}}, "its encoding is out of range"),
    ({"encoding": {**encoding_to_dict(RegressionEncoding("midi", "abc", 1.0))}}, "not a finite number"),
    ({"encoding": {**encoding_to_dict(RegressionEncoding("midi", float("nan"), 1.0))}}, "not a finite number"),
    ({"config": {"model": {"time_pool": "x"}}}, "time_pool 'x' is not an integer"),
])
def test_a_description_with_values_no_model_has_is_one_line(tmp_path, changes, message):
    path = model_files(tmp_path, **changes)   # sealed as it is: values that only a bug (or a hand) would write
    with pytest.raises(PipelineError, match=f"is not usable .*{message}"):
        read_metadata(path)


@pytest.mark.parametrize("content, message", [
    ("[]", "is not a model description written by this pipeline"), ('{"format": ', "is unreadable"),
    ("", "is unreadable"), (b"\xff\xfe{", "is unreadable"),
])
def test_a_description_that_is_no_description_is_one_line(tmp_path, content, message):
    path = model_files(tmp_path)
    sidecar_path(path).write_bytes(content.encode() if isinstance(content, str) else content)
    with pytest.raises(PipelineError, match=message):
        read_metadata(path)


def test_a_newer_format_is_named_before_the_seal(tmp_path):
    path = model_files(tmp_path)
    edit(path, lambda m: m.update(format_version=C.MODEL_FORMAT_VERSION + 1))
    with pytest.raises(PipelineError, match="format version"):
        read_metadata(path)


def test_a_model_file_that_is_not_the_recorded_one_says_which_file_is_wrong(tmp_path):
    path = model_files(tmp_path)
    meta = read_metadata(path)
    path.write_bytes(b"graph bytez")
    with pytest.raises(PipelineError, match=f"model {path} is damaged"):
        check_model_file(path, meta)
    with pytest.raises(PipelineError, match=f"model {path} is damaged"):
        check_model_file(path, meta, embedded_id="run-1")     # the same run: the file is damaged
    with pytest.raises(PipelineError, match=f"{sidecar_path(path)} describes another model than {path}"):
        check_model_file(path, meta, embedded_id="run-2")     # another run: the description is the wrong one
    keras = path.with_suffix(".keras")
    keras.write_bytes(b"zip")
    with pytest.raises(PipelineError, match="records no checksum of it"):
        check_model_file(keras, meta)
