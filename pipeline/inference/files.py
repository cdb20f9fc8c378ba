"""Many recordings to files: `predict_many` runs `prediction.iter_files` in this process, or
spreads the files over `jobs` worker processes, each loading the model once; either way the
results come back in the order of the files, each with its output written (CSV, NPZ or JSON:
pipeline.inference.outputs) and, when asked, its picture (pipeline.inference.plots).

Files, not frames, are what runs in parallel: the model runs on one thread per process (ONNX
Runtime's own threads add little to a model this small), so N processes give about N times the
files per second on N cores. Worker processes are the project's spawn pool (core/workers.py):
Ctrl-C stops them all, and a file that fails is one `error` line, as in one process.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

from pipeline.core import constants as C
from pipeline.core.errors import PipelineError
from pipeline.core.workers import spawn_pool, worker_count
from pipeline.dsp.audio import read_audio, to_model_rate
from pipeline.inference.outputs import check_format, output_path, plot_path
from pipeline.inference.prediction import FileResult, as_predictor, iter_files


@dataclass(frozen=True)
class Request:
    """What to do with every file: the model (None: the shipped one; a path, which worker
    processes load themselves), where the outputs go and in which format, the hop, a summary
    instead of frames, the refinement, and whether to draw a PNG."""
    model: str | None = None
    output_dir: str | None = None
    hop: float | None = None
    summary: bool = False
    batch_size: int = C.PREDICT_BATCH
    refine: bool = True
    output_format: str = "csv"
    plot: bool = False
    pitch_range: tuple = (None, None)   # (fmin, fmax) in Hz, None for no bound


def predict_many(paths: Sequence[str | Path], request: Request, jobs: int = 1, predictor=None) -> Iterator[FileResult]:
    """A FileResult per file, in order. `jobs`: worker processes (0: every core; 1: this process,
    with `predictor` if one is loaded already). PipelineError for an unusable model or format."""
    check_format(request.output_format)
    if request.plot:
        from pipeline.inference.plots import require_matplotlib

        require_matplotlib()
    paths = [Path(p) for p in paths]
    count = min(worker_count(jobs), len(paths))
    if count <= 1:
        predictor = predictor if predictor is not None else as_predictor(request.model)
        for result in iter_files(paths, predictor, request.output_dir, request.hop, request.summary,
                                 request.batch_size, request.refine, request.output_format, request.pitch_range):
            yield _with_plot(result, request)
        return
    if predictor is None:
        as_predictor(request.model)  # an unusable model is one line here, before any worker starts
    with spawn_pool(count) as pool:
        pending: list[Future | FileResult] = []
        for path, clash in zip(paths, _clashes(paths, request)):
            pending.append(FileResult(path, error=clash) if clash else pool.submit(predict_one, path, request))
        for item in pending:
            yield item.result() if isinstance(item, Future) else item


def predict_one(path: Path, request: Request) -> FileResult:
    """One file in a worker process (the model loaded once per process, by as_predictor)."""
    result = next(iter_files([path], as_predictor(request.model), request.output_dir, request.hop,
                             request.summary, request.batch_size, request.refine, request.output_format,
                             request.pitch_range))
    return _with_plot(result, request)


def _clashes(paths: list[Path], request: Request) -> list[str | None]:
    """For each file, why its output would overwrite an earlier file's (None if it would not):
    iter_files checks that within one process, and the workers each see one file."""
    if request.summary:
        return [None] * len(paths)
    owners: dict[Path, Path] = {}
    clashes = []
    for path in paths:
        out = output_path(path, request.output_dir, request.output_format)
        owner = owners.setdefault(out.resolve(), path)
        clashes.append(None if owner == path else
                       f"{path}: its output {out} would overwrite the one of {owner}; "
                       "give files with the same name different output folders")
    return clashes


def _with_plot(result: FileResult, request: Request) -> FileResult:
    """Draw the result's PNG beside its output (song.f0.png) when asked; a failure is its error."""
    if not request.plot or not result.ok or result.prediction is None:
        return result
    from pipeline.inference.plots import plot_prediction

    out = plot_path(result.csv or output_path(result.path, request.output_dir, request.output_format))
    p = result.prediction
    try:
        audio = to_model_rate(*read_audio(result.path))
        note = f": {result.summary.line()}" if result.summary else ""
        result.plot = plot_prediction(out, audio, p.time, p.frequency, p.confidence, f"{result.path.name}{note}")
    except (PipelineError, OSError) as exc:
        result.error = f"{result.path}: cannot draw {out} ({exc})"
    return result
