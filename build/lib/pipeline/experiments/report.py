"""What every experiment writes: reports/experiments/NAME/{metrics.json, *.png, section.md},
and reports/experiments/report.md, the sections of every experiment run so far, in order.

Each metrics.json also says how it was made: the settings, the dataset's manifest sha256,
tool versions, the CPU/GPU and the wall and CPU seconds of the run.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.core import measure
from pipeline.experiments.settings import EXPERIMENTS

REPORT_FILE = "report.md"
SECTION_FILE = "section.md"
METRICS_FILE = "metrics.json"
PLOT_DPI = 110


def machine() -> dict:
    """The machine (pipeline.core.measure), and the GPUs TensorFlow sees (if it was imported)."""
    gpus = []
    try:
        import tensorflow as tf

        gpus = [d.name for d in tf.config.list_physical_devices("GPU")]
    except ImportError:
        pass
    return {**measure.machine(), "cores": measure.cores(), "gpus": gpus, "device": "GPU" if gpus else "CPU"}


def write_metrics(folder: Path, metrics: dict) -> Path:
    from pipeline.core.artifacts import tool_versions, write_json

    path = Path(folder) / METRICS_FILE
    write_json(path, {**metrics, "versions": tool_versions(), "machine": machine()})
    return path


def write_section(folder: Path, text: str) -> Path:
    from pipeline.core.artifacts import write_text

    path = Path(folder) / SECTION_FILE
    write_text(path, text.rstrip() + "\n")
    return path


def assemble_report(out_root: Path) -> Path:
    """report.md: a title, then every experiment's section.md that exists, in EXPERIMENTS order."""
    from pipeline.core.artifacts import write_text

    out_root = Path(out_root)
    parts = ["# Experiments: the original write-ups reproduced\n",
             "Each section below was written by `pipeline experiments` "
             "(`make experiments`); its numbers are in `NAME/metrics.json` beside it.\n"]
    for name in EXPERIMENTS:
        section = out_root / name / SECTION_FILE
        if section.is_file():
            parts.append(section.read_text())
    path = out_root / REPORT_FILE
    write_text(path, "\n".join(parts))
    return path


def new_figure(*args, **kwargs):
    """A matplotlib figure on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(*args, **kwargs)


def save_figure(fig, path: Path) -> str:
    """Save atomically and close; returns the file name, for the section's image link."""
    import matplotlib.pyplot as plt

    from pipeline.core.artifacts import atomic_path

    path = Path(path)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=PLOT_DPI, format="png")
    plt.close(fig)
    return path.name


def table(header: list[str], rows: list[list]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def fmt(value, digits: int = 3) -> str:
    """A number for a table: fixed for moderate magnitudes, scientific for tiny or huge ones."""
    if value is None:
        return "n/a"
    value = float(value)
    if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
        return f"{value:.{max(digits - 1, 1)}e}"
    return f"{value:.{digits}g}" if abs(value) < 1 else f"{value:,.{max(digits - 2, 0)}f}"
