import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from pipeline.core.artifacts import sha256_file
from pipeline.core.errors import PipelineError
from pipeline.data.feature_files import load_split
from pipeline.data.features import build_features
from pipeline.model import training
from pipeline.model.encodings import DECODE_HALF_WIDTH_BINS, BinEncoding
from pipeline.model.networks import Predictor, build_network
from pipeline.model.training import epoch_batches, learning_rate, train

SMALL = {"model": {"width": 0.0625, "dense_units": (32,), "input_dropout": 0.0, "dropout": 0.0},
         "train": {"epochs": 1, "batch_size": 16}}


def with_sections(cfg, changes: dict):
    return dataclasses.replace(cfg, **{section: dataclasses.replace(getattr(cfg, section), **values)
                                       for section, values in changes.items()})


@pytest.fixture(scope="module")
def few_clips(tiny_dataset, tmp_path_factory):
    """A few dozen clips (notes 64-71 of the shared tiny dataset) with features built."""
    root = tmp_path_factory.mktemp("training")
    cfg = with_sections(dataclasses.replace(tiny_dataset, root=str(root)), SMALL)
    shutil.copytree(tiny_dataset.data_dir, cfg.data_dir)
    manifest = pd.read_csv(cfg.data_dir / "manifest.csv", keep_default_na=False, na_values=[""])
    manifest[manifest["midi"].between(64, 71)].to_csv(cfg.data_dir / "manifest.csv", index=False)
    build_features(cfg)
    return cfg


def test_a_small_model_overfits_a_few_clips(few_clips):
    import keras

    features, rows = load_split(few_clips, "train")
    x, hz = np.asarray(features[:8], np.float32), rows["frequency"].to_numpy()[:8]
    encoding = BinEncoding.for_config(few_clips)
    y = encoding.encode(hz)
    keras.utils.set_random_seed(0)
    network = build_network(few_clips.model, "bins", encoding.n_outputs, float(x.mean()), float(x.std()))
    network.compile(optimizer=keras.optimizers.Adam(3e-3), loss="categorical_crossentropy")
    history = network.fit(x, y, batch_size=8, epochs=60, verbose=0).history["loss"]
    # blurred targets cannot be matched below their own entropy: measure the excess over it
    floor = float(-np.mean(np.sum(y * np.log(np.maximum(y, 1e-12)), axis=1)))
    assert history[-1] - floor < 0.1 * (history[0] - floor)
    est, _ = encoding.decode(network.predict_on_batch(x))
    assert np.median(np.abs(1200 * np.log2(est / hz))) < 50


def test_one_epoch_writes_models_that_load_and_predict(few_clips, capsys):
    results = train(few_clips)
    out = capsys.readouterr().out
    assert "epoch   1/1" in out and "samples/s" in out
    assert set(results) == {"bins", "reference"}
    test_x, test_rows = load_split(few_clips, "test")
    train_x, _ = load_split(few_clips, "train")
    for folder, variant in ((few_clips.model_dir, "bins"), (few_clips.model_dir / "reference", "reference")):
        assert {"model.keras", "model.json", "history.csv"} <= {p.name for p in folder.iterdir()}
        assert not (folder / training.CHECKPOINT_DIR).exists()
        predictor = Predictor.load(folder / "model.keras")
        assert predictor.variant == variant and predictor.scaling == "log"
        meta = predictor.metadata
        # the model names the very manifest it was trained on, and the statistics of its training inputs
        assert meta["dataset_sha256"] == sha256_file(few_clips.data_dir / "manifest.csv")
        fonts = json.loads((few_clips.data_dir / "dataset.json").read_text())["soundfonts"]
        assert meta["soundfonts"] == fonts and len(fonts[0]["sha256"]) == 64
        assert meta["config"]["model"]["width"] == 0.0625
        assert meta["input_stats"]["mean"] == pytest.approx(train_x.astype(np.float64).mean(), rel=1e-6)
        assert meta["input_stats"]["std"] == pytest.approx(train_x.astype(np.float64).std(), rel=1e-6)
        assert meta["training"]["samples_per_second"] > 0
        hz, confidence = predictor.predict(test_x)
        assert hz.shape == (len(test_rows),) and np.all(np.isfinite(hz)) and np.all(hz > 0)
        assert_confidence_is_the_models_own(predictor, test_x, confidence)
        history = pd.read_csv(folder / "history.csv")
        assert list(history["epoch"]) == [1]
        assert {"loss", "val_loss", "val_cents_median", "val_rpa50", "samples_per_second"} <= set(history)


def assert_confidence_is_the_models_own(predictor, x, confidence) -> None:
    """bins: the softmax's probability mass within DECODE_HALF_WIDTH_BINS of its peak, which
    varies from clip to clip; the reference regressor has no confidence of its own: 1."""
    outputs = np.asarray(predictor.outputs(x), np.float64)
    if predictor.variant == "reference":
        assert np.all(confidence == 1.0)
        return
    np.testing.assert_allclose(outputs.sum(axis=1), 1.0, rtol=1e-4)
    half = DECODE_HALF_WIDTH_BINS
    mass = [row[max(p - half, 0):p + half + 1].sum() for row, p in zip(outputs, outputs.argmax(axis=1))]
    np.testing.assert_allclose(confidence, mass, rtol=1e-5)
    assert np.all((confidence > 0) & (confidence < 1)) and np.ptp(confidence) > 0


def test_training_without_features_names_the_fix(tiny_dataset, tmp_path):
    cfg = dataclasses.replace(tiny_dataset, root=str(tmp_path))
    shutil.copytree(tiny_dataset.data_dir, cfg.data_dir, ignore=shutil.ignore_patterns("features"))
    with pytest.raises(PipelineError, match="make features"):
        train(cfg)


def test_epoch_order_depends_only_on_seed_and_epoch():
    full = epoch_batches(100, 16, seed=3, first_epoch=0, epochs=4)
    resumed = epoch_batches(100, 16, seed=3, first_epoch=2, epochs=4)
    assert full.shape == (4 * 6, 16)
    np.testing.assert_array_equal(full[12:], resumed)
    assert len(set(full[:6].ravel())) == 96
    assert not np.array_equal(full[:6], full[6:12])


def test_cosine_schedule_starts_at_the_rate_and_decays(few_clips):
    rates = [learning_rate(few_clips, e, 10) for e in range(10)]
    assert rates[0] == pytest.approx(few_clips.train.learning_rate)
    assert all(a > b for a, b in zip(rates, rates[1:])) and rates[-1] > 0


def _free_ports(n: int) -> list[int]:
    import socket

    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


EPOCH_SCORES = ("loss", "val_loss", "mean", "median", "RPA50")
EPOCH_SCORE = re.compile(r"(?<![\w])(loss|val_loss|mean|median|RPA50)\s+([-+]?(?:[\d.]+(?:e[-+]?\d+)?|nan|inf))%?",
                         re.IGNORECASE)


def _epoch_scores(stdout: str) -> list[list[float]]:
    """Loss, val_loss and the validation cents and RPA of each epoch line (not the speed); each must
    be there and finite, so a nan loss fails here instead of vanishing from both sides."""
    rows = []
    for line in stdout.splitlines():
        if "] epoch" in line:
            found = dict(EPOCH_SCORE.findall(line))
            assert set(found) == set(EPOCH_SCORES), line
            row = [float(found[name]) for name in EPOCH_SCORES]
            assert np.all(np.isfinite(row)), line
            rows.append(row)
    return rows


@pytest.fixture(scope="module")
def distributed_setup(few_clips, tmp_path_factory):
    """A two-epoch config on a private copy of the few clips, and the single-device run's scores."""
    from pipeline.core.config import to_toml

    root = tmp_path_factory.mktemp("distributed")
    cfg = dataclasses.replace(with_sections(few_clips, {"train": {"epochs": 2, "compare_reference": False}}),
                              root=str(root))
    shutil.copytree(few_clips.data_dir, cfg.data_dir)
    config = root / "two_epochs.toml"
    config.write_text(to_toml(cfg))
    shutil.copytree(cfg.data_dir, root / "single" / "data" / cfg.name)
    single = _run_train([sys.executable, "-m", "pipeline", "train", "--config", str(config),
                         "--set", f'root="{root / "single"}"'], {})
    assert single.returncode == 0, single.stderr[-3000:]
    return cfg, config, _epoch_scores(single.stdout)


def _run_train(args: list[str], env: dict) -> subprocess.CompletedProcess:
    from tests.conftest import REPO

    return subprocess.run(args, cwd=REPO, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **env},
                          capture_output=True, text=True, timeout=300)


def test_two_workers_under_tf_config_train_like_one_device_and_only_the_chief_writes(distributed_setup, tmp_path):
    """MultiWorkerMirroredStrategy on loopback: two `pipeline train` processes, as on two machines.
    Each takes half of every global batch; the losses and validation scores match one device's."""
    from tests.conftest import REPO

    cfg, config, single = distributed_setup
    # worker 1 gets its own output root (its data/ a link to the shared one): whatever it wrote
    # into models/ would show there, where a shared root would hide it under worker 0's files
    other = tmp_path / "worker1"
    other.mkdir()
    (other / "data").symlink_to(cfg.data_dir.parent)
    hosts = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    workers, scratch = [], [tmp_path / "tmp0", tmp_path / "tmp1"]
    for index, extra in enumerate(([], ["--set", f'root="{other}"'])):
        scratch[index].mkdir()
        tf_config = json.dumps({"cluster": {"worker": hosts}, "task": {"type": "worker", "index": index}})
        env = {**os.environ, "TF_CONFIG": tf_config, "TMPDIR": str(scratch[index]), "TF_CPP_MIN_LOG_LEVEL": "3"}
        workers.append(subprocess.Popen([sys.executable, "-m", "pipeline", "train", "--config", str(config), *extra],
                                        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = [w.communicate(timeout=300) for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs[0][1][-2000:] + outputs[1][1][-2000:]
    scores = [_epoch_scores(out) for out, _ in outputs]
    assert len(scores[0]) == 2 and scores[0] == scores[1]  # the workers stay in step
    np.testing.assert_allclose(scores[0], single, rtol=2e-3)  # and train as one device does
    predictor = Predictor.load(cfg.model_dir / "model.keras")  # written by worker 0 ...
    assert predictor.metadata["training"]["epochs_run"] == 2
    assert not (other / "models").exists()  # ... and by no one else
    assert not list(scratch[1].iterdir())  # worker 1's private copy is gone


MIRRORED = """
import sys
import tensorflow as tf
from pipeline.cli import configure_logging
configure_logging()
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from pipeline.model import training
from pipeline.core.config import load_config
cfg = load_config(sys.argv[1])
data = training.TrainingData.load(cfg)
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
plan = training.model_plan(cfg, cfg.model.variant, primary=True, n_train=len(data.train_x))
training.train_variant(cfg, plan, cfg.model_dir, data, (strategy, False, 0))
"""


def test_mirrored_strategy_over_two_devices_trains_like_one(distributed_setup):
    """The several-GPU path (MirroredStrategy and Keras fit), on two logical CPU devices."""
    cfg, config, single = distributed_setup
    run = _run_train([sys.executable, "-c", MIRRORED, str(config)], {})
    assert run.returncode == 0, run.stderr[-3000:]
    np.testing.assert_allclose(_epoch_scores(run.stdout), single, rtol=2e-3)
    assert (cfg.model_dir / "model.keras").is_file()
