"""python -m pipeline.experiments [--config configs/experiments.toml] [--only NAME,...] [--set KEY=VALUE]"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m pipeline.experiments",
                                     description="reproduce the original write-ups' experiments")
    parser.add_argument("--config", default=None, metavar="FILE.toml",
                        help="TOML file with an [experiments] table (default: built-in settings)")
    parser.add_argument("--only", default="", metavar="NAME,...", help="run only these experiments")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one setting, e.g. --set reference.epochs=5 or --set scale=original")
    parser.add_argument("--out", default="reports/experiments", help="where the reports go")
    parser.add_argument("--data", default="data", help="where the experiments' datasets go")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    from pipeline.errors import PipelineError
    from pipeline.experiments.runner import run_experiments
    from pipeline.experiments.settings import load_settings

    args = parse_args(argv)
    try:
        settings = load_settings(args.config, args.overrides)
        names = [n.strip() for n in args.only.split(",") if n.strip()] or None
        run_experiments(settings, names, Path(args.out), Path(args.data))
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
