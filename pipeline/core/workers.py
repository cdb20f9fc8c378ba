"""Where shards run: how many local workers, the local process pool, and a Dask cluster.

A shard is a fixed piece of work (a set of notes from the plan, a run of clips of a split),
so where it runs cannot change what it produces: the data and features stages give the
same bytes on one core, on every core, or on a cluster. Cluster workers get everything a
shard needs in its arguments and send its results back; the client writes every file, so
workers need no shared output folder. A shard lost with its worker is rescheduled by Dask
on another worker.

Stopping. The parent decides: local workers never see Ctrl-C (they are started with SIGINT
blocked, then ignore it), so a Ctrl-C, a SIGTERM or an error reaches the parent alone, which
cancels the queued shards and ends the workers (SIGTERM, SIGKILL after STOP_SECONDS) before
it returns; a stage stops within about a second, keeping what it finished. Workers also die
with the parent when it is killed outright (SIGKILL): Linux's parent-death signal, and a
watchdog thread that notices the parent is gone; the resource tracker of multiprocessing
then ends too, as the last holder of its pipe is gone.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context, resource_tracker

from pipeline.core.errors import PipelineError
from pipeline.core.measure import cores

SHARD_RETRIES = 2  # on top of Dask's own rescheduling of tasks whose worker died
STOP_SECONDS = 1.0  # a stopped worker's time to exit after SIGTERM before SIGKILL
WATCH_SECONDS = 0.5  # how often a worker's watchdog checks that its parent lives
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def worker_count(workers: int) -> int:
    """`workers` (data.workers), or every core this process may use when it is 0."""
    if workers:
        return workers
    return cores()


# --- the local pool ---------------------------------------------------------------------------
class WorkerPool(ProcessPoolExecutor):
    """A process pool (spawn, never fork: a child forked after FluidSynth ran in the parent can
    hang in sfload, a library lock copied while held, so scripts that build need the usual
    `if __name__ == "__main__":` guard) whose workers cannot outlive it, never see Ctrl-C, and
    are ended by stop(). submit() returns ordinary futures (wait and as_completed work on them)."""

    def __init__(self, workers: int):
        with _signals_held():  # the resource tracker and the workers start deaf to SIGINT and SIGHUP
            resource_tracker.ensure_running()
            super().__init__(max_workers=workers, mp_context=get_context("spawn"),
                             initializer=_start_worker, initargs=(os.getpid(),))
        self._futures: list[Future] = []

    def submit(self, fn, /, *args, **kwargs) -> Future:
        # Workers are started on demand by submit, and a stop signal must not cut a start in half
        # (the child would wait for its start-up data and print a traceback): signals are held
        # until submit returns, then acted on.
        with _signals_held():
            future = super().submit(fn, *args, **kwargs)
        self._futures.append(future)
        return future

    def unfinished(self) -> bool:
        return any(not future.done() for future in self._futures)

    def stop(self) -> None:
        """Cancel the queued work and end the workers now: SIGTERM, then SIGKILL for any still
        alive after STOP_SECONDS; return once they are gone. Work they finished stays finished."""
        # the executor's own record of its processes and thread (no public way to reach them)
        processes = list((self._processes or {}).values())
        manager = self._executor_manager_thread
        self.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.terminate()
        deadline = time.monotonic() + STOP_SECONDS
        for process in processes:
            process.join(max(0.0, deadline - time.monotonic()))
        for process in processes:
            if process.is_alive():
                process.kill()
                process.join()
        if manager is not None:  # it sees the workers gone, fails what was pending, and ends
            manager.join(STOP_SECONDS)


@contextlib.contextmanager
def spawn_pool(workers: int):
    """A WorkerPool for the block. Leaving the block normally lets finished workers exit in the
    background; leaving it by an exception (Ctrl-C, SIGTERM, a failed shard) or with work still
    running stops them first (WorkerPool.stop). A worker that died on its own (the kernel's OOM
    killer, a kill of that process) becomes one PipelineError line, not a traceback."""
    pool = WorkerPool(workers)
    try:
        yield pool
    except BrokenProcessPool:
        pool.stop()
        raise PipelineError("a worker process died (killed, or out of memory?); finished work is kept: "
                            "run the same command again, with fewer data.workers if memory is short") from None
    except BaseException:
        pool.stop()
        raise
    if pool.unfinished():
        pool.stop()
    else:
        pool.shutdown(wait=False)


def collect(pending: dict[Future, object], on_done: Callable[[object, object], None],
            keep_finished: bool = True) -> None:
    """Call on_done(item, result) here, in the parent, as each future of `pending` ({future:
    item}) finishes, in the order they finish (how the data stage writes a shard's record). If
    this is interrupted (Ctrl-C, SIGTERM, a shard that failed), on_done still runs for every job
    that had finished, unless keep_finished is False, before the error goes on: no finished work
    is lost. on_done should be quick (a record, not a rebuild): it runs within the stop."""
    try:
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                on_done(pending.pop(future), future.result())
    except BaseException:
        if keep_finished:
            for future in [f for f in pending if f.done() and not f.cancelled() and f.exception() is None]:
                on_done(pending.pop(future), future.result())
        raise


HELD_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))
# blocked while a child starts, so that it is born with them blocked: the parent alone acts on a Ctrl-C or a closed
# terminal (both reach the whole process group). multiprocessing's resource tracker ignores SIGINT and SIGTERM
# itself but not SIGHUP: killed by it, it was started again and printed a traceback per worker it did not know.
BLOCKED_IN_CHILDREN = tuple(getattr(signal, name) for name in ("SIGINT", "SIGHUP") if hasattr(signal, name))


@contextlib.contextmanager
def _signals_held():
    """Hold stop signals for the block. Their Python handlers run when it ends (a Ctrl-C then
    raises where it is safe); SIGINT and SIGHUP are also blocked in this thread meanwhile, so a
    process started here (a worker, the resource tracker) inherits the block and is born deaf to
    them (a worker's initializer then ignores SIGINT; SIGHUP stays blocked for its life)."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "pthread_sigmask"):
        yield
        return
    held: list[tuple[int, object]] = []
    handlers = {signum: signal.getsignal(signum) for signum in HELD_SIGNALS}
    for signum, handler in handlers.items():
        if callable(handler):
            signal.signal(signum, lambda signum, frame: held.append((signum, frame)))
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, set(BLOCKED_IN_CHILDREN))
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        for signum, handler in handlers.items():
            if callable(handler):
                signal.signal(signum, handler)
        for signum, frame in held[:1]:
            handlers[signum](signum, frame)


# --- in each worker ---------------------------------------------------------------------------
def _start_worker(parent_pid: int) -> None:
    """The worker's initializer: leave Ctrl-C to the parent, and die with it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before the signal was asked for
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent_pid,), name="parent-watchdog", daemon=True).start()


def _watch_parent(parent_pid: int) -> None:
    """Where the parent-death signal does not exist (or was missed): exit once the parent is gone."""
    while os.getppid() == parent_pid:
        time.sleep(WATCH_SECONDS)
    os._exit(1)


# --- a Dask cluster -----------------------------------------------------------------------------
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
