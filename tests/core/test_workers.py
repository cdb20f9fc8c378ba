"""The local process pool: workers never see Ctrl-C, stop() ends them and the queued work,
they die with their parent even when it is killed outright, and finished results are kept."""

from __future__ import annotations

import operator
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import Future
from pathlib import Path

import psutil
import pytest

from pipeline.core.errors import PipelineError
from pipeline.core.workers import WorkerPool, collect, spawn_pool
from tests.conftest import REPO, assert_processes_gone, process_running

GONE_WITHIN = 15.0  # a bound on waiting for processes to end, so that a hang fails instead of blocking


def command(process: psutil.Process) -> str:
    try:
        return " ".join(process.cmdline())
    except psutil.Error:
        return ""


def spawned_children(parent: psutil.Process) -> list[psutil.Process]:
    """The multiprocessing children of `parent`: spawn workers and the resource tracker."""
    return [child for child in parent.children(recursive=True) if "multiprocessing" in command(child)]


def wait_for_workers(parent: psutil.Process, before: set[int], count: int) -> list[psutil.Process]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        workers = [p for p in spawned_children(parent) if p.pid not in before and "spawn_main" in command(p)]
        if len(workers) >= count:
            return workers
        time.sleep(0.05)
    raise AssertionError("the workers did not start")


def assert_all_gone(processes: list[psutil.Process]) -> None:
    assert_processes_gone(processes, GONE_WITHIN)


def sigint_is_blocked_or_ignored(pid: int) -> bool:
    fields = dict(line.split(":\t", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                  if ":\t" in line)
    bit = 1 << (signal.SIGINT - 1)
    return bool((int(fields["SigBlk"], 16) | int(fields["SigIgn"], 16)) & bit)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_ignore_ctrl_c_and_stop_ends_them_and_the_queue():
    me = psutil.Process()
    before = {p.pid for p in spawned_children(me)}
    pool = WorkerPool(2)
    try:
        sleepers = [pool.submit(time.sleep, 60) for _ in range(6)]
        workers = wait_for_workers(me, before, 2)
        assert all(sigint_is_blocked_or_ignored(w.pid) for w in workers)
        for worker in workers:
            os.kill(worker.pid, signal.SIGINT)  # what a Ctrl-C sends to the whole process group
        time.sleep(0.5)  # time to act on it, were it not ignored
        assert not any(f.done() for f in sleepers)  # the sleeps go on: a worker is not stopped by it
    finally:
        pool.stop()
    assert not any(process_running(w) for w in workers)  # stop() returns once they are gone
    assert all(f.done() for f in sleepers)
    assert any(f.cancelled() for f in sleepers)  # the queued ones never ran


def test_a_failed_job_stops_the_pool_and_its_error_goes_on():
    me = psutil.Process()
    before = {p.pid for p in spawned_children(me)}
    with pytest.raises(ZeroDivisionError):
        with spawn_pool(2) as pool:
            failing = pool.submit(operator.truediv, 1, 0)
            slow = [pool.submit(time.sleep, 60) for _ in range(3)]
            workers = wait_for_workers(me, before, 2)
            failing.result(timeout=120)
    assert not any(process_running(w) for w in workers)
    assert all(f.done() for f in slow)


def test_a_worker_that_dies_is_one_line():
    with pytest.raises(PipelineError, match="worker process died.*run the same command again"):
        with spawn_pool(1) as pool:
            pool.submit(os._exit, 1).result(timeout=120)


SCRIPT = """
import sys, time
from pipeline.core.workers import spawn_pool
if __name__ == "__main__":
    with spawn_pool(2) as pool:
        jobs = [pool.submit(time.sleep, 120) for _ in range(4)]
        print("ready", flush=True)
        time.sleep(120)
"""


@pytest.mark.parametrize("group", [False, True], ids=["parent", "group"])
def test_workers_and_the_resource_tracker_die_with_a_killed_parent(tmp_path, group):
    script = tmp_path / "pool.py"
    script.write_text(SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        parent = psutil.Process(proc.pid)
        family = wait_for_workers(parent, set(), 2)
        family += [p for p in spawned_children(parent) if p not in family]  # the resource tracker
        assert len(family) == 3
        if group:
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
        proc.wait(timeout=60)
        assert_all_gone(family)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_collect_keeps_what_finished_when_it_is_interrupted():
    done_a, done_b, running = Future(), Future(), Future()
    done_a.set_result("a")
    done_b.set_result("b")
    kept = []

    def on_done(item, result):
        kept.append(result)
        if len(kept) == 1:
            raise KeyboardInterrupt  # a Ctrl-C while the first record is written

    pending = {done_a: "A", done_b: "B", running: "C"}
    with pytest.raises(KeyboardInterrupt):
        collect(pending, on_done)
    assert sorted(kept) == ["a", "b"]  # the other finished job was kept too; the running one not
    assert list(pending) == [running]

    kept.clear()
    with pytest.raises(KeyboardInterrupt):
        collect({done_a: "A", done_b: "B"}, on_done, keep_finished=False)
    assert len(kept) == 1
