"""Plots of a contour evaluation: the measures side by side, and truth against estimates on the worst files.

`plot_accuracy(summary, path, title)`: grouped bars, one group per measure, one bar per estimator.
`plot_worst_files(items, titles, path)`: one panel per file, the truth's voiced frames in a thick
grey line and each estimator's voiced frames over it, on a log-frequency axis, time in seconds.
Both write PNGs atomically; neither needs a display.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.core.artifacts import atomic_path
from pipeline.report.frame_metrics import EVALUATION_HOP_SECONDS, FRAME_METRICS

PLOT_DPI = 120
BAR_METRICS = ("rpa50", "rpa10", "rca50", "voicing_recall", "voicing_false_alarm", "overall_accuracy",
               "octave_error_rate")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")   # no display on servers and CI
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=PLOT_DPI)


def plot_accuracy(summary: pd.DataFrame, path: Path, title: str) -> None:
    """The rates of `summary` (a row per estimator) as grouped bars, in percent."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(11, 4.5))
    width = 0.8 / max(len(summary), 1)
    positions = np.arange(len(BAR_METRICS))
    for i, (_, row) in enumerate(summary.iterrows()):
        values = [100 * row[k] if np.isfinite(row[k]) else 0.0 for k in BAR_METRICS]
        bars = ax.bar(positions + (i - (len(summary) - 1) / 2) * width, values, width, label=row["title"])
        ax.bar_label(bars, fmt="%.0f", fontsize=7, padding=1)
    ax.set_xticks(positions, [FRAME_METRICS[k] for k in BAR_METRICS], fontsize=8)
    ax.set_ylim(0, 109)
    ax.set_ylabel("% of frames")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncols=max(len(summary), 1), frameon=False)
    ax.set_title(title)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def plot_worst_files(items: list[dict], titles: dict[str, str], path: Path) -> None:
    """Truth and every estimate (Hz, NaN where unvoiced) of each item's file, worst first."""
    plt = _pyplot()
    from matplotlib import ticker

    rows = max(len(items), 1)
    fig, axes = plt.subplots(rows, 1, figsize=(11, 2.6 * rows), squeeze=False)
    for ax, item in zip(axes[:, 0], items):
        truth = item["truth"]
        time = np.arange(len(truth)) * EVALUATION_HOP_SECONDS
        ax.plot(time, truth, color="0.6", linewidth=4, label="truth", solid_capstyle="butt")
        for name, hz in item.items():
            if name not in ("path", "truth"):
                ax.plot(time[:len(hz)], hz[:len(time)], linewidth=1, label=titles.get(name, name))
        ax.set_yscale("log")
        low, high = ax.get_ylim()
        if high / low >= 2.5:   # wide: 1, 2 and 5 of each decade; narrow: the minor ticks (there is no major one)
            ax.yaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
        ax.yaxis.set_minor_formatter(ticker.FormatStrFormatter("%g") if high / low < 2.5 else ticker.NullFormatter())
        ax.tick_params(axis="y", which="minor", labelsize=7)
        ax.set_ylabel("Hz")
        ax.set_title(item["path"], fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
    if items:
        handles, labels = axes[0, 0].get_legend_handles_labels()
        fig.legend(handles, labels, fontsize=8, loc="lower center", ncols=len(labels), frameon=False)
        axes[-1, 0].set_xlabel("time (s)")
        fig.suptitle("Truth and estimates on the files where the model's raw pitch accuracy is lowest")
    else:
        axes[0, 0].text(0.5, 0.5, "no file with voiced truth frames", ha="center", va="center")
        axes[0, 0].set_axis_off()
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    _save(fig, path)
    plt.close(fig)
