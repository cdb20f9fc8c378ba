"""The commands users run on their own audio: `pipeline predict` and `pipeline evaluate` (their
options, and what they print); pipeline.cli holds the rest of the command line."""

from __future__ import annotations

import sys
from pathlib import Path

from pipeline.core.errors import PipelineError


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
    hop = prediction.check_options(args.hop, args.summary, args.batch_size, args.fmin, args.fmax)
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
                          args.format, args.plot, (args.fmin, args.fmax))
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


def add_predict_parser(sub) -> None:
    text = "f0 of audio files: one time,frequency,confidence file each (CSV, NPZ or JSON)"
    p = sub.add_parser("predict", help=text, description=text)
    p.add_argument("audio", nargs="+", metavar="AUDIO",
                   help="WAV, FLAC, MP3 or OGG files at any rate and channels; folders (searched recursively), "
                        "glob patterns ('notes/**/*.wav'), or - for audio on standard input")
    p.add_argument("--model", default=None, metavar="MODEL",
                   help="a trained model, e.g. models/default/model.keras (default: the model shipped in the package)")
    p.add_argument("--output", default=None, metavar="DIR", help="folder for the CSVs (default: beside each file)")
    p.add_argument("--hop", type=float, default=None, metavar="SECONDS",
                   help="seconds between frames (default 0.010; with --summary and a clip model 0.165)")
    p.add_argument("--fmin", type=float, default=None, metavar="HZ",
                   help="the lowest pitch to answer (e.g. 60 for speech); default: the model's whole range")
    p.add_argument("--fmax", type=float, default=None, metavar="HZ",
                   help="the highest pitch to answer (e.g. 1100 for singing); default: the model's whole range")
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


def add_evaluate_parser(sub) -> None:
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
