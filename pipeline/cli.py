"""Command line: parses arguments and calls the library; no science here.

Errors the user can fix arrive as PipelineError and are printed as one line, no traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path

from pipeline.errors import PipelineError


def _add_config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=None, help="TOML config (default: built-in defaults)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override one config key, e.g. --set train.epochs=5 (repeatable)")


def _config(args):
    from pipeline.config import load_config

    overrides = list(args.overrides)
    if getattr(args, "workers", None) is not None:
        overrides.append(f"data.workers={args.workers}")
    if getattr(args, "scheduler", None) is not None:
        overrides.append(f"data.scheduler={json.dumps(args.scheduler)}")
    return load_config(args.config, overrides)


def _cmd_params(args) -> int:
    from pipeline.params import write_stage_params

    write_stage_params(_config(args), args.stage, Path(args.out))
    return 0


def _cmd_data(args) -> int:
    from pipeline.dataset import build_dataset

    build_dataset(_config(args))
    return 0


def _cmd_features(args) -> int:
    from pipeline.features import build_features

    build_features(_config(args))
    return 0


def _cmd_train(args) -> int:
    from pipeline.training import train

    train(_config(args))
    return 0


def _cmd_report(args) -> int:
    from pipeline.reporting import build_report

    build_report(_config(args))
    return 0


def _cmd_predict(args) -> int:
    from pipeline.prediction import predict_files_cli

    return predict_files_cli(args)


def _cmd_evaluate(args) -> int:
    from pipeline.evaluation import evaluate_folder_cli

    return evaluate_folder_cli(args)


def _cmd_check(args) -> int:
    from pipeline.rendering import check_environment

    cfg = _config(args)
    for line in check_environment(cfg):
        print(line)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pipeline", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("params", help="write a stage's slice of the config (make uses it to decide what to rebuild)")
    p.add_argument("stage", choices=["data", "features", "train", "report"])
    p.add_argument("--out", required=True)
    _add_config_args(p)
    p.set_defaults(func=_cmd_params)

    for name, func, text in (
        ("data", _cmd_data, "render, slice and label the dataset"),
        ("features", _cmd_features, "compute the 513x90 spectrograms per split"),
        ("train", _cmd_train, "train the f0 regressor"),
        ("report", _cmd_report, "errors by pitch, instrument and segment, with baselines"),
        ("check", _cmd_check, "check that FluidSynth, sox and the soundfont are usable"),
    ):
        p = sub.add_parser(name, help=text)
        _add_config_args(p)
        p.add_argument("--workers", type=int, default=None, help="worker processes (default: every core)")
        if name in ("data", "features"):
            p.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT",
                           help="run the shards on this Dask scheduler (same as --set data.scheduler=...)")
        p.set_defaults(func=func)

    p = sub.add_parser("predict", help="f0 of audio files: one time,frequency,confidence CSV each")
    p.add_argument("audio", nargs="+", help="WAV, FLAC, MP3 or OGG files")
    p.add_argument("--model", default=None, help="a trained .keras model (default: models/default/model.keras)")
    p.add_argument("--output", default=None, help="folder for the CSVs (default: beside each file)")
    p.add_argument("--hop", type=float, default=None,
                   help="seconds between windows (default 0.010; 0.165 with --summary)")
    p.add_argument("--summary", action="store_true",
                   help="one line per file: f0, nearest note, cents off (and OUTPUT/summary.csv with --output)")
    p.add_argument("--batch-size", type=int, default=256, help="windows per model call (default 256)")
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser("evaluate", help="metrics and per-pitch tables on a folder of labeled notes")
    p.add_argument("audio_dir")
    p.add_argument("--model", default=None)
    p.add_argument("--labels", default=None, help="CSV with path,frequency or path,note columns")
    p.add_argument("--output", default=None, help="folder for the tables (default: AUDIO_DIR/evaluation)")
    p.set_defaults(func=_cmd_evaluate)
    return parser


def _terminate(signum, frame):
    raise KeyboardInterrupt  # `kill` gets the same tidy stop as Ctrl-C


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter hides our output
    signal.signal(signal.SIGTERM, _terminate)
    try:
        return args.func(args)
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished outputs are kept; run the same command again to resume", file=sys.stderr)
        return 130
