"""Running the build's shards on a Dask distributed cluster instead of local processes.

A shard is a fixed piece of work: a set of notes from the plan (rendering) or a run of clips
from a split (features), so where it runs cannot change what it produces and the cluster
build is byte-identical to the local one. Workers get everything a shard needs in the task
and send its results back; the client writes every file, so workers need no shared output
folder. Rendering workers do need the soundfont at the same path (a shared mount, or a
copy): each checks its copy's sha256 against the plan's and fails the shard with a clear
message rather than render different audio. Feature workers get the clips' WAV bytes. A
shard lost with its worker is rescheduled by Dask on another worker.
"""

from __future__ import annotations

import itertools
from typing import Callable

from pipeline.errors import PipelineError

SHARD_RETRIES = 2  # on top of Dask's own rescheduling of tasks whose worker died


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


def run_shards_on_cluster(address: str, tasks: list, on_done: Callable[[object, list[dict]], None]) -> None:
    """Render every shard on the scheduler at `address`; call on_done(task, rows) as each finishes."""
    from pipeline.dataset import render_shard

    run_on_cluster(address, render_shard, [(f"shard-{t.key}", t, lambda t=t: (t,)) for t in tasks], on_done,
                   "check the workers' logs and their soundfont")


def run_on_cluster(address: str, func: Callable, jobs: list[tuple[str, object, Callable[[], tuple]]],
                   on_done: Callable[[object, object], None], hint: str, max_in_flight: int = 0) -> None:
    """Run func(*make_args()) for each (key, item, make_args) job; on_done(item, result) in the
    client as each finishes.

    A job's arguments are made only when it is submitted, and with max_in_flight at most that
    many jobs are out at a time: the client holds a bounded number of inputs and results,
    whatever the size of the build."""
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
