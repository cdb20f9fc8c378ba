"""outputs: one file per recording in CSV, NPZ or JSON, the same columns in each."""

import io
import json

import numpy as np
import pytest

from pipeline.core.errors import PipelineError
from pipeline.inference.outputs import output_path, plot_path, table_bytes, write_prediction

TIME = np.array([0.0, 0.01, 0.02])
FREQUENCY = np.array([440.12345, 0.0, 220.5])
CONFIDENCE = np.array([0.987654321, 0.0, 0.5])


def test_every_format_holds_the_same_frames(tmp_path):
    csv = write_prediction(tmp_path / "a.f0.csv", TIME, FREQUENCY, CONFIDENCE, "csv").read_text().splitlines()
    assert csv == ["time,frequency,confidence", "0.000000,440.123,0.987654", "0.010000,0.000,0.000000",
                   "0.020000,220.500,0.500000"]
    npz = np.load(write_prediction(tmp_path / "a.f0.npz", TIME, FREQUENCY, CONFIDENCE, "npz"))
    assert sorted(npz.files) == ["confidence", "frequency", "time"]
    assert np.array_equal(npz["frequency"], FREQUENCY) and np.array_equal(npz["time"], TIME)
    data = json.loads(write_prediction(tmp_path / "a.f0.json", TIME, FREQUENCY, CONFIDENCE, "json").read_text())
    assert data == {"time": [0.0, 0.01, 0.02], "frequency": [440.123, 0.0, 220.5], "confidence": [0.987654, 0.0, 0.5]}


def test_names_follow_the_audio_and_the_format(tmp_path):
    assert output_path("notes/song.wav") == output_path("notes/song.wav", None, "csv")
    assert str(output_path("notes/song.wav")) == "notes/song.f0.csv"
    assert output_path("notes/song.flac", tmp_path, "json") == tmp_path / "song.f0.json"
    assert plot_path(tmp_path / "song.f0.npz") == tmp_path / "song.f0.png"
    with pytest.raises(PipelineError, match="not one of csv, npz, json"):
        output_path("song.wav", None, "xlsx")


def test_tables_in_every_format():
    rows = [{"path": "a.wav", "frequency": 440.0, "note": "A4"}, {"path": "b.wav", "frequency": 220.0, "note": "A3"}]
    assert table_bytes(rows, "csv").decode() == "path,frequency,note\na.wav,440.0,A4\nb.wav,220.0,A3\n"
    assert json.loads(table_bytes(rows, "json")) == rows
    npz = np.load(io.BytesIO(table_bytes(rows, "npz")))
    assert list(npz["note"]) == ["A4", "A3"] and list(npz["frequency"]) == [440.0, 220.0]
