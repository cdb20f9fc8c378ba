"""The same shards on a Dask cluster: byte-identical output, and a lost worker costs nothing."""

import hashlib
import os
import shutil
import signal
import threading
import time

import pytest

from pipeline.core.errors import PipelineError
from pipeline.data.dataset import build_dataset
from tests.conftest import TEST_SOUNDFONT, tiny_config

distributed = pytest.importorskip("distributed")


@pytest.fixture()
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None, silence_logs=50) as local:
        yield local


def _clip_hashes(data_dir):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (data_dir / "clips").rglob("*.wav")}


def test_cluster_build_is_byte_identical_to_the_local_one(tmp_path, tiny_dataset, cluster):
    cfg = tiny_config(tmp_path, f'data.scheduler="{cluster.scheduler_address}"')
    build_dataset(cfg)
    assert (cfg.data_dir / "manifest.csv").read_bytes() == (tiny_dataset.data_dir / "manifest.csv").read_bytes()
    assert _clip_hashes(cfg.data_dir) == _clip_hashes(tiny_dataset.data_dir)


def test_a_killed_worker_changes_nothing(tmp_path, tiny_dataset, cluster):
    cfg = tiny_config(tmp_path, f'data.scheduler="{cluster.scheduler_address}"', "data.shard_size=2")
    with distributed.Client(cluster.scheduler_address) as client:
        pids = list(client.run(os.getpid).values())

    killed_mid_build = []

    def kill_one_worker_mid_build():
        shards = cfg.data_dir / "shards"
        deadline = time.time() + 60
        while time.time() < deadline and len(list(shards.glob("*.csv"))) < 5:
            time.sleep(0.02)
        os.kill(pids[0], signal.SIGKILL)
        killed_mid_build.append(not (cfg.data_dir / "manifest.csv").exists())

    killer = threading.Thread(target=kill_one_worker_mid_build)
    killer.start()
    build_dataset(cfg)
    killer.join()
    assert killed_mid_build == [True]
    assert (cfg.data_dir / "manifest.csv").read_bytes() == (tiny_dataset.data_dir / "manifest.csv").read_bytes()
    assert _clip_hashes(cfg.data_dir) == _clip_hashes(tiny_dataset.data_dir)


def test_a_worker_with_a_different_soundfont_fails_its_shard(tmp_path, cluster):
    font = tmp_path / "font.sf2"
    shutil.copy(TEST_SOUNDFONT, font)
    cfg = tiny_config(tmp_path, f'data.scheduler="{cluster.scheduler_address}"', f'data.soundfont="{font}"',
                      'data.instruments=["Violin"]', 'split.test="random"')
    from pipeline.data.dataset import render_shard
    from pipeline.data.plan import make_plan, plan_shards

    plan = make_plan(cfg)
    tasks = plan_shards(cfg, list(plan.notes), list(plan.fonts))
    data = bytearray(font.read_bytes())
    data[-100] ^= 0xFF  # same size and header, different content: what a stale copy looks like
    font.write_bytes(bytes(data))
    with distributed.Client(cluster.scheduler_address) as client:
        with pytest.raises(PipelineError, match="not the planned"):
            client.submit(render_shard, tasks[0].for_cluster(), pure=False).result()


def _features_copy(tiny_dataset, root, *overrides):
    """A private copy of the tiny dataset (clips and manifest) under `root`, config with overrides."""
    cfg = tiny_config(root, *overrides)
    shutil.copytree(tiny_dataset.data_dir, cfg.data_dir)
    shutil.rmtree(cfg.data_dir / "features", ignore_errors=True)
    return cfg


def _feature_bytes(cfg):
    from pipeline.data.feature_files import split_path

    return {split: split_path(cfg, split).read_bytes() for split in ("train", "val", "test")}


def test_cluster_features_are_byte_identical_to_local_ones(tmp_path, tiny_dataset, cluster):
    from pipeline.data.features import build_features

    local = _features_copy(tiny_dataset, tmp_path / "local", "features.batch_size=16")
    remote = _features_copy(tiny_dataset, tmp_path / "remote", "features.batch_size=16",
                            f'data.scheduler="{cluster.scheduler_address}"')
    build_features(local)
    build_features(remote)
    assert _feature_bytes(remote) == _feature_bytes(local)


def test_a_worker_killed_during_features_changes_nothing(tmp_path, tiny_dataset, cluster, monkeypatch):
    """The first finished shard kills a worker: its queued and running shards are rescheduled."""
    from pipeline.core import workers
    from pipeline.data.features import build_features

    with distributed.Client(cluster.scheduler_address) as client:
        pids = list(client.run(os.getpid).values())
    run_on_cluster, finished = workers.run_on_cluster, []

    def killing_run_on_cluster(address, func, jobs, on_done, hint, max_in_flight=0):
        def on_done_then_kill(item, result):
            if not finished:
                os.kill(pids[0], signal.SIGKILL)
            finished.append(item)
            on_done(item, result)
        run_on_cluster(address, func, jobs, on_done_then_kill, hint, max_in_flight)

    monkeypatch.setattr(workers, "run_on_cluster", killing_run_on_cluster)
    local = _features_copy(tiny_dataset, tmp_path / "local", "features.batch_size=8")
    remote = _features_copy(tiny_dataset, tmp_path / "remote", "features.batch_size=8",
                            f'data.scheduler="{cluster.scheduler_address}"')
    build_features(local)
    build_features(remote)
    assert len(finished) > 10  # every shard of the three splits came back, after the kill
    assert _feature_bytes(remote) == _feature_bytes(local)
