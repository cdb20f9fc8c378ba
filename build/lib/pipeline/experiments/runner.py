"""run_experiments: each named experiment in turn, into out_root/NAME/, then report.md.

An experiment module has `run(settings, out_dir, data_root) -> metrics` (its pure core plus
its figures) and `section(metrics) -> markdown`; this module adds what every metrics.json
records (scale, timing, machine, versions) and writes the files.
"""

from __future__ import annotations

import importlib
import logging
import os
from pathlib import Path

from pipeline.core.measure import timed
from pipeline.experiments.report import assemble_report, write_metrics, write_section
from pipeline.experiments.settings import EXPERIMENTS, ExperimentsSettings, at_scale

log = logging.getLogger(__name__)


def check_names(names) -> list[str]:
    from pipeline.core.errors import PipelineError

    chosen = list(EXPERIMENTS) if not names else list(names)
    unknown = [n for n in chosen if n not in EXPERIMENTS]
    if unknown:
        raise PipelineError(f"unknown experiment {unknown[0]!r}; choose from {', '.join(EXPERIMENTS)}")
    return chosen


def run_experiments(settings: ExperimentsSettings, names: list[str] | None, out_root: Path,
                    data_root: Path) -> dict:
    """Run the named experiments (all when None) at settings.scale; returns {name: metrics}."""
    from pipeline.core.artifacts import ensure_dir

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    effective = at_scale(settings)
    out_root, data_root = Path(out_root), Path(data_root)
    results = {}
    for name in check_names(names):
        module = importlib.import_module(f"pipeline.experiments.{name}")
        folder = ensure_dir(out_root / name)
        log.info(f"=== {name} (scale: {effective.scale}) -> {folder}")
        with timed() as clock:
            metrics = module.run(effective, folder, data_root)
        metrics.update(scale=effective.scale, seed=effective.seed, **clock.as_dict())
        write_metrics(folder, metrics)
        write_section(folder, module.section(metrics) + _timing_line(metrics))
        results[name] = metrics
        log.info(f"=== {name}: {clock.wall:.0f} s wall, {clock.cpu:.0f} s CPU")
    report = assemble_report(out_root)
    log.info(f"report: {report}")
    return results


def _timing_line(metrics: dict) -> str:
    return (f"\n_Run at scale `{metrics['scale']}`: {metrics['wall_seconds']:.0f} s wall, "
            f"{metrics['cpu_seconds']:.0f} s CPU; settings, dataset sha256, versions and machine in metrics.json._\n")
