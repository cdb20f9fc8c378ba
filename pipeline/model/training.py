"""Training: memory-mapped features -> tf.data -> Keras fit, with checkpoints and resume.

`train(cfg)` trains the primary model (`cfg.model.variant`) into models/NAME/ and, when
`train.compare_reference` is set and the primary is not the reference model, the
reference model into models/NAME/reference/ first, so that model.keras (the make
target) is the last file written.

Each epoch prints one line and leaves, under the model folder's checkpoints/, the last
model (with its optimizer), the best weights on validation and a state file; a run that
is interrupted resumes from there when started again with the same config and data.
The epoch's shuffle comes from (seed, epoch), so a resumed run sees the same batches.
"""

from __future__ import annotations

import logging
import math
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.core import constants as C
from pipeline.core.artifacts import (
    atomic_path,
    ensure_dir,
    fingerprint,
    read_json,
    remove_stale_temporaries,
    sha256_bytes,
    sha256_file,
    tool_versions,
    write_bytes,
    write_text,
)
from pipeline.core.audio_format import check_model_input
from pipeline.core.config import Config
from pipeline.core.errors import PipelineError
from pipeline.core.pitch import cents, within
from pipeline.data.clips import DATASET_FILE
from pipeline.data.feature_files import DONE_FILE, dataset_hash, features_dir, load_split
from pipeline.model.batches import BatchMaker, Changes, epoch_batches, make_dataset
from pipeline.model.checkpoints import (
    CHECKPOINT_DIR,
    HISTORY_FILE,
    REFERENCE_DIR,
    Checkpoints,
    check_model_folder,
)
from pipeline.model.devices import fit_multi_worker, is_chief, multi_worker, training_devices
from pipeline.model.encodings import encoding_to_dict, make_encoding
from pipeline.model.epoch_bar import epoch_bar
from pipeline.model.metadata import MODEL_ID, mark_keras, write_metadata
from pipeline.model.networks import build_network

log = logging.getLogger(__name__)

# best-model selection and early stopping watch this (lower is better): the loss, because
# the mean error in cents swings with a handful of octave errors from epoch to epoch
MONITOR = "val_loss"


# --- data ------------------------------------------------------------------------------
@dataclass
class TrainingData:
    train_x: np.ndarray          # memory maps, (N, 513, 90)
    train_hz: np.ndarray
    val_x: np.ndarray
    val_hz: np.ndarray
    input_mean: float
    input_std: float
    dataset_sha256: str
    train_audio: np.ndarray | None = None   # the frame model's: the audio its examples (train_x) point into

    @classmethod
    def load(cls, cfg: Config) -> TrainingData:
        if cfg.model.variant == "frames":
            from pipeline.model.frame_training import load_frame_data

            return cls(**load_frame_data(cfg))
        train_x, train_rows = load_split(cfg, "train")
        val_x, val_rows = load_split(cfg, "val")
        if len(train_x) == 0:
            raise PipelineError(f"the training split of {cfg.name} is empty; add instruments or notes "
                                "to data.instruments / data.note_low..note_high")
        train_hz, val_hz = (_labels(cfg, rows) for rows in (train_rows, val_rows))
        mean, std = input_stats(train_x, f"{cfg.data_dir}/features/train.npy")
        input_stats(val_x, f"{cfg.data_dir}/features/val.npy")  # every value finite there too
        return cls(train_x, train_hz, val_x, val_hz, mean, std, dataset_hash(cfg))


def _labels(cfg: Config, rows) -> np.ndarray:
    """The rows' frequencies, each a finite number of Hz (the manifest is a file a hand may have changed)."""
    hz = pd.to_numeric(rows["frequency"], errors="coerce").to_numpy(np.float64)
    bad = np.flatnonzero(~(np.isfinite(hz) & (hz > 0)))
    if len(bad):
        raise PipelineError(f"{cfg.data_dir}/manifest.csv gives {rows['path'].iloc[bad[0]]} the frequency "
                            f"{rows['frequency'].iloc[bad[0]]}, not a number of Hz; run make data to write it again")
    return hz


def input_stats(features: np.ndarray, name: str = "the features", chunk: int = 512) -> tuple[float, float]:
    """Mean and std of every value, read a chunk at a time so memory stays flat; a value that is not
    finite (a damaged file) raises PipelineError naming its row."""
    total = total_sq = 0.0
    for i in range(0, len(features), chunk):
        block = np.asarray(features[i:i + chunk], dtype=np.float64)
        sums = block.sum(), np.square(block).sum()
        if not np.isfinite(sums).all():
            row = i + int(np.flatnonzero(~np.isfinite(block).all(axis=(1, 2)))[0])
            raise PipelineError(f"{name} row {row} holds a value that is not finite (a damaged file); delete it "
                                "and run make features (or pipeline features)")
        total, total_sq = total + sums[0], total_sq + sums[1]
    count = max(features[0].size * len(features), 1) if len(features) else 1
    mean = total / count
    return float(mean), float(math.sqrt(max(total_sq / count - mean ** 2, 1e-12)))


# --- one model ----------------------------------------------------------------------------
def learning_rate(cfg: Config, epoch: int, epochs: int) -> float:
    """Cosine decay from train.learning_rate towards 0 over `epochs`, or constant."""
    if cfg.train.schedule == "cosine":
        return cfg.train.learning_rate * 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))
    return cfg.train.learning_rate


def _fingerprint(cfg: Config, plan: dict, data: TrainingData) -> str:
    """What a checkpoint depends on: a run resumes only from one with the same fingerprint."""
    return fingerprint({"model": cfg.to_dict()["model"], "train": cfg.to_dict()["train"], "plan": plan,
                        "features": cfg.to_dict()["features"], "dataset": data.dataset_sha256,
                        # what the split files hold (a frame model's phrases are not in the manifest)
                        "split_files": sha256_file(features_dir(cfg) / DONE_FILE),
                        "format": C.MODEL_FORMAT_VERSION})


def compile_network(network, cfg: Config, variant: str) -> None:
    """Adam at train.learning_rate; cross-entropy for the bins head, MSE (and MAE) for the regressor."""
    import keras

    if variant in ("bins", "stream"):   # a softmax over pitch bins
        loss, metrics = keras.losses.CategoricalCrossentropy(), []
    elif variant == "frames":           # a sigmoid per pitch bin
        loss, metrics = keras.losses.BinaryCrossentropy(), []
    else:
        loss, metrics = keras.losses.MeanSquaredError(), [keras.metrics.MeanAbsoluteError(name="mae")]
    network.compile(optimizer=keras.optimizers.Adam(cfg.train.learning_rate), loss=loss, metrics=metrics)


def _epoch_callback(cfg: Config, run: Checkpoints, data: TrainingData, encoding, plan: dict, history_path: Path,
                    label: str):
    import keras

    class EpochEnd(keras.callbacks.Callback):
        """Sets the learning rate, scores validation in cents, checkpoints, stops early, prints."""

        def on_epoch_begin(self, epoch, logs=None):
            self.model.optimizer.learning_rate.assign(learning_rate(cfg, epoch, plan["epochs"]))
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            train_seconds = time.perf_counter() - self.start
            row = {"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items()},
                   "learning_rate": learning_rate(cfg, epoch, plan["epochs"])}
            row.update(validate(self.model, data, encoding))
            if not all(math.isfinite(row[k]) for k in ("loss", "val_loss") if k in row):
                raise PipelineError(f"[{label}] training diverged in epoch {epoch + 1} (its loss is not a finite "
                                    f"number); the last good epoch is kept: lower train.learning_rate and run "
                                    "again (or delete the model's checkpoints folder to start over)")
            row["samples_per_second"] = plan["steps"] * plan["batch"] / train_seconds
            row["seconds"] = time.perf_counter() - self.start
            score = row.get(MONITOR, row["loss"])
            improved = run.state["best"] is None or score < run.state["best"]
            state = run.state
            state["epochs_done"] = epoch + 1
            state["history"].append(row)
            if improved:
                state.update(best=score, best_epoch=epoch + 1, wait=0)
            else:
                state["wait"] += 1
            state["stopped"] = state["wait"] >= cfg.train.patience
            run.save(self.model, improved)
            write_history(history_path, state["history"])
            log.info(format_epoch(label, row, plan["epochs"], improved))
            if state["stopped"]:
                log.info(f"[{label}] early stop: no better {MONITOR} for {cfg.train.patience} epochs")
                self.model.stop_training = True

    return EpochEnd()


def validate(network, data: TrainingData, encoding) -> dict:
    """Validation loss and cents errors from one pass over the validation split."""
    if len(data.val_x) == 0:
        return {}
    if data.train_audio is not None:
        from pipeline.model.frame_training import validate_frames

        return validate_frames(network, data, encoding)
    # with several replicas (GPUs or workers) predict_on_batch returns every replica's outputs
    # concatenated (twice the rows with two): call the model directly there
    several = network.distribute_strategy.num_replicas_in_sync > 1
    predict = (lambda x: network(x, training=False)) if several else network.predict_on_batch
    outputs = np.concatenate([np.asarray(predict(np.asarray(data.val_x[i:i + C.PREDICT_BATCH], np.float32)))
                              for i in range(0, len(data.val_x), C.PREDICT_BATCH)])
    hz, _ = encoding.decode(outputs)
    # a regressor's estimate at or below 0 Hz counts as a very large error, not NaN: the mean stays finite
    error = np.abs(cents(data.val_hz, np.maximum(hz, 1e-6)))
    return {"val_loss": encoding.loss(outputs, encoding.encode(data.val_hz)),
            "val_cents_mean": float(error.mean()), "val_cents_median": float(np.median(error)),
            "val_rpa50": float(np.mean(within(error, C.CENT_TOLERANCE)))}


def format_epoch(label: str, row: dict, epochs: int, improved: bool) -> str:
    text = f"[{label}] epoch {row['epoch']:>3}/{epochs}  loss {row['loss']:.4f}"
    if "val_loss" in row:
        text += (f"  val_loss {row['val_loss']:.4f}  val cents mean {row['val_cents_mean']:6.1f}"
                 f" median {row['val_cents_median']:5.1f}  RPA50 {100 * row['val_rpa50']:5.1f}%")
    text += f"  {row['samples_per_second']:6.0f} samples/s  {row['seconds']:5.0f} s"
    return text + ("  *" if improved else "")


def write_history(path: Path, rows: list[dict]) -> None:
    write_text(path, pd.DataFrame(rows).to_csv(index=False))


def model_plan(cfg: Config, variant: str, primary: bool, n_train: int) -> dict:
    """Width and epochs of this model (the comparison reference may be cheaper), batch, steps."""
    width, epochs = cfg.model.width, cfg.train.epochs
    if not primary:
        width = cfg.model.reference_width or width
        epochs = cfg.train.reference_epochs or epochs
    batch = min(cfg.train.batch_size, n_train)
    return {"variant": variant, "width": width, "epochs": epochs, "batch": batch, "steps": n_train // batch}


def train_variant(cfg: Config, plan: dict, out_dir: Path, data: TrainingData, devices) -> dict:
    """Train one model into out_dir (model.keras, model.json, history.csv); returns its metadata.

    Under MultiWorkerMirroredStrategy only the chief (worker 0) writes out_dir; the other workers
    write the same files to a temporary folder, deleted at the end (saving is collective), and no
    worker resumes: a run that resumed on some workers only would fall out of step."""
    strategy = devices[0]
    if is_chief(strategy):
        return _train_variant(cfg, plan, out_dir, data, devices)
    scratch = Path(tempfile.mkdtemp(prefix="pipeline-worker-"))
    try:
        return _train_variant(cfg, plan, scratch, data, devices)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _train_variant(cfg: Config, plan: dict, out_dir: Path, data: TrainingData, devices) -> dict:
    import keras

    strategy, mixed, n_gpus = devices
    variant = plan["variant"]
    ensure_dir(out_dir)
    encoding = make_encoding(cfg, variant, data.train_hz)
    run = Checkpoints(out_dir / CHECKPOINT_DIR, _fingerprint(cfg, plan, data))
    keras.utils.set_random_seed(cfg.train.seed)
    with strategy.scope():
        network = _network(cfg, plan, encoding, data)
        compile_network(network, cfg, variant)
        if not multi_worker(strategy) and run.resume(network):
            log.info(f"[{variant}] resuming after epoch {run.state['epochs_done']} from {run.folder}")
        else:
            run.clear()   # another run's checkpoint (other settings or data), or a damaged one
    network.summary(print_fn=lambda line, *a, **k: log.info(line))
    first = run.state["epochs_done"]
    if first < plan["epochs"] and not run.state["stopped"]:
        batches = epoch_batches(len(data.train_x), plan["batch"], cfg.train.seed, first, plan["epochs"])
        maker = batch_maker(cfg, variant, data, encoding)
        dataset = make_dataset(maker, batches, first_step=first * plan["steps"])
        callback = _epoch_callback(cfg, run, data, encoding, plan, out_dir / HISTORY_FILE, variant)
        if multi_worker(strategy):
            fit_multi_worker(network, strategy, dataset, plan, first, callback)
        else:
            network.fit(dataset, epochs=plan["epochs"], initial_epoch=first, steps_per_epoch=plan["steps"],
                        callbacks=[epoch_bar(variant, plan), callback], verbose=0, shuffle=False)
    meta = _metadata(cfg, plan, encoding, data, run, network, mixed, n_gpus)
    _write_final(cfg, plan, encoding, data, run, out_dir, meta)
    return meta


def batch_maker(cfg: Config, variant: str, data: TrainingData, encoding):
    if variant == "frames":
        from pipeline.model.frame_batches import FrameBatchMaker

        return FrameBatchMaker(data.train_audio, data.train_x, encoding, cfg.model.frame_context,
                               cfg.train.level_db, cfg.train.noise_share, cfg.train.seed, cfg.train.tone_share)
    return BatchMaker(data.train_x, data.train_hz, encoding, batch_changes(cfg, variant))


def batch_changes(cfg: Config, variant: str) -> Changes:
    """The stream model's level changes and noise examples; the other models see the clips as stored."""
    if variant != "stream":
        return Changes(scaling=cfg.features.scaling, seed=cfg.train.seed)
    return Changes(cfg.train.level_db, cfg.train.noise_share, cfg.features.scaling, cfg.train.seed)


def _network(cfg: Config, plan: dict, encoding, data: TrainingData):
    if plan["variant"] == "frames":
        from pipeline.model.frame_network import build_frame_network

        return build_frame_network(cfg.model)
    return build_network(cfg.model, plan["variant"], encoding.n_outputs, data.input_mean, data.input_std,
                         width=plan["width"])


def _soundfonts(cfg) -> list[dict]:
    """The fonts (name, bytes, sha256) of the dataset the model learned from, from its dataset.json."""
    return (read_json(cfg.data_dir / DATASET_FILE) or {}).get("soundfonts", [])


def _metadata(cfg, plan, encoding, data, run, network, mixed, n_gpus) -> dict:
    history = run.state["history"]
    best = next((r for r in history if r["epoch"] == run.state["best_epoch"]), {})
    speeds = [r["samples_per_second"] for r in history]
    return {
        "format": C.MODEL_FORMAT, "format_version": C.MODEL_FORMAT_VERSION, MODEL_ID: run.fingerprint,
        "variant": plan["variant"], "width": plan["width"],
        "scaling": cfg.features.scaling, "feature_dtype": cfg.features.dtype,
        "encoding": encoding_to_dict(encoding),
        "input_stats": {"mean": data.input_mean, "std": data.input_std},
        "dataset_sha256": data.dataset_sha256, "config": cfg.to_dict(), "versions": tool_versions(),
        "soundfonts": _soundfonts(cfg), "params": int(network.count_params()),
        "training": {
            "epochs": plan["epochs"], "epochs_run": run.state["epochs_done"],
            "best_epoch": run.state["best_epoch"], "batch_size": plan["batch"], "monitor": MONITOR,
            "best": {k: v for k, v in best.items() if k.startswith("val_")},
            "samples_per_second": float(np.median(speeds)) if speeds else None,
            "seconds": float(sum(r["seconds"] for r in history)),
            "train_clips": len(data.train_x), "val_clips": len(data.val_x),
            "device": f"{n_gpus} GPU" if n_gpus else "CPU", "mixed_precision": mixed,
        },
    }


def _write_final(cfg, plan, encoding, data, run: Checkpoints, out_dir: Path, meta: dict) -> None:
    """A fresh, optimizer-free network with the best weights; its ONNX export (a stream model), the
    metadata recording both files' sha256, and model.keras (the make target) renamed into place
    last; then the checkpoints go."""
    import keras

    final = _network(cfg, plan, encoding, data)
    if run.best_weights:
        final.set_weights(run.best_weights)
    write_history(out_dir / HISTORY_FILE, run.state["history"])
    model_path = out_dir / C.MODEL_FILE
    with atomic_path(model_path) as staged:
        keras.saving.save_model(final, staged)
        mark_keras(staged, meta[MODEL_ID])
        files = {"keras": sha256_file(staged)}
        if plan["variant"] in ("stream", "frames"):
            from pipeline.model.export import export_network

            graph = export_network(final, cfg.model, plan["variant"], model_id=meta[MODEL_ID]).SerializeToString()
            files["onnx"] = sha256_bytes(graph)
            write_bytes(model_path.with_suffix(".onnx"), graph)
        write_metadata(model_path, meta, files)
    run.clear()


# --- the stage -----------------------------------------------------------------------------
def train(cfg: Config) -> dict:
    """Train the configured model (and the reference model to compare with); returns metadata."""
    check_model_input(cfg)
    data = TrainingData.load(cfg)
    reference = cfg.train.compare_reference and cfg.model.variant not in ("reference", "frames")
    check_model_folder(cfg.model_dir)   # no link inside the folder sends a file elsewhere
    if reference:
        check_model_folder(cfg.model_dir / REFERENCE_DIR, own=True)
    if cfg.model_dir.is_dir():  # temporary files of a run that was killed (ours only, by their pattern)
        remove_stale_temporaries(cfg.model_dir, recursive=True)
    devices = training_devices(cfg)
    log.info(f"training on {len(data.train_x)} clips, validating on {len(data.val_x)}; "
          f"{f'GPU x{devices[2]}' if devices[2] else 'CPU'}, mixed precision {'on' if devices[1] else 'off'}")
    n = len(data.train_x)
    results = {}
    if reference:
        plan = model_plan(cfg, "reference", primary=False, n_train=n)
        results["reference"] = train_variant(cfg, plan, cfg.model_dir / REFERENCE_DIR, data, devices)
    plan = model_plan(cfg, cfg.model.variant, primary=True, n_train=n)
    results[cfg.model.variant] = train_variant(cfg, plan, cfg.model_dir, data, devices)
    for name, meta in results.items():
        t = meta["training"]
        best = t["best"]
        scores = (f"val cents mean {best['val_cents_mean']:.1f}, median {best['val_cents_median']:.1f}, "
                  f"RPA50 {100 * best['val_rpa50']:.1f}%" if best else "no validation split")
        log.info(f"[{name}] best epoch {t['best_epoch']}/{t['epochs_run']}: {scores}; "
              f"{t['samples_per_second']:.0f} samples/s")
    return results
