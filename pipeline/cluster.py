"""Running the dataset's shards on a Dask distributed cluster instead of local processes.

A shard is a fixed set of notes from the plan, so where it runs cannot change what it
produces: the cluster build is byte-identical to the local one. Workers render and return
each clip's WAV bytes and its manifest row; the client writes the files, so workers need no
shared output folder. They do need the soundfont at the same path (a shared mount, or a
copy): each worker checks its copy's sha256 against the plan's and fails the shard with a
clear message rather than render different audio. A shard lost with its worker is
rescheduled by Dask on another worker.
"""

from __future__ import annotations

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
    """Submit every shard to the scheduler at `address`; call on_done(task, rows) as each finishes."""
    from distributed import as_completed

    from pipeline.dataset import render_shard

    if not tasks:
        return
    client = _client(address)
    try:
        futures = {client.submit(render_shard, task, key=f"shard-{task.key}", pure=False, retries=SHARD_RETRIES):
                   task for task in tasks}
        for future in as_completed(futures):
            task = futures[future]
            try:
                rows = future.result()
            except PipelineError:
                raise
            except Exception as exc:  # a worker-side failure arrives re-raised here
                raise PipelineError(f"shard {task.key} failed on the cluster ({type(exc).__name__}: {exc}); "
                                    "check the workers' logs and their soundfont") from None
            on_done(task, rows)
    finally:
        client.close()
