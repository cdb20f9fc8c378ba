"""Command line for the pitch pipeline: parses arguments, calls the library, prints what it returns.

Errors the user can fix arrive as PipelineError, or as an OSError of a kind the user can fix
(a full disk, a file it may not read), and are printed as one line, no traceback; Ctrl-C,
SIGTERM and SIGHUP stop a stage tidily (exit 128 + the signal's number) with one line too.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from pathlib import Path

from pipeline import __version__
from pipeline.cli_audio import add_evaluate_parser, add_predict_parser
from pipeline.core.errors import (
    STOP_SIGNALS,
    STOPPED,
    PipelineError,
    os_error_message,
    settle_stop,
    stop,
    stop_received,
)

DESCRIPTION = ("Track the f0 of any monophonic audio every 10 ms (a model ships in the package); render "
               "labelled pitch datasets (notes and phrases) with FluidSynth, train and evaluate f0 models.")
STAGES = {
    "data": "render, slice and label the dataset: note clips and phrases (data/NAME/)",
    "features": "compute the model's inputs per split (data/NAME/features/)",
    "train": "train the f0 model and export it to ONNX (models/NAME/)",
    "report": "errors by pitch, instrument and segment, with baselines (reports/NAME/)",
    "check": "check that FluidSynth, sox and the soundfont are usable",
}

# the pyproject extra that installs each module a command may import (the light install has none)
EXTRAS = {"pandas": "data", "fluidsynth": "data", "midiutil": "data", "mido": "data", "sox": "data",
          "tensorflow": "train", "keras": "train", "onnx": "train", "mir_eval": "evaluate", "matplotlib": "plot",
          "librosa": "baselines", "parselmouth": "baselines", "swift_f0": "baselines", "torch": "baselines-torch",
          "torchcrepe": "baselines-torch", "dask": "cluster", "distributed": "cluster"}

# what each command needs as a whole (a command's first missing module is only one of them)
COMMAND_EXTRAS = {"data": "data", "features": "data", "check": "data", "params": "data", "train": "train",
                  "export": "train", "report": "all", "experiments": "all", "evaluate": "evaluate"}
PACKAGES = {"fluidsynth": "pyfluidsynth", "parselmouth": "praat-parselmouth", "swift_f0": "swift-f0"}  # pip names


def config_from_args(args):
    """The config a command names (--config), else the default one: the same as make's."""
    from pipeline.core.config import default_config_path, load_config

    overrides = list(args.overrides)
    if getattr(args, "workers", None) is not None:
        overrides.append(f"data.workers={args.workers}")
    if getattr(args, "scheduler", None) is not None:
        overrides.append(f"data.scheduler={json.dumps(args.scheduler)}")
    return load_config(args.config or default_config_path(), overrides)


# --- the commands ------------------------------------------------------------------------------
def _cmd_params(args) -> int:
    from pipeline.params import write_stage_params

    write_stage_params(config_from_args(args), args.stage, Path(args.out))
    return 0


def _cmd_data(args) -> int:
    from pipeline.data.dataset import build_dataset

    build_dataset(config_from_args(args))
    return 0


def _cmd_features(args) -> int:
    from pipeline.data.features import build_features

    build_features(config_from_args(args))
    return 0


def _cmd_train(args) -> int:
    from pipeline.model.training import train

    train(config_from_args(args))
    return 0


def _cmd_report(args) -> int:
    from pipeline.report.reporting import build_report

    build_report(config_from_args(args))
    return 0


def _cmd_check(args) -> int:
    from pipeline.data.dataset import check_environment

    for line in check_environment(config_from_args(args)):
        print(line)
    return 0


# --- what the library logs ---------------------------------------------------------------------
class _Console(logging.Handler):
    """The library's log lines, as the program's output: information on stdout, warnings and errors
    on stderr, written to the streams of the moment (a test's captured ones included)."""

    def emit(self, record: logging.LogRecord) -> None:
        stream = sys.stderr if record.levelno >= logging.WARNING else sys.stdout
        stream.write(self.format(record) + "\n")
        stream.flush()


def configure_logging(level: int = logging.INFO) -> None:
    logger = logging.getLogger("pipeline")
    logger.setLevel(level)
    if not any(isinstance(h, _Console) for h in logger.handlers):
        logger.addHandler(_Console())


# --- the parser ----------------------------------------------------------------------------------
def _add_config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=None, metavar="FILE.toml",
                        help="TOML config; relative paths in it are relative to its folder "
                             "(default: the default config, the one make uses: configs/default.toml)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override one config key, e.g. --set train.epochs=5 (repeatable)")


def _add_stage_parsers(sub) -> None:
    text = "write a stage's slice of the config (make uses it to decide what to rebuild)"
    p = sub.add_parser("params", help=text, description=text)
    p.add_argument("stage", choices=list(STAGES)[:4], help="the stage whose slice to write")
    p.add_argument("--out", required=True, metavar="FILE.json", help="where to write it (unchanged if the same)")
    _add_config_args(p)
    p.set_defaults(func=_cmd_params)
    commands = {"data": _cmd_data, "features": _cmd_features, "train": _cmd_train, "report": _cmd_report,
                "check": _cmd_check}
    for name, text in STAGES.items():
        p = sub.add_parser(name, help=text, description=text)
        _add_config_args(p)
        if name in ("data", "features"):  # the stages that run in worker processes
            p.add_argument("--workers", type=int, default=None, metavar="N",
                           help="worker processes (same as --set data.workers=N; default: every core)")
            p.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT",
                           help="run the shards on this Dask scheduler (same as --set data.scheduler=...)")
        p.set_defaults(func=commands[name])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pipeline", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}",
                        help="print the package version and exit")
    shown = parser.add_mutually_exclusive_group()
    shown.add_argument("--progress", dest="progress", action="store_true", default=None,
                       help="show progress bars (on stderr) even when it is not a terminal")
    shown.add_argument("--no-progress", dest="progress", action="store_false",
                       help="never show progress bars (default: only on a terminal)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                help="one of the commands below; pipeline COMMAND --help for its options")
    _add_stage_parsers(sub)
    add_predict_parser(sub)
    add_evaluate_parser(sub)
    _add_experiments_parser(sub)
    _add_export_parser(sub)
    _add_export_dataset_parser(sub)
    _add_config_parser(sub)
    return parser


def _add_export_dataset_parser(sub) -> None:
    text = "write the dataset as Parquet, WebDataset, TFRecord and NSynth-layout files, with its card (exports/NAME/)"
    p = sub.add_parser("export-dataset", help=text, description=text)
    _add_config_args(p)
    p.add_argument("--format", dest="formats", default="parquet,webdataset,tfrecord,nsynth", metavar="NAME,...",
                   help="which formats (default: all four: parquet,webdataset,tfrecord,nsynth)")
    p.add_argument("--out", default=None, metavar="DIR", help="where to write them (default: exports/NAME)")
    p.add_argument("--shard-size", type=int, default=None, metavar="N", help="clips per shard (default 2000)")
    p.set_defaults(func=_cmd_export_dataset)


def _cmd_export_dataset(args) -> int:
    from pipeline.formats.export import SHARD_SIZE, export_dataset

    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    export_dataset(config_from_args(args), formats, args.out, args.shard_size or SHARD_SIZE)
    return 0


def _add_config_parser(sub) -> None:
    text = "print the config a command would use (TOML), or the documentation of every key (--docs)"
    p = sub.add_parser("config", help=text, description=text)
    _add_config_args(p)
    p.add_argument("--docs", action="store_true",
                   help="print docs/configuration.md: every key, its values and meaning, from the typed config")
    p.set_defaults(func=_cmd_config)


def _cmd_config(args) -> int:
    if args.docs:
        from pipeline.core.config_docs import configuration_markdown

        sys.stdout.write(configuration_markdown())
        return 0
    from pipeline.core.config import to_toml

    sys.stdout.write(to_toml(config_from_args(args)))
    return 0


def _add_export_parser(sub) -> None:
    text = "write a trained frame or stream model's ONNX file (what predict runs), or install it as the default model"
    p = sub.add_parser("export", help=text, description=text)
    _add_config_args(p)
    p.add_argument("--default", action="store_true",
                   help="also copy it into the package as the model predict and evaluate load by default")
    p.add_argument("--float32", action="store_true", help="keep float32 weights (default: float16, half the size)")
    p.set_defaults(func=_cmd_export)


def _cmd_export(args) -> int:
    from pipeline.inference.predictor import default_model_path
    from pipeline.model import export

    cfg = config_from_args(args)
    written = export.export_model(cfg.model_dir / "model.keras", half=not args.float32)
    size = written.stat().st_size
    shown = f"{size / 2**20:.1f} MiB" if size >= 2**20 else f"{size / 1024:.1f} KiB"
    print(f"exported {written} ({shown})")
    if args.default:
        for path in export.install_default(written, default_model_path().parent):
            print(f"installed {path}")
    return 0


def _add_experiments_parser(sub) -> None:
    text = "reproduce the original write-ups' experiments (reports/experiments/)"
    p = sub.add_parser("experiments", help=text, description=text)
    p.add_argument("--config", default=None, metavar="FILE.toml",
                   help="TOML file with an [experiments] table (default: built-in settings; configs/experiments.toml)")
    p.add_argument("--only", default="", metavar="NAME,...",
                   help="run only these: reference_reproduction, raw_audio_classifier, learned_spectrogram, "
                        "effect_emulation")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one setting, e.g. --set scale=original or --set reference.epochs=5 (repeatable)")
    p.add_argument("--out", default="reports/experiments", metavar="DIR", help="where the reports go")
    p.add_argument("--data", default="data", metavar="DIR", help="where the experiments' datasets go")
    p.set_defaults(func=_cmd_experiments)


def _cmd_experiments(args) -> int:
    from pipeline.experiments.runner import run_experiments
    from pipeline.experiments.settings import load_settings

    settings = load_settings(args.config, args.overrides)
    names = [n.strip() for n in args.only.split(",") if n.strip()] or None
    run_experiments(settings, names, Path(args.out), Path(args.data))
    return 0


def _stop(signum, frame):
    """Ctrl-C, `kill` or a closed terminal: one tidy stop. Signals that follow are ignored, so
    that a second Ctrl-C cannot break the stop itself (it takes about a second at most)."""
    stop(signum, frame)


def main(argv: list[str] | None = None) -> int:
    """The program (`pipeline`, `python -m pipeline`): returns the exit code. Called with `argv`
    from Python, it puts the signal handlers back as they were when it returns; without (the
    program itself, reading sys.argv), it leaves stop signals ignored: the process is exiting,
    and a Ctrl-C then could only print a traceback from the interpreter's clean-up."""
    # a signal ignored from the start stays ignored (nohup, a background job of a script)
    previous = {signum: signal.signal(signum, _stop) for signum in STOP_SIGNALS
                if signal.getsignal(signum) is not signal.SIG_IGN}
    stop_received(forget=True)
    hook, sys.unraisablehook = sys.unraisablehook, _quiet_stop(sys.unraisablehook)
    try:
        code = _run(argv)
        if stop_received() is not None and code == 0:   # a stop swallowed on its way up (in a finalizer)
            code = _stopped(stop_received())
    finally:
        sys.unraisablehook = hook
        for signum, handler in previous.items():
            signal.signal(signum, handler if argv is not None else signal.SIG_IGN)
    if argv is None and code > 128 and "tensorflow" in sys.modules:
        _leave_now(code)
    return code


def _stopped(signum: int) -> int:
    """The stop's one line, and its exit code; no stop signal that follows interrupts them."""
    settle_stop()
    _say(STOPPED)
    return 128 + signum


def _say(line: str) -> None:
    """The command's last line on stderr, on a line of its own (a bar a stop cut short has no newline)."""
    from pipeline.core.progress import end_line

    end_line()
    print(line, file=sys.stderr)


def _quiet_stop(hook):
    """sys.unraisablehook that keeps quiet about a stop raised where Python ignores exceptions (a
    finalizer of multiprocessing, run by the garbage collector): the stop is not lost (stop_received
    holds it) and its one line comes from the CLI, not "Exception ignored in" and a traceback."""
    def unraisable(info):
        if not isinstance(info.exc_value, KeyboardInterrupt):
            hook(info)
    return unraisable


def _leave_now(code: int) -> None:
    """End the program at once after a stop once TensorFlow is loaded: its teardown at exit waits for
    the threads of its data pipeline (1 to 10 s measured after a Ctrl-C in the middle of an epoch),
    and there is nothing left to tidy: every output is written whole or not at all, and training
    and the report start no worker process (the stages that do never import TensorFlow). Not after
    a stop of a stage with workers: multiprocessing's own exit wakes the pool's manager thread and
    removes its semaphores, which its resource tracker otherwise reports as leaked on the terminal
    (1 run in 5 of the stop tests, when this left at once whenever a thread was still alive)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _run(argv: list[str] | None) -> int:
    args = None
    try:
        configure_logging()
        args = build_parser().parse_args(argv)
        if args.progress is not None:
            from pipeline.core.progress import set_shown

            set_shown(args.progress)
        return args.func(args)
    except PipelineError as exc:
        if stop_received() is not None:   # the stop's own consequence (workers ended by the same signal)
            return _stopped(stop_received())
        _say(f"error: {exc}")
        return 2
    except KeyboardInterrupt as exc:  # Ctrl-C, or a signal as Interrupted
        return _stopped(getattr(exc, "signum", signal.SIGINT))
    except ModuleNotFoundError as exc:  # a light install running a stage: name the extra that brings it
        if EXTRAS.get((exc.name or "").split(".")[0]) is None:
            raise
        extra = COMMAND_EXTRAS.get(getattr(args, "command", None)) or EXTRAS[(exc.name or "").split(".")[0]]
        print(f"error: this command needs the Python package {PACKAGES.get(exc.name, exc.name)}, which is not "
              f"installed; install it with "
              f"pip install 'pitch-pipeline[{extra}]' (or make setup in a checkout)", file=sys.stderr)
        return 2
    except OSError as exc:  # a full disk or a file it may not read, wherever it happened
        message = os_error_message(exc)
        if message is None:
            raise  # anything else is a bug: keep its traceback
        print(f"error: {message}", file=sys.stderr)
        return 2

