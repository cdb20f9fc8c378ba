"""truth_contours: the layouts a truth CSV comes in, where it is found, and one line per bad file."""

import numpy as np
import pytest

from pipeline.core.errors import PipelineError
from pipeline.report.truth_contours import read_truth, truth_path


def write(tmp_path, text, name="song.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("text", [
    "time,frequency\n0.00,0\n0.01,220.5\n0.02,221\n",                   # a header
    "0.00,0\n0.01,220.5\n0.02,221\n",                                    # MDB-stem-synth: no header
    "Time, F0\n0.00, 0\n0.01, 220.5\n0.02, 221\n",                       # any case, spaces, f0
    "\ufefftime\tfrequency\n0.00\t0\n\n0.01\t220.5\n0.02\t221\n",        # a BOM, tabs, a blank line
    "# made by hand\n0.00 0\n0.01 220.5\n0.02 221\n",                    # a comment, spaces
    "frequency,note,time\n0,x,0.00\n220.5,A3,0.01\n221,A3,0.02\n",        # columns in any order, others ignored
])
def test_the_layouts_give_the_same_contour(tmp_path, text):
    truth = read_truth(write(tmp_path, text))
    assert truth.time.tolist() == [0.0, 0.01, 0.02]
    assert truth.frequency.tolist() == [0.0, 220.5, 221.0] and truth.voiced.tolist() == [False, True, True]


def test_a_third_column_decides_voicing(tmp_path):
    crepe = read_truth(write(tmp_path, "time,frequency,confidence\n0.0,180.0,0.1\n0.01,181.0,0.9\n0.02,0,0.9\n"))
    assert crepe.voiced.tolist() == [False, True, False]      # low confidence, and 0 Hz, are unvoiced
    plain = read_truth(write(tmp_path, "0.0,180.0,1\n0.01,181.0,0\n0.02,182.0,1\n", "plain.csv"))
    assert plain.voiced.tolist() == [True, False, True]
    words = read_truth(write(tmp_path, "time,frequency,voiced\n0.0,180,true\n0.01,181,False\n", "words.csv"))
    assert words.voiced.tolist() == [True, False]


def test_the_truth_beside_the_audio_or_in_its_folder(tmp_path):
    audio = tmp_path / "audio" / "take1" / "song.wav"
    audio.parent.mkdir(parents=True)
    audio.write_bytes(b"")
    assert truth_path(audio, tmp_path / "audio") is None
    (audio.parent / "song.f0.csv").write_text("0,0\n")
    assert truth_path(audio, tmp_path / "audio") == audio.parent / "song.f0.csv"
    (audio.parent / "song.csv").write_text("0,0\n")          # song.csv first: song.f0.csv may be predict's
    assert truth_path(audio, tmp_path / "audio") == audio.parent / "song.csv"
    truth = tmp_path / "truth"
    (truth / "take1").mkdir(parents=True)
    (truth / "song.csv").write_text("0,0\n")
    assert truth_path(audio, tmp_path / "audio", truth) == truth / "song.csv"   # at the top of the truth folder
    (truth / "take1" / "song.f0.csv").write_text("0,0\n")
    assert truth_path(audio, tmp_path / "audio", truth) == truth / "take1" / "song.f0.csv"   # the same place first


BAD = {
    "missing column": ("time,hz_wrong\n0,100\n", "row 1: no frequency column in the header"),
    "a short row": ("time,frequency\n0,100\n0.01\n", "row 3: 1 value(s) where time,frequency are needed"),
    "non-numeric": ("time,frequency\n0,100\n0.01,abc\n", "row 3: frequency 'abc' is not a number"),
    "not finite": ("0,100\n0.01,nan\n", "row 2: frequency 'nan' is not a finite number"),
    "negative frequency": ("0,100\n0.01,100\n0.02,-3\n", "row 3: frequency -3 is negative; use 0 for an unvoiced"),
    "time out of order": ("time,frequency\n0,1\n0.02,1\n0.01,1\n", "row 4: time 0.01 is not after the previous"),
    "a repeated time": ("0,1\n0.01,1\n0.01,1\n", "row 3: time 0.01 is not after the previous"),
    "negative time": ("-0.01,1\n0,1\n", "row 1: time -0.01 is negative"),
    "too many columns": ("0,1,1,1\n", "row 1: 4 columns without a header"),
    "voiced out of range": ("time,frequency,voiced\n0,1,1\n0.01,1,2\n", "row 3: voiced 2 is outside 0..1"),
    "empty": ("", "no frames (an empty file)"),
    "header only": ("time,frequency\n", "no frames (an empty file)"),
    "one frame": ("time,frequency\n0,100\n", "only one frame"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_truth_file_is_one_line_naming_the_file_and_row(tmp_path, case):
    text, expected = BAD[case]
    path = write(tmp_path, text)
    with pytest.raises(PipelineError) as caught:
        read_truth(path)
    message = str(caught.value)
    assert message.startswith(f"{path}") and expected in message and "\n" not in message


def test_binary_garbage_is_named(tmp_path):
    path = tmp_path / "song.csv"
    path.write_bytes(bytes(range(128, 256)))
    with pytest.raises(PipelineError, match="song.csv: not a text file"):
        read_truth(path)


def test_the_first_problem_is_the_one_named(tmp_path):
    path = write(tmp_path, "0,1\n0.01,-1\n0.005,1\n")   # a negative frequency (row 2) before the disorder (row 3)
    with pytest.raises(PipelineError, match="row 2: frequency -1 is negative"):
        read_truth(path)
    assert np.isfinite(read_truth(write(tmp_path, "0,1\n0.01,0\n", "ok.csv")).time).all()
