"""discovery: which files a prediction reads, from files, folders, patterns and standard input."""

import io

import pytest

from pipeline.core.errors import PipelineError
from pipeline.inference.discovery import STDIN, audio_inputs, read_stdin


def touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_folders_are_searched_recursively_in_path_order(tmp_path):
    for name in ("b.wav", "a.FLAC", "sub/c.mp3", "sub/deeper/d.ogg", "notes.txt", ".hidden.wav", "a.f0.csv"):
        touch(tmp_path / "notes" / name)
    found = audio_inputs([tmp_path / "notes"])
    assert [p.relative_to(tmp_path / "notes").as_posix() for p in found] == [
        "a.FLAC", "b.wav", "sub/c.mp3", "sub/deeper/d.ogg"]


def test_patterns_files_and_stdin_keep_their_order_and_count_once(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("x/1.wav", "x/2.wav", "x/y/3.wav", "x/y/4.flac"):
        touch(tmp_path / name)
    found = audio_inputs(["x/2.wav", "x/*.wav", "-", "x/**/*.wav", "missing.wav"])
    assert [str(p) for p in found] == ["x/2.wav", "x/1.wav", STDIN, "x/y/3.wav", "missing.wav"]


def test_a_pattern_without_a_match_or_a_folder_without_audio_is_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    touch(tmp_path / "empty" / "readme.txt")
    with pytest.raises(PipelineError, match="holds no audio file"):
        audio_inputs([tmp_path / "empty"])
    with pytest.raises(PipelineError, match="no file matches .*nothing"):
        audio_inputs([str(tmp_path / "nothing*.wav")])


def test_standard_input_is_saved_as_a_file(tmp_path):
    saved = read_stdin(io.BytesIO(b"RIFF-some-audio"), tmp_path)
    assert saved == tmp_path / "stdin" and saved.read_bytes() == b"RIFF-some-audio"
    with pytest.raises(PipelineError, match="standard input is empty"):
        read_stdin(io.BytesIO(b""), tmp_path)
