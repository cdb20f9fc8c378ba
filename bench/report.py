"""The summary rows (ours, the baseline, the ratio, the target) and the Markdown table."""

from __future__ import annotations

from bench.memory import GROWTH_LIMIT

RENDER_TARGET = 30.0      # x faster than the naive pipeline on the same cores
SYNTH_TARGET = 2.0        # engine cost per note and core within this factor of synthesis alone
FEATURES_TARGET = 3.0     # x faster than the per-clip loop


def _row(benchmark, ours, baseline, ratio, target, met, note="", check=None) -> dict:
    return {"benchmark": benchmark, "ours": ours, "baseline": baseline, "ratio": ratio, "target": target,
            "met": met, "check": check, "note": note}


def summary(results: dict) -> list[dict]:
    rows = []
    r = results.get("render")
    if r:
        e, par, ser = r["engine"], r["naive_parallel"], r["naive_serial"]
        c = r["cores"]
        rows.append(_row(f"render: clips/s, engine vs naive CLI pipeline, both on {c} cores",
                         f"{e['clips_per_second_best']:.0f} clips/s", f"{par['clips_per_second_best']:.1f} clips/s",
                         r["speedup_vs_naive_parallel"], f">= {RENDER_TARGET:.0f}x",
                         r["speedup_vs_naive_parallel"] >= RENDER_TARGET,
                         f"{r['config']['notes']} notes, {r['config']['soundfont']}; naive = fluidsynth + sox "
                         "process per note, one note per core at a time"))
        marginal = r.get("engine_marginal") or {}
        if marginal.get("clips_per_second"):
            rows.append(_row(f"render: same, marginal rate of the engine (once started) vs naive, {c} cores",
                             f"{marginal['clips_per_second']:.0f} clips/s",
                             f"{par['clips_per_second_best']:.1f} clips/s",
                             r["speedup_vs_naive_marginal"], "", None,
                             "(full - half plan) / time difference: the rate of a large build"))
        rows.append(_row(f"render: engine on {c} cores vs naive serial (1 process at a time)",
                         f"{e['clips_per_second_best']:.0f} clips/s", f"{ser['clips_per_second_best']:.1f} clips/s",
                         r["speedup_vs_naive_serial"], "", None, f"naive serial on {ser['notes']} of the notes"))
        k = r["engine_cost_vs_synthesis"]
        rows.append(_row("render: engine cost per note and core / FluidSynth synthesis alone (end to end)",
                         f"{1000 * min(e['wall_seconds']) * c / r['config']['notes']:.1f} ms/note/core",
                         f"{r['synthesis']['ms_per_note_best']:.1f} ms/note", k["end_to_end_wall"],
                         f"<= {SYNTH_TARGET:.0f}x", k["end_to_end_wall"] <= SYNTH_TARGET,
                         f"CPU-time ratio {k['end_to_end_cpu']}; includes worker start-up and soundfont loads; "
                         f"marginal {k.get('marginal_wall')}x"))
        rows.append(_row("render: same, steady state (render_shard, warm, 1 core)",
                         f"{r['engine_steady']['ms_per_note_best']:.1f} ms/note",
                         f"{r['synthesis']['ms_per_note_best']:.1f} ms/note", k["steady_state_wall"],
                         f"<= {SYNTH_TARGET:.0f}x", k["steady_state_wall"] <= SYNTH_TARGET,
                         f"CPU-time ratio {k['steady_state_cpu']}"))
    f = results.get("features")
    if f:
        files = f.get("file_to_file")
        if files:
            rate = lambda key: f"{files[key]['spectrograms_per_second_best']:.0f}/s"  # noqa: E731
            rows.append(_row(f"features: spectrograms/s, build_features ({files['workers']} worker processes) vs a "
                             "per-clip scipy loop, file to file", rate("build_features"), rate("naive_loop"),
                             files["speedup"], f">= {FEATURES_TARGET:.0f}x", files["speedup"] >= FEATURES_TARGET,
                             f"{files['clips']} clips read from WAVs, written to the split .npy files; "
                             f"identical files: {files['identical_files']}; the loop in one process",
                             check=files["identical_files"]))
        rows.append(_row("features: same, in memory on 1 thread (what batching alone gives)",
                         f"{f['batched']['spectrograms_per_second_best']:.0f}/s",
                         f"{f['per_clip_loop']['spectrograms_per_second_best']:.0f}/s", f["speedup"], "", None,
                         f"values identical: {f['identical']} (max |diff| {f['max_abs_difference']:.3g}); "
                         f"{f['clips']} clips, batch {f['batch_size']}, FFTs {f.get('fft_chunk', '?')} clips at a time",
                         check=f["allclose"]))
    rows += clip_format_rows(results.get("clip_formats"))
    t = results.get("training")
    if t:
        for label, m in t["models"].items():
            if "same_as" in m:
                rows.append(_row(f"training: {label} model", f"= {m['same_as']}", "", None, "", None, m["note"]))
                continue
            cpu, gpu = m["cpu"], m["gpu"]
            rows.append(_row(f"training: {label} model ({cpu['variant']}, width {cpu['width']:g}), samples/s on CPU",
                             f"{cpu['samples_per_second']:.1f} samples/s", "", None, "", None,
                             f"{t['cores']} cores, batch {cpu['batch_size']}, {cpu['steps_timed']} steps after the "
                             f"first, {cpu['params']:,} parameters"))
            rows.append(_row(f"training: {label} model, samples/s on GPU",
                             f"{gpu['samples_per_second']:.1f} samples/s" if gpu else "n/a", "", None, "", None,
                             "" if gpu else (m.get("gpu_note") or "")))
    p = results.get("prediction")
    if p:
        rows += prediction_rows(p)
    m = results.get("memory")
    if m:
        runs = m["runs"]
        for stage in ("data", "features"):
            peaks = ", ".join(f"{v['clips']:,} clips: {v[stage]['peak_tree_anon_mib']:.0f} MiB heap "
                              f"({v[stage]['peak_tree_rss_mib']:.0f} MiB RSS)" for v in runs.values())
            growth = (m.get("growth") or {}).get(stage)
            note = (f"clips x{m['clips_ratio']}; RSS x{m['growth_rss'][stage]}" if growth is not None
                    else m.get("note", ""))
            rows.append(_row(f"memory: peak of pipeline {stage}, process tree (heap = anonymous PSS)", peaks, "",
                             growth, f"flat (<= {GROWTH_LIMIT}x)", None if growth is None else growth <= GROWTH_LIMIT,
                             note))
    return rows


def clip_format_rows(c: dict | None) -> list[dict]:
    """Each clip format's data build against the default clips' on the same notes (no target: a cost)."""
    if not c:
        return []
    rows = []
    formats = list(c["formats"].items())
    default_name, default = formats[0]
    describe = lambda f: (f"{f['clips_per_second']:.0f} clips/s, {f['audio_seconds_per_second']:.0f} s of audio/s, "  # noqa: E731
                          f"{f['bytes_per_clip'] / 1024:.0f} KiB/clip")
    for name, f in formats[1:]:
        rows.append(_row(f"data: {name} vs {default_name}, the same {c['notes']} notes (build time ratio)",
                         describe(f), describe(default), f["data_time_vs_default"], "", None,
                         f"{f['mib']:.1f} MiB vs {default['mib']:.1f}; frame examples {f['features_seconds']:.1f} s "
                         f"vs {default['features_seconds']:.1f} s"))
    return rows


def _times(x) -> str:
    return f"{x:.3g}x" if x else "n/a"


def prediction_rows(p: dict) -> list[dict]:
    """The predict path's x real time (target), against each tracker, at --summary's hop; the start-up."""
    if "trackers" not in p:   # kept from a results.json older than these rows
        return [_row("prediction: results in an older layout", "", "", None, "", None,
                     "rerun: python -m bench.run --only prediction")]
    trackers, ours = p["trackers"], p["trackers"]["ours"]
    runs = len(ours["runs_seconds"])
    loads = f"load average {p['load_average'][0]}-{p['load_average'][-1]} on {p.get('cores_visible') or '?'} core"
    files = (f"{p['audio_seconds']:g} s in {len(p['files'])} files (one {max(f['sample_rate'] for f in p['files'])} Hz "
             "stereo), reading and resampling included")
    rows = [_row(f"prediction: x real time on 1 core, predict path (hop {1000 * ours['hop_seconds']:g} ms), "
                 "model loaded and warm", _times(ours["x_realtime"]), "", None, f">= {p['target_x_realtime']:g}x",
                 ours["x_realtime"] >= p["target_x_realtime"],
                 f"{files}; ONNX Runtime, 1 thread, {p['pinned']}; best of {runs} interleaved runs; {loads}")]
    for name, t in trackers.items():
        if name.startswith("ours"):
            continue
        aim = name == "swift_f0"    # the aim: ahead of SwiftF0 in the same run
        if t.get("skipped"):
            rows.append(_row(f"prediction: predict path vs {t['title']}", _times(ours["x_realtime"]), "skipped",
                             None, "", None, t["skipped"]))
            continue
        rows.append(_row(f"prediction: x real time on 1 core, predict path vs {t['title']} "
                         f"(its hop {1000 * t['hop_seconds']:g} ms)", _times(ours["x_realtime"]),
                         _times(t["x_realtime"]), p["ours_vs"][name], "> 1x (aim)" if aim else "",
                         p["ours_vs"][name] > 1 if aim else None,
                         f"same files, same process; best of {len(t['runs_seconds'])} run(s); "
                         + ", ".join(f"{k} {v}" for k, v in t["settings"].items())))
    summary = trackers.get("ours_summary")
    if summary is not None:   # a clip model's summary hop; a frame model's --summary is the predict path
        rows.append(_row(f"prediction: x real time on 1 core, `predict --summary` (hop "
                         f"{1000 * summary['hop_seconds']:g} ms)", _times(summary["x_realtime"]), "", None, "", None,
                         "the clip model's summary reads 165 ms windows"))
    rows.append(_startup_row(p))
    return rows


def _startup_row(p: dict) -> dict:
    s, imports = p["startup"], p["startup"]["imports"]
    top = ", ".join(f"{k} {v:.2f}" for k, v in imports["top_seconds"].items())
    note = (f"{p['pinned']}; imports {imports['total_seconds']:.2f} s of a {s['importtime_run_seconds']:.2f} s run "
            f"under -X importtime, self time per package: {top} s; load_predictor in-process "
            f"{s['load_predictor_seconds']:.3f} s ({s['load_predictor_again_seconds']:.3f} s once onnxruntime is "
            "imported)")
    return _row(f"prediction: start-up of `pipeline predict --summary` on a {s['file_seconds']:g} s file "
                f"(fresh process, median of {len(s['runs_seconds'])})", f"{s['median_seconds']:.2f} s", "", None,
                f"< {p['startup_target_seconds']:g} s", s["median_seconds"] < p["startup_target_seconds"], note)


def _cell(value) -> str:
    if value is None:
        return ""
    if value is True:
        return "yes"
    if value is False:
        return "**no**"
    if isinstance(value, float):
        return f"{value:g}x" if value < 100 else f"{value:.0f}x"
    return str(value).replace("|", "\\|")


def markdown(results: dict) -> str:
    env = results.get("environment", {})
    lines = [f"Measured by `make bench` on {env.get('cpu', '?')}, {env.get('cores_used', '?')} cores used "
             f"({env.get('memory_mib', '?')} MiB RAM), Python {env.get('python', '?')}, "
             f"{env.get('fluidsynth', '')}, {env.get('sox', '')}"
             + (" — **quick run: sizes too small to mean much**" if env.get("quick") else "") + ".",
             "",
             "| benchmark | ours | baseline | ratio | target | met | notes |",
             "|---|---|---|---|---|---|---|"]
    for row in results.get("summary", []):
        lines.append("| " + " | ".join(_cell(row[k]) for k in ("benchmark", "ours", "baseline", "ratio", "target",
                                                                 "met", "note")) + " |")
    loads = {name: (results.get(name) or {}).get("load_average")
             for name in ("render", "features", "clip_formats", "training", "prediction")}
    shown = ", ".join(f"{k} {v[0]}–{max(v)}" for k, v in loads.items() if v)
    if shown:
        lines += ["", f"Load average during the runs (other work on the machine): {shown}. Ratios come from "
                      "interleaved runs in one process; rates are the best of the repetitions."]
    r = results.get("render")
    if r and r.get("engine_breakdown_ms_per_note"):
        b = r["engine_breakdown_ms_per_note"]
        lines += ["", "Where the engine's time goes, per note (cProfile of `render_shard`, one core):", "",
                  "| stage | ms/note |", "|---|---|"]
        lines += [f"| {k} | {v:.2f} |" for k, v in b.items() if isinstance(v, (int, float))]
    return "\n".join(lines) + "\n"
