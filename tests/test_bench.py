"""The benchmark harness runs end to end on tiny sizes and writes its results (no timings asserted)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bench.memory import GROWTH_LIMIT
from bench.run import SECTIONS
from tests.conftest import REPO


def ratio(value, want):
    """A recorded ratio or rate against the one recomputed from the recorded (rounded) timings."""
    assert value == pytest.approx(want, rel=0.02, abs=0.06)


def test_quick_bench_writes_results_that_add_up(tmp_path):
    """No timing is judged; what is asserted is that every figure is what its own measurements
    give (a rate is its count over its best time, a ratio the quotient of two rates) and that the
    outputs compared are the same: no value of the table can be wired to the wrong number."""
    out = tmp_path / "results"
    done = subprocess.run([sys.executable, "-m", "bench.run", "--quick", "--out", str(out),
                           "--scratch", str(tmp_path / "scratch")],
                          cwd=REPO, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert {"schema", "environment", "summary", *SECTIONS} <= set(results)
    assert results["environment"]["quick"] is True and results["environment"]["cores_used"] >= 1

    render = results["render"]
    for key in ("engine", "naive_parallel", "naive_serial", "synthesis", "engine_steady"):
        assert render[key]["wall_seconds"], key
    engine, naive = render["engine"], render["naive_parallel"]
    assert engine["clips"] > 0 and engine["notes"] == render["config"]["notes"]
    ratio(engine["clips_per_second_best"], engine["clips"] / min(engine["wall_seconds"]))
    ratio(render["speedup_vs_naive_parallel"], (engine["notes"] / min(engine["wall_seconds"]))
          / (naive["notes"] / min(naive["wall_seconds"])))
    assert render["naive_same_output_kind"] is True
    assert render["naive_vs_engine_similarity"]["min_spectral_similarity"] > 0.99   # the same notes both ways
    assert {"speedup_vs_naive_serial", "engine_cost_vs_synthesis", "engine_breakdown_ms_per_note"} <= set(render)

    features = results["features"]
    # the batched spectrograms are scipy's per-clip values bit for bit, in memory and file to file
    assert features["identical"] is True and features["max_abs_difference"] == 0.0
    assert features["file_to_file"]["identical_files"] is True
    assert features["batched"]["spectrograms"] == features["per_clip_loop"]["spectrograms"] == features["clips"] > 0
    loop, batched = features["per_clip_loop"], features["batched"]
    ratio(features["speedup"], min(loop["wall_seconds"]) / min(batched["wall_seconds"]))
    files = features["file_to_file"]
    ratio(files["speedup"], min(files["naive_loop"]["wall_seconds"]) / min(files["build_features"]["wall_seconds"]))

    formats = results["clip_formats"]["formats"]
    default = next(iter(formats.values()))
    for got in formats.values():   # each format's figures are its own counts over its own time
        assert got["clips"] > 0 and got["bytes"] > 0
        ratio(got["clips_per_second"], got["clips"] / got["data_seconds"])
        ratio(got["data_time_vs_default"], got["data_seconds"] / default["data_seconds"])
        assert got["audio_seconds"] == pytest.approx(got["clips"] * got["format"]["samples"] / got["format"]["rate"],
                                                     abs=0.01)
    assert {f["format"]["file_format"] for f in formats.values()} == {"wav", "flac"}

    cpu = results["training"]["models"]["default"]["cpu"]
    assert cpu["steps_timed"] >= 1 and cpu["params"] > 0
    ratio(cpu["samples_per_second"], cpu["steps_timed"] * cpu["batch_size"] / cpu["seconds"])
    assert "gpu" in results["training"]["models"]["default"]

    check_prediction(results["prediction"], results["summary"])

    memory = results["memory"]
    runs = memory["runs"]
    assert {"small", "large"} <= set(runs) and runs["large"]["clips"] > runs["small"]["clips"] > 0
    for run in runs.values():
        for stage in ("data", "features"):
            assert run[stage]["returncode"] == 0
            assert run[stage]["peak_tree_rss_mib"] >= run[stage]["peak_tree_anon_mib"] > 0
    for stage in ("data", "features"):
        large, small = runs["large"][stage], runs["small"][stage]
        ratio(memory["growth"][stage], large["peak_tree_anon_mib"] / small["peak_tree_anon_mib"])
    assert memory["flat"] == all(g <= GROWTH_LIMIT for g in memory["growth"].values())

    table = (out / "results.md").read_text()
    assert "| benchmark | ours | baseline | ratio | target | met | notes |" in table
    assert len(results["summary"]) >= 5
    for row in results["summary"]:   # every row of the summary is a line of the table
        assert f"| {row['benchmark']} |" in table


def test_only_runs_the_named_sections(tmp_path):
    out = tmp_path / "results"
    done = subprocess.run([sys.executable, "-m", "bench.run", "--quick", "--only", "features", "--out", str(out),
                           "--scratch", str(tmp_path / "scratch")],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert results["features"]["clips"] > 0
    assert results["render"] is None and results["environment"]["sections_run"] == ["features"]


def test_unknown_section_is_refused():
    done = subprocess.run([sys.executable, "-m", "bench.run", "--only", "rendering"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "unknown section" in done.stderr


# --- prediction -------------------------------------------------------------------------------
def check_prediction(prediction: dict, summary: list[dict]) -> None:
    """Every tracker ran on the same files, each x real time is the audio over its best run, each
    ratio the quotient of two of them, every tracker has its row, and the start-up was measured."""
    from bench import prediction as P

    files, trackers = prediction["files"], prediction["trackers"]
    assert prediction["audio_seconds"] == pytest.approx(sum(f["seconds"] for f in files), abs=1e-3)
    assert [f["sample_rate"] for f in files].count(44100) == 1 and max(f["channels"] for f in files) == 2
    assert {"ours", "swift_f0", "praat", "pyin"} <= set(trackers)
    # a clip model's --summary reads 165 ms windows: its own run; a frame model's is the predict path
    assert ("ours_summary" in trackers) == (prediction["model"]["variant"] != "frames")
    for name, t in trackers.items():
        if t.get("skipped"):
            continue
        assert len(t["runs_seconds"]) == (P.SLOW_RUNS.get(name) or P.QUICK_ROUNDS), name   # interleaved rounds
        assert t["best_seconds"] == min(t["runs_seconds"])
        ratio(t["x_realtime"], prediction["audio_seconds"] / t["best_seconds"])
        # about one frame per hop of every file: each tracker frames a file its own way (Praat's frames
        # start where its 100 ms window fits, 10 frames fewer a file), a wrong hop is 40% off or more
        expected = prediction["audio_seconds"] / t["hop_seconds"]
        assert abs(t["frames"] - expected) <= 3 * len(files) + 0.1 * expected, name
    ours = trackers["ours"]
    assert ours["hop_seconds"] == 0.01
    assert "ours_summary" not in trackers or trackers["ours_summary"]["hop_seconds"] > ours["hop_seconds"]
    assert set(prediction["ours_vs"]) == {"swift_f0", "praat", "pyin"}
    for name, value in prediction["ours_vs"].items():
        if not trackers[name].get("skipped"):
            ratio(value, ours["x_realtime"] / trackers[name]["x_realtime"])

    rows = [row for row in summary if row["benchmark"].startswith("prediction:")]
    for name, t in trackers.items():     # a row per tracker; ours has the target row and the --summary row
        if not name.startswith("ours"):
            assert sum(f"vs {t['title']}" in row["benchmark"] for row in rows) == 1, t["title"]
    assert sum("`predict --summary`" in row["benchmark"] for row in rows) == ("ours_summary" in trackers)
    target = next(row for row in rows if row["target"] == f">= {P.TARGET_X_REALTIME:g}x")
    assert target["met"] == (ours["x_realtime"] >= P.TARGET_X_REALTIME)

    startup = prediction["startup"]
    assert len(startup["runs_seconds"]) == P.STARTUP_RUNS and startup["warmup_seconds"] > 0
    assert startup["median_seconds"] == pytest.approx(sorted(startup["runs_seconds"])[P.STARTUP_RUNS // 2])
    assert "Hz" in startup["output"]                     # the command answered with a pitch
    assert startup["imports"]["total_seconds"] > 0 and "pipeline" in startup["imports"]["top_seconds"]
    assert startup["load_predictor_seconds"] > 0
    row = next(row for row in rows if "start-up" in row["benchmark"])
    assert row["met"] == (startup["median_seconds"] < P.STARTUP_TARGET_SECONDS)


def test_import_breakdown_sums_self_time_per_package():
    from bench.prediction import import_breakdown

    stderr = ("import time: self [us] | cumulative | imported package\n"
              "import time:       300 |        300 |     numpy._core\n"
              "import time:       200 |        500 |   numpy\n"
              "import time:      1000 |       1500 | pipeline.data.features\n"
              "warning: not an import line\n"
              "import time:       100 |        100 | numpy.linalg\n")
    found = import_breakdown(stderr)
    assert found["total_seconds"] == pytest.approx(0.0016)
    assert found["top_seconds"] == {"pipeline": 0.001, "numpy": 0.0006}
    assert list(found["top_seconds"]) == ["pipeline", "numpy"]          # largest first
