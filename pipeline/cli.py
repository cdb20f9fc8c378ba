"""Command line for the pitch pipeline: parses arguments, calls the library, prints what it returns.

Errors the user can fix arrive as PipelineError, or as an OSError of a kind the user can fix
(a full disk, a file it may not read), and are printed as one line, no traceback; Ctrl-C,
SIGTERM and SIGHUP stop a stage tidily (exit 128 + the signal's number) with one line too.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from pathlib import Path

from pipeline import __version__
from pipeline.core.errors import STOP_SIGNALS, STOPPED, PipelineError, os_error_message, stop

DESCRIPTION = ("Render single-note pitch datasets with FluidSynth, compute spectrograms, train an f0 model, "
               "report its errors by pitch, and use it on your own audio.")
STAGES = {
    "data": "render, slice and label the dataset (data/NAME/)",
    "features": "compute the 513x90 spectrograms per split (data/NAME/features/)",
    "train": "train the f0 regressor (models/NAME/)",
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


def _cmd_predict(args) -> int:
    """One line per file on stdout (its output, or its summary); one `error: FILE: why` line on
    stderr per file that failed, and `warning: ...` for a silent file; exit 1 if any failed. Audio
    on standard input (`-`) without --output sends its output to stdout instead of its line."""
    import tempfile

    from pipeline.inference import discovery, prediction
    from pipeline.inference.files import Request, predict_many

    if args.no_refine and not args.summary:
        raise PipelineError("--no-refine applies to --summary only (the per-frame output is never refined); "
                            "add --summary or leave --no-refine out")
    if args.jobs < 0:
        raise PipelineError(f"--jobs must be 0 (every core) or more, got {args.jobs}")
    hop = prediction.check_options(args.hop, args.summary, args.batch_size)
    files = discovery.audio_inputs(args.audio)
    with tempfile.TemporaryDirectory(prefix="pipeline-predict-") as scratch:
        names, piped = {}, None
        if discovery.STDIN in files:
            saved = discovery.read_stdin(sys.stdin.buffer, Path(scratch))
            files, names[saved] = [saved if f == discovery.STDIN else f for f in files], discovery.STDIN
            if args.plot and args.output is None:
                raise PipelineError("--plot with audio from standard input needs --output DIR for its PNG")
            piped = saved if args.output is None and not args.summary else None
        request = Request(args.model, args.output, hop, args.summary, args.batch_size, not args.no_refine,
                          args.format, args.plot)
        predictor = prediction.load_predictor(Path(args.model) if args.model else None) if args.jobs == 1 else None
        results = _print_results(predict_many(files, request, args.jobs, predictor), names, piped, len(files))
    failed = sum(1 for r in results if r.error)
    if args.summary and args.output and len(results) > failed:
        from pipeline.inference.outputs import write_table

        table = Path(args.output) / f"summary.{args.format}"
        written = (prediction.write_summary_table(table, results) if args.format == "csv"
                   else write_table(table, _summary_rows(results, names), args.format))
        print(f"summary table: {written}")
    if failed:
        print(f"{failed} of {len(results)} files failed", file=sys.stderr)
        return 1
    return 0


def _print_results(results, names: dict, piped, count: int) -> list:
    """Each result's line as it arrives (above the progress bar, shown for several files)."""
    from pipeline.core import progress

    done = []
    with progress.bar(total=count, unit="file", desc="predict", disable=count < 2, leave=False) as bar:
        for result in results:
            done.append(result)
            bar.update(1)
            name = names.get(result.path, result.path)
            if result.error:
                bar.write(f"error: {result.error.replace(str(result.path), str(name))}", file=sys.stderr)
                continue
            if result.warning:
                bar.write(f"warning: {result.warning.replace(str(result.path), str(name))}", file=sys.stderr)
            if result.summary:
                bar.write(f"{name}: {result.summary.line()}", file=sys.stdout)
            elif result.path == piped:
                sys.stdout.buffer.write(result.csv.read_bytes())
                sys.stdout.flush()
            else:
                voiced = int((result.prediction.confidence >= 0.5).sum())
                frames = progress.plural(len(result.prediction.time), "frame")
                plot = f" and {result.plot}" if result.plot else ""
                bar.write(f"{name} -> {result.csv}{plot} ({frames}, {voiced:,} with confidence >= 0.5)",
                          file=sys.stdout)
    return done


def _summary_rows(results, names: dict) -> list[dict]:
    return [{"path": str(names.get(r.path, r.path)), "frequency": round(r.summary.frequency, 3), "note": r.summary.note,
             "cents": round(r.summary.cents, 2), "confidence": round(r.summary.confidence, 4)}
            for r in results if r.summary]


def _cmd_evaluate(args) -> int:
    """Notes (a label per file) or contours (a truth CSV per file), chosen by --mode or by what
    AUDIO_DIR holds; one `error: ...` line on stderr per problem, exit 1 if any."""
    from pipeline.report.baselines import baseline_names
    from pipeline.report.contour_evaluation import choose_mode

    names = baseline_names(args.baselines or "")
    mode = choose_mode(args.audio_dir, args.mode, args.labels, args.truth)
    wrong = {"notes": [("--truth", args.truth), ("--voicing-threshold", args.voicing_threshold)],
             "contours": [("--labels", args.labels), ("--no-refine", args.no_refine)]}[mode]
    given = [flag for flag, value in wrong if value not in (None, False)]
    if given:
        print(f"error: {', '.join(given)} do(es) not apply to {mode} mode; leave it out, or choose the mode "
              "with --mode", file=sys.stderr)
        return 2
    if mode == "contours":
        return _evaluate_contours(args, names)
    from pipeline.report.folder_evaluation import evaluate_folder
    from pipeline.report.reporting import format_summary

    result = evaluate_folder(args.audio_dir, args.model, args.labels, args.output, refine=not args.no_refine,
                             baselines=names)
    for message in result.problems:
        print(f"error: {message}", file=sys.stderr)
    if result.summary is not None:
        print(format_summary(result.summary))
        print(f"tables in {result.output_dir}")
    else:
        print("error: no file could be evaluated", file=sys.stderr)
    if result.problems:
        print(f"{len(result.problems)} of {result.files} files failed (those with a label count as misses)",
              file=sys.stderr)
    return 0 if result.ok else 1


def _evaluate_contours(args, names: list[str]) -> int:
    from pipeline.report.contour_evaluation import MODEL_VOICING, evaluate_contours, format_contour_summary

    threshold = MODEL_VOICING if args.voicing_threshold is None else args.voicing_threshold
    result = evaluate_contours(args.audio_dir, args.model, args.truth, args.output, names, threshold)
    for message in result.problems:
        print(f"error: {message}", file=sys.stderr)
    if result.summary is None:
        print("error: no file could be evaluated", file=sys.stderr)
        return 1
    print(format_contour_summary(result.summary))
    print(f"{result.scored} of {result.files} files scored; tables and plots in {result.output_dir}")
    return 0 if result.ok else 1


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


def _add_predict_parser(sub) -> None:
    text = "f0 of audio files: one time,frequency,confidence file each (CSV, NPZ or JSON)"
    p = sub.add_parser("predict", help=text, description=text)
    p.add_argument("audio", nargs="+", metavar="AUDIO",
                   help="WAV, FLAC, MP3 or OGG files at any rate and channels; folders (searched recursively), "
                        "glob patterns ('notes/**/*.wav'), or - for audio on standard input")
    p.add_argument("--model", default=None, metavar="MODEL",
                   help="a trained model, e.g. models/default/model.keras (default: the model shipped in the package)")
    p.add_argument("--output", default=None, metavar="DIR", help="folder for the CSVs (default: beside each file)")
    p.add_argument("--hop", type=float, default=None, metavar="SECONDS",
                   help="seconds between windows (default 0.010; 0.165 with --summary)")
    p.add_argument("--summary", action="store_true",
                   help="one line per file: f0, nearest note, cents off (and OUTPUT/summary.csv with --output)")
    p.add_argument("--batch-size", type=int, default=256, metavar="N",
                   help="windows per model call for reference and bins models (default 256)")
    p.add_argument("--no-refine", action="store_true",
                   help="with --summary: the network's estimates alone, not made fine from each frame's partials")
    p.add_argument("--format", default="csv", choices=("csv", "npz", "json"),
                   help="output format: csv (CREPE's time,frequency,confidence), npz (numpy arrays) or json")
    p.add_argument("--plot", action="store_true",
                   help="also draw NAME.f0.png: the spectrogram with the f0 contour, and the confidence")
    p.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="files predicted at once in N processes (0: one per core; default 1)")
    p.set_defaults(func=_cmd_predict)


def _add_evaluate_parser(sub) -> None:
    text = "metrics on a folder of labeled notes, or of recordings with per-frame truth (contours)"
    p = sub.add_parser("evaluate", help=text, description=text)
    p.add_argument("audio_dir", metavar="AUDIO_DIR",
                   help="folder of notes labeled by name (A4.wav, Cs4.wav, Db4.wav) or by --labels; or of "
                        "recordings each with its truth NAME.csv or NAME.f0.csv (time,frequency; 0 = unvoiced)")
    p.add_argument("--mode", choices=("auto", "notes", "contours"), default="auto",
                   help="notes: one pitch per file; contours: per-frame truth (default auto: contours when "
                        "truth CSVs are there)")
    p.add_argument("--model", default=None, metavar="MODEL",
                   help="a trained model, e.g. models/default/model.keras (default: the model shipped in the package)")
    p.add_argument("--labels", default=None, metavar="CSV",
                   help="notes: CSV with path,frequency or path,note columns (a dataset's manifest.csv works)")
    p.add_argument("--truth", default=None, metavar="DIR",
                   help="contours: the folder of the truth CSVs, if not beside the audio (e.g. MDB-stem-synth's "
                        "annotation_stem)")
    p.add_argument("--baselines", default=None, metavar="NAME,...",
                   help="trackers scored beside the model: praat, pyin, swift_f0, crepe, crepe_tiny")
    p.add_argument("--output", default=None, metavar="DIR",
                   help="folder for the tables (default: AUDIO_DIR/evaluation)")
    p.add_argument("--no-refine", action="store_true",
                   help="notes: the network's estimates alone, not made fine from each frame's partials")
    p.add_argument("--voicing-threshold", type=float, default=None, metavar="C",
                   help="contours: the model's frames with confidence >= C are voiced (default 0.5)")
    p.set_defaults(func=_cmd_evaluate)


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
    _add_predict_parser(sub)
    _add_evaluate_parser(sub)
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
    text = "write a trained stream model's ONNX file (what predict runs), or install it as the default model"
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
    print(f"exported {written} ({written.stat().st_size / 2**20:.1f} MiB)")
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
    try:
        return _run(argv)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler if argv is not None else signal.SIG_IGN)


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
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:  # Ctrl-C, or a signal as Interrupted
        print(STOPPED, file=sys.stderr)
        return 128 + getattr(exc, "signum", signal.SIGINT)
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

