"""The report's plot: errors by pitch, one line per estimator."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.core import constants as C
from pipeline.core.artifacts import atomic_path
from pipeline.core.pitch import midi_to_hz, note_name

PLOT_DPI = 120
PLOT_LOG_FLOOR = 0.01           # a zero error drawn at this height on the plot's log axes
PLOT_TITLE = "Prediction errors by pitch"   # the report adds "(test split)", evaluate the folder's name


def plot_by_pitch(by_pitch: pd.DataFrame, estimators: list, path: Path, title: str = PLOT_TITLE) -> None:
    """`title`: mean |error| in Hz, median |error| in cents, share within 50 cents, by pitch, one
    line per estimator (anything with .name and .title: reporting.Estimator)."""
    import matplotlib

    matplotlib.use("Agg")   # no display on servers and CI
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 1, figsize=(11, 10), sharex=True)
    panels = (("mean_abs_hz", "mean |error| (Hz)", True), ("median_abs_cents", "median |error| (cents)", True),
              ("within_50", "share within 50 cents", False))
    titles = {e.name: e.title for e in estimators}
    for name, table in by_pitch.groupby("estimator", sort=False):
        for ax, (column, label, log) in zip(axes, panels):
            # a perfect note would vanish from a log axis: floor it just visibly above zero
            values = np.maximum(table[column], PLOT_LOG_FLOOR) if log else table[column]
            ax.plot(table["midi"], values, marker="o", markersize=3, linewidth=1, label=titles.get(name, name))
            ax.set_ylabel(label)
            ax.set_yscale("log" if log else "linear")
            ax.grid(True, which="both", alpha=0.3)
    axes[1].axhline(C.CENT_TOLERANCE, color="grey", linestyle="--", linewidth=0.8)
    axes[2].set_ylim(-0.02, 1.02)
    axes[0].legend(loc="upper left", fontsize=8)
    _pitch_ticks(axes[-1], by_pitch["midi"])
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=PLOT_DPI)
    plt.close(fig)


def _pitch_ticks(ax, midis: pd.Series) -> None:
    """Ticks at every C in range, labeled with the note and its frequency."""
    if midis.empty:
        return
    low, high = max(int(midis.min()), C.MIDI_MIN), min(int(midis.max()), C.MIDI_MAX)   # bounded, whatever the labels
    step = 12 if high - low >= 24 else 1 + (high - low) // 12   # every C, or every note or two over a short range
    start = low - low % 12 if step == 12 else low
    ticks = [m for m in range(start, high + 1, step) if m >= low]
    ax.set_xticks(ticks, [f"{note_name(m)}\n{midi_to_hz(m):.0f} Hz" for m in ticks])
    ax.set_xlabel("MIDI note")
