"""Shards of the data stage, whatever they hold (notes or phrases): their records, the check that
tells a finished shard from one to render, and running the rest in workers or on a cluster.

A shard's record (shards/KEY.csv) is written when the shard is done, after its files are synced
to disk, so a second build renders nothing and an interrupted one resumes where it stopped.
"""

from __future__ import annotations

import contextlib
import csv
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.core import workers
from pipeline.core.artifacts import atomic_path, sync_filesystem
from pipeline.core.config import Config
from pipeline.core.progress import bar
from pipeline.data.clips import SHARDS_DIR, TEXT_COLUMNS, write_clip

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

MAX_PROBLEM_LINES = 5  # damaged shards named one per line; the rest counted


def record_path(cfg: Config, key: str) -> Path:
    return cfg.data_dir / SHARDS_DIR / f"{key}.csv"


def write_record(cfg: Config, key: str, rows: list[dict]) -> None:
    """The shard's rows as CSV (None as an empty field), written once its files are durable: one
    syncfs for the shard's files (an fsync each costs 20 times as much), so that no record ever
    lists a file a power loss could take back. The csv module: a tenth of pandas' cost."""
    sync_filesystem(cfg.data_dir)
    with atomic_path(record_path(cfg, key)) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["path"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def read_record(path: Path) -> tuple[pd.DataFrame | None, str | None]:
    """(the record, None), or (None, what is wrong with it); (None, None) when there is none."""
    import pandas as pd

    try:
        return pd.read_csv(path, keep_default_na=False, na_values=[""], dtype=TEXT_COLUMNS), None
    except FileNotFoundError:
        return None, None
    except pd.errors.EmptyDataError:
        return None, "is empty"
    except (ValueError, UnicodeDecodeError, OSError) as exc:  # pandas' ParserError is a ValueError
        return None, f"is garbled ({type(exc).__name__})"


def check_records(cfg: Config, shards: Sequence, problem: Callable) -> tuple[dict, list]:
    """({key: record} of the shards done and whole, [the shards to render]). A shard is rendered
    (again) when it has no record, or one that is empty, garbled, or has a `problem(task, frame)`
    (not its own, a file missing or changed); each such record is named (the first few)."""
    records, todo, problems = {}, [], []
    for task in shards:
        path = record_path(cfg, task.key)
        frame, why = read_record(path) if path.is_file() else (None, None)  # no pandas for a new build
        if frame is not None:
            why = problem(task, frame)
            if why is None:
                records[task.key] = frame
                continue
        if why:
            problems.append(f"data: {path.relative_to(cfg.data_dir)} {why}; rendering its shard again")
        todo.append(task)
    for line in problems[:MAX_PROBLEM_LINES]:
        log.warning(line)
    if len(problems) > MAX_PROBLEM_LINES:
        log.warning(f"data: ... and {len(problems) - MAX_PROBLEM_LINES} more damaged shards")
    return records, todo


@contextlib.contextmanager
def local_pool(cfg: Config, todo: list, render: Callable):
    """Start the worker processes and hand them every shard now, so that their start-up (imports,
    soundfont load) overlaps the parent's work; yields {future: task}, or None when the shards
    run serially or on a cluster."""
    count = min(workers.worker_count(cfg.data.workers), len(todo))
    if cfg.data.scheduler or count <= 1:
        yield None
        return
    with workers.spawn_pool(count) as pool:
        yield {pool.submit(render, task): task for task in todo}


def run_shards(cfg: Config, todo: list, render: Callable, size: Callable, desc: str, unit: str) -> None:
    """Render `todo` (each shard by `render(task) -> rows`) in local workers, on data.scheduler or
    here, writing each shard's record as it finishes (also on a stop)."""
    with local_pool(cfg, todo, render) as pending:
        import pandas  # noqa: F401  (a third of a second, while the workers start)

        collect(cfg, todo, pending, render, size, desc, unit)


def collect(cfg: Config, todo: list, pending: dict | None, render: Callable, size: Callable,
            desc: str, unit: str) -> None:
    """Write each shard's record as it finishes, also those finished when a stop (Ctrl-C, SIGTERM)
    or a failed shard ends the build (workers.collect). The progress bar is cleared, not left,
    when an error ends it: the error stays one line."""
    with bar(total=sum(size(t) for t in todo), unit=unit, desc=desc, disable=not todo, mininterval=1.0) as progress:
        def finished(task, rows: list[dict]) -> None:
            write_record(cfg, task.key, rows)
            progress.update(size(task))

        try:
            if pending is not None:
                workers.collect(pending, finished)
            elif cfg.data.scheduler:
                _run_on_cluster(cfg, todo, render, finished)
            else:
                for task in todo:
                    finished(task, render(task))
        except BaseException:
            progress.leave = False
            raise


def _run_on_cluster(cfg: Config, todo: list, render: Callable, finished) -> None:
    """The shards on the Dask scheduler of data.scheduler. Workers send the files back (a row's
    "wav" bytes, or its "files" {path: bytes}) and the client writes every file, so they need no
    shared output folder; they do need the soundfont at the same path, and check its sha256."""
    def finish(task, rows: list[dict]) -> None:
        for row in rows:
            if "wav" in row:
                write_clip(cfg.data_dir, row["path"], row.pop("wav"))
            for path, data in row.pop("files", {}).items():
                write_clip(cfg.data_dir, path, data)
        finished(task, rows)

    jobs = [(f"shard-{t.key}", t, lambda t=t: (t.for_cluster(),)) for t in todo]
    workers.run_on_cluster(cfg.data.scheduler, render, jobs, finish, "check the workers' logs and their soundfont")


def reread_record(cfg: Config, key: str) -> pd.DataFrame:
    """A record just written, read back (only a file system that loses what it was given fails)."""
    frame, why = read_record(record_path(cfg, key))
    if frame is None:
        from pipeline.core.errors import PipelineError

        raise PipelineError(f"{record_path(cfg, key)} {why or 'is missing'} just after it was written; "
                            "check the disk, then run the same command again")
    return frame
