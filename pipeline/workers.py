"""Where shards run: how many local workers, the local process pool, and a Dask cluster.

A shard is a fixed piece of work (a set of notes from the plan, a run of clips of a split),
so where it runs cannot change what it produces: the data and features stages give the
same bytes on one core, on every core, or on a cluster. Cluster workers get everything a
shard needs in its arguments and send its results back; the client writes every file, so
workers need no shared output folder. A shard lost with its worker is rescheduled by Dask
on another worker.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

from pipeline.errors import PipelineError

SHARD_RETRIES = 2  # on top of Dask's own rescheduling of tasks whose worker died


def worker_count(workers: int) -> int:
    """`workers` (data.workers), or every core this process may use when it is 0."""
    if workers:
        return workers
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@contextlib.contextmanager
def spawn_pool(workers: int):
    """Worker processes started with spawn, never fork: a child forked after FluidSynth ran in
    the parent can hang in sfload (a library lock copied while held), so scripts that build
    need the usual `if __name__ == "__main__":` guard. On leaving, queued work is cancelled and
    the workers finish exiting in the background."""
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"))
    try:
        yield pool
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _client(address: str):
    try:
        from distributed import Client
    except ImportError:
        raise PipelineError("Dask is not installed; pip install 'dask[distributed]' "
                            "(or pip install -e .[cluster]) to use data.scheduler") from None
    try:
        return Client(address, timeout="20s")
    except (OSError, TimeoutError) as exc:
        raise PipelineError(f"cannot reach the Dask scheduler at {address} ({exc}); "
                            "start it (dask scheduler) or fix data.scheduler") from None


def run_on_cluster(address: str, func: Callable, jobs: list[tuple[str, object, Callable[[], tuple]]],
                   on_done: Callable[[object, object], None], hint: str, max_in_flight: int = 0) -> None:
    """Run func(*make_args()) for each (key, item, make_args) job on the Dask scheduler at
    `address`; on_done(item, result) in the client as each finishes.

    A job's arguments are made only when it is submitted, and with max_in_flight at most that
    many jobs are out at a time: the client holds a bounded number of inputs and results,
    whatever the size of the build. `hint` ends the message of a job that failed."""
    from distributed import as_completed

    if not jobs:
        return
    client = _client(address)
    try:
        queue = iter(jobs)
        futures: dict = {}

        def submit(count: int) -> list:
            new = [(client.submit(func, *make_args(), key=key, pure=False, retries=SHARD_RETRIES), item)
                   for key, item, make_args in itertools.islice(queue, count)]
            futures.update(new)
            return [future for future, _ in new]

        running = as_completed(submit(max_in_flight or len(jobs)))
        for future in running:
            item = futures.pop(future)
            try:
                result = future.result()
            except PipelineError:
                raise
            except Exception as exc:  # a worker-side failure arrives re-raised here
                raise PipelineError(f"{future.key} failed on the cluster ({type(exc).__name__}: {exc}); "
                                    f"{hint}") from None
            future.release()
            on_done(item, result)
            if max_in_flight:
                running.update(submit(1))
    finally:
        client.close()
