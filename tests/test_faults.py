"""Nothing lost, nothing half-done (issue 14): stages killed at random moments resume to the
same bytes, with no temporary file and no process left; damaged outputs are repaired, and
only those; Ctrl-C stops a build at once; faults a user can fix are one line.

The moments are drawn from a seeded generator, so a failure can be replayed. Waits on
processes have generous bounds that only turn a hang into a failure (no timing assertions).
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from pipeline.core import constants as C
from pipeline.core.artifacts import write_bytes
from pipeline.core.config import to_toml
from pipeline.core.errors import PipelineError
from pipeline.data.dataset import build_dataset
from pipeline.data.feature_files import RECORD_SUFFIX, features_dir, load_split, record_path, split_path
from pipeline.data.features import build_features
from pipeline.data.plan import make_plan, plan_shards
from pipeline.params import outdated
from tests.conftest import REPO, assert_processes_gone, like_a_terminal, run_cli, tiny_config

HANG = 60.0   # bound on waiting for a stopped process: only a hang reaches it
GONE = 15.0   # bound on waiting for a killed parent's workers and resource tracker to end
RNG = random.Random(14)
INTERRUPTED = "interrupted: finished outputs are kept; run the same command again to resume"


# --- watching a stage as a user runs it -------------------------------------------------------
def start(*args: str) -> subprocess.Popen:
    """`python -m pipeline ARGS` in its own process group (a terminal's job): SIGINT to the group
    is exactly what Ctrl-C sends."""
    return subprocess.Popen([sys.executable, "-m", "pipeline", *args], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True, preexec_fn=like_a_terminal)


def family_until(proc: subprocess.Popen, ready) -> dict[int, psutil.Process]:
    """Every descendant seen while waiting for ready() (or the process's end)."""
    seen: dict[int, psutil.Process] = {}
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            seen.update((p.pid, p) for p in psutil.Process(proc.pid).children(recursive=True))
        except psutil.NoSuchProcess:
            break
        if ready():
            break
        time.sleep(0.02)
    return seen


def send(proc: subprocess.Popen, how: str) -> None:
    sig = {"ctrl-c": signal.SIGINT, "term": signal.SIGTERM, "term-group": signal.SIGTERM, "hup-group": signal.SIGHUP,
           "kill": signal.SIGKILL, "kill-group": signal.SIGKILL}[how]
    if how == "ctrl-c" or how.endswith("group"):
        os.killpg(proc.pid, sig)
    else:
        os.kill(proc.pid, sig)


def assert_gone(family: dict[int, psutil.Process]) -> None:
    assert_processes_gone(list(family.values()), GONE)


def stderr_lines(text: str) -> list[str]:
    """What the user reads on stderr, without tqdm's progress bar."""
    return [line for line in text.splitlines() if line.strip() and "%|" not in line and not line.startswith("render")]


def temporary_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob(".*")) if folder.exists() else []


# --- features: killed at random moments, then resumed --------------------------------------
@pytest.fixture(scope="module")
def long_features(tiny_dataset, tmp_path_factory):
    """The tiny dataset's clips behind a manifest that lists them 4 times (about 1,500 rows: a
    features build of a few seconds), and the features of one uninterrupted build."""
    import pandas as pd

    root = tmp_path_factory.mktemp("long")
    cfg = dataclasses.replace(tiny_dataset, root=str(root), data=dataclasses.replace(tiny_dataset.data, workers=2))
    cfg.data_dir.mkdir(parents=True)
    (cfg.data_dir / "clips").symlink_to(tiny_dataset.data_dir / "clips")
    manifest = pd.read_csv(tiny_dataset.data_dir / "manifest.csv", keep_default_na=False, na_values=[""])
    pd.concat([manifest] * 4, ignore_index=True).to_csv(cfg.data_dir / "manifest.csv", index=False)
    build_features(cfg)
    reference = {name: (features_dir(cfg) / name).read_bytes() for name in outputs()}
    return cfg, reference


def outputs() -> list[str]:
    return [f"{s}.npy" for s in C.SPLITS] + [f"{s}{RECORD_SUFFIX}" for s in C.SPLITS]


def stop_when(proc, how: str, ready) -> None:
    """Send `how` once `ready()` (unless the run finished first), then check that it stopped as
    promised: no process left, and for a Ctrl-C or SIGTERM its exit code and one line."""
    family = family_until(proc, ready)
    finished_first = proc.poll() is not None
    if not finished_first:
        send(proc, how)
    _, err = proc.communicate(timeout=HANG)
    assert_gone(family)
    # the signal can land after the command returned, as the interpreter exits: ignored by design
    # (pipeline.cli.main), the run complete, exit 0 and not a word; the caller checks the outputs
    finished_first |= proc.returncode == 0 and not stderr_lines(err)
    if how in ("ctrl-c", "term", "term-group", "hup-group") and not finished_first:
        signum = {"ctrl-c": signal.SIGINT, "hup-group": signal.SIGHUP}.get(how, signal.SIGTERM)
        assert proc.returncode == 128 + signum, err
        assert stderr_lines(err) == [INTERRUPTED], err[-3000:]


def fresh_copy(cfg, root: Path):
    """A new dataset folder with the same clips and manifest, and its config file."""
    copy = dataclasses.replace(cfg, root=str(root))
    copy.data_dir.mkdir(parents=True)
    (copy.data_dir / "clips").symlink_to((cfg.data_dir / "clips").resolve())
    shutil.copy(cfg.data_dir / "manifest.csv", copy.data_dir / "manifest.csv")
    config = root / "long.toml"
    config.write_text(to_toml(copy))
    return copy, config


# every way of stopping, at least once, each at a random moment: the worker start-up, the
# spectrograms, a split's hash and rename, done.json
ROUNDS = [(how, round(RNG.uniform(0.3, 3.0), 2)) for how in ("ctrl-c", "term", "kill", "kill-group", "term-group")]


@pytest.mark.parametrize("how, moment", ROUNDS, ids=[f"{h}@{m}s" for h, m in ROUNDS])
def test_a_killed_features_build_resumes_to_the_same_bytes(long_features, tmp_path, how, moment):
    cfg, reference = long_features
    copy, config = fresh_copy(cfg, tmp_path)
    proc = start("features", "--config", str(config))
    began = time.monotonic()
    stop_when(proc, how, lambda: time.monotonic() - began >= moment)

    build_features(copy)  # resumed: the same function the CLI runs
    folder = features_dir(copy)
    assert {name: (folder / name).read_bytes() for name in outputs()} == reference
    assert temporary_files(folder) == []
    done = json.loads((folder / "done.json").read_text())
    assert done["splits"] == json.loads((features_dir(cfg) / "done.json").read_text())["splits"]


# --- features: damaged outputs are repaired, and only those ---------------------------------
def split_state(cfg) -> dict:
    return {s: (split_path(cfg, s).stat().st_ino, split_path(cfg, s).stat().st_mtime_ns) for s in C.SPLITS}


def flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))


DAMAGE = {
    "deleted": lambda path: path.unlink(),
    "flipped byte": flip_a_byte,
    "truncated": lambda path: path.write_bytes(path.read_bytes()[: path.stat().st_size // 2]),
}


@pytest.mark.parametrize("damage, split", [("deleted", "test"), ("flipped byte", "val"), ("truncated", "train")])
def test_the_next_build_repairs_exactly_the_damaged_split(tiny_dataset, tmp_path, capsys, damage, split):
    cfg = dataclasses.replace(tiny_dataset, root=str(tmp_path))
    shutil.copytree(tiny_dataset.data_dir, cfg.data_dir, ignore=shutil.ignore_patterns("features"))
    build_features(cfg)
    good = split_path(cfg, split).read_bytes()
    done_before = (features_dir(cfg) / "done.json").read_bytes(), (features_dir(cfg) / "done.json").stat().st_mtime_ns
    others_before = {s: v for s, v in split_state(cfg).items() if s != split}
    DAMAGE[damage](split_path(cfg, split))
    if damage != "flipped byte":  # the cheap check on load sees a missing or short file; a flipped byte needs the hash
        with pytest.raises(PipelineError, match="make features") as err:
            load_split(cfg, split)
        assert "\n" not in str(err.value)
    capsys.readouterr()

    build_features(cfg)
    out = "".join(capsys.readouterr())
    assert split_path(cfg, split).read_bytes() == good
    assert f"{split}.npy is missing or damaged" in out and f"; {split} built" in out
    assert {s: v for s, v in split_state(cfg).items() if s != split} == others_before  # untouched
    # the repair gave back the recorded bytes: done.json stays as it was, so make does not retrain
    assert ((features_dir(cfg) / "done.json").read_bytes(), (features_dir(cfg) / "done.json").stat().st_mtime_ns) \
        == done_before
    assert split_path(cfg, split).stat().st_mtime_ns <= done_before[1]
    load_split(cfg, split)


def test_a_damaged_record_or_done_json_is_rebuilt_not_trusted(tiny_dataset, tmp_path, capsys):
    cfg = dataclasses.replace(tiny_dataset, root=str(tmp_path))
    shutil.copytree(tiny_dataset.data_dir, cfg.data_dir, ignore=shutil.ignore_patterns("features"))
    build_features(cfg)
    good = {s: split_path(cfg, s).read_bytes() for s in C.SPLITS}
    record_path(cfg, "val").write_text("")  # an empty record: val is rebuilt
    (features_dir(cfg) / "done.json").write_text("{garbled")
    with pytest.raises(PipelineError, match="missing or unfinished.*make features"):
        load_split(cfg, "train")
    train_before = split_state(cfg)["train"]
    build_features(cfg)
    assert "val built" in capsys.readouterr().out
    assert {s: split_path(cfg, s).read_bytes() for s in C.SPLITS} == good
    assert split_state(cfg)["train"] == train_before
    load_split(cfg, "train")


def test_leftover_temporary_files_of_dead_runs_are_removed_and_nothing_else(tiny_dataset, tmp_path):
    cfg = dataclasses.replace(tiny_dataset, root=str(tmp_path))
    shutil.copytree(tiny_dataset.data_dir, cfg.data_dir, ignore=shutil.ignore_patterns("features"))
    folder = features_dir(cfg)
    folder.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = [folder / f".train.npy.{dead.stdout.strip()}.tmp.npy", folder / ".val.npy.k2j4_x9a.tmp.npy"]
    live = folder / f".test.npy.{os.getppid()}.tmp.npy"  # a process that is running: maybe a build
    users = [folder / "notes.txt", folder / ".hidden", folder / "train.tmp.npy"]
    for path in [*stale, live, *users]:
        path.write_bytes(b"x" * 100)
    build_features(cfg)
    assert not any(p.exists() for p in stale)
    assert live.exists() and all(p.exists() for p in users)


# --- the data stage: Ctrl-C stops a long build at once ----------------------------------------
def long_data_config(root: Path) -> Path:
    cfg = tiny_config(root, "data.velocities=[20, 40, 60, 80, 100, 120]", "data.note_low=40", "data.note_high=100",
                      "data.shard_size=4", "data.workers=2")
    config = root / "long.toml"
    config.write_text(to_toml(cfg))
    return config


def clips_written(folder: Path) -> int:
    return sum(1 for _ in folder.rglob("*.wav")) if folder.exists() else 0


# at the workers' start-up (they exist, no clip yet), and while they render
DATA_ROUNDS = [("start-up", 0.0), ("render", round(RNG.uniform(0.0, 1.5), 2))]


@pytest.mark.parametrize("phase, extra", DATA_ROUNDS, ids=[f"{p}+{e}s" for p, e in DATA_ROUNDS])
def test_ctrl_c_stops_a_data_build_with_nothing_left_running(tmp_path, phase, extra):
    config = long_data_config(tmp_path)
    data = tmp_path / "data"
    proc = start("data", "--config", str(config))
    if phase == "start-up":
        ready = lambda: len(psutil.Process(proc.pid).children(recursive=True)) >= 2  # noqa: E731
    else:
        ready = lambda: clips_written(data) > 0  # noqa: E731
    family = family_until(proc, ready)
    assert proc.poll() is None, "the build ended before it could be interrupted"
    time.sleep(extra)
    family.update(family_until(proc, lambda: True))
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C
    _, err = proc.communicate(timeout=HANG)
    assert proc.returncode == 130
    assert stderr_lines(err) == [INTERRUPTED], err
    assert_gone(family)
    written = clips_written(data)
    time.sleep(1.0)
    assert clips_written(data) == written  # nothing goes on writing after the stop


# --- the data stage: killed at random moments, then resumed -----------------------------------
def data_outputs(cfg) -> dict[str, bytes]:
    """Every clip, every shard record and the manifest, by path in the dataset folder."""
    folder = cfg.data_dir
    files = [*folder.glob("clips/**/*.wav"), *folder.glob("shards/*.csv"), folder / "manifest.csv"]
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in files}


def file_states(folder: Path, pattern: str) -> dict[str, tuple[int, int]]:
    """(inode, mtime) of each file: a file rewritten, even with the same bytes, changes them."""
    return {p.relative_to(folder).as_posix(): (p.stat().st_ino, p.stat().st_mtime_ns) for p in folder.glob(pattern)}


def notes_rendered(cfg) -> int:
    return json.loads((cfg.data_dir / "build.json").read_text())["notes_rendered"]


def notes_of(cfg, chosen) -> int:
    """How many notes the shards whose key is chosen hold."""
    return sum(len(t.notes) for t in plan_shards(cfg, list(make_plan(cfg).notes)) if chosen(t.key))


# each way of stopping, once, when a seeded random number of clips is written (0: the workers
# have started, no clip yet); the tiny dataset has 373 clips
DATA_KILLS = [(how, RNG.choice([0, RNG.randint(1, 360)])) for how in ("ctrl-c", "term", "kill", "kill-group",
                                                                       "term-group")]


@pytest.mark.parametrize("how, clips", DATA_KILLS, ids=[f"{h}@{c}clips" for h, c in DATA_KILLS])
def test_a_killed_data_build_resumes_to_the_same_bytes(tiny_dataset, tmp_path, capsys, how, clips):
    """The build renders only the shards with no record (a finished shard's record is kept, even
    one finished as the stop came) and ends with the uninterrupted build's clips, records and
    manifest, byte for byte, with no temporary file and no process left."""
    cfg = tiny_config(tmp_path, "data.workers=2")  # tiny_dataset's plan: the same shards
    config = tmp_path / "tiny.toml"
    config.write_text(to_toml(cfg))
    proc = start("data", "--config", str(config))
    if clips:
        ready = lambda: clips_written(cfg.data_dir) >= clips  # noqa: E731
    else:
        ready = lambda: len(psutil.Process(proc.pid).children(recursive=True)) >= 2  # noqa: E731
    stop_when(proc, how, ready)
    recorded = {p.stem for p in (cfg.data_dir / "shards").glob("*.csv")}
    capsys.readouterr()

    build_dataset(cfg)  # resumed: the same function the CLI runs
    assert "rendering its shard again" not in capsys.readouterr().out  # no record was left damaged
    assert notes_rendered(cfg) == notes_of(cfg, lambda key: key not in recorded)
    assert data_outputs(cfg) == data_outputs(tiny_dataset)
    assert temporary_files(cfg.data_dir) == []


def test_a_stop_still_records_every_shard_that_had_finished(tmp_path, monkeypatch):
    """Ctrl-C arrives while the parent records one shard and another has finished meanwhile: that
    one's record is written too, before the stop goes on (workers.collect); a shard still
    running gets none. Deterministic: the futures are made here and the stop is raised by the
    progress bar's first update."""
    from concurrent.futures import Future

    import tqdm

    from pipeline.data.dataset import collect_shards

    cfg = tiny_config(tmp_path, "data.workers=2")
    shards = plan_shards(cfg, list(make_plan(cfg).notes))[:3]
    futures = [Future() for _ in shards]
    for future in futures[:2]:
        future.set_result([{"path": "clips/x.wav", "sha256": ""}])
    real_update, stops = tqdm.tqdm.update, []

    def update(self, n=1):
        if not stops:
            stops.append(n)
            raise KeyboardInterrupt
        return real_update(self, n)

    monkeypatch.setattr(tqdm.tqdm, "update", update)
    (cfg.data_dir / "shards").mkdir(parents=True)
    with pytest.raises(KeyboardInterrupt):
        collect_shards(cfg, shards, dict(zip(futures, shards)))
    assert sorted(p.stem for p in (cfg.data_dir / "shards").glob("*.csv")) == sorted(t.key for t in shards[:2])


# --- the data stage: damaged outputs are repaired, and only those ----------------------------
def record_of(cfg, clip: str) -> str:
    """The shard record (shards/KEY.csv) that lists a clip."""
    return next(p.relative_to(cfg.data_dir).as_posix() for p in sorted((cfg.data_dir / "shards").glob("*.csv"))
                if f"{clip}," in p.read_text())


def copy_dataset(cfg, root: Path):
    """A copy of a built dataset (mtimes kept), without its features."""
    copy = dataclasses.replace(cfg, root=str(root))
    shutil.copytree(cfg.data_dir, copy.data_dir, ignore=shutil.ignore_patterns("features"))
    return copy


def test_the_next_data_build_repairs_exactly_the_damaged_shards(tiny_dataset, tmp_path, capsys):
    cfg = copy_dataset(tiny_dataset, tmp_path)
    folder = cfg.data_dir
    assert outdated(cfg) is None
    clips = sorted(p.relative_to(folder).as_posix() for p in folder.glob("clips/**/*.wav"))
    deleted, flipped = clips[40], clips[300]
    records = sorted(p.relative_to(folder).as_posix() for p in folder.glob("shards/*.csv"))
    damaged = {record_of(cfg, deleted), record_of(cfg, flipped)}
    empty, garbled, truncated = [r for r in records if r not in damaged][:3]
    clips_before, records_before = file_states(folder, "clips/**/*.wav"), file_states(folder, "shards/*.csv")
    manifest_before = (folder / "manifest.csv").stat().st_mtime_ns

    (folder / deleted).unlink()
    flip_a_byte(folder / flipped)
    (folder / empty).write_bytes(b"")
    (folder / garbled).write_bytes(b"\x00\xff\xfe garbage, \"unclosed\n" * 3)
    (folder / truncated).write_bytes((folder / truncated).read_bytes()[:-700])  # its last rows gone
    assert outdated(cfg) is not None  # make notices (pipeline params data touches data.json)
    build_dataset(cfg)
    out = "".join(capsys.readouterr())   # the repairs are warnings: on stderr
    for record, why in [(empty, "is empty"), (garbled, "is garbled"), (truncated, "rendering its shard again"),
                        (record_of(cfg, deleted), deleted), (record_of(cfg, flipped), flipped)]:
        assert f"data: {record} " in out and why in out.split(f"data: {record} ")[1].splitlines()[0], out

    assert data_outputs(cfg) == data_outputs(tiny_dataset)  # repaired, to the same bytes
    repaired = {deleted, flipped, empty, garbled, truncated}
    assert {p: v for p, v in file_states(folder, "clips/**/*.wav").items() if p not in repaired} == \
        {p: v for p, v in clips_before.items() if p not in repaired}  # the other clips untouched
    assert {p: v for p, v in file_states(folder, "shards/*.csv").items() if p not in damaged | repaired} == \
        {p: v for p, v in records_before.items() if p not in damaged | repaired}
    assert (folder / "manifest.csv").stat().st_mtime_ns == manifest_before  # same content: not rewritten
    assert notes_rendered(cfg) == notes_of(cfg, lambda key: f"shards/{key}.csv" in damaged | repaired)
    assert outdated(cfg) is None
    build_dataset(cfg)
    assert notes_rendered(cfg) == 0


def test_a_users_files_survive_every_build(tiny_dataset, tmp_path):
    """Nothing the pipeline did not write is deleted: not by a build, a repair, or a build of other
    settings; nor the clips of shards those settings no longer plan. What killed builds left
    (temporary files of their pattern, of a process that is gone) is removed."""
    cfg = copy_dataset(tiny_dataset, tmp_path)
    folder = cfg.data_dir
    planned = file_states(folder, "clips/**/*.wav")
    users = ["clips/mine.wav", "clips/timgm6mb/violin/take2.wav", "clips/timgm6mb/notes.txt", "clips/.hidden",
             "shards/notes.csv", "shards/0123456789abcdef0123.csv", "shards/.keep", "mine.txt"]
    for rel in users:
        (folder / rel).write_bytes(b"mine")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    leftovers = [folder / f"clips/timgm6mb/violin/.violin_A4_69_440.00_attack_v100.wav.{dead}.tmp.wav",
                 folder / "clips/timgm6mb/flute/.flute_A4_69_440.00_decay_v100.wav.tmp",  # an earlier version's
                 folder / f"shards/.0123456789abcdef0123.csv.{dead}.tmp.csv"]
    for path in leftovers:
        path.write_bytes(b"half")
    (folder / sorted(planned)[7]).unlink()  # a repair
    build_dataset(cfg)
    narrower = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, instruments=("Violin", "Flute"),
                                                                  velocities=(60,)))
    build_dataset(narrower)
    assert all((folder / rel).read_bytes() == b"mine" for rel in users)
    assert set(planned) <= set(file_states(folder, "clips/**/*.wav"))
    assert not any(path.exists() for path in leftovers)


def test_a_clip_write_is_continued_after_a_short_write(tmp_path, monkeypatch):
    """The data stage's clip writer (clips.write_clip) keeps writing when the disk takes part of
    the bytes, and refuses a path outside the dataset."""
    from pipeline.data.clips import write_clip

    real_write = os.write
    monkeypatch.setattr(os, "write", lambda fd, data: real_write(fd, bytes(memoryview(data)[:1000])))
    payload = os.urandom(10_604)
    assert write_clip(tmp_path, "clips/a/b.wav", payload)
    monkeypatch.undo()
    assert (tmp_path / "clips/a/b.wav").read_bytes() == payload and temporary_files(tmp_path) == []
    assert not write_clip(tmp_path, "clips/a/b.wav", payload)  # the same bytes: left alone
    with pytest.raises(PipelineError, match="outside"):
        write_clip(tmp_path / "data", "../escaped.wav", payload)
    assert not (tmp_path / "escaped.wav").exists()


def test_make_data_notices_damage_and_a_build_for_other_settings(tmp_path):
    """`make data` reruns the data stage when a clip is deleted, and when a direct
    `pipeline data --set data.velocities=[60]` left a manifest of other settings: the clips of
    the other velocities are still there (nothing renders), and the manifest is the config's again."""
    from tests.test_make import CONFIG, copy_repository, make

    copy_repository(tmp_path)
    cfg = dataclasses.replace(tiny_config(Path("."), 'data.instruments=["Violin", "Flute"]', "data.note_low=60",
                                          "data.note_high=67"), name="tiny")
    (tmp_path / "configs").mkdir()
    (tmp_path / CONFIG).write_text(to_toml(cfg))
    folder = tmp_path / "data" / "tiny"
    assert make(tmp_path, "data") == ["data"]
    manifest = (folder / "manifest.csv").read_bytes()
    clips = file_states(folder, "clips/**/*.wav")
    assert make(tmp_path, "data") == []

    (folder / sorted(clips)[3]).unlink()
    assert make(tmp_path, "data") == ["data"]
    assert file_states(folder, "clips/**/*.wav").keys() == clips.keys()
    assert (folder / "manifest.csv").read_bytes() == manifest
    assert make(tmp_path, "data") == []

    clips = file_states(folder, "clips/**/*.wav")
    drift = run_cli("data", "--config", CONFIG, "--set", "data.velocities=[60]", cwd=tmp_path)
    assert drift.returncode == 0, drift.stderr
    assert (folder / "manifest.csv").read_bytes() != manifest
    assert {p: v for p, v in file_states(folder, "clips/**/*.wav").items() if p in clips} == clips  # all kept
    assert make(tmp_path, "data") == ["data"]
    assert (folder / "manifest.csv").read_bytes() == manifest
    assert json.loads((folder / "build.json").read_text())["notes_rendered"] == 0
    assert make(tmp_path, "data") == []


# --- faults a user can fix: one line --------------------------------------------------------
def assert_one_line(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    lines = stderr_lines(proc.stderr)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr and len(lines) == 1, proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.mark.parametrize("name", ["/tmp/victim", "../../victim", ".hidden", "a/b", ""])
def test_a_name_that_is_a_path_is_refused(tmp_path, name):
    config = tmp_path / "c.toml"
    config.write_text(to_toml(tiny_config(tmp_path)))
    proc = run_cli("params", "data", "--config", str(config), "--set", f"name={json.dumps(name)}",
                   "--out", str(tmp_path / "p.json"))
    assert_one_line(proc, "is not a plain name")
    assert not (tmp_path / "p.json").exists()


@pytest.mark.parametrize("key", ["data.seed", "train.seed"])
def test_a_negative_seed_is_one_line(tmp_path, key):
    proc = run_cli("params", key.split(".")[0], "--set", f"{key}=-1", "--out", str(tmp_path / "p.json"))
    assert_one_line(proc, f"{key} = -1 is out of range")


def test_an_empty_or_incomplete_manifest_is_one_line(tiny_dataset, tmp_path):
    cfg = dataclasses.replace(tiny_dataset, root=str(tmp_path))
    shutil.copytree(tiny_dataset.data_dir, cfg.data_dir, ignore=shutil.ignore_patterns("features"))
    config = tmp_path / "c.toml"
    config.write_text(to_toml(cfg))
    manifest = cfg.data_dir / "manifest.csv"
    good = manifest.read_text()
    manifest.write_text("")
    assert_one_line(run_cli("features", "--config", str(config)), "manifest", "is empty", "make data")
    header, *rows = good.splitlines()
    manifest.write_text("\n".join([header.replace(",split,", ",splat,"), *rows]) + "\n")
    assert_one_line(run_cli("features", "--config", str(config)), "lacks the column(s) split")
    manifest.write_text(header + "\n")
    assert_one_line(run_cli("features", "--config", str(config)), "lists no clips")


def test_a_damaged_clip_is_named_not_featurized(tiny_dataset, tmp_path):
    cfg = dataclasses.replace(tiny_dataset, root=str(tmp_path))
    shutil.copytree(tiny_dataset.data_dir, cfg.data_dir, ignore=shutil.ignore_patterns("features"))
    config = tmp_path / "c.toml"
    config.write_text(to_toml(cfg))
    clip = next((cfg.data_dir / "clips").rglob("*.wav"))
    flip_a_byte(clip)
    proc = run_cli("features", "--config", str(config))
    assert_one_line(proc, clip.name, "does not match its sha256", "make data")
    assert temporary_files(features_dir(cfg)) == []


def mount_tmpfs(folder: Path, size: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("a full disk is simulated with a small tmpfs, which needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode().strip()})")


def test_a_full_disk_is_one_line_and_leaves_no_temporary_file(tiny_dataset, tmp_path):
    cfg = dataclasses.replace(tiny_dataset, root=str(tmp_path))
    shutil.copytree(tiny_dataset.data_dir, cfg.data_dir, ignore=shutil.ignore_patterns("features"))
    config = tmp_path / "c.toml"
    config.write_text(to_toml(cfg))
    folder = features_dir(cfg)
    mount_tmpfs(folder, "1m")
    try:
        proc = run_cli("features", "--config", str(config))
        assert_one_line(proc, "disk full while writing", "train.npy", "free space")
        assert temporary_files(folder) == []
        with pytest.raises(PipelineError, match=r"disk full while writing .*big\.bin"):
            write_bytes(folder / "big.bin", b"\0" * 2_000_000)
        assert list(folder.iterdir()) == []  # nor a partial file
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_a_full_disk_during_data_is_one_line_naming_the_clip(tmp_path):
    """A worker's clip write fails after the progress bar started: the terminal shows the error
    alone (the bar is cleared, not left above it), naming the clip; no temporary file is left."""
    cfg = tiny_config(tmp_path, "data.workers=2")
    config = tmp_path / "tiny.toml"
    config.write_text(to_toml(cfg))
    mount_tmpfs(cfg.data_dir, "300k")
    try:
        done = subprocess.run([sys.executable, "-m", "pipeline", "data", "--config", str(config)], cwd=REPO,
                              capture_output=True, timeout=600)  # bytes: text mode reads a \r as a new line
        shown = [line.split("\r")[-1] for line in done.stderr.decode().split("\n")]
        assert done.returncode == 2 and [line for line in shown if line.strip()] == [
            next(line for line in shown if line.startswith("error: disk full while writing "))]
        assert f"{cfg.data_dir}/clips/" in done.stderr.decode() and ".wav; free space" in done.stderr.decode()
        assert temporary_files(cfg.data_dir) == []
    finally:
        subprocess.run(["umount", str(cfg.data_dir)], check=True)


def test_an_input_this_user_may_not_read_is_one_line_naming_it():
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("runs the CLI as user nobody, which needs root and setpriv")
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="pipeline-eacces-"))  # pytest's tmp_path is closed to other users
    try:
        folder.chmod(0o777)
        font = folder / "font.sf2"
        shutil.copy("/usr/share/sounds/sf2/TimGM6mb.sf2", font)
        font.chmod(0o000)
        proc = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-m",
                               "pipeline", "params", "data", "--set", f"data.soundfont={json.dumps(str(font))}",
                               "--out", str(folder / "p.json")], cwd=REPO, capture_output=True, text=True,
                              env={**os.environ, "HOME": str(folder)})
        assert_one_line(proc, str(font))
    finally:
        shutil.rmtree(folder)


def test_short_writes_are_continued(tmp_path, monkeypatch):
    """os.write may take part of the bytes (a nearly full disk): every byte still lands."""
    real_write = os.write
    monkeypatch.setattr(os, "write", lambda fd, data: real_write(fd, bytes(memoryview(data)[:1000])))
    payload = os.urandom(10_604)
    write_bytes(tmp_path / "clip.wav", payload)
    monkeypatch.undo()
    assert (tmp_path / "clip.wav").read_bytes() == payload
    assert temporary_files(tmp_path) == []


# --- a closed terminal (SIGHUP to the whole process group) ----------------------------------------
def test_a_closed_terminal_stops_a_data_build_with_one_line(tmp_path):
    """The workers and multiprocessing's resource tracker get the SIGHUP too: they are born with it
    blocked and leave the stop to the parent (a tracker killed by it was started again and printed
    a traceback per worker)."""
    config = long_data_config(tmp_path)
    proc = start("data", "--config", str(config))
    stop_when(proc, "hup-group", lambda: clips_written(tmp_path / "data") > 200)
    assert proc.returncode == 128 + signal.SIGHUP


def test_a_closed_terminal_stops_a_features_build_with_one_line(long_features, tmp_path):
    cfg, _ = long_features
    _, config = fresh_copy(cfg, tmp_path)
    proc = start("features", "--config", str(config))
    stop_when(proc, "hup-group", lambda: len(psutil.Process(proc.pid).children(recursive=True)) >= 3)
    assert proc.returncode == 128 + signal.SIGHUP
