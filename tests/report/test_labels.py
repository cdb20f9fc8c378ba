"""labels: every row of a labels file checked, each bad row named by its line and costing only
that line; a fuzz of bad cells, rows and encodings through `pipeline evaluate` under a memory
limit never exceeds it and never ends in a traceback."""

from __future__ import annotations

import json
import random
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from pipeline.core.errors import PipelineError
from pipeline.core.pitch import note_name
from pipeline.report.folder_evaluation import evaluate_folder, label_from_name
from pipeline.report.labels import MAX_LINE_BYTES, MAX_NAMED, read_labels
from tests.conftest import REPO

NAMES = [f"n{i:02d}.wav" for i in range(40)]


@pytest.fixture(scope="module")
def audio(tmp_path_factory) -> Path:
    """Forty short notes (a 440 Hz tone each: the stand-in estimator's answer does not matter here)."""
    folder = tmp_path_factory.mktemp("audio")
    tone = 0.5 * np.sin(2 * np.pi * 440 * np.arange(3200) / 16000)
    for name in NAMES:
        sf.write(folder / name, tone, 16000)
    return folder


def write(tmp_path, text: str | bytes, name: str = "labels.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def test_a_manifest_like_file_reads_whole_and_typed(audio, tmp_path):
    text = ("\ufeffpath,frequency,note,midi,velocity,detune_cents,instrument\r\n"
            "n00.wav,441.27,A4,69,100,5.0,oboe\r\n\r\n"
            "n01.wav,,C#4,,64,,oboe\r\n"
            "n02.wav,,,57.5,64,-3,flute,,\r\n"      # a fractional MIDI number; trailing empty cells
            f"{audio / 'n03.wav'},220,,,1,,\r\n")   # an absolute path
    labels = read_labels(write(tmp_path, text), audio)
    assert labels.problems == () and labels.rows == 4
    frame = labels.frame
    assert frame["line"].tolist() == [2, 4, 5, 6]
    np.testing.assert_allclose(frame["label_hz"], [441.27, 277.1826, 226.4465, 220.0], rtol=1e-6)
    assert frame["file"].tolist()[:1] == [str(audio / "n00.wav")] and frame["file"][3] == str(audio / "n03.wav")
    assert frame["velocity"].tolist() == [100, 64, 64, 1]            # numbers stay numbers ...
    assert frame["instrument"].tolist()[:3] == ["oboe", "oboe", "flute"]   # ... text stays text


BAD_ROWS = [  # (the row, what its message says)
    ("n10.wav,440,abc", "midi 'abc' is not a number"),                   # the row that took a machine down
    ("n10.wav,nan,", "frequency 'nan' is not a frequency from 8.2 to 12543.9 Hz"),
    ("n10.wav,inf,", "frequency 'inf'"), ("n10.wav,-440,", "frequency '-440'"), ("n10.wav,0,", "frequency '0'"),
    ("n10.wav,1e300,", "frequency '1e300'"), ("n10.wav,440Hz,", "frequency '440Hz' is not a number"),
    ("n10.wav,,1e300", "midi '1e300' is not a number from 0 to 127"), ("n10.wav,,-5", "midi '-5'"),
    ("n10.wav,,128", "midi '128'"), ("n10.wav,440,20", "frequency and midi disagree by 4900 cents"),
    (",440,", "has no path"), ("n10.wav,,", "n10.wav has no frequency, note or midi"),
    ("n10.wav,440", "2 cells where the header has 3"), ("n10.wav,440,69,7", "4 cells where the header has 3"),
    ('"n10.wav,440,69', "not one CSV row"), ("n10.wav,4\x0040,", "a NUL byte"),
    ("missing.wav,440,", "missing.wav not found"), (".,440,", ". is not a file"),
    ("x" * 5000 + ".wav,440,", "cannot be read (File name too long)"),
]


@pytest.mark.parametrize("row, message", BAD_ROWS, ids=[m[:30] for _, m in BAD_ROWS])
def test_a_bad_row_is_named_by_its_line_and_costs_only_that_line(audio, tmp_path, row, message):
    labels = read_labels(write(tmp_path, f"path,frequency,midi\nn00.wav,440,69\n{row}\nn01.wav,,70\n"), audio)
    assert len(labels.problems) == 1 and labels.problems[0].startswith("line 3: ") and message in labels.problems[0]
    assert labels.frame["line"].tolist() == [2, 4] and labels.rows == 3


def test_bytes_that_are_not_utf8_and_lines_too_long_cost_their_line(audio, tmp_path):
    data = (b"path,frequency\nn00.wav,440\ncaf\xe9.wav,440\n" + b"n01.wav," + b"9" * (3 * MAX_LINE_BYTES)
            + b"\nn02.wav,220\n")
    labels = read_labels(write(tmp_path, data), audio)
    assert [p.split(";")[0] for p in labels.problems] == ["line 3: not UTF-8 text (byte 4)",
                                                          "line 4: longer than 65,536 bytes"]
    assert labels.frame["line"].tolist() == [2, 5]


def test_a_file_listed_again_is_named_and_the_first_row_kept(audio, tmp_path):
    text = "path,frequency\nn00.wav,220\nn01.wav,440\n./n00.wav,220\nn00.wav,230\n"
    labels = read_labels(write(tmp_path, text), audio)
    assert labels.problems == ("line 4: ./n00.wav is listed again (first on line 2); list each file once",
                               "line 5: n00.wav is listed again with another label (230 Hz; line 2 says 220 Hz); "
                               "keep the right row")
    assert labels.frame["label_hz"].tolist() == [220.0, 440.0]


@pytest.mark.parametrize("content, message", [
    ("", "is empty"), ("path,frequency\n", "lists no rows"), ("file,hz\nx.wav,1\n", "needs a path column"),
    ("path,path,frequency\na,a,1\n", "names the column(s) path twice"),
    ("path,frequency\na.wav,1\n".encode("utf-16"), "is UTF-16 text"),
    (b"pa\xffth,frequency\n", "not a CSV header in UTF-8"),
])
def test_a_file_that_cannot_be_a_labels_file_is_one_line(audio, tmp_path, content, message):
    with pytest.raises(PipelineError, match=message.replace("(", r"\(").replace(")", r"\)")) as err:
        read_labels(write(tmp_path, content), audio)
    assert "\n" not in str(err.value)


def test_a_missing_file_a_folder_or_a_device_is_one_line(audio, tmp_path):
    for path, message in [(tmp_path / "none.csv", "not found"), (tmp_path, "not a regular file"),
                          (Path("/dev/zero"), "not a regular file")]:
        with pytest.raises(PipelineError, match=message):
            read_labels(path, audio)


def test_many_bad_rows_are_counted_past_the_named_ones(audio, tmp_path):
    text = "path,frequency\n" + "n00.wav,x\n" * (MAX_NAMED + 5) + "n01.wav,440\n"
    labels = read_labels(write(tmp_path, text), audio)
    assert len(labels.problems) == MAX_NAMED + 1 and labels.problems[-1].endswith("5 more bad rows not listed")
    assert labels.frame["line"].tolist() == [MAX_NAMED + 7]


@pytest.mark.parametrize("name", ["x_A4_69_0.00_sustain_v100.wav", "x_A4_69_99999.00_sustain_v100.wav"])
def test_a_file_name_whose_frequency_is_out_of_range_gives_no_label(name):
    assert label_from_name(name) is None


def test_evaluate_scores_the_good_rows_and_names_the_bad(audio, tmp_path):
    """The row that made the process grow until the OOM killer came: a midi of 'abc' beside a
    valid frequency. It is named; the others are scored, the tables hold only MIDI notes."""
    text = "path,frequency,midi\nn00.wav,440,abc\nn01.wav,880,81\nn02.wav,392,67\n"
    result = evaluate_folder(audio, None, write(tmp_path, text), tmp_path / "out",
                             estimate=lambda paths: np.full(len(paths), 440.0))
    assert result.problems == ("line 2: midi 'abc' is not a number",) and result.files == 3
    by_pitch = pd.read_csv(tmp_path / "out" / "by_pitch.csv")
    assert sorted(by_pitch["midi"]) == [67, 81]


def test_a_file_the_estimator_cannot_read_is_named_by_its_line_too(audio, tmp_path):
    text = "path,frequency\nn00.wav,440\nn01.wav,880\n"
    result = evaluate_folder(audio, None, write(tmp_path, text), tmp_path / "out",
                             estimate=lambda paths: (np.full(len(paths), 440.0),
                                                     ["cannot read audio" if p.endswith("n01.wav") else None
                                                      for p in paths]))
    assert result.problems == ("line 3: n01.wav: cannot read audio",)


# --- the fuzz -----------------------------------------------------------------------------------
BAD_CELLS = ["abc", "nan", "NaN", "inf", "-inf", "1e300", "-1e300", "1e-300", "0", "-5", "", " ", "12544", "440Hz",
             "H9", "C#", "Cb-1", "G#9", "\x00", "é", '"', '"open', "a,b", "9" * 70_000, "\u202e", "🎵", "0x1A",
             "1_000", "--1", "Infinity", "\\N", "NULL", "440,880", "\t", "1e308", "1e309"]
HEADERS = [["path", "frequency"], ["path", "midi"], ["path", "note"], ["path", "frequency", "midi", "note"],
           ["path", "frequency", "detune_cents", "velocity", "instrument", "segment"],
           ["instrument", "path", "midi", "detune_cents"], ["path", "frequency", "", "augment"]]
ENCODINGS = ["utf-8", "utf-8-sig", "latin-1", "cp1252", "utf-16"]


def fuzz_case(rng: random.Random, folder: Path) -> dict:
    """A labels file of good rows (distinct files, valid labels) and bad ones (random cells, cell
    counts, quotes, bytes), in a random encoding and line ending; which lines are good, if the
    encoding keeps ASCII rows readable."""
    header = list(rng.choice(HEADERS))
    if rng.random() < 0.05:
        header = rng.choice([["path"], ["file", "frequency"], ["path", "path", "midi"]])
    good_files = rng.sample(NAMES[:20], 6)
    rows, good_lines = [], []
    for _ in range(rng.randint(3, 30)):
        if good_files and rng.random() < 0.4:
            midi = rng.randint(30, 100)
            cells = {"path": good_files.pop(), "frequency": f"{440 * 2 ** ((midi - 69) / 12):.3f}", "midi": str(midi),
                     "note": note_name(midi), "detune_cents": "0", "velocity": "100", "instrument": "oboe",
                     "segment": "sustain", "augment": "none", "": ""}
            rows.append(",".join(cells.get(name, "x") for name in header))
            good_lines.append(len(rows) + 1)
            continue
        cells = [rng.choice(NAMES[20:] + ["missing.wav", "", ".", "../n00.wav"]) if name == "path"
                 else rng.choice(BAD_CELLS) for name in header]
        if rng.random() < 0.2:
            cells = cells[:rng.randint(0, len(cells))] + [rng.choice(BAD_CELLS)] * rng.randint(0, 3)
        rows.append(",".join(cells))
    ending = rng.choice(["\n", "\r\n", "\n", "\r"])
    encoding = rng.choice(ENCODINGS)
    text = ending.join([",".join(header), *rows]) + ending
    data = text.encode(encoding, errors="replace")
    if rng.random() < 0.2:   # a stray byte somewhere
        where = rng.randrange(len(data))
        data = data[:where] + bytes([rng.randrange(256)]) + data[where:]
        good_lines = []
        rows.append("")  # the byte may break a line in two
    path = folder / f"case{rng.randrange(10**9)}.csv"
    path.write_bytes(data)
    readable = encoding in ("utf-8", "utf-8-sig", "latin-1", "cp1252") and ending != "\r"
    return {"path": str(path), "good": good_lines if readable and header in HEADERS else None,
            "data_lines": len(rows)}


DRIVER = """
import json, sys, traceback
import numpy as np
from pipeline.core.errors import PipelineError
from pipeline.report.folder_evaluation import evaluate_folder
from pipeline.report.labels import read_labels
from pipeline.report.reporting import format_summary
audio, cases, out, tables = sys.argv[1], json.loads(open(sys.argv[2]).read()), sys.argv[3], int(sys.argv[4])
results = []
for i, case in enumerate(cases):
    try:
        labels = read_labels(case["path"], audio)
        result = {"problems": list(labels.problems), "lines": [int(x) for x in labels.frame["line"]], "midi": []}
        if i < tables:  # the whole command, tables and plot included (where a bad MIDI number once ran away)
            r = evaluate_folder(audio, None, case["path"], f"{out}/{i}", estimate=lambda p: np.full(len(p), 440.0))
            format_summary(r.summary) if r.summary is not None else None
            result["midi"] = [int(x) for x in r.predictions["midi"]] if len(r.predictions) else []
        results.append(result)
    except PipelineError as exc:
        results.append({"error": str(exc)})
    except BaseException:
        results.append({"traceback": traceback.format_exc()})
print(json.dumps(results))
"""
MEMORY_LIMIT = 2 * 2**30


def limited():
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def test_a_fuzz_of_labels_files_stays_within_a_memory_limit_and_never_ends_in_a_traceback(audio, tmp_path):
    rng = random.Random(21)
    cases = [fuzz_case(rng, tmp_path) for _ in range(300)]
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    args = [str(audio), str(tmp_path / "cases.json"), str(tmp_path / "out"), "12"]
    done = subprocess.run([sys.executable, "-c", DRIVER, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=600, preexec_fn=limited)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    results = json.loads(done.stdout)
    for case, result in zip(cases, results):
        assert "traceback" not in result, (case, result.get("traceback"))
        if "error" in result:
            assert "\n" not in result["error"] and not case["good"], (case, result)
            continue
        named = [int(p.split(":")[0].split()[1]) for p in result["problems"] if p.startswith("line ")]
        assert all(p.startswith("line ") for p in result["problems"]), result["problems"]
        # every row accounted for once: scored or named (blank lines are no rows)
        assert not set(named) & set(result["lines"]) and len(named) + len(result["lines"]) <= case["data_lines"]
        if case["good"] is not None:
            assert set(case["good"]) <= set(result["lines"]), (case, result)   # a bad row costs only its line
        assert all(0 <= m <= 127 for m in result["midi"])


def test_pipeline_evaluate_under_a_memory_limit_names_the_bad_rows(audio, tmp_path):
    """The command as a user runs it, with the shipped model, in a process capped at 2 GiB."""
    labels = write(tmp_path, "path,frequency,midi\nn00.wav,440,abc\nn01.wav,\x00,\nn02.wav,440,69\nn02.wav,220,57\n"
                   + "n03.wav," + "9" * 100_000 + ",\n")
    done = subprocess.run([sys.executable, "-m", "pipeline", "evaluate", str(audio), "--labels", str(labels),
                           "--output", str(tmp_path / "out")], cwd=REPO, capture_output=True, text=True, timeout=300,
                          preexec_fn=limited)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert [line.split(":")[1] for line in done.stderr.splitlines()[:4]] == [" line 2", " line 3", " line 5", " line 6"]
    assert done.stderr.splitlines()[-1] == "4 of 5 files failed (those with a label count as misses)"
    assert "RPA 50 cents" in done.stdout
