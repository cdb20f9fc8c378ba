"""effect_emulation: learn sox's lowpass-then-overdrive from aligned dry/wet pairs.

Training pairs are sweeps, the test is piano notes (effect_pairs.py). The network reads a
window of dry samples and writes the window of wet samples: Conv1D (a learned filter bank,
stride 4), a dense middle, Conv1DTranspose back to samples. The baseline is one Dense layer
from window to window, i.e. the best linear (FIR) emulation: it can learn the low-pass, not
the overdrive. Whole signals are rebuilt from windows at half-window hops, overlap-added with
a periodic Hann window (which sums to 1), and scored as the original did: MSE and RMSE on
training, validation and test beside the standard deviation of the target.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path

import numpy as np

from pipeline.core.measure import timed
from pipeline.experiments.effect_pairs import RATE, build_pairs
from pipeline.experiments.report import fmt, new_figure, save_figure, table

log = logging.getLogger(__name__)

CONV_FILTERS, CONV_KERNEL, CONV_STRIDE = 32, 32, 4
MIDDLE_UNITS = 256
ROLES = ("train", "val", "test")


# --- the pure parts ------------------------------------------------------------------------------
def windows(signal: np.ndarray, size: int) -> np.ndarray:
    """(n,) -> (k, size): windows at hop size/2 over the signal padded by size/2 at both ends."""
    hop = size // 2
    padded = np.pad(signal, (hop, hop + (-len(signal)) % hop))
    return np.lib.stride_tricks.sliding_window_view(padded, size)[::hop].copy()


def overlap_add(frames: np.ndarray, length: int) -> np.ndarray:
    """Inverse of `windows`: periodic-Hann-weighted frames at hop size/2, cropped to `length`."""
    size = frames.shape[1]
    hop = size // 2
    weight = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(size) / size)  # periodic: sums to 1 at hop size/2
    out = np.zeros(hop * (len(frames) + 1))
    for i, frame in enumerate(frames):
        out[i * hop:i * hop + size] += weight * frame
    return out[hop:hop + length]


def conv_network(size: int):
    import keras
    from keras import layers

    steps = size // CONV_STRIDE
    return keras.Sequential([
        keras.Input((size,), name="dry"), layers.Reshape((size, 1)),
        layers.Conv1D(CONV_FILTERS, CONV_KERNEL, strides=CONV_STRIDE, padding="same", activation="tanh"),
        layers.Flatten(), layers.Dense(MIDDLE_UNITS, activation="relu"),
        layers.Dense(steps * CONV_FILTERS, activation="tanh"), layers.Reshape((steps, CONV_FILTERS)),
        layers.Conv1DTranspose(1, CONV_KERNEL, strides=CONV_STRIDE, padding="same"), layers.Reshape((size,)),
    ], name="conv_emulator")


def linear_network(size: int):
    import keras

    return keras.Sequential([keras.Input((size,), name="dry"), keras.layers.Dense(size)], name="linear_baseline")


def emulate(model, dry: np.ndarray, size: int) -> np.ndarray:
    frames = np.asarray(model.predict(windows(dry, size), batch_size=512, verbose=0), np.float64)
    return overlap_add(frames, len(dry))


def scores(pairs: list, predictions: dict) -> dict:
    """Per role: MSE and RMSE of the emulation over every sample, and the target's std."""
    out = {}
    for role in ROLES:
        chosen = [p for p in pairs if p.role == role]
        if not chosen:
            continue
        wet = np.concatenate([p.wet for p in chosen]).astype(np.float64)
        error = np.concatenate([predictions[p.name] - p.wet for p in chosen])
        out[role] = {"mse": float(np.mean(error ** 2)), "rmse": float(np.sqrt(np.mean(error ** 2))),
                     "target_std": float(wet.std()), "pairs": len(chosen), "samples": int(len(wet))}
    return out


# --- the experiment --------------------------------------------------------------------------------
def run(settings, out_dir: Path, data_root: Path) -> dict:
    import keras

    s = settings.effect
    pairs, dataset = build_pairs(s, data_root, settings.clips.soundfont, settings.seed)
    train = [p for p in pairs if p.role == "train"]
    x = np.concatenate([windows(p.dry, s.window) for p in train]).astype(np.float32)
    y = np.concatenate([windows(p.wet, s.window) for p in train]).astype(np.float32)
    models, results = {"conv": conv_network(s.window), "linear": linear_network(s.window)}, {}
    for name, model in models.items():
        keras.utils.set_random_seed(settings.seed)
        model.compile(optimizer=keras.optimizers.Adam(s.learning_rate), loss="mse")
        with timed() as clock:
            history = model.fit(x, y, batch_size=s.batch_size, epochs=s.epochs, shuffle=True, verbose=0).history
        predictions = {p.name: emulate(model, p.dry, s.window) for p in pairs}
        results[name] = {"params": int(model.count_params()), "loss": [float(v) for v in history["loss"]],
                         "scores": scores(pairs, predictions), **clock.as_dict(), "predictions": predictions}
        rmse = ", ".join(f"{role} RMSE {v['rmse']:.4f}" for role, v in results[name]["scores"].items())
        log.info(f"[effect {name}] {rmse}")
    note = _listening_note(pairs, s)
    wavs = _write_wavs(out_dir, note, results)
    figures = [_plot_waveforms(note, results, out_dir / "waveforms.png"), _plot_loss(results, out_dir / "loss.png")]
    for r in results.values():
        r.pop("predictions")
    return {"experiment": "effect_emulation", "settings": asdict(s), "dataset": dataset,
            "effect": pairs[0].effect, "training_windows": int(len(x)), "window_ms": 1000 * s.window / RATE,
            "runs": results, "wavs": wavs, "figures": figures,
            "pairs": {role: [p.name for p in pairs if p.role == role] for role in ROLES}}


def _listening_note(pairs: list, s):
    tests = [p for p in pairs if p.role == "test"]
    return min(tests, key=lambda p: abs(int(p.name.split("_")[1]) - 60)) if tests else pairs[-1]


def _write_wavs(out_dir: Path, note, results: dict) -> list[str]:
    """16-bit WAVs of one test note, all at the same gain: dry, true wet, each emulation."""
    import soundfile as sf

    from pipeline.core.artifacts import atomic_path

    tracks = {"dry": note.dry, "wet": note.wet,
              **{f"emulated_{k}": r["predictions"][note.name] for k, r in results.items()}}
    names = []
    for label, audio in tracks.items():
        path = Path(out_dir) / f"{note.name}_{label}.wav"
        with atomic_path(path) as tmp:
            sf.write(tmp, np.clip(audio, -1.0, 1.0), RATE, subtype="PCM_16", format="WAV")
        names.append(path.name)
    return names


def _plot_waveforms(note, results: dict, path: Path) -> str:
    start = int(np.argmax(np.abs(note.wet))) + RATE // 10
    span = slice(start, start + RATE // 50)  # 20 ms
    t = 1000 * np.arange(span.start, span.stop) / RATE
    fig, ax = new_figure(figsize=(10, 4))
    ax.plot(t, note.dry[span], color="grey", lw=1, label="dry")
    ax.plot(t, note.wet[span], color="black", lw=2, label="wet (sox)")
    for name, r in results.items():
        ax.plot(t, r["predictions"][note.name][span], lw=1, label=f"emulated: {name}")
    ax.set(xlabel="time (ms)", ylabel="amplitude", title=f"Unseen test: {note.name}")
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def _plot_loss(results: dict, path: Path) -> str:
    fig, ax = new_figure(figsize=(7, 4))
    for name, r in results.items():
        ax.plot(range(1, len(r["loss"]) + 1), r["loss"], marker=".", label=name)
    ax.set(xlabel="epoch", ylabel="training MSE (windows)", yscale="log", title="Training")
    ax.legend()
    return save_figure(fig, path)


def section(m: dict) -> str:
    rows = []
    for role in ROLES:
        conv, lin = m["runs"]["conv"]["scores"].get(role), m["runs"]["linear"]["scores"].get(role)
        if conv:
            rows.append([f"{role} ({conv['pairs']} {'piano notes' if role == 'test' else 'sweeps'})",
                         fmt(conv["target_std"]), fmt(conv["mse"]), fmt(conv["rmse"]), fmt(lin["mse"]),
                         fmt(lin["rmse"])])
    conv, lin = m["runs"]["conv"], m["runs"]["linear"]
    return "\n".join([
        "## 4. effect_emulation: learning an audio effect from dry/wet pairs", "",
        f"The project's generator writes aligned float32 pairs (`{m['dataset']['path']}`): sine, triangle and "
        f"sawtooth log sweeps ({m['settings']['sweep_low_hz']:g}-{m['settings']['sweep_high_hz']:g} Hz, "
        "levels 0.1-0.9) "
        f"for training and validation, piano notes from the FluidSynth renderer as the unseen test, each through sox "
        f"`{m['effect']}`. The network reads {m['settings']['window']}-sample windows ({m['window_ms']:.0f} ms): "
        f"Conv1D ({CONV_FILTERS} filters, kernel {CONV_KERNEL}, stride {CONV_STRIDE}), Dense {MIDDLE_UNITS}, Dense, "
        f"Conv1DTranspose back to samples ({conv['params']:,} parameters); the baseline is one Dense layer window to "
        f"window ({lin['params']:,}). {m['settings']['epochs']} epochs on {m['training_windows']:,} windows; "
        "signals are rebuilt by Hann overlap-add at half-window hops.", "",
        table(["", "std of target", "network MSE", "network RMSE", "linear MSE", "linear RMSE"], rows), "",
        "Listen: " + ", ".join(f"[{w}]({w})" for w in m["wavs"]) + ".", "",
        f"![waveforms]({m['figures'][0]}) ![loss]({m['figures'][1]})", ""])
