"""The benchmark harness runs end to end on tiny sizes and writes its results (no timings asserted)."""

from __future__ import annotations

import json
import subprocess
import sys

from bench.run import SECTIONS
from tests.conftest import REPO


def test_quick_bench_writes_results(tmp_path):
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
    assert render["engine"]["clips"] > 0
    assert render["naive_same_output_kind"] is True
    assert {"speedup_vs_naive_parallel", "speedup_vs_naive_serial", "engine_cost_vs_synthesis",
            "engine_breakdown_ms_per_note"} <= set(render)

    features = results["features"]
    assert features["allclose"] is True and features["speedup"] > 0
    assert features["file_to_file"]["identical_files"] is True and features["file_to_file"]["speedup"] > 0

    cpu = results["training"]["models"]["default"]["cpu"]
    assert cpu["samples_per_second"] > 0 and cpu["steps_timed"] >= 1
    assert "gpu" in results["training"]["models"]["default"]

    prediction = results["prediction"]
    assert prediction["pyin_x_realtime"] > 0
    assert prediction["predict_x_realtime"] > 0

    memory = results["memory"]
    assert {"small", "large"} <= set(memory["runs"])
    for run in memory["runs"].values():
        assert run["data"]["peak_tree_rss_mib"] > 0 and run["features"]["peak_tree_anon_mib"] > 0

    table = (out / "results.md").read_text()
    assert "| benchmark | ours | baseline | ratio | target | met | notes |" in table
    assert len(results["summary"]) >= 5


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
