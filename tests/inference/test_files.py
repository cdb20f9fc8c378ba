"""files: many recordings in one process or several, in order, with their outputs and pictures."""

import numpy as np
import soundfile as sf

from pipeline.inference.files import Request, predict_many


def write_tones(folder, notes):
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, hz in notes:
        t = np.arange(12000) / 16000
        sf.write(folder / name, 0.4 * np.sin(2 * np.pi * hz * t), 16000)
        paths.append(folder / name)
    return paths


def test_several_processes_give_the_same_files_in_the_same_order(tmp_path):
    paths = write_tones(tmp_path / "in", [("a.wav", 440.0), ("b.wav", 261.63), ("c.wav", 659.26), ("d.wav", 98.0)])
    one = list(predict_many(paths, Request(output_dir=str(tmp_path / "one")), jobs=1))
    two = list(predict_many(paths, Request(output_dir=str(tmp_path / "two")), jobs=2))
    assert [r.path for r in one] == [r.path for r in two] == paths
    assert all(r.ok for r in one + two)
    for a, b in zip(one, two):
        assert a.csv.name == b.csv.name and a.csv.read_bytes() == b.csv.read_bytes()


def test_outputs_that_would_collide_are_refused_for_the_second_file(tmp_path):
    first = write_tones(tmp_path / "x", [("same.wav", 440.0)])
    second = write_tones(tmp_path / "y", [("same.wav", 220.0)])
    for jobs in (1, 2):
        results = list(predict_many(first + second, Request(output_dir=str(tmp_path / f"out{jobs}")), jobs=jobs))
        assert results[0].ok and not results[1].ok and "would overwrite" in results[1].error


def test_a_plot_and_a_summary_per_file(tmp_path):
    paths = write_tones(tmp_path, [("a4.wav", 440.0)])
    (result,) = predict_many(paths, Request(summary=True, plot=True, output_format="json"), jobs=1)
    assert result.summary.note == "A4" and result.plot == tmp_path / "a4.f0.png"
    assert result.plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and result.plot.stat().st_size > 10_000
    (framed,) = predict_many(paths, Request(output_format="npz", plot=True), jobs=1)
    assert framed.csv == tmp_path / "a4.f0.npz" and np.load(framed.csv)["frequency"].size == 1 + 12000 // 160
