"""`make bench`: measure every section in one run, write bench/results.json and results.md.

    python -m bench.run                      # everything (about 10 minutes on 2 cores)
    python -m bench.run --quick              # tiny sizes: checks the harness, numbers mean little
    python -m bench.run --only render,features
    python -m bench.run --no-large-memory    # skip the 10k-clip memory run

With --only, the sections not run keep their previous results in results.json (each
section records when it was measured).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import REPO, report
from bench.timing import load, tool_version
from pipeline.core.measure import machine

SECTIONS = ("render", "features", "clip_formats", "training", "prediction", "memory")
SCHEMA = 1


class Context:
    """What every section needs: sizes, repetitions, a scratch folder, sample clips."""

    def __init__(self, args, scratch: Path):
        self.quick = args.quick
        self.repo = REPO
        self.scratch = scratch
        self.reps = args.reps or (1 if args.quick else 3)
        self.naive_reps = 1
        # the naive pipeline runs on every k-th note: a process per note, its rate does not need them all
        self.naive_parallel_stride = 1 if args.quick else 4
        self.naive_serial_stride = 2 if args.quick else 8
        self.large_memory = not args.no_large_memory
        self._clips = None

    def _render_sample(self):
        """Real clips (TimGM6mb, a few instruments and notes) rendered by the engine."""
        import contextlib
        import io

        from pipeline.core.config import load_config
        from pipeline.data.clips import read_clips
        from pipeline.data.dataset import build_dataset

        cfg = load_config(None, [f'root="{self.scratch / "sample"}"', 'name="bench_sample"',
                                 f'data.soundfont="{(REPO / "soundfonts" / "TimGM6mb.sf2").resolve()}"',
                                 'data.instruments=["Violin", "Acoustic Grand Piano", "Trumpet", "Flute"]',
                                 "data.note_low=40", f"data.note_high={52 if self.quick else 88}",
                                 'split.test="random"'])
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            manifest = build_dataset(cfg)
        return read_clips(cfg.data_dir, manifest)

    def sample_clips(self, n: int):
        """n real clips (the rendered ones, repeated if there are fewer)."""
        import numpy as np

        if self._clips is None:
            self._clips = self._render_sample()
        clips = self._clips
        return np.ascontiguousarray(np.resize(clips, (n, clips.shape[1])))


def _section(name: str):
    from importlib import import_module

    return import_module({"render": "bench.rendering"}.get(name, f"bench.{name}"))


def parse(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one repetition (a smoke run)")
    parser.add_argument("--only", default=",".join(SECTIONS),
                        help=f"comma-separated sections to run (default: all of {','.join(SECTIONS)})")
    parser.add_argument("--out", default=str(REPO / "bench"), help="folder for results.json and results.md")
    parser.add_argument("--scratch", default=None, help="scratch folder (default: a temporary one under bench/out)")
    parser.add_argument("--reps", type=int, default=0, help="repetitions per measurement (default 3, quick 1)")
    parser.add_argument("--no-large-memory", action="store_true", help="skip the 10k-clip memory run")
    args = parser.parse_args(argv)
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in only if s not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    args.only = [s for s in SECTIONS if s in only]
    return args


def environment(quick: bool) -> dict:
    from pipeline.core.artifacts import tool_versions

    return {**machine(), "quick": quick, "fluidsynth": tool_version("fluidsynth", "--version"),
            "sox": tool_version("sox", "--version"), "versions": tool_versions()}


def main(argv=None) -> int:
    args = parse(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TQDM_DISABLE", "1")
    from pipeline.core.artifacts import write_text

    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    results_path = out_dir / "results.json"
    results = _previous(results_path) if set(args.only) != set(SECTIONS) else {}
    results.update({"schema": SCHEMA, "environment": environment(args.quick)})
    base = Path(args.scratch) if args.scratch else REPO / "bench" / "out"
    base.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="run-", dir=base))
    ctx = Context(args, scratch)
    started = time.perf_counter()
    try:
        for name in args.only:
            print(f"bench: {name} ...", flush=True)
            t0 = time.perf_counter()
            section = _section(name).run(ctx)
            section["measured_at"] = datetime.now(UTC).isoformat(timespec="seconds")
            section["section_seconds"] = round(time.perf_counter() - t0, 1)
            results[name] = section
            print(f"bench: {name} done in {section['section_seconds']:.0f} s (load {load()})", flush=True)
    finally:
        if not args.scratch:
            shutil.rmtree(scratch, ignore_errors=True)
    results["environment"]["seconds"] = round(time.perf_counter() - started, 1)
    results["environment"]["sections_run"] = args.only
    for name in SECTIONS:
        results.setdefault(name, None)
    results["summary"] = report.summary(results)
    write_text(results_path, json.dumps(results, indent=2, sort_keys=False, default=str) + "\n")
    write_text(out_dir / "results.md", report.markdown(results))
    print(report.markdown(results))
    failed = [row["benchmark"] for row in results["summary"] if row.get("check") is False]
    if failed:
        print(f"bench: correctness check failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def _previous(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


if __name__ == "__main__":
    sys.exit(main())
