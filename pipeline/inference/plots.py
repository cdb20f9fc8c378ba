"""A picture of a prediction (`pipeline predict --plot`): the recording's spectrogram with the f0
contour drawn over it, and the confidence below, on one time axis.

The contour shows the frames whose confidence is at least `threshold` (0.5, the start the
prediction docs suggest); the spectrogram's frequency axis is logarithmic, as pitch is.
matplotlib is imported here only (the `plot` extra); its Agg canvas, no window, no global state.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.core import constants as C
from pipeline.core.artifacts import atomic_path
from pipeline.core.errors import PipelineError

THRESHOLD = 0.5                  # frames drawn in the contour: confidence at least this
FMIN_HZ, FMAX_HZ = 25.0, 8000.0  # the spectrogram's frequency range (A0 is 27.5 Hz)
NPERSEG = 2048                   # 128 ms windows at 16 kHz: low notes' partials apart
HOP = 160                        # 10 ms, the prediction's default hop
DYNAMIC_RANGE_DB = 80.0


def require_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise PipelineError("plots need matplotlib, which is not installed; install the plot extra: "
                            "pip install 'pitch-pipeline[plot]'") from None


def plot_prediction(out_png: str | Path, audio16k: np.ndarray, time: np.ndarray, frequency: np.ndarray,
                    confidence: np.ndarray, title: str = "", threshold: float = THRESHOLD) -> Path:
    """Write the PNG (atomically): spectrogram and contour above, confidence below."""
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from scipy.signal import spectrogram

    audio = np.asarray(audio16k, dtype=np.float32)
    seconds = len(audio) / C.SAMPLE_RATE
    fig = Figure(figsize=(min(24.0, 6.0 + 0.6 * seconds), 6.0), layout="constrained")
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    if len(audio):  # padded by half a window, so that its columns are centred at 0 s as the frames are
        hz, times, power = spectrogram(np.pad(audio, NPERSEG // 2), C.SAMPLE_RATE, window="hann", nperseg=NPERSEG,
                                       noverlap=NPERSEG - HOP, mode="psd")
        times -= NPERSEG / 2 / C.SAMPLE_RATE
        db = 10 * np.log10(np.maximum(power, 1e-20))
        keep = (hz >= FMIN_HZ) & (hz <= FMAX_HZ)
        top.pcolormesh(times, hz[keep], db[keep], shading="nearest", cmap="magma",
                       vmin=db.max() - DYNAMIC_RANGE_DB, vmax=db.max(), rasterized=True)
    sure = np.asarray(confidence) >= threshold
    contour = np.where(sure, np.asarray(frequency, dtype=np.float64), np.nan)
    top.plot(time, contour, color="#35d0ff", linewidth=1.6, label=f"f0 (confidence >= {threshold:g})")
    top.set_yscale("log")
    top.set_ylim(FMIN_HZ, FMAX_HZ)
    top.set_ylabel("Hz")
    top.legend(loc="upper right", fontsize="small")
    top.set_title(title or "f0")
    bottom.plot(time, confidence, color="#333333", linewidth=1.0)
    bottom.axhline(threshold, color="#35a0ff", linewidth=0.8, linestyle="--")
    bottom.set_ylim(0, 1.02)
    bottom.set_xlim(0, max(seconds, float(time[-1]) if len(time) else 0.0))
    bottom.set_ylabel("confidence")
    bottom.set_xlabel("seconds")
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return Path(out_png)
