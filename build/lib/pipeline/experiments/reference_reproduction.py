"""reference_reproduction: the original Conv2D f0 regressor, held to its own claims.

The network is the original's, layer for layer (0xfe/deepears, DeepEars.ipynb, DeepPitches):
the log spectrogram as it is (not standardised), Dropout(0.2) at the input, four Conv2D 3x3
(64/128/128/256 filters, valid padding) each followed by MaxPooling2D(2), Flatten,
Dropout(0.5), Dense 512, Dropout(0.5), Dense 256, Dropout(0.5), Dense 1 linear; MSE on the
frequency in Hz standardised with the training labels' mean and std; Adam at 1e-3; batch 32.

Its claims: validation MAE 0.03 (in those standardised units), errors largest in the top
octave, 19.24 Hz mean error below it. The study trains the same regressor with and without
its dropout and records, per epoch, the spread of its predictions against the spread of the
targets: a regressor that collapses predicts the mean, and the spread ratio goes to 0.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from pipeline.core.measure import timed
from pipeline.experiments.report import fmt, new_figure, save_figure, table

log = logging.getLogger(__name__)

ORIGINAL_MAE_STD_UNITS = 0.03
ORIGINAL_MEAN_ERROR_HZ = 19.24
FILTERS = (64, 128, 128, 256)
DENSE = (512, 256)
PREDICT_BATCH = 64


@dataclass(frozen=True)
class Variant:
    input_dropout: float
    dense_dropout: float
    standardize_input: bool = False


VARIANTS = {
    "original": Variant(0.2, 0.5),                 # as published
    "no_input_dropout": Variant(0.0, 0.5),
    "no_dropout": Variant(0.0, 0.0),
    "standardized_input": Variant(0.2, 0.5, True),  # the original's dropout on a standardised input
}


# --- the pure parts ------------------------------------------------------------------------------
def build_regressor(width: float, variant: Variant, input_mean: float = 0.0, input_std: float = 1.0):
    """The original regressor at `width` x its filters (1 = 12.4 M parameters)."""
    import keras
    from keras import layers

    body = [keras.Input((513, 90), name="spectrogram")]
    if variant.standardize_input:
        body.append(layers.Normalization(axis=None, mean=input_mean, variance=input_std ** 2))
    body += [layers.Reshape((513, 90, 1)), layers.Dropout(variant.input_dropout)]
    for filters in FILTERS:
        body += [layers.Conv2D(max(1, round(filters * width)), 3, activation="relu"), layers.MaxPooling2D(2)]
    body += [layers.Flatten(), layers.Dropout(variant.dense_dropout)]
    for units in DENSE:
        body += [layers.Dense(units, activation="relu"), layers.Dropout(variant.dense_dropout)]
    body.append(layers.Dense(1, activation="linear"))
    return keras.Sequential(body)


def original_label_std() -> float:
    """The std (Hz) of the original dataset's labels, from its generator (src/deeppitches.py):
    octaves 2 to 7 (`range(2, 8)`: MIDI 36-107), each note once in tune and five times shifted
    up by a whole number of Hz drawn from 10-79; exact, not sampled."""
    base = 440.0 * 2.0 ** ((np.arange(36, 108) - 69) / 12.0)
    shifts = np.concatenate([[0.0], np.arange(10, 80, dtype=float)])
    weights = np.concatenate([[1 / 6], np.full(70, (5 / 6) / 70)])
    values = base[:, None] + shifts[None, :]
    w = np.broadcast_to(weights, values.shape) / len(base)
    mean = float((w * values).sum())
    return float(np.sqrt((w * (values - mean) ** 2).sum()))


def cents(ref_hz, est_hz) -> np.ndarray:
    return 1200.0 * np.abs(np.log2(np.maximum(est_hz, 1e-3) / ref_hz))


def errors_by_pitch(midi: np.ndarray, hz: np.ndarray, pred_hz: np.ndarray) -> list[dict]:
    """Per nominal MIDI note: clips, mean absolute error in Hz, median error in cents."""
    notes = np.rint(midi).astype(int)
    rows = []
    for note in np.unique(notes):
        here = notes == note
        rows.append({"midi": int(note), "clips": int(here.sum()),
                     "mae_hz": float(np.mean(np.abs(pred_hz[here] - hz[here]))),
                     "median_cents": float(np.median(cents(hz[here], pred_hz[here])))})
    return rows


def summarise(midi, hz, pred_hz, label_std: float, top_octave_from: int) -> dict:
    """The original's numbers for one set of predictions, and ours beside them."""
    error = np.abs(pred_hz - hz)
    below = np.rint(midi) < top_octave_from
    c = cents(hz, pred_hz)
    return {"clips": int(len(hz)), "mae_std_units": float(error.mean() / label_std), "mae_hz": float(error.mean()),
            "mae_hz_below_top_octave": float(error[below].mean()) if below.any() else None,
            "mae_hz_top_octave": float(error[~below].mean()) if (~below).any() else None,
            "median_cents": float(np.median(c)), "rpa50": float(np.mean(c <= 50.0)),
            "prediction_spread": float(np.std(pred_hz) / max(np.std(hz), 1e-9))}


# --- training -------------------------------------------------------------------------------------
def train_and_watch(model, train, val, label: tuple[float, float], epochs: int, batch: int, lr: float,
                    name: str) -> list[dict]:
    """Fit for `epochs`, one row per epoch: losses, validation MAE and prediction spread, both with
    dropout off (inference) and on (as in training), speed."""
    import keras

    mean, std = label
    x, y = np.asarray(train.features, np.float32), (train.hz - mean) / std
    xv, yv = np.asarray(val.features, np.float32), (val.hz - mean) / std
    model.compile(optimizer=keras.optimizers.Adam(lr), loss="mse")
    rows = []
    for epoch in range(1, epochs + 1):
        with timed() as clock:
            loss = model.fit(x, y, batch_size=batch, epochs=1, shuffle=True, verbose=0).history["loss"][0]
        pred = model.predict(xv, batch_size=PREDICT_BATCH, verbose=0)[:, 0]
        noisy = np.concatenate([np.asarray(model(xv[i:i + PREDICT_BATCH], training=True))[:, 0]
                                for i in range(0, len(xv), PREDICT_BATCH)])
        rows.append({"epoch": epoch, "loss": float(loss), "val_loss": float(np.mean((pred - yv) ** 2)),
                     "val_mae_std_units": float(np.mean(np.abs(pred - yv))),
                     "val_mae_hz": float(np.mean(np.abs(pred - yv)) * std),
                     "spread_inference": float(pred.std() / yv.std()),
                     "spread_dropout_on": float(noisy.std() / yv.std()),
                     "samples_per_second": len(x) / clock.wall, "seconds": clock.wall})
        log.info(f"[reference {name}] epoch {epoch}/{epochs} loss {loss:.3f} "
                 f"val MAE {rows[-1]['val_mae_std_units']:.3f} ({rows[-1]['val_mae_hz']:.0f} Hz) "
                 f"spread {rows[-1]['spread_inference']:.2f} (dropout on {rows[-1]['spread_dropout_on']:.2f}) "
                 f"{rows[-1]['samples_per_second']:.1f} clips/s")
    return rows


def run_variant(name: str, width: float, data: dict, epochs: int, batch: int, lr: float, seed: int) -> dict:
    """Train one variant at one width; its history, and its test-split summary and errors by pitch."""
    import keras

    keras.utils.set_random_seed(seed)
    train, val, test = data["train"], data["val"], data["test"]
    stats = data["input_stats"]
    model = build_regressor(width, VARIANTS[name], *stats)
    label = (float(train.hz.mean()), float(train.hz.std()))
    with timed() as clock:
        history = train_and_watch(model, train, val, label, epochs, batch, lr, f"{name} x{width:g}")
    pred = model.predict(np.asarray(test.features, np.float32), batch_size=PREDICT_BATCH, verbose=0)[:, 0]
    pred_hz = pred * label[1] + label[0]
    return {"variant": name, **asdict(VARIANTS[name]), "width": width, "params": int(model.count_params()),
            "train_clips": len(train), "val_clips": len(val), "epochs": epochs, "history": history,
            "label_mean_hz": label[0], "label_std_hz": label[1],
            "test": summarise(test.midi, test.hz, pred_hz, label[1], data["top_octave_from"]),
            "test_by_pitch": errors_by_pitch(test.midi, test.hz, pred_hz), **clock.as_dict()}


# --- the experiment --------------------------------------------------------------------------------
def load_data(settings, data_root: Path) -> tuple[dict, dict]:
    """The shared clips' splits (subsets drawn per run) and what metrics.json records about them."""
    from pipeline.experiments.datasets import build_clips, clips_config, load_clips

    cfg = clips_config(settings.clips, data_root, settings.seed)
    dataset = build_clips(cfg)
    splits = {s: load_clips(cfg, s) for s in ("train", "val", "test")}
    return splits, dataset


def _subsets(splits: dict, max_train: int, max_val: int, seed: int, top_octave_from: int) -> dict:
    train = splits["train"].subset(max_train, seed)
    sample = np.asarray(train.features[: min(len(train), 512)], np.float64)
    return {"train": train, "val": splits["val"].subset(max_val, seed + 1), "test": splits["test"],
            "input_stats": (float(sample.mean()), float(sample.std())), "top_octave_from": top_octave_from}


def run(settings, out_dir: Path, data_root: Path) -> dict:
    r = settings.reference
    unknown = sorted(set(r.full_width_variants + r.study_variants) - set(VARIANTS))
    if unknown:
        from pipeline.core.errors import PipelineError

        raise PipelineError(f"unknown reference variant {unknown[0]!r} in experiments.reference; "
                            f"choose from {', '.join(VARIANTS)}")
    splits, dataset = load_data(settings, data_root)
    top = settings.clips.note_high - 11
    full = _subsets(splits, r.max_train_clips, r.max_val_clips, settings.seed, top)
    study = _subsets(splits, r.study_max_train_clips, r.study_max_val_clips, settings.seed, top)
    runs = [run_variant(v, r.width, full, r.epochs, r.batch_size, r.learning_rate, settings.seed)
            for v in r.full_width_variants]
    runs += [run_variant(v, r.study_width, study, r.study_epochs, r.batch_size, r.learning_rate, settings.seed)
             for v in r.study_variants]
    metrics = {"experiment": "reference_reproduction", "settings": asdict(r), "clips_settings": asdict(settings.clips),
               "dataset": dataset, "runs": runs, "original": _original_claims(splits["train"].hz),
               "extrapolation": _extrapolation(runs, r)}
    figures = [_plot_history(runs, out_dir / "collapse.png"), _plot_by_pitch(runs, out_dir / "errors_by_pitch.png")]
    metrics["figures"] = figures
    return metrics


def _original_claims(train_hz: np.ndarray) -> dict:
    """The original's MAE 0.03 in Hz, under its own label spread and under ours."""
    std_original, std_ours = original_label_std(), float(np.std(train_hz))
    return {"val_mae_std_units": ORIGINAL_MAE_STD_UNITS, "mean_error_hz_below_top_octave": ORIGINAL_MEAN_ERROR_HZ,
            "label_std_hz_original_generator": std_original,
            "val_mae_hz_implied_original": ORIGINAL_MAE_STD_UNITS * std_original,
            "label_std_hz_ours": std_ours, "val_mae_hz_implied_ours": ORIGINAL_MAE_STD_UNITS * std_ours,
            "fft_bin_hz": 16000 / 1024, "original_clips": 19440, "original_epochs": 100}


def _extrapolation(runs: list[dict], r) -> dict:
    """Time for the original's run (100 epochs of 80 % of 19,440 clips) at the measured speed."""
    full = [x for x in runs if x["width"] == r.width]
    if not full:
        return {}
    speed = float(np.median([h["samples_per_second"] for h in full[0]["history"]]))
    samples = 100 * round(0.8 * 19440)
    return {"width": r.width, "params": full[0]["params"], "cpu_samples_per_second": speed,
            "original_run_samples": samples, "original_run_cpu_hours": samples / speed / 3600,
            "gpu_note": "bench/gpu_results.json: the same 12.4 M-parameter network trains at 5,932 samples/s "
                        "(float32) on one H100, about 4.4 minutes for the original run"}


def _plot_history(runs: list[dict], path: Path) -> str:
    fig, (ax1, ax2) = new_figure(1, 2, figsize=(11, 4))
    for run_ in runs:
        epochs = [h["epoch"] for h in run_["history"]]
        label = f"{run_['variant']} x{run_['width']:g}"
        ax1.plot(epochs, [h["spread_inference"] for h in run_["history"]], marker="o", label=label)
        ax2.plot(epochs, [h["val_mae_std_units"] for h in run_["history"]], marker="o", label=label)
    ax1.set(xlabel="epoch", ylabel="std(prediction) / std(target), validation", title="Prediction spread")
    ax1.axhline(1.0, color="grey", lw=0.8)
    ax2.axhline(ORIGINAL_MAE_STD_UNITS, color="red", ls="--", label="original claim 0.03")
    ax2.set(xlabel="epoch", ylabel="validation MAE (standardised Hz)", title="Validation MAE", yscale="log")
    ax1.legend(fontsize=8)
    ax2.legend(fontsize=8)
    return save_figure(fig, path)


def _plot_by_pitch(runs: list[dict], path: Path) -> str:
    fig, ax = new_figure(figsize=(10, 4))
    for run_ in runs:
        rows = run_["test_by_pitch"]
        ax.plot([x["midi"] for x in rows], [x["mae_hz"] for x in rows], marker=".", lw=0.8,
                label=f"{run_['variant']} x{run_['width']:g}")
    ax.axhline(ORIGINAL_MEAN_ERROR_HZ, color="red", ls="--", label="original: 19.24 Hz below the top octave")
    ax.set(xlabel="MIDI note", ylabel="mean absolute error (Hz), test split", yscale="log",
           title="Errors by pitch")
    ax.legend(fontsize=8)
    return save_figure(fig, path)


# --- the report section --------------------------------------------------------------------------
def section(m: dict) -> str:
    o, runs = m["original"], m["runs"]
    header = ["", "original (claimed)"] + [f"{x['variant']} x{x['width']:g}: {x['train_clips']} clips, "
                                           f"{x['epochs']} ep." for x in runs]
    last = [x["history"][-1] for x in runs]
    rows = [
        ["validation MAE (standardised Hz)", "0.03"] + [fmt(h["val_mae_std_units"]) for h in last],
        ["validation MAE (Hz)", f"{fmt(o['val_mae_hz_implied_original'])} (0.03 x its label std)"]
        + [fmt(h["val_mae_hz"]) for h in last],
        ["test: mean error below the top octave (Hz)", "19.24"]
        + [fmt(x["test"]["mae_hz_below_top_octave"]) for x in runs],
        ["test: mean error in the top octave (Hz)", "largest"] + [fmt(x["test"]["mae_hz_top_octave"]) for x in runs],
        ["test: median error (cents)", "n/a"] + [fmt(x["test"]["median_cents"]) for x in runs],
        ["test: raw pitch accuracy, 50 cents", "n/a"] + [f"{100 * x['test']['rpa50']:.1f} %" for x in runs],
        ["prediction spread, std(pred)/std(target)", "n/a"] + [fmt(h["spread_inference"]) for h in last],
        ["same, dropout left on", "n/a"] + [fmt(h["spread_dropout_on"]) for h in last],
        ["parameters", "about 12 M"] + [f"{x['params']:,}" for x in runs],
        ["train time (s), clips/s", "< 10 min on a GPU"] + [_speed(x) for x in runs],
    ]
    return "\n".join([
        "## 1. reference_reproduction: the original regressor at its own claims", "",
        "The original network layer for layer (0xfe/deepears, `DeepPitches`): Dropout 0.2 on the raw log "
        "spectrogram, four Conv2D+MaxPooling blocks (64/128/128/256), Dropout 0.5 before and after each of "
        "Dense 512 and Dense 256, one linear output, MSE on the frequency in Hz standardised with the training "
        "labels, Adam 1e-3, batch 32; trained on the project's clips (MIDI "
        f"{m['dataset']['notes'][0]}-{m['dataset']['notes'][1]}, half of the notes detuned by up to 50 cents, "
        f"{m['dataset']['clips']} clips, a random split).", "",
        table(header, rows), "", _reading(m), "",
        f"![collapse]({m['figures'][0]}) ![errors by pitch]({m['figures'][1]})", ""])


def _speed(run_: dict) -> str:
    return f"{run_['wall_seconds']:.0f}, {np.median([h['samples_per_second'] for h in run_['history']]):.1f}"


def _reading(m: dict) -> str:
    o, runs, ext = m["original"], m["runs"], m["extrapolation"]
    by_variant = {x["variant"]: x["history"][-1] for x in runs if x["width"] == m["settings"]["study_width"]}
    lines = [
        f"- **What MAE 0.03 means.** The original standardised its target (`freq_ys -= mean; /= std`), so its "
        f"MAE is in label standard deviations. Its generator (octaves 2-7 as `range(2, 8)`, each note in tune and "
        f"shifted up by 10-79 Hz) gives labels with a std of {o['label_std_hz_original_generator']:.0f} Hz: MAE 0.03 "
        f"is {o['val_mae_hz_implied_original']:.1f} Hz over all notes, consistent with 19.24 Hz below the top octave "
        f"and more in it. On our labels (MIDI up to 119, std {o['label_std_hz_ours']:.0f} Hz) 0.03 would be "
        f"{o['val_mae_hz_implied_ours']:.1f} Hz. The FFT's bin spacing is {o['fft_bin_hz']:.1f} Hz (16 kHz / 1024), "
        f"hence \"the resolution of the FFT\"; but 19.24 Hz is {cents(65.41, 65.41 + 19.24):.0f} cents at C2 and "
        f"{cents(440.0, 459.24):.0f} cents at A4: a constant error in Hz is a large one in pitch at low notes."]
    if {"original", "no_dropout"} <= set(by_variant):
        lines.append(_collapse_reading(by_variant))
    if ext:
        lines.append(
            f"- **Time.** At width x{ext['width']:g} ({ext['params']:,} parameters) this CPU trains "
            f"{ext['cpu_samples_per_second']:.1f} clips/s: the original run (100 epochs of 15,552 clips) would take "
            f"{ext['original_run_cpu_hours']:.0f} hours here. {ext['gpu_note']}. No GPU was at hand for this run.")
    return "\n".join(lines)


def _collapse_reading(by_variant: dict) -> str:
    """What the study shows, in words chosen by its numbers (spread under 0.5 = collapsed)."""
    a, b, c = by_variant["original"], by_variant["no_dropout"], by_variant.get("no_input_dropout")
    text = (f"- **Collapse.** With its dropout the regressor's validation predictions spread "
            f"{a['spread_inference']:.2f} of the targets' spread at inference ({a['spread_dropout_on']:.2f} with "
            f"dropout left on), validation MAE {a['val_mae_std_units']:.3f}; without dropout "
            f"{b['spread_inference']:.2f}, "
            f"MAE {b['val_mae_std_units']:.3f}")
    if c:
        text += f"; with the dense layers' dropout only {c['spread_inference']:.2f}, MAE {c['val_mae_std_units']:.3f}"
    text += "."
    if a["spread_inference"] >= 0.5:
        return text + " At this size the original does not collapse."
    if b["spread_inference"] < 0.5:
        return text + " Without dropout it does not spread out either: too few epochs or clips to tell."
    if c and c["spread_inference"] >= 0.5:
        return text + (" The input dropout is what collapses it: the input is the log magnitude as it is (mean about "
                       "-11), so dropping a pixel sets it to 0, the loudest value there is. The network trains on "
                       "spectrograms sprinkled with full-scale pixels, sees clean ones at inference, and answers "
                       "near the mean.")
    return text + " Its dropout collapses it; the study did not separate the input dropout from the dense one."
