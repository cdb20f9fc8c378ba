"""Rendering: the `make data` engine against the original experiment's process-per-note
pipeline, and against FluidSynth's own synthesis of the same notes.

Measured interleaved in one run, on one plan of notes:
- engine: `build_dataset` on a fresh root with every core (process start-up, soundfont
  loads, manifest and all), clips per second; also on half the plan, so that the
  difference gives the rate of a large build once its workers are up (marginal);
- naive: `bench.naive` on every k-th note of the same plan (a process per note: its rate
  does not depend on how many notes it gets), one note per core at a time, and serially;
- synthesis: `Renderer.render` alone on one core (soundfont loaded once, no sox, no
  slicing, no writing); the engine's cost per note and core is compared with it, end to
  end, marginal, and in the steady state (`render_shard` in this process, warm);
- a cProfile of the steady state, split into the engine's stages.
"""

from __future__ import annotations

import contextlib
import cProfile
import io
import pstats
import shutil
from pathlib import Path

from bench import REPO, naive
from bench.timing import Stopwatch, Timing, load
from pipeline.core.measure import cores

# a few instruments of different families x a few dozen notes x two velocities, the default soundfont
INSTRUMENTS = ("Violin", "Acoustic Grand Piano", "Trumpet", "Flute")
NOTE_LOW, NOTE_HIGH = 48, 95          # C3..B6: every instrument has samples there
VELOCITIES = (80, 110)                # 4 x 48 x 2 = 384 notes, about 1,150 clips
SOUNDFONT = "soundfonts/FluidR3_GM.sf2"
QUICK_INSTRUMENTS, QUICK_NOTE_HIGH, QUICK_VELOCITIES = ("Violin", "Flute"), 53, (100,)
QUICK_SOUNDFONT = "soundfonts/TimGM6mb.sf2"
# the engine's stages: cumulative time of these functions (pipeline/*) inside render_shard
STAGES = {"synthesis (Renderer.render)": "render", "MIDI file (midiutil)": "note_midi_bytes",
          "mono mix + resampling (one soxr call per shard)": "batch_to_dataset_rate",
          "slice, gate, WAV bytes, write (_note_clips)": "_note_clips"}


def config(root: Path, quick: bool, half: bool = False):
    """The benchmark's plan; `half` keeps the first half of the instruments (for the marginal rate)."""
    from pipeline.core.config import load_config

    instruments = QUICK_INSTRUMENTS if quick else INSTRUMENTS
    if half:
        instruments = instruments[:len(instruments) // 2]
    font = (REPO / (QUICK_SOUNDFONT if quick else SOUNDFONT)).resolve()
    names = ", ".join(f'"{i}"' for i in instruments)
    root.mkdir(parents=True, exist_ok=True)   # a config's root must be a folder, or a new one in one
    return load_config(None, [
        f'root="{root}"', 'name="bench_render"', f'data.soundfont="{font}"', f"data.instruments=[{names}]",
        f"data.note_low={NOTE_LOW}", f"data.note_high={QUICK_NOTE_HIGH if quick else NOTE_HIGH}",
        f"data.velocities={list(QUICK_VELOCITIES if quick else VELOCITIES)}", "data.workers=0",
        'split.test="random"'])


def _quietly():
    """build_dataset prints a summary and a progress bar: keep the benchmark's output readable."""
    stack = contextlib.ExitStack()
    stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
    stack.enter_context(contextlib.redirect_stderr(io.StringIO()))
    return stack


def _build(cfg, timing: Timing) -> int:
    """build_dataset on a fresh root, timed; returns the clips it kept."""
    from pipeline.data import dataset as D
    from pipeline.data.rendering import clear_soundfont_cache

    clear_soundfont_cache()  # a real build hashes the soundfont once: so does this one
    with _quietly(), Stopwatch(timing):
        manifest = D.build_dataset(cfg)
    return len(manifest)


def _engine_runs(ctx, notes, sha: str, scratch: Path) -> dict:
    """Synthesis alone, the steady state and the engine end to end (full and half plan), interleaved."""
    from pipeline.data import dataset as D
    from pipeline.data import plan as P
    from pipeline.data.rendering import Renderer, note_midi_bytes

    cfg0 = config(scratch / "plan", ctx.quick)
    d = cfg0.data
    renderer = Renderer(d.soundfont, d.gain)
    midi_files = [note_midi_bytes(n.program, n.midi, n.velocity, n.bend, d.hold_seconds) for n in notes]
    t = {name: Timing() for name in ("synthesis", "steady", "engine", "half")}
    runs = {"loads": [load()]}
    for rep in range(ctx.reps):
        with Stopwatch(t["synthesis"]):
            for data in midi_files:
                renderer.render(data, d.hold_seconds + d.release_seconds)
        cfg = config(scratch / f"steady{rep}", ctx.quick)
        shards = P.plan_shards(cfg, notes, sha)
        D.render_shard(shards[0])  # loads this process's soundfont outside the clock
        shutil.rmtree(cfg.data_dir, ignore_errors=True)
        with Stopwatch(t["steady"]):
            for task in shards:
                D.render_shard(task)
        runs["engine_cfg"] = config(scratch / f"engine{rep}", ctx.quick)
        runs["clips"] = _build(runs["engine_cfg"], t["engine"])
        half = config(scratch / f"half{rep}", ctx.quick, half=True)
        runs["half_notes"] = len(P.plan_notes(half))
        _build(half, t["half"])
        runs["loads"].append(load())
    renderer.close()
    return {**t, **runs}


def _naive_runs(ctx, notes, scratch: Path) -> dict:
    cfg0 = config(scratch / "plan", ctx.quick)
    d = cfg0.data
    parallel, serial = notes[::ctx.naive_parallel_stride], notes[::ctx.naive_serial_stride]
    t_par, t_ser = Timing(), Timing()
    loads, clips = [], 0
    for rep in range(ctx.naive_reps):
        folder = scratch / f"naive{rep}"
        with Stopwatch(t_par):
            clips = naive.render_notes(parallel, d.soundfont, d.gain, d.hold_seconds, d.sustain_at,
                                       folder / "parallel", cores())
        with Stopwatch(t_ser):
            naive.render_notes(serial, d.soundfont, d.gain, d.hold_seconds, d.sustain_at, folder / "serial", 1)
        loads.append(load())
    return {"parallel": t_par, "serial": t_ser, "parallel_notes": len(parallel), "serial_notes": len(serial),
            "clips": clips, "folder": scratch / "naive0" / "parallel", "loads": loads}


def run(ctx) -> dict:
    from pipeline.data import dataset as D
    from pipeline.data.plan import plan_notes
    from pipeline.data.rendering import soundfont_info

    scratch = ctx.scratch / "render"
    cfg0 = config(scratch / "plan", ctx.quick)
    notes = plan_notes(cfg0)
    sha = soundfont_info(cfg0.data.soundfont)["sha256"]
    e = _engine_runs(ctx, notes, sha, scratch)
    nv = _naive_runs(ctx, notes, scratch)
    same_kind = naive.clip_lengths_ok(nv["folder"])
    similarity = _similarity(e["engine_cfg"], nv["folder"])
    breakdown = _profile(D, config(scratch / "profile", ctx.quick), notes, sha)
    shutil.rmtree(scratch, ignore_errors=True)

    n, c = len(notes), cores()
    engine, synth, steady, par, ser = e["engine"], e["synthesis"], e["steady"], nv["parallel"], nv["serial"]
    naive_nps = nv["parallel_notes"] / par.best
    extra_notes, extra_time = n - e["half_notes"], engine.best - e["half"].best
    marginal_nps = extra_notes / extra_time if extra_time > 0 else None
    synth_note = synth.best / n
    return {
        "config": {"soundfont": Path(cfg0.data.soundfont).name, "instruments": list(cfg0.data.instruments),
                   "velocities": list(cfg0.data.velocities), "notes": n,
                   "note_range": [cfg0.data.note_low, cfg0.data.note_high],
                   "seconds_per_note": cfg0.data.hold_seconds + cfg0.data.release_seconds,
                   "shard_size": cfg0.data.shard_size},
        "cores": c,
        "load_average": e["loads"] + nv["loads"],
        "engine": {**engine.summary(e["clips"], "clips"), "notes": n, "workers": c,
                   "notes_per_second_best": round(n / engine.best, 2),
                   "cpu_ms_per_note": round(1000 * engine.best_cpu / n, 2)},
        "engine_half": {**e["half"].summary(e["half_notes"], "notes"), "workers": c},
        "engine_marginal": {"notes": extra_notes, "seconds": round(extra_time, 4),
                            "notes_per_second": round(marginal_nps, 2) if marginal_nps else None,
                            "clips_per_second": round(marginal_nps * e["clips"] / n, 1) if marginal_nps else None},
        "naive_parallel": {**par.summary(nv["clips"], "clips"), "notes": nv["parallel_notes"], "workers": c,
                           "notes_per_second_best": round(naive_nps, 2),
                           "cpu_ms_per_note": round(1000 * par.best_cpu / nv["parallel_notes"], 2)},
        "naive_serial": {**ser.summary(3 * nv["serial_notes"], "clips"), "notes": nv["serial_notes"], "workers": 1,
                         "notes_per_second_best": round(nv["serial_notes"] / ser.best, 2),
                         "cpu_ms_per_note": round(1000 * ser.best_cpu / nv["serial_notes"], 2)},
        "synthesis": {**synth.summary(n, "notes"), "cores": 1, "ms_per_note_best": round(1000 * synth_note, 3)},
        "engine_steady": {**steady.summary(n, "notes"), "cores": 1,
                          "ms_per_note_best": round(1000 * steady.best / n, 3)},
        "naive_same_output_kind": same_kind,
        "naive_vs_engine_similarity": similarity,
        "engine_breakdown_ms_per_note": breakdown,
        # speed-ups from notes per wall second (the same notes on both sides), best runs
        "speedup_vs_naive_parallel": round((n / engine.best) / naive_nps, 1),
        "speedup_vs_naive_serial": round((n / engine.best) / (nv["serial_notes"] / ser.best), 1),
        "speedup_vs_naive_marginal": round(marginal_nps / naive_nps, 1) if marginal_nps else None,
        # the same in CPU time per note (children included): what a busy, shared machine disturbs least
        "speedup_vs_naive_cpu": round((par.best_cpu / nv["parallel_notes"]) / (engine.best_cpu / n), 1),
        # cost per note and core, relative to synthesis alone (1.0 = as cheap as FluidSynth itself)
        "engine_cost_vs_synthesis": {
            "end_to_end_wall": round(engine.best * c / n / synth_note, 2),
            "end_to_end_cpu": round(engine.best_cpu / synth.best_cpu, 2),
            "marginal_wall": round(c / marginal_nps / synth_note, 2) if marginal_nps else None,
            "steady_state_wall": round(steady.best / synth.best, 2),
            "steady_state_cpu": round(steady.best_cpu / synth.best_cpu, 2),
        },
    }


def _similarity(cfg, naive_folder: Path) -> dict:
    """Similarity of each engine sustain clip's magnitude spectrum with the naive clip's of the
    same note (1 = the same): both pipelines make the same sound, whatever the alignment."""
    import numpy as np
    import pandas as pd
    import soundfile as sf

    manifest = pd.read_csv(cfg.data_dir / "manifest.csv")
    scores = []
    for row in manifest[manifest["segment"] == "sustain"].itertuples():
        other = naive_folder / f"{row.program}_{row.midi}_{row.velocity}_sustain.wav"
        if other.is_file():
            a, _ = sf.read(str(cfg.data_dir / row.path), dtype="float32")
            b, _ = sf.read(str(other), dtype="float32")
            scores.append(naive.spectral_similarity(a, b))
    if not scores:
        return {"clips": 0}
    return {"clips": len(scores), "median_spectral_similarity": round(float(np.median(scores)), 4),
            "min_spectral_similarity": round(float(np.min(scores)), 4)}


def _profile(D, cfg, notes, sha) -> dict:
    """ms per note spent in each stage of render_shard (cumulative; cProfile's overhead included)."""
    from pipeline.data.plan import plan_shards

    shards = plan_shards(cfg, notes, sha)
    profile = cProfile.Profile()
    profile.enable()
    for task in shards:
        D.render_shard(task)
    profile.disable()
    stats = pstats.Stats(profile).stats
    per_note = lambda seconds: round(1000 * seconds / len(notes), 3)  # noqa: E731
    total = sum(v[3] for k, v in stats.items() if k[2] == "render_shard")
    out = {"total": per_note(total)}
    for label, func in STAGES.items():
        out[label] = per_note(sum(v[3] for k, v in stats.items() if k[2] == func and "pipeline" in k[0]))
    out["other"] = round(out["total"] - sum(out[label] for label in STAGES), 3)
    top = sorted(stats.items(), key=lambda kv: kv[1][2], reverse=True)[:12]  # by own time
    out["top_own_time"] = [{"function": f"{Path(k[0]).name}:{k[1]}({k[2]})", "ms_per_note": per_note(v[2])}
                           for k, v in top]
    shutil.rmtree(cfg.data_dir, ignore_errors=True)
    return out
